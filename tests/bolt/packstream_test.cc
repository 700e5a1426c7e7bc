// PackStream v1: exact encodings at every width boundary, round trips, and an Unpack that is
// total on hostile or truncated input.
#include "bolt/packstream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <limits>
#include <string>

// The largest single allocation while `track_allocations` is set: replacing the global
// operator new is the only way to see what Unpack reserves.
namespace {
std::atomic<bool> track_allocations{false};
std::atomic<size_t> largest_allocation{0};
}  // namespace

void* operator new(size_t n) {
  if (track_allocations.load(std::memory_order_relaxed)) {
    size_t seen = largest_allocation.load();
    while (n > seen && !largest_allocation.compare_exchange_weak(seen, n)) {
    }
  }
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
// The matching deletes (new above allocates with malloc).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace kg::bolt {
namespace {

std::string Packed(const Value& v) {
  std::string out;
  Pack(v, out);
  return out;
}

Value RoundTrip(const Value& v) {
  std::string bytes = Packed(v);
  size_t pos = 0;
  Result<Value> r = Unpack(bytes, &pos);
  EXPECT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(pos, bytes.size());
  return r.ok() ? *r : Value();
}

uint8_t Marker(const Value& v) { return static_cast<uint8_t>(Packed(v)[0]); }

// Verifies each integer is written in the smallest width, on both sides of every boundary,
// and reads back to itself.
TEST(PackStream, IntegersUseTheSmallestWidth) {
  struct Case {
    int64_t v;
    uint8_t marker;  // 0: tiny (the value itself)
    size_t size;
  };
  const Case cases[] = {
      {0, 0, 1},
      {127, 0, 1},
      {128, 0xC9, 3},
      {-16, 0, 1},
      {-17, 0xC8, 2},
      {-128, 0xC8, 2},
      {-129, 0xC9, 3},
      {32767, 0xC9, 3},
      {32768, 0xCA, 5},
      {-32768, 0xC9, 3},
      {-32769, 0xCA, 5},
      {INT32_MAX, 0xCA, 5},
      {int64_t{INT32_MAX} + 1, 0xCB, 9},
      {INT32_MIN, 0xCA, 5},
      {int64_t{INT32_MIN} - 1, 0xCB, 9},
      {INT64_MAX, 0xCB, 9},
      {INT64_MIN, 0xCB, 9},
  };
  for (const Case& c : cases) {
    std::string bytes = Packed(Value(c.v));
    EXPECT_EQ(bytes.size(), c.size) << c.v;
    if (c.marker != 0) {
      EXPECT_EQ(static_cast<uint8_t>(bytes[0]), c.marker) << c.v;
    }
    Value back = RoundTrip(Value(c.v));
    EXPECT_TRUE(back.is_int());
    EXPECT_EQ(back.AsInt(), c.v);
  }
  EXPECT_EQ(Packed(Value(-1)), std::string("\xFF", 1));
  EXPECT_EQ(Packed(Value(-16)), std::string("\xF0", 1));
  EXPECT_EQ(Packed(Value(1000)), std::string("\xC9\x03\xE8", 3));
}

// Verifies doubles (NaN, infinities, -0.0, extremes) round-trip bit for bit as C1 + 8 bytes.
TEST(PackStream, FloatsRoundTripBitForBit) {
  const double cases[] = {0.0, -0.0, 1.5, -1e300, std::numeric_limits<double>::min(),
                          std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::infinity(),
                          -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()};
  for (double d : cases) {
    std::string bytes = Packed(Value(d));
    ASSERT_EQ(bytes.size(), 9u);
    EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 0xC1);
    Value back = RoundTrip(Value(d));
    ASSERT_TRUE(back.is_float());
    EXPECT_EQ(back, Value(d));
    EXPECT_EQ(std::signbit(back.AsFloat()), std::signbit(d));
  }
  EXPECT_TRUE(std::isnan(RoundTrip(Value(std::nan(""))).AsFloat()));
  EXPECT_EQ(Packed(Value(1.1)), std::string("\xC1\x3F\xF1\x99\x99\x99\x99\x99\x9A", 9));
}

std::string Text(size_t bytes, const std::string& unit) {
  std::string s;
  while (s.size() + unit.size() <= bytes) s += unit;
  while (s.size() < bytes) s += 'a';
  return s;
}

// Verifies string markers at 0/15/16/255/256/65535/65536/100000 bytes, with ASCII, Chinese and
// emoji content (sizes count bytes, not characters).
TEST(PackStream, StringsAtEveryMarkerBoundary) {
  struct Case {
    size_t size;
    uint8_t marker;
    size_t header;
  };
  const Case cases[] = {{0, 0x80, 1},      {15, 0x8F, 1},     {16, 0xD0, 2},     {255, 0xD0, 2},
                        {256, 0xD1, 3},    {65535, 0xD1, 3},  {65536, 0xD2, 5},  {100000, 0xD2, 5}};
  for (const std::string unit : {"a", "知识图谱", "😀", "中😀x"}) {
    for (const Case& c : cases) {
      std::string s = Text(c.size, unit);
      ASSERT_EQ(s.size(), c.size);
      std::string bytes = Packed(Value(s));
      EXPECT_EQ(static_cast<uint8_t>(bytes[0]), c.marker) << c.size;
      EXPECT_EQ(bytes.size(), c.header + c.size);
      Value back = RoundTrip(Value(s));
      ASSERT_TRUE(back.is_string());
      EXPECT_EQ(back.AsString(), s);
    }
  }
  EXPECT_EQ(Packed(Value("知")), std::string("\x83\xE7\x9F\xA5", 4));
}

// Verifies byte arrays use CC/CD/CE (no tiny form) and stay distinct from strings.
TEST(PackStream, BytesAtEveryMarkerBoundary) {
  const std::pair<size_t, uint8_t> cases[] = {{0, 0xCC}, {255, 0xCC}, {256, 0xCD}, {65535, 0xCD}, {65536, 0xCE}};
  for (auto [n, marker] : cases) {
    Bytes b{std::string(n, '\xAB')};
    EXPECT_EQ(Marker(Value(b)), marker) << n;
    Value back = RoundTrip(Value(b));
    ASSERT_TRUE(back.is_bytes());
    EXPECT_EQ(back.AsBytes().data, b.data);
    EXPECT_NE(back, Value(b.data));
  }
}

// Verifies list and map size markers on both sides of each boundary.
TEST(PackStream, ListAndMapSizes) {
  const std::tuple<size_t, uint8_t, uint8_t> cases[] = {{0, 0x90, 0xA0},     {15, 0x9F, 0xAF},    {16, 0xD4, 0xD8},
                                                        {255, 0xD4, 0xD8},   {256, 0xD5, 0xD9},   {65535, 0xD5, 0xD9},
                                                        {65536, 0xD6, 0xDA}};
  for (auto [n, list_marker, map_marker] : cases) {
    List l;
    Map m;
    for (size_t i = 0; i < n; ++i) {
      l.emplace_back(static_cast<int64_t>(i));
      m.emplace_back("k" + std::to_string(i), Value(static_cast<int64_t>(i)));
    }
    EXPECT_EQ(Marker(Value(l)), list_marker) << n;
    EXPECT_EQ(Marker(Value(m)), map_marker) << n;
    EXPECT_EQ(RoundTrip(Value(l)), Value(l));
    EXPECT_EQ(RoundTrip(Value(m)), Value(m));
  }
}

// Verifies nested maps and lists of every type round-trip, and map lookups.
TEST(PackStream, NestedValuesRoundTrip) {
  Value v(Map{{"name", "知识图谱 😀"},
              {"n", -42},
              {"f", 2.5},
              {"ok", true},
              {"none", nullptr},
              {"blob", Bytes{std::string("\0\x01\xFF", 3)}},
              {"list", List{1, "two", List{3.0, Map{{"deep", List{List{List{}}}}}}}},
              {"map", Map{{"a", Map{{"b", Map{{"c", "d"}}}}}}}});
  Value back = RoundTrip(v);
  EXPECT_EQ(back, v);
  EXPECT_EQ(back["name"].AsString(), "知识图谱 😀");
  EXPECT_EQ(back["map"]["a"]["b"]["c"].AsString(), "d");
  EXPECT_TRUE(back["absent"].is_null());
  EXPECT_EQ(back["list"].AsList()[1].AsString(), "two");
}

// Verifies a repeated key is kept in wire order and the last value wins on lookup.
TEST(PackStream, DuplicateMapKeysLastWins) {
  std::string bytes("\xA2\x81k\x01\x81k\x02", 7);
  size_t pos = 0;
  Result<Value> v = Unpack(bytes, &pos);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->AsMap().size(), 2u);
  EXPECT_EQ((*v)["k"].AsInt(), 2);
}

