// OpenTaskStore: the backend the configuration selects (DB_HOST: MySQL; otherwise SQLite in KG_DATA_DIR).
#include <filesystem>

#include "config/config.h"
#include "store/task_store.h"

namespace kg {

Result<std::unique_ptr<TaskStore>> OpenTaskStore(const Config& config) {
  if (!config.db_host.empty()) {
    return Status::Unavailable("DB_HOST is set but this build has no MySQL task store yet");
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  return OpenSqliteTaskStore(config.data_dir + "/tasks.db");
}

}  // namespace kg
