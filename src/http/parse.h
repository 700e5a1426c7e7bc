#pragma once
// Request parsing the server does before a handler runs: the target's path and query, and
// multipart/form-data bodies. Pure functions, tested on their own.

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http/message.h"

namespace kg::http {

// Percent-decodes `s`; in a query (`plus_is_space`) '+' is a space. nullopt for a malformed
// escape ("%zz", a trailing "%").
std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space);

// Splits a request target into the decoded path and query parameters. kInvalidArgument for a
// target that is not a path ("*", an absolute URI without a path) or a malformed escape.
Status ParseTarget(std::string_view target, Request* req);

// The value of parameter `name` in a header value like `multipart/form-data; boundary=x`
// (quotes removed); "" when absent.
std::string HeaderParam(std::string_view value, std::string_view name);

// Parses a multipart/form-data body with `boundary` into parts by name (the first of a
// repeated name wins). kInvalidArgument for a body that is not one.
Status ParseMultipart(std::string_view body, std::string_view boundary, std::map<std::string, FormPart>* parts);

}  // namespace kg::http
