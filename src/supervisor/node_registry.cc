#include "supervisor/node_registry.h"

#include "common/outage_log.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

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

std::string Neo4jShareSettingKey(const std::string& node) { return "neo4j.connections.per_node." + node; }

Result<Neo4jBudget> PublishNeo4jShare(const Config& c, TaskStore& store) {
  Neo4jBudget b;
  b.node = Neo4jConnectionsOfNode(c);
  KG_RETURN_IF_ERROR(store.PutSetting(Neo4jShareSettingKey(c.node_name), std::to_string(b.node)));
  const int64_t now = NowMs();
  KG_ASSIGN_OR_RETURN(auto nodes, store.ListNodes(0));
  for (const NodeRecord& n : nodes) {
    if (NodeIsStale(n, now) && n.name != c.node_name) continue;
    KG_ASSIGN_OR_RETURN(auto share, store.GetSetting(Neo4jShareSettingKey(n.name)));
    std::optional<int> count = share ? ParseScaleSetting(*share) : std::nullopt;
    if (!count || *count == 0) continue;
    b.cluster += *count;
    ++b.nodes;
  }
  return b;
}

std::string NodeInfoJson(const Config& c, int64_t started_at_ms, const std::vector<QuarantineView>& quarantine) {
  nlohmann::json q = nlohmann::json::array();
  for (const auto& v : quarantine) q.push_back({{"provider", v.provider}, {"remaining_s", v.remaining_s}});
  nlohmann::json info = {{"version", KG_VERSION},
                         {"started_at", started_at_ms},
                         {"caps", {{"total", c.max_total_processes}, {"per_provider", c.max_processes_per_provider}}},
                         {"quarantine", std::move(q)}};
  return info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int64_t HeartbeatAgeMs(const NodeRecord& n, int64_t now_ms) { return std::max<int64_t>(0, now_ms - n.heartbeat_at_ms); }

bool NodeIsStale(const NodeRecord& n, int64_t now_ms) {
  return HeartbeatAgeMs(n, now_ms) > kStaleBeats * std::max<int64_t>(n.heartbeat_ms, 1);
}

bool PidAlive(int64_t pid) {
  // A stored pid outside pid_t would wrap (to -1: kill() would then probe every process).
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  // A zombie's pid answers kill(0) although the process is gone. "pid (comm) S ...".
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;  // no /proc: trust kill()
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

namespace {

std::string Comm(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/comm");
  std::string line;
  std::getline(f, line);
  return line;
}

// True when `pid` on this host is alive and runs this program (by its command name, which a
// rebuilt binary keeps): a pid the kernel has since given to another program holds no name.
bool LiveNodeHere(int64_t pid) {
  if (!PidAlive(pid)) return false;
  std::string theirs = Comm(std::to_string(pid));
  return theirs.empty() || theirs == Comm("self");  // unreadable: assume it is one
}

}  // namespace

NodeRegistry::NodeRegistry(const Config& config, TaskStore& store)
    : c_(config), store_(store), started_at_ms_(NowMs()) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  host_ = host;
}

NodeRecord NodeRegistry::Record(const std::string& processes_json,
                                const std::vector<QuarantineView>& quarantine) const {
  NodeRecord n;
  n.name = c_.node_name;
  n.role = RoleName(c_.role);
  n.host = host_;
  n.pid = getpid();
  n.heartbeat_at_ms = NowMs();
  n.processes_json = processes_json;
  n.heartbeat_ms = c_.heartbeat_seconds * 1000LL;
  n.info_json = NodeInfoJson(c_, started_at_ms_, quarantine);
  return n;
}

Status NodeRegistry::Claim() { return ClaimWith("[]"); }

Status NodeRegistry::ClaimWith(const std::string& processes_json) {
  // Read, decide, then compare-and-set on what was read: a writer in between makes the write
  // miss, and the loop decides again on the new record.
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto cur = store_.GetNode(c_.node_name);
    if (!cur.ok()) return cur.status().With("node registry");
    NodeRecord me = Record(processes_json, {});
    std::optional<NodeRecord> expected;
    if (cur->has_value()) {
      const NodeRecord& h = **cur;
      bool mine = h.host == host_ && h.pid == me.pid;
      bool here = h.host == host_;
      bool gone = here && !LiveNodeHere(h.pid);
      bool stale = NodeIsStale(h, me.heartbeat_at_ms);
      // On this host the process decides: a live node whose beats are late (a locked store)
      // keeps its name, a dead one loses it at once. Elsewhere only staleness can tell.
      bool takeable = here ? gone : stale;
      if (!mine && !takeable) {
        return Status::Conflict(fmt::format(
            "KG_WORKER_NODE_NAME='{}' is held by a live node: pid {} on host {} (role {}), last heartbeat {:.1f} s "
            "ago; stop that node or choose another KG_WORKER_NODE_NAME",
            c_.node_name, h.pid, h.host, h.role, HeartbeatAgeMs(h, me.heartbeat_at_ms) / 1000.0));
      }
      if (!mine) {
        spdlog::warn("node registry: taking over name '{}' from pid {} on host {} ({})", c_.node_name, h.pid, h.host,
                     gone ? "its pid no longer runs kgflow" : fmt::format("no heartbeat for {:.1f} s",
                                                                HeartbeatAgeMs(h, me.heartbeat_at_ms) / 1000.0));
      }
      expected = h;
    }
    auto put = store_.PutNodeIf(me, expected);
    if (!put.ok()) return put.status().With("node registry");
    if (*put) return Status::Ok();
  }
  return Status::Unavailable("node registry: the record of '" + c_.node_name + "' kept changing while claiming it");
}

Status NodeRegistry::Beat(const std::string& processes_json, const std::vector<QuarantineView>& quarantine) {
  NodeRecord me = Record(processes_json, quarantine);
  NodeRecord ours;
  ours.host = host_;
  ours.pid = me.pid;  // heartbeat 0: whatever our last beat wrote
  auto put = store_.PutNodeIf(me, ours);
  if (!put.ok()) return put.status();
  if (*put) return Status::Ok();
  // The record is no longer ours: another node took the name over (while our beats were
  // late), and maybe has stopped since and removed its record. Never claim it back: that
  // node gave back our workers' leases when it started, so both would run the same chunks.
  auto cur = store_.GetNode(c_.node_name);
  if (!cur.ok()) return cur.status().With("node registry");
  if (!cur->has_value()) {
    return Status::Conflict(fmt::format(
        "KG_WORKER_NODE_NAME='{}' was taken over by another node while this one's heartbeat was late; that node "
        "has stopped since (its record is gone)", c_.node_name));
  }
  const NodeRecord& h = **cur;
  return Status::Conflict(fmt::format(
      "KG_WORKER_NODE_NAME='{}' was taken over by pid {} on host {} (role {}) while this node's heartbeat was late",
      c_.node_name, h.pid, h.host, h.role));
}

Status NodeRegistry::Remove() { return store_.RemoveNode(c_.node_name, host_, getpid()); }

NodeHeartbeat::NodeHeartbeat(const Config& config, TaskStore& store, std::function<void(const Status&)> on_name_lost)
    : registry_(config, store), on_name_lost_(std::move(on_name_lost)) {
  std::chrono::milliseconds period(config.heartbeat_seconds * 1000LL);
  thread_ = std::thread([this, period] {
    while (true) {
      Status s = registry_.Beat("[]");
      if (s.code() == Code::kConflict) {
        spdlog::error("node heartbeat: {}; this node stops", s.message());
        if (on_name_lost_) on_name_lost_(s);
        return;  // no more beats: the name is not ours
      }
      outage_.Record(s);
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
