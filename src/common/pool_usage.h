#pragma once
// How many connections a store's pool holds now in this process: what the worker reports
// as kg_store_connections (telemetry/worker_stats.h). A plain value.

#include <cstdint>
#include <string>

namespace kg {

struct PoolUsage {
  std::string backend;  // "mysql" or "neo4j" (the `backend` label)
  int64_t in_use = 0;   // borrowed now
  int64_t open = 0;     // open now, borrowed or idle
};

}  // namespace kg
