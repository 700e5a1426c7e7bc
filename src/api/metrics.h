#pragma once
// The /metrics page in the Prometheus text exposition format (version 0.0.4).

#include <string>
#include <string_view>

#include "api/server.h"
#include "http/server.h"

namespace kg::api {

// A label value as the text format wants it: backslash, double quote and line feed
// escaped as \\, \" and \n. Anything else passes through (UTF-8 is allowed).
std::string EscapeLabelValue(std::string_view v);

// The whole page from the node's current state and its HTTP server's counters. Backends
// that fail are left out.
std::string RenderMetrics(const ApiDeps& d, const http::Stats& http);

}  // namespace kg::api
