// OpenGraphStore: the backend the configuration selects (NEO4J_URI: Neo4j over Bolt; else
// DB_HOST: the same MySQL database as the task store; otherwise SQLite in KG_DATA_DIR).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "bolt/bolt.h"
#include "common/util.h"
#include "config/config.h"
#include "graph/graph_store.h"
#include "mysql/endpoint.h"

namespace kg {

// How long a process starting during an outage of its graph's server waits for it before giving up.
constexpr int64_t kOpenWaitMs = 30000;

Result<std::unique_ptr<GraphStore>> OpenGraphStore(const Config& config) {
  auto waiting = [](const Status& why) {
    spdlog::warn("graph: {}; waiting up to {} s for it", why.message(), kOpenWaitMs / 1000);
  };
  if (!config.neo4j_uri.empty()) {
    Neo4jEndpoint at = Neo4jEndpointOf(config);
    auto opened = RetryOpen<Result<std::unique_ptr<GraphStore>>>([&] { return OpenNeo4jGraphStore(at); },
                                                                 kOpenWaitMs, waiting);
    // Refused credentials or a database the server does not have: say which variables to check;
    // a server still away after the wait: say where it was looked for.
    if (!opened.ok() && opened.status().code() == Code::kInvalidArgument) {
      return opened.status().With("graph on Neo4j (check NEO4J_URI, NEO4J_USER, NEO4J_PASSWORD and NEO4J_DATABASE)");
    }
    if (!opened.ok() && opened.status().code() == Code::kUnavailable) {
      return opened.status().With("graph on Neo4j at NEO4J_URI=" + bolt::Describe(at));
    }
    return opened;
  }
  if (!config.db_host.empty()) {
    MysqlEndpoint at = MysqlEndpointOf(config);
    return RetryOpen<Result<std::unique_ptr<GraphStore>>>([&] { return OpenMysqlGraphStore(at); }, kOpenWaitMs,
                                                          waiting);
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  return OpenSqliteGraphStore(config.data_dir + "/graph.db");
}

}  // namespace kg
