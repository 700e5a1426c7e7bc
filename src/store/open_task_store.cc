// OpenTaskStore: the backend the configuration selects (DB_HOST: MySQL; otherwise SQLite in KG_DATA_DIR).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/util.h"
#include "config/config.h"
#include "mysql/endpoint.h"
#include "store/task_store.h"

namespace kg {

// How long a process starting during a MySQL outage waits for it before giving up.
constexpr int64_t kOpenWaitMs = 30000;

Result<std::unique_ptr<TaskStore>> OpenTaskStore(const Config& config) {
  if (!config.db_host.empty()) {
    MysqlEndpoint at = MysqlEndpointOf(config);
    return RetryOpen<Result<std::unique_ptr<TaskStore>>>(
        [&] { return OpenMysqlTaskStore(at); }, kOpenWaitMs, [](const Status& why) {
          spdlog::warn("task store: {}; waiting up to {} s for it", why.message(), kOpenWaitMs / 1000);
        });
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  return OpenSqliteTaskStore(config.data_dir + "/tasks.db");
}

}  // namespace kg
