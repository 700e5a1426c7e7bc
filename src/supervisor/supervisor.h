#pragma once
// The supervisor of one node: the single guard that starts, watches and stops the
// node's worker processes. It wires the pieces next to it: spawner.h (exec-only spawning),
// reaper.h (reaping its own children), restart_policy.h (backoff, quarantine, spawn
// budget), proc_stats.h (/proc sampling), node_registry.h (heartbeat, scale setting) and
// store_effects.h (every store call of the guard, on a thread of its own: none is made
// under the guard's mutex or on its loop) and worker_accounts.h (what the workers counted).
//
// - One reconcile loop (one thread) alone spawns and stops processes, under one mutex;
//   Scale() and Start() only change the desired state and wake it, so concurrent or
//   repeated calls converge on one process set.
// - Caps hold at every instant: a process counts against KG_MAX_TOTAL_PROCESSES and
//   KG_MAX_PROCESSES_PER_PROVIDER from spawn until it is reaped.
// - Workers are spawned with posix_spawn of this binary (`__worker`): an empty signal
//   mask, their own process group, only stdin/out/err and a status pipe inherited.
// - Each worker's pidfd, polled by the loop, drives reaping with waitid(P_PIDFD): only
//   the supervisor's own children are reaped, never another child of the process. The
//   chunks a dead worker held go back to the queue at once, and a replacement is spawned
//   in the same loop turn unless its provider is backing off or quarantined.
// - The node lock (flock on KG_DATA_DIR/supervisor-<node>.lock) makes a second
//   supervisor with the same node name fail in Create().
//
// Precondition: BlockSupervisorSignals before any thread starts (the node's signal
// handling; SIGCHLD is blocked so that it interrupts no thread).

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "supervisor/node_registry.h"  // QuarantineView
#include "supervisor/proc_stats.h"  // ReadProcStats, for the supervisor's users (bench)
#include "telemetry/worker_stats.h"

namespace kg {

class Queue;
class TaskStore;

struct ProcessView {
  int64_t pid = 0;  // 0 for a provider with no process (backoff, quarantined)
  std::string provider;
  std::string state;  // starting|idle|busy|stopping|backoff|quarantined
  int64_t rss_bytes = 0;
  double cpu_seconds = 0;
  int64_t chunks_done = 0;
  int64_t restarts = 0;  // of this process slot: how many processes it had before this one
  int64_t spawns = 0;    // of this process's provider on this node, since start
  std::string last_exit;  // how the slot's previous process ended; "" for a slot's first process
  int64_t provider_restarts = 0;  // replacements of this provider's processes on this node, since start
};

// What the node's worker processes of one provider counted and how they ended (Telemetry()).
struct ProviderTelemetry {
  // Counters: those of every process that ended plus the last snapshot of each live one, so
  // they never fall; gauges (pool connections): the live processes' only.
  telemetry::WorkerStats stats;
  std::map<std::string, int64_t> exits;  // by reason: stopped | recycled | crashed (each present)
  int64_t spawns = 0;                     // processes spawned
  int64_t restarts = 0;                   // processes replaced after a crash or a recycle
  bool quarantined = false;
  double quarantine_remaining_seconds = 0;  // 0 unless quarantined
};

struct ScaleResult {
  std::string provider;
  int requested = 0;
  int per_node = 0;  // what the node will run after the caps
  bool clamped = false;
  std::string reason;  // why it was clamped: the binding cap with its value ("KG_MAX_TOTAL_PROCESSES=3")
  std::string binding_cap;  // "KG_MAX_TOTAL_PROCESSES" | "KG_MAX_PROCESSES_PER_PROVIDER" | "quarantine" | "" (none)
  int binding_value = 0;    // the binding cap's value (0 for quarantine or none)
  int configured = 0;  // KG_WORKERS_PER_PROVIDER
  std::optional<int> override_per_node;  // the runtime override now in force, if any
};

// Runtime scaling of one provider: the configuration, the override `scale` stored (it
// wins over the configuration, on every node and across restarts, until reset), and what
// this node runs after the caps.
struct ProviderScale {
  std::string provider;
  int configured = 0;                    // KG_WORKERS_PER_PROVIDER
  std::optional<int> override_per_node;  // stored by `kgflow scale`; nullopt: none
  int per_node = 0;                      // after the caps and any quarantine
};

// What a node runs per enabled provider of `c` when each wants `wanted` (missing: 0):
// at most KG_MAX_PROCESSES_PER_PROVIDER each, then handed out one at a time round-robin in
// declaration order until KG_MAX_TOTAL_PROCESSES. Pure.
std::map<std::string, int> ApplyProcessCaps(const Config& c, const std::map<std::string, int>& wanted);

// Which cap keeps `provider` below what it wants in `wanted` (as ApplyProcessCaps applies
// them): none (cap ""), the total or the per-provider cap, with its value and a reason for
// people. When both give the same value the total is named (the per-provider cap defaults to
// it). Pure.
struct CapBinding {
  std::string cap;
  int value = 0;
  std::string reason;
};
CapBinding BindingCap(const Config& c, const std::map<std::string, int>& wanted, const std::string& provider);

// Blocks SIGCHLD, SIGTERM, SIGINT and SIGHUP in the calling thread (and so in every thread it
// starts later) and ignores SIGPIPE. Call first thing in main for `start` and `worker`.
void BlockSupervisorSignals();

class Supervisor {
 public:
  // Takes the node lock and opens the supervisor's own queue and task-store connections
  // (not the API's: a store call waiting out a lock holds its connection, and the API must
  // keep answering meanwhile). Fails with kConflict when another supervisor of the same node
  // name runs here, or with the backend's error.
  static Result<std::unique_ptr<Supervisor>> Create(const Config& config, std::string exe);
  ~Supervisor();

