// OpenQueue: the backend the configuration selects (REDIS_HOST: Redis; otherwise SQLite in KG_DATA_DIR).
#include <filesystem>

#include "config/config.h"
#include "queue/queue.h"

namespace kg {

Result<std::unique_ptr<Queue>> OpenQueue(const Config& config) {
  QueueOptions o;
  o.max_attempts = config.max_attempts;
  o.poison_crashes = config.poison_crashes;
  if (!config.redis_host.empty()) {
    return Status::Unavailable("REDIS_HOST is set but this build has no Redis queue yet");
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  return OpenSqliteQueue(config.data_dir + "/queue.db", std::move(o));
}

}  // namespace kg
