// OpenGraphStore: the backend the configuration selects (DB_HOST: the same MySQL database as the
// task store; otherwise SQLite in KG_DATA_DIR). NEO4J_URI is refused by the configuration until the
// Neo4j backend exists.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/util.h"
#include "config/config.h"
#include "graph/graph_store.h"
#include "mysql/endpoint.h"

namespace kg {

// How long a process starting during a MySQL outage waits for it before giving up.
constexpr int64_t kOpenWaitMs = 30000;

Result<std::unique_ptr<GraphStore>> OpenGraphStore(const Config& config) {
  if (!config.db_host.empty()) {
    MysqlEndpoint at = MysqlEndpointOf(config);
    return RetryOpen<Result<std::unique_ptr<GraphStore>>>(
        [&] { return OpenMysqlGraphStore(at); }, kOpenWaitMs, [](const Status& why) {
          spdlog::warn("graph: {}; waiting up to {} s for it", why.message(), kOpenWaitMs / 1000);
        });
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  return OpenSqliteGraphStore(config.data_dir + "/graph.db");
}

}  // namespace kg
