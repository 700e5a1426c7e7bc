#include "bolt/packstream.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kg::bolt {

namespace {

const std::string kEmptyString;
const Bytes kEmptyBytes;
const List kEmptyList;
const Map kEmptyMap;
const Struct kEmptyStruct;
const Value kNull;

void PutBE(uint64_t v, int bytes, std::string& out) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// The marker and the size for a sized type: `tiny` (low nibble) when < 16 and the type has one,
// else `m8` / `m8+1` / `m8+2` followed by an 8, 16 or 32-bit size.
void PutSize(size_t n, int tiny, uint8_t m8, std::string& out) {
  if (tiny >= 0 && n < 16) {
    out.push_back(static_cast<char>(tiny | static_cast<int>(n)));
  } else if (n <= 0xFF) {
    out.push_back(static_cast<char>(m8));
    PutBE(n, 1, out);
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(m8 + 1));
    PutBE(n, 2, out);
  } else if (n <= 0xFFFFFFFFull) {
    out.push_back(static_cast<char>(m8 + 2));
    PutBE(n, 4, out);
  } else {
    std::fprintf(stderr, "packstream: a value of %zu items/bytes cannot be encoded\n", n);
    std::abort();
  }
}

void PackInt(int64_t v, std::string& out) {
  if (v >= -16 && v <= 127) {
    out.push_back(static_cast<char>(static_cast<uint8_t>(v)));
  } else if (v >= INT8_MIN && v <= INT8_MAX) {
    out.push_back(static_cast<char>(0xC8));
    PutBE(static_cast<uint64_t>(v), 1, out);
  } else if (v >= INT16_MIN && v <= INT16_MAX) {
    out.push_back(static_cast<char>(0xC9));
    PutBE(static_cast<uint64_t>(v), 2, out);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    out.push_back(static_cast<char>(0xCA));
    PutBE(static_cast<uint64_t>(v), 4, out);
  } else {
    out.push_back(static_cast<char>(0xCB));
    PutBE(static_cast<uint64_t>(v), 8, out);
  }
}

// The most list/map/struct entries reserved before they are read (hostile counts).
constexpr uint64_t kMaxReserve = 1024;

class Reader {
 public:
  Reader(std::string_view data, size_t pos) : d_(data), pos_(pos) {}
  size_t pos() const { return pos_; }

