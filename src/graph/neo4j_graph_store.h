#pragma once
// Seams of the Neo4j graph store for its tests and its bench; the service opens it through
// OpenNeo4jGraphStore(endpoint) in graph_store.h.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "bolt/endpoint.h"
#include "graph/graph_store.h"

namespace kg {

namespace bolt {
class Connection;
}  // namespace bolt

// The server's write counters ("stats" of each statement's summary), summed over the Merge
// calls that committed (a rolled-back or retried attempt adds nothing).
// `statements`: the Cypher statements those calls ran.
struct Neo4jWriteCounts {
  std::atomic<int64_t> nodes_created{0}, nodes_deleted{0}, relationships_created{0}, relationships_deleted{0};
  std::atomic<int64_t> statements{0};
};

struct Neo4jGraphOptions {
  // Not owned; must outlive the store. Null: not counted.
  Neo4jWriteCounts* counts = nullptr;
  // The bench's baseline: every UNWIND statement is sent once per row instead of once per
  // batch of rows (same Cypher, same transaction, same result).
  bool one_row_per_statement = false;
  // How long Merge retries transient failures (deadlocks, a lost connection) itself: no new
  // attempt begins once this much time has passed since the call began, and the call then
  // fails with kUnavailable (the worker retries a Merge on its own too).
  std::chrono::milliseconds merge_deadline{30000};
  // Tests only: runs on the transaction's connection at the end of every attempt of a Merge,
  // before COMMIT; an error fails the attempt as a failed COMMIT would. Null: nothing.
  std::function<Status(bolt::Connection&)> before_commit = nullptr;
};

Result<std::unique_ptr<GraphStore>> OpenNeo4jGraphStore(const Neo4jEndpoint& endpoint,
                                                        const Neo4jGraphOptions& options);

}  // namespace kg