// Verifies a struct with an unknown tag comes back as a generic Struct, and re-packs to the
// same bytes; a Node struct likewise.
TEST(PackStream, UnknownStructRoundTrip) {
  Value s(Struct{0x42, {1, "x", Map{{"y", List{}}}}});
  std::string bytes = Packed(s);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 0xB3);
  EXPECT_EQ(static_cast<uint8_t>(bytes[1]), 0x42);
  Value back = RoundTrip(s);
  ASSERT_TRUE(back.is_struct());
  EXPECT_EQ(back.AsStruct().tag, 0x42);
  EXPECT_EQ(back, s);
  EXPECT_EQ(Packed(back), bytes);
  EXPECT_EQ(Debug(Value(Struct{0x4E, {7}})), "Struct<0x4E>[7]");
}

// Verifies Unpack on every proper prefix of a rich value is an error, never a crash or an
// over-read (ASan checks the reads), and that trailing bytes are left for the next value.
TEST(PackStream, TruncatedInputAtEveryOffsetIsAnError) {
  Value v(Map{{"s", Text(300, "中")},
              {"i", List{0, -17, 200, 70000, int64_t{1} << 40}},
              {"f", 3.25},
              {"b", Bytes{std::string(20, 'x')}},
              {"st", Struct{0x4E, {1, List{"Label"}, Map{{"k", "v"}}, "4:abc:1"}}},
              {"big", Map{{"n", Text(70000, "a")}}}});
  std::string bytes = Packed(v);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::string prefix = bytes.substr(0, cut);  // its own allocation: an over-read is caught
    size_t pos = 0;
    Result<Value> r = Unpack(prefix, &pos);
    ASSERT_FALSE(r.ok()) << "a prefix of " << cut << " bytes unpacked";
    ASSERT_EQ(r.status().code(), Code::kInternal);
    ASSERT_EQ(r.status().message().rfind("packstream: ", 0), 0u) << r.status().message();
    ASSERT_EQ(pos, 0u);
  }
  std::string two = bytes + std::string("\x01", 1);
  size_t pos = 0;
  ASSERT_TRUE(Unpack(two, &pos).ok());
  EXPECT_EQ(pos, bytes.size());
  Result<Value> next = Unpack(two, &pos);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->AsInt(), 1);
}