  Result<Value> Read(int depth) {
    if (depth > kMaxDepth) return Err("nesting deeper than " + std::to_string(kMaxDepth));
    uint8_t m = 0;
    if (!Byte(&m)) return Truncated();
    if (m <= 0x7F) return Value(static_cast<int64_t>(m));
    if (m >= 0xF0) return Value(static_cast<int64_t>(static_cast<int8_t>(m)));
    if (m >= 0x80 && m <= 0x8F) return ReadString(m & 0x0F);
    if (m >= 0x90 && m <= 0x9F) return ReadList(m & 0x0F, depth);
    if (m >= 0xA0 && m <= 0xAF) return ReadMap(m & 0x0F, depth);
    if (m >= 0xB0 && m <= 0xBF) return ReadStruct(m & 0x0F, depth);
    uint64_t n = 0;
    switch (m) {
      case 0xC0: return Value();
      case 0xC1: {
        if (!BE(8, &n)) return Truncated();
        double d;
        std::memcpy(&d, &n, sizeof d);
        return Value(d);
      }
      case 0xC2: return Value(false);
      case 0xC3: return Value(true);
      case 0xC8: if (!BE(1, &n)) return Truncated(); return Value(static_cast<int64_t>(static_cast<int8_t>(n)));
      case 0xC9: if (!BE(2, &n)) return Truncated(); return Value(static_cast<int64_t>(static_cast<int16_t>(n)));
      case 0xCA: if (!BE(4, &n)) return Truncated(); return Value(static_cast<int64_t>(static_cast<int32_t>(n)));
      case 0xCB: if (!BE(8, &n)) return Truncated(); return Value(static_cast<int64_t>(n));
      case 0xCC: case 0xCD: case 0xCE: {
        if (!BE(1 << (m - 0xCC), &n)) return Truncated();
        if (n > d_.size() - pos_) return Truncated();
        Bytes b{std::string(d_.substr(pos_, n))};
        pos_ += n;
        return Value(std::move(b));
      }
      case 0xD0: case 0xD1: case 0xD2:
        if (!BE(1 << (m - 0xD0), &n)) return Truncated();
        return ReadString(n);
      case 0xD4: case 0xD5: case 0xD6:
        if (!BE(1 << (m - 0xD4), &n)) return Truncated();
        return ReadList(n, depth);
      case 0xD8: case 0xD9: case 0xDA:
        if (!BE(1 << (m - 0xD8), &n)) return Truncated();
        return ReadMap(n, depth);
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "%02X", m);
        return Err(std::string("unknown marker 0x") + buf + " at offset " + std::to_string(pos_ - 1));
      }
    }
  }

 private:
  static Status Err(const std::string& what) { return Status::Internal("packstream: " + what); }
  Status Truncated() const { return Err("truncated value (input ends at offset " + std::to_string(d_.size()) + ")"); }

  bool Byte(uint8_t* b) {
    if (pos_ >= d_.size()) return false;
    *b = static_cast<uint8_t>(d_[pos_++]);
    return true;
  }
  bool BE(int bytes, uint64_t* v) {
    if (d_.size() - pos_ < static_cast<size_t>(bytes)) return false;
    uint64_t r = 0;
    for (int i = 0; i < bytes; ++i) r = (r << 8) | static_cast<uint8_t>(d_[pos_ + i]);
    pos_ += bytes;
    *v = r;
    return true;
  }
  Result<Value> ReadString(uint64_t n) {
    if (n > d_.size() - pos_) return Truncated();
    std::string s(d_.substr(pos_, n));
    pos_ += n;
    return Value(std::move(s));
  }
  // Every item takes at least one byte: a count larger than what is left is refused before
  // anything is reserved (a hostile 4 GiB count allocates nothing). Even a count that fits
  // what is left reserves at most kMaxReserve entries up front: a Value is ~40 bytes, so a
  // claim of one item per byte left would otherwise allocate 40 times the message.
  Result<Value> ReadList(uint64_t n, int depth) {
    if (n > d_.size() - pos_) return Truncated();
    List l;
    l.reserve(std::min<uint64_t>(n, kMaxReserve));
    for (uint64_t i = 0; i < n; ++i) {
      KG_ASSIGN_OR_RETURN(Value v, Read(depth + 1));
      l.push_back(std::move(v));
    }
    return Value(std::move(l));
  }
  Result<Value> ReadMap(uint64_t n, int depth) {
    if (n > (d_.size() - pos_) / 2) return Truncated();
    Map m;
    m.reserve(std::min<uint64_t>(n, kMaxReserve));
    for (uint64_t i = 0; i < n; ++i) {
      KG_ASSIGN_OR_RETURN(Value k, Read(depth + 1));
      if (!k.is_string()) return Err("a map key that is not a string: " + Debug(k));
      KG_ASSIGN_OR_RETURN(Value v, Read(depth + 1));
      m.emplace_back(k.AsString(), std::move(v));
    }
    return Value(std::move(m));
  }
  Result<Value> ReadStruct(uint64_t n, int depth) {
    uint8_t tag = 0;
    if (!Byte(&tag)) return Truncated();
    Struct s;
    s.tag = tag;
    s.fields.reserve(std::min<uint64_t>(n, kMaxReserve));
    for (uint64_t i = 0; i < n; ++i) {
      KG_ASSIGN_OR_RETURN(Value v, Read(depth + 1));
      s.fields.push_back(std::move(v));
    }
    return Value(std::move(s));
  }

  std::string_view d_;
  size_t pos_;
};

void AppendQuoted(const std::string& s, std::string& out) {
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

void DebugInto(const Value& v, std::string& out) {
  if (v.is_null()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.AsBool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.AsInt());
  } else if (v.is_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v.AsFloat());
    out += buf;
  } else if (v.is_string()) {
    AppendQuoted(v.AsString(), out);
  } else if (v.is_bytes()) {
    out += "0x";
    for (unsigned char c : v.AsBytes().data) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%02x", c);
      out += buf;
    }
  } else if (v.is_list()) {
    out.push_back('[');
    bool first = true;
    for (const Value& e : v.AsList()) {
      if (!first) out.push_back(',');
      first = false;
      DebugInto(e, out);
    }
    out.push_back(']');
  } else if (v.is_map()) {
    out.push_back('{');
    bool first = true;
    for (const auto& [k, e] : v.AsMap()) {
      if (!first) out.push_back(',');
      first = false;
      AppendQuoted(k, out);
      out.push_back(':');
      DebugInto(e, out);
    }
    out.push_back('}');
  } else {
    const Struct& s = v.AsStruct();
    char buf[16];
    std::snprintf(buf, sizeof buf, "Struct<0x%02X>", s.tag);
    out += buf;
    out.push_back('[');
    bool first = true;
    for (const Value& e : s.fields) {
      if (!first) out.push_back(',');
      first = false;
      DebugInto(e, out);
    }
    out.push_back(']');
  }
}

}  // namespace

