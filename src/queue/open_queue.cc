// OpenQueue: the backend the configuration selects (REDIS_HOST: Redis; otherwise SQLite in KG_DATA_DIR).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/util.h"
#include "config/config.h"
#include "queue/queue.h"

namespace kg {

// How long a process starting during a Redis outage waits for it before giving up.
constexpr int64_t kOpenWaitMs = 30000;

Result<std::unique_ptr<Queue>> OpenQueue(const Config& config) {
  QueueOptions o;
  o.max_attempts = config.max_attempts;
  o.poison_crashes = config.poison_crashes;
  if (!config.redis_host.empty()) {
    RedisEndpoint at = RedisEndpointOf(config);
    return RetryOpen<Result<std::unique_ptr<Queue>>>([&] { return OpenRedisQueue(at, o); }, kOpenWaitMs,
                                                     [](const Status& why) {
                                                       spdlog::warn("queue: {}; waiting up to {} s for it",
                                                                    why.message(), kOpenWaitMs / 1000);
                                                     });
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  return OpenSqliteQueue(config.data_dir + "/queue.db", std::move(o));
}

}  // namespace kg
