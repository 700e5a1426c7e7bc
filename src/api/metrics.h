#pragma once
// The /metrics page in the Prometheus text exposition format (version 0.0.4), rendered with
// prometheus-cpp (a fresh registry per scrape, built from the node's current state; label
// values are escaped by the library). The metrics and the reporter rule are listed in
// docs/operations.md, "Metrics".
//
// Per-node series describe this node only (summing across nodes is right). Cluster-wide
// series (the queue, the node registry, the graph) are exported by the reporter node only,
// so that a sum across nodes does not count them once per node; every node exports
// kg_cluster_reporter saying whether it is the reporter.

#include <cstdint>
#include <string>
#include <vector>

#include "api/server.h"
#include "common/status.h"
#include "http/server.h"
#include "store/task_store.h"

namespace kg::api {

// What the API itself knows beyond the backends.
struct NodeMetrics {
  Status ready;                  // the /readyz check (Routes::Readiness): ok when it answers 200
  int64_t tasks_submitted = 0;   // tasks this node's API accepted since start
};

// The reporter rule: the registered, non-stale node with the smallest name exports the
// cluster-wide series. `self` counts as registered and live (it beats, or is about to); a
// registry that cannot be read (`nodes` an error) makes every node a reporter, so a store
// outage does not hide the queue. Pure.
bool IsReporter(const std::string& self, const Result<std::vector<NodeRecord>>& nodes, int64_t now_ms);

// The whole page from the node's current state and its HTTP server's counters. Backends
// that fail are left out (their series are missing, the rest is served). kInternal when the
// metrics library refuses a name (a bug).
Result<std::string> RenderMetrics(const ApiDeps& d, const http::Stats& http, const NodeMetrics& node);

}  // namespace kg::api
