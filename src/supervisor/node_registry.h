#pragma once
// The node registry: each node's record (name, role, host, pid, heartbeat, process
// table) in the task store, and the per-provider process settings that `scale` stores
// there for every node to apply.

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/mutex.h"

#include "common/status.h"
#include "config/config.h"

namespace kg {

class TaskStore;

// The task-store setting holding the per-node processes of `provider` set at runtime
// (`kgflow scale`, PUT /api/v1/providers/{name}/processes). The one definition of the key.
std::string ScaleSettingKey(const std::string& provider);
// The stored value as a process count; nullopt when it is not a whole number >= 0.
std::optional<int> ParseScaleSetting(const std::string& value);

// Writes this node's record. Thread-safe if the store is. Borrowed store and config
// must outlive it.
class NodeRegistry {
 public:
  NodeRegistry(const Config& config, TaskStore& store);
  // Upserts this node's record with the heartbeat time now and `processes_json`.
  Status Beat(const std::string& processes_json);
  // Removes this node's record (a clean stop).
  Status Remove();

 private:
  const Config& c_;
  TaskStore& store_;
  std::string host_;
};

// The heartbeat of a node without a supervisor (role web): its record, with an empty
// process table, written every `period` on a thread of its own from construction until
// destruction (which joins it; it does not remove the record). Store errors are logged
// and retried at the next beat.
class NodeHeartbeat {
 public:
  NodeHeartbeat(const Config& config, TaskStore& store, std::chrono::milliseconds period = std::chrono::seconds(5));
  ~NodeHeartbeat();
  NodeHeartbeat(const NodeHeartbeat&) = delete;
  NodeHeartbeat& operator=(const NodeHeartbeat&) = delete;

 private:
  NodeRegistry registry_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ KG_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace kg
