// OpenQueue: the backend the configuration selects (REDIS_HOST: Redis; otherwise SQLite in KG_DATA_DIR).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/util.h"
#include "config/config.h"
#include "queue/queue.h"
#include "redis/client.h"

namespace kg {

// How long a process starting during a Redis outage waits for it before giving up.
constexpr int64_t kOpenWaitMs = 30000;

Result<std::unique_ptr<Queue>> OpenQueue(const Config& config) {
  QueueOptions o;
  o.max_attempts = config.max_attempts;
  o.poison_crashes = config.poison_crashes;
  o.done_retention_ms = config.queue_retention_hours * 3600LL * 1000;
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

std::vector<std::string> QueueDurabilityWarnings(const Config& config) {
  std::vector<std::string> out;
  if (config.redis_host.empty()) return out;
  redis::Client client(RedisEndpointOf(config));
  auto info = client.Run(redis::Call::Cmd({"INFO", "all"}));
  if (!info.ok() || info->type != redis::Value::Type::kString) return out;
  auto field = [&](const std::string& name) {
    const std::string& text = info->Str();
    size_t at = text.find("\n" + name + ":");
    if (at == std::string::npos) return std::string();
    size_t start = at + name.size() + 2, end = text.find_first_of("\r\n", start);
    return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
  };
  if (field("aof_enabled") == "0") {
    out.push_back(client.Where() +
                  " runs without its append-only file: a restart empties the queue, and unfinished tasks then "
                  "show failed (resubmit them). Set `appendonly yes` (docs/deployment.md)");
  }
  std::string policy = field("maxmemory_policy");
  if (!policy.empty() && policy != "noeviction") {
    out.push_back(client.Where() + " evicts keys when full (maxmemory-policy " + policy +
                  "): queued chunks can vanish. Set `maxmemory-policy noeviction` (docs/deployment.md)");
  }
  return out;
}

}  // namespace kg
