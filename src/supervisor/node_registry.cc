#include "supervisor/node_registry.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "common/util.h"
#include "store/task_store.h"

namespace kg {

std::string ScaleSettingKey(const std::string& provider) { return "processes.per_node." + provider; }

std::optional<int> ParseScaleSetting(const std::string& value) {
  if (value.empty() || value.size() > 9) return std::nullopt;
  int n = 0;
  for (char ch : value) {
    if (ch < '0' || ch > '9') return std::nullopt;
    n = n * 10 + (ch - '0');
  }
  return n;
}

NodeRegistry::NodeRegistry(const Config& config, TaskStore& store) : c_(config), store_(store) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  host_ = host;
}

Status NodeRegistry::Beat(const std::string& processes_json) {
  NodeRecord n;
  n.name = c_.node_name;
  n.role = RoleName(c_.role);
  n.host = host_;
  n.pid = getpid();
  n.heartbeat_at_ms = NowMs();
  n.processes_json = processes_json;
  return store_.UpsertNode(n);
}

Status NodeRegistry::Remove() { return store_.RemoveNode(c_.node_name); }

NodeHeartbeat::NodeHeartbeat(const Config& config, TaskStore& store, std::chrono::milliseconds period)
    : registry_(config, store) {
  thread_ = std::thread([this, period] {
    while (true) {
      Status s = registry_.Beat("[]");
      if (!s.ok()) spdlog::warn("node heartbeat: {}", s.message());
      MutexLock l(mu_);
      auto due = std::chrono::steady_clock::now() + period;
      while (!stop_ && cv_.WaitUntil(l, due)) {
      }
      if (stop_) return;
    }
  });
}

NodeHeartbeat::~NodeHeartbeat() {
  {
    MutexLock l(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  thread_.join();
}

}  // namespace kg
