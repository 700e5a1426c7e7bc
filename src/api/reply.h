#pragma once
// How every API handler answers: JSON bodies, errors as {"error": "..."} with the HTTP
// status that fits the Status code.

#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "http/message.h"

namespace kg::api {

inline int HttpStatus(Code c) {
  switch (c) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kConflict: return 409;
    case Code::kUnavailable: return 503;
    case Code::kInternal: return 500;
  }
  return 500;
}

// Invalid UTF-8 in a value is replaced, so a reply is always valid JSON.
inline void Reply(http::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

inline void Fail(http::Response& res, int status, const std::string& msg) { Reply(res, status, {{"error", msg}}); }
inline void Fail(http::Response& res, const Status& s) { Fail(res, HttpStatus(s.code()), s.message()); }

}  // namespace kg::api
