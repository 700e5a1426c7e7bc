// Neo4j graph writes: relations per second written by the store's batched statements
// (`UNWIND $rows ... MERGE`, a handful per Merge call) against the same store sending every
// statement once per row (Neo4jGraphOptions::one_row_per_statement: the same Cypher, the same
// transactions, one round trip and one statement execution per row), on the same data: the
// batches of CHUNKS builtin-provider chunks, BATCH batches per Merge call as a worker sends
// them, into an emptied graph each run, on a private Neo4j 5.26 started here
// (scripts/test_servers.sh), after an untimed warm-up of each way. The two ways alternate run
// by run; medians of RUNS runs.
// Relations/s counts the relation rows of the batches (each Merge writes their chunks'
// documents, chunks, entities and mentions too).
// Usage: neo4j_bench [chunks] [batch] [runs]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "graph/neo4j_graph_store.h"
#include "graph_batches.h"
#include "result.h"
#include "testing/neo4j.h"
#include "testing/servers.h"
#include "testing/testing.h"

using namespace std::chrono;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Seconds to merge `batches` into an emptied graph, `per_merge` per call; -1 on failure.
double MergeAll(const kg::Neo4jEndpoint& at, const kg::testing::ServerProcess& server,
                const std::vector<kg::GraphBatch>& batches, size_t per_merge, bool one_row) {
  kg::testing::ClearNeo4j(server);
  auto g = kg::OpenNeo4jGraphStore(at, kg::Neo4jGraphOptions{nullptr, one_row});
  if (!g.ok()) {
    std::fprintf(stderr, "open: %s\n", g.status().message().c_str());
    return -1;
  }
  auto t0 = steady_clock::now();
  for (size_t i = 0; i < batches.size(); i += per_merge) {
    std::vector<kg::GraphBatch> group(batches.begin() + i, batches.begin() + std::min(batches.size(), i + per_merge));
    kg::Status s = (*g)->Merge(group);
    if (!s.ok()) {
      std::fprintf(stderr, "merge: %s\n", s.message().c_str());
      return -1;
    }
  }
  return duration<double>(steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int chunks = argc > 1 ? std::atoi(argv[1]) : 1000;
  const size_t per_merge = argc > 2 ? std::atoi(argv[2]) : 32;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  const std::vector<kg::GraphBatch> batches = kg::bench::BuildBatches(chunks);
  size_t entities = 0, relations = 0;
  for (const auto& b : batches) {
    entities += b.entities.size();
    relations += b.relations.size();
  }
  std::printf("# neo4j: %zu batches (%zu entity and %zu relation rows), %zu per Merge, %d runs\n", batches.size(),
              entities, relations, per_merge, runs);

  kg::testing::TempDir dir;
  kg::testing::ServerProcess server = kg::testing::StartServer("neo4j", dir.File("neo4j"));
  if (server.port == 0) return 1;
  const kg::Neo4jEndpoint at = kg::testing::Neo4jAt(server);
  // A fresh server compiles every query once and its JIT warms up: one untimed round of each
  // way first (the first timed run was 2 to 10 times slower without it).
  const std::vector<kg::GraphBatch> warm(batches.begin(), batches.begin() + std::min<size_t>(batches.size(), 128));
  for (bool row_at_a_time : {false, true}) {
    if (MergeAll(at, server, warm, per_merge, row_at_a_time) < 0) {
      kg::testing::StopServer(server);
      return 1;
    }
  }
  std::vector<double> batched, one_row;
  int status = 0;
  for (int r = 0; r < runs && status == 0; ++r) {
    for (bool row_at_a_time : {false, true}) {
      const double s = MergeAll(at, server, batches, per_merge, row_at_a_time);
      if (s < 0) {
        status = 1;
        break;
      }
      const double rate = relations / s;
      (row_at_a_time ? one_row : batched).push_back(rate);
      std::printf("neo4j run %d, %s: %.1f s, %.0f relations/s\n", r + 1,
                  row_at_a_time ? "one statement per row" : "batched UNWIND", s, rate);
    }
  }
  kg::testing::ClearNeo4j(server);
  kg::testing::StopServer(server);
  if (status != 0) return status;
  kg::bench::Emit("neo4j.batched.relations_per_s", Median(batched), "relations/s", "median", batched.size());
  kg::bench::Emit("neo4j.one_row.relations_per_s", Median(one_row), "relations/s", "median", one_row.size());
  kg::bench::Emit("neo4j.batched_over_one_row", Median(batched) / Median(one_row), "x", "median", batched.size());
  return 0;
}
