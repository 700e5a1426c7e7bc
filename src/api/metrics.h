#pragma once
// The /metrics page in the Prometheus text exposition format (version 0.0.4).

#include <string>
#include <string_view>

#include "api/server.h"

namespace kg::api {

// The whole page from the node's current state. Backends that fail are left out.
std::string RenderMetrics(const ApiDeps& d);

}  // namespace kg::api
