#pragma once
// PackStream v1, the value encoding of the Bolt protocol (big-endian, one marker byte then
// data): null, booleans, 64-bit integers (always written in the smallest width), doubles,
// byte arrays, UTF-8 strings, lists, maps with string keys and tagged structures.
//
// Unpack reads exactly one value and is total: any byte sequence gives a value or a
// kInternal Status ("packstream: ..."), never a crash or an over-read; nesting deeper than
// kMaxDepth is refused. A structure whose tag it does not know is returned as a Struct all
// the same (the caller skips it), since every structure carries its field count.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.h"

namespace kg::bolt {

class Value;
using List = std::vector<Value>;
// A map in wire order (Bolt maps are small; a duplicate key's last value wins on lookup).
using Map = std::vector<std::pair<std::string, Value>>;
struct Struct {
  uint8_t tag = 0;
  std::vector<Value> fields;
};
// A byte array (PackStream Bytes), as distinct from a UTF-8 string.
struct Bytes {
  std::string data;
};

class Value {
 public:
  Value() = default;                                           // null
  Value(std::nullptr_t) {}                                     // NOLINT: implicit by design
  Value(bool v) : v_(v) {}                                     // NOLINT
  Value(int v) : v_(static_cast<int64_t>(v)) {}                // NOLINT
  Value(int64_t v) : v_(v) {}                                  // NOLINT
  Value(double v) : v_(v) {}                                   // NOLINT
  Value(std::string v) : v_(std::move(v)) {}                   // NOLINT
  Value(std::string_view v) : v_(std::string(v)) {}            // NOLINT
  Value(const char* v) : v_(std::string(v)) {}                 // NOLINT
  Value(Bytes v) : v_(std::move(v)) {}                         // NOLINT
  Value(List v) : v_(std::make_shared<List>(std::move(v))) {}  // NOLINT
  Value(Map v) : v_(std::make_shared<Map>(std::move(v))) {}    // NOLINT
  Value(Struct v) : v_(std::make_shared<Struct>(std::move(v))) {}  // NOLINT

  bool is_null() const { return v_.index() == 0; }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_bytes() const { return std::holds_alternative<Bytes>(v_); }
  bool is_list() const { return std::holds_alternative<std::shared_ptr<List>>(v_); }
  bool is_map() const { return std::holds_alternative<std::shared_ptr<Map>>(v_); }
  bool is_struct() const { return std::holds_alternative<std::shared_ptr<Struct>>(v_); }

  // Typed reads; reading the wrong type gives the type's empty value (false, 0, "", {}),
  // so check first where it matters.
  bool AsBool() const;
  int64_t AsInt() const;
  double AsFloat() const;  // an integer is converted
  const std::string& AsString() const;
  const Bytes& AsBytes() const;
  const List& AsList() const;
  const Map& AsMap() const;
  const Struct& AsStruct() const;
  // For a map: the value of `key` (the last one when repeated), or null when absent or
  // when this is not a map.
  const Value& operator[](std::string_view key) const;

  friend bool operator==(const Value& a, const Value& b);  // deep
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  // Containers behind shared_ptr so a Value stays small and copies of large results are
  // cheap; they are never mutated after construction (shared immutable data).
  std::variant<std::monostate, bool, int64_t, double, std::string, Bytes, std::shared_ptr<List>,
               std::shared_ptr<Map>, std::shared_ptr<Struct>>
      v_;
};

inline constexpr int kMaxDepth = 64;

// Appends the encoding of `v` to `out`. A string, list or map longer than 2^32-1 is a bug
// (it aborts); nesting is not limited on this side.
void Pack(const Value& v, std::string& out);
// Reads one value starting at `*pos` and advances `*pos` past it.
Result<Value> Unpack(std::string_view data, size_t* pos);

// For logs and test failures: a short JSON-like rendering (strings quoted, bytes as hex,
// structs as "Struct<0x4E>[...]").
std::string Debug(const Value& v);

}  // namespace kg::bolt