bool Value::AsBool() const { return is_bool() && std::get<bool>(v_); }
int64_t Value::AsInt() const { return is_int() ? std::get<int64_t>(v_) : 0; }
double Value::AsFloat() const {
  if (is_float()) return std::get<double>(v_);
  if (is_int()) return static_cast<double>(std::get<int64_t>(v_));
  return 0;
}
const std::string& Value::AsString() const { return is_string() ? std::get<std::string>(v_) : kEmptyString; }
const Bytes& Value::AsBytes() const { return is_bytes() ? std::get<Bytes>(v_) : kEmptyBytes; }
const List& Value::AsList() const { return is_list() ? *std::get<std::shared_ptr<List>>(v_) : kEmptyList; }
const Map& Value::AsMap() const { return is_map() ? *std::get<std::shared_ptr<Map>>(v_) : kEmptyMap; }
const Struct& Value::AsStruct() const {
  return is_struct() ? *std::get<std::shared_ptr<Struct>>(v_) : kEmptyStruct;
}

const Value& Value::operator[](std::string_view key) const {
  const Map& m = AsMap();
  for (auto it = m.rbegin(); it != m.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return kNull;
}

bool operator==(const Value& a, const Value& b) {
  if (a.v_.index() != b.v_.index()) return false;
  if (a.is_null()) return true;
  if (a.is_bool()) return a.AsBool() == b.AsBool();
  if (a.is_int()) return a.AsInt() == b.AsInt();
  if (a.is_float()) {
    // Bitwise, so that a NaN equals the NaN it round-tripped to.
    double x = a.AsFloat(), y = b.AsFloat();
    return std::memcmp(&x, &y, sizeof x) == 0;
  }
  if (a.is_string()) return a.AsString() == b.AsString();
  if (a.is_bytes()) return a.AsBytes().data == b.AsBytes().data;
  if (a.is_list()) return a.AsList() == b.AsList();
  if (a.is_map()) return a.AsMap() == b.AsMap();
  const Struct& s = a.AsStruct();
  const Struct& t = b.AsStruct();
  return s.tag == t.tag && s.fields == t.fields;
}

void Pack(const Value& v, std::string& out) {
  if (v.is_null()) {
    out.push_back(static_cast<char>(0xC0));
  } else if (v.is_bool()) {
    out.push_back(static_cast<char>(v.AsBool() ? 0xC3 : 0xC2));
  } else if (v.is_int()) {
    PackInt(v.AsInt(), out);
  } else if (v.is_float()) {
    double d = v.AsFloat();
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    out.push_back(static_cast<char>(0xC1));
    PutBE(bits, 8, out);
  } else if (v.is_string()) {
    PutSize(v.AsString().size(), 0x80, 0xD0, out);
    out += v.AsString();
  } else if (v.is_bytes()) {
    PutSize(v.AsBytes().data.size(), -1, 0xCC, out);
    out += v.AsBytes().data;
  } else if (v.is_list()) {
    PutSize(v.AsList().size(), 0x90, 0xD4, out);
    for (const Value& e : v.AsList()) Pack(e, out);
  } else if (v.is_map()) {
    PutSize(v.AsMap().size(), 0xA0, 0xD8, out);
    for (const auto& [k, e] : v.AsMap()) {
      PutSize(k.size(), 0x80, 0xD0, out);
      out += k;
      Pack(e, out);
    }
  } else {
    const Struct& s = v.AsStruct();
    if (s.fields.size() > 15) {
      std::fprintf(stderr, "packstream: a struct of %zu fields cannot be encoded\n", s.fields.size());
      std::abort();
    }
    out.push_back(static_cast<char>(0xB0 | s.fields.size()));
    out.push_back(static_cast<char>(s.tag));
    for (const Value& e : s.fields) Pack(e, out);
  }
}

Result<Value> Unpack(std::string_view data, size_t* pos) {
  if (*pos > data.size()) return Status::Internal("packstream: start offset past the end of the input");
  Reader r(data, *pos);
  KG_ASSIGN_OR_RETURN(Value v, r.Read(0));
  *pos = r.pos();
  return v;
}

std::string Debug(const Value& v) {
  std::string out;
  DebugInto(v, out);
  return out;
}

}  // namespace kg::bolt
