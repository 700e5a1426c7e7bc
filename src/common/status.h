#pragma once
// Errors as values: Status for operations without a result, Result<T> for those with one.
// Messages carry context ("open queue db /x/queue.db: unable to open database file").

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kg {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller's input is bad; maps to HTTP 400 / exit code 2
  kNotFound,         // maps to HTTP 404
  kConflict,         // e.g. a stale lease token; maps to HTTP 409
  kUnavailable,      // a backend is down or busy; retryable
  kInternal,         // a bug or an unexpected backend answer
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status Invalid(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // Returns a copy whose message is prefixed by `context: `.
  Status With(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace kg

#define KG_RETURN_IF_ERROR(expr)         \
  do {                                   \
    ::kg::Status kg_status_ = (expr);    \
    if (!kg_status_.ok()) return kg_status_; \
  } while (0)

#define KG_STATUS_CONCAT_INNER_(a, b) a##b
#define KG_STATUS_CONCAT_(a, b) KG_STATUS_CONCAT_INNER_(a, b)
// `KG_ASSIGN_OR_RETURN(auto x, Expr());` declares x from a Result or returns its Status.
#define KG_ASSIGN_OR_RETURN(lhs, expr) KG_ASSIGN_OR_RETURN_IMPL_(KG_STATUS_CONCAT_(kg_result_, __LINE__), lhs, expr)
#define KG_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