// Verifies hostile input: unknown markers, huge declared sizes, non-string map keys and nesting
// past kMaxDepth are errors without allocating what the input claims.
TEST(PackStream, HostileInputIsRefused) {
  const std::string bad[] = {
      std::string("\xC4", 1),                        // reserved marker
      std::string("\xE0", 1),                        // UUID (PackStream 1.1) is not v1
      std::string("\xD2\xFF\xFF\xFF\xFF", 5),        // a 4 GiB string in 5 bytes
      std::string("\xD6\xFF\xFF\xFF\xFF\x01", 6),    // a 4-billion-item list
      std::string("\xDA\xFF\xFF\xFF\xFF\x81k", 7),   // a 4-billion-entry map
      std::string("\xCE\x7F\xFF\xFF\xFF", 5),        // 2 GiB of bytes
      std::string("\xA1\x01\x02", 3),                // an integer map key
      std::string("\xBF", 1),                        // a struct without its tag
  };
  for (const std::string& b : bad) {
    size_t pos = 0;
    Result<Value> r = Unpack(b, &pos);
    EXPECT_FALSE(r.ok()) << Debug(Value(Bytes{b}));
  }
  std::string deep(kMaxDepth + 1, '\x91');
  deep += '\x01';
  size_t pos = 0;
  Result<Value> r = Unpack(deep, &pos);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nesting"), std::string::npos) << r.status().message();
  std::string ok_deep(kMaxDepth, '\x91');
  ok_deep += '\x01';
  pos = 0;
  EXPECT_TRUE(Unpack(ok_deep, &pos).ok());
  pos = 5;
  EXPECT_FALSE(Unpack("ab", &pos).ok());
}

// Verifies the typed reads give the empty value on a type mismatch.
TEST(PackStream, WrongTypeReadsAreEmpty) {
  Value s("x");
  EXPECT_EQ(s.AsInt(), 0);
  EXPECT_FALSE(s.AsBool());
  EXPECT_TRUE(s.AsList().empty());
  EXPECT_TRUE(s.AsMap().empty());
  EXPECT_TRUE(s["k"].is_null());
  EXPECT_EQ(Value(3).AsFloat(), 3.0);
  EXPECT_EQ(Value(3).AsString(), "");
  EXPECT_NE(Value(1), Value(1.0));
  EXPECT_NE(Value(true), Value(1));
}

// Verifies a hostile count is not reserved up front: a list (or map) header claiming one entry
// per byte left passes the bytes-left check, then fails on the first entry (a reserved marker),
// and at no point allocates more than a small fixed number of entries (not ~40 bytes per byte
// of the message).
TEST(Unpack, HostileCountsReserveLittle) {
  constexpr uint32_t kCount = 1u << 20;
  for (uint8_t marker : {uint8_t{0xD6}, uint8_t{0xDA}}) {  // LIST_32, MAP_32
    std::string bytes(1, static_cast<char>(marker));
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((kCount >> shift) & 0xFF));
    bytes.append(marker == 0xDA ? 2 * kCount : kCount, static_cast<char>(0xE7));  // 0xE7: a reserved marker
    largest_allocation = 0;
    track_allocations = true;
    size_t pos = 0;
    Result<Value> v = Unpack(bytes, &pos);
    track_allocations = false;
    ASSERT_FALSE(v.ok()) << std::hex << int{marker};
    EXPECT_LE(largest_allocation.load(), 1024 * sizeof(Map::value_type) + 4096)
        << "marker 0x" << std::hex << int{marker} << ": reserved for the claimed count";
  }
  // A well-formed long list still unpacks whole.
  List many(5000, Value(int64_t{7}));
  Value back = RoundTrip(Value(many));
  ASSERT_TRUE(back.is_list());
  EXPECT_EQ(back.AsList().size(), 5000u);
}

}  // namespace
}  // namespace kg::bolt
