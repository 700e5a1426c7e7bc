#pragma once
// The node registry: each node's record (name, role, host, pid, heartbeat, process
// table) in the task store, and the per-provider process settings that `scale` stores
// there for every node to apply.
//
// A node name belongs to one live node at a time. A node claims its name before it starts
// anything (Claim), and each beat writes the record only while it is still this node's
// (same host and pid); both are compare-and-set writes in the store, so two nodes starting
// at once with one name cannot both win. A record of this host may be taken over when its
// pid no longer runs kgflow; one of another host when it is stale (its heartbeat more than
// kStaleBeats of its intervals old). A node that finds its record taken over stops; it
// never claims its name back.

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/outage_log.h"

#include "common/status.h"
#include "config/config.h"

namespace kg {

class TaskStore;
struct NodeRecord;

// The task-store setting holding the per-node processes of `provider` set at runtime
// (`kgflow scale`, PUT /api/v1/providers/{name}/processes). The one definition of the key.
std::string ScaleSettingKey(const std::string& provider);
// The stored value as a process count; nullopt when it is not a whole number >= 0.
std::optional<int> ParseScaleSetting(const std::string& value);

// The task-store setting holding how many Bolt connections node `node` may open (its share
// of the Neo4j server's connections, Neo4jConnectionsOfNode), for the cluster-wide figure.
std::string Neo4jShareSettingKey(const std::string& node);

// The Neo4j connections a cluster may hold open at once: this node's share and the sum of
// the shares of every live node (this one included) as they published them.
struct Neo4jBudget {
  int node = 0;
  int cluster = 0;
  int nodes = 0;  // live nodes that use Neo4j
};
// Publishes this node's share and sums the live nodes' (call after Claim). The store's error
// when it cannot be read or written.
Result<Neo4jBudget> PublishNeo4jShare(const Config& c, TaskStore& store);

// A provider this node holds back after repeated worker failures, and how long it still does.
struct QuarantineView {
  std::string provider;
  double remaining_s = 0;
};

// NodeRecord::info_json of this node: {"version": KG_VERSION, "started_at": started_at_ms,
// "caps": {"total": KG_MAX_TOTAL_PROCESSES, "per_provider": KG_MAX_PROCESSES_PER_PROVIDER},
// "quarantine": [{"provider", "remaining_s"}]} (remaining as of now). Pure.
std::string NodeInfoJson(const Config& c, int64_t started_at_ms, const std::vector<QuarantineView>& quarantine);

// A node whose heartbeat is more than this many of its own intervals old is stale: shown
// as such, its processes as unknown, and its name free to take over.
constexpr int64_t kStaleBeats = 2;
// Milliseconds since `n`'s last heartbeat at `now_ms` (0 when its clock is ahead of ours).
int64_t HeartbeatAgeMs(const NodeRecord& n, int64_t now_ms);
bool NodeIsStale(const NodeRecord& n, int64_t now_ms);
// True when `pid` exists on this host (a zombie counts as gone).
bool PidAlive(int64_t pid);

// Writes this node's record. Thread-safe if the store is. Borrowed store and config
// must outlive it.
class NodeRegistry {
 public:
  NodeRegistry(const Config& config, TaskStore& store);
  // Takes the node's name in the registry (its record with an empty process table and no
  // quarantine). kConflict
  // when a live node holds it, with a message naming KG_WORKER_NODE_NAME and the holder (pid,
  // host, heartbeat age); the store's error otherwise.
  Status Claim();
  // Writes this node's record with the heartbeat time now, `processes_json` and its info
  // (NodeInfoJson with `quarantine`), while the
  // name is still this node's. kConflict, naming the new holder, once the record is not
  // ours (another node took the name over, and may have removed its record since): the
  // name is never claimed back, and the node must stop (its leases were given back by the
  // new holder).
  Status Beat(const std::string& processes_json, const std::vector<QuarantineView>& quarantine = {});
  // Removes this node's record (a clean stop); never another node's.
  Status Remove();

 private:
  NodeRecord Record(const std::string& processes_json, const std::vector<QuarantineView>& quarantine) const;
  // Claims the name with `processes_json`; kConflict names the live holder.
  Status ClaimWith(const std::string& processes_json);

  const Config& c_;
  TaskStore& store_;
  std::string host_;
  const int64_t started_at_ms_;  // when this registry (so the node) started: its record's "started_at"
};

// The heartbeat of a node without a supervisor (role web): its record, with an empty
// process table, written every KG_HEARTBEAT_SECONDS on a thread of its own from
// construction until destruction (which joins it; it does not remove the record). Store
// errors are logged and retried at the next beat. When the name was taken over (Beat's
// kConflict) it logs an error, beats no more and calls `on_name_lost` once, on its thread.
class NodeHeartbeat {
 public:
  NodeHeartbeat(const Config& config, TaskStore& store, std::function<void(const Status&)> on_name_lost = {});
  ~NodeHeartbeat();
  NodeHeartbeat(const NodeHeartbeat&) = delete;
  NodeHeartbeat& operator=(const NodeHeartbeat&) = delete;

 private:
  NodeRegistry registry_;
  const std::function<void(const Status&)> on_name_lost_;
  OutageLog outage_{"node heartbeat"};
  Mutex mu_;
  CondVar cv_;
  bool stop_ KG_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace kg