  // Claims the node's name in the registry (see NodeRegistry::Claim; a node that claimed it
  // already keeps it) and starts the reconcile loop. A second call logs a warning and starts
  // nothing. Thread-safe. A name a live node holds: an error, no worker, `on_name_lost` called. When a heartbeat finds the node's name taken over by another node (see
  // NodeRegistry::Beat), the guard logs an error, stops beating and stops its workers
  // gracefully (as Stop(false)), then calls `on_name_lost` once, on its store thread: the
  // node should exit (RunNode exits 2).
  void Start(std::function<void(const Status&)> on_name_lost = {});
  // Sets the processes `provider` runs on this node and persists the setting in the
  // task store. Thread-safe. kNotFound for a provider this node does not run.
  // The setting is persisted by the guard's store thread (so a slow store does not hold
  // up the caller); other nodes apply it with their next heartbeat.
  Result<ScaleResult> Scale(const std::string& provider, int per_node);
  // Removes the runtime override of `provider`: back to KG_WORKERS_PER_PROVIDER here at
  // once, on other nodes with their next heartbeat. Thread-safe. kNotFound as Scale().
  Result<ScaleResult> ResetScale(const std::string& provider);
  // Configured value, override and effective processes per enabled provider. Thread-safe.
  std::vector<ProviderScale> Scales() const;
  // The process table, including providers in backoff or quarantine. Thread-safe.
  std::vector<ProcessView> Snapshot() const;
  // Per enabled provider, what its processes reported on their status pipes ("stats" lines;
  // a line that is not one is logged once per process and ignored) summed with what its ended
  // processes left, exits by reason (as the reaper classifies them: asked to stop, recycled,
  // crashed), and its quarantine. Since Create(); a copy. Thread-safe.
  std::map<std::string, ProviderTelemetry> Telemetry() const;
  // The providers quarantined now, with the time left (what the heartbeat stores in the node's
  // record). Thread-safe; cheap (no copy of the telemetry).
  std::vector<QuarantineView> Quarantines() const;
  // JSON array of Snapshot(), as stored in the node registry.
  std::string SnapshotJson() const;
  // Requests a stop: graceful (finish in-flight work up to KG_STOP_TIMEOUT_SECONDS) or
  // cold (SIGKILL now). Returns at once. Thread-safe.
  void Stop(bool cold);
  // Blocks until the loop has stopped every worker and given back their leases.
  void Wait();
  // Liveness of the guard, for a watchdog (the node's systemd notifier): MonoMs() when the
  // reconcile loop last began a turn (or when Start() ran, before its first turn). The loop
  // turns at least every kGuardMaxIdleTurnMs while it runs, so a much older value means the
  // guard hangs. Thread-safe (an atomic read); stops moving once the loop has ended after a stop.
  int64_t LastTurnMs() const;
  static constexpr int64_t kGuardMaxIdleTurnMs = 10000;

  class Impl;

 private:
  explicit Supervisor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kg
