#pragma once
// The supervisor's books of what its worker processes counted (telemetry/worker_stats.h) and
// how they ended, per provider, for /metrics.
//
// - A live process's figures are its last "stats" snapshot; a later snapshot replaces it.
// - When a process ends, its counters move to its provider's retired total (so a counter never
//   falls when a process dies or is recycled), and its gauges (pool connections) go with it.
// - Exits are counted by reason (kExitStopped, kExitRecycled, kExitCrashed); every reason of
//   every provider given at construction exists from the start, at 0.
//
// Not thread-safe: the supervisor keeps one under its mutex.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "telemetry/worker_stats.h"

namespace kg {

// Why a worker process ended (the `reason` label of kg_worker_exits_total).
inline constexpr std::string_view kExitStopped = "stopped";    // asked to stop: scale-down, node stop
// after KG_MAX_TASKS_PER_PROCESS chunks, or over KG_MAX_RSS_MB
inline constexpr std::string_view kExitRecycled = "recycled";
inline constexpr std::string_view kExitCrashed = "crashed";    // died unasked, or exited with an error

class WorkerAccounts {
 public:
  explicit WorkerAccounts(const std::vector<std::string>& providers);

  // The JSON of a "stats" line of process `pid` of `provider` (the text after "stats ").
  // kInvalidArgument, and nothing recorded, when it is not a snapshot.
  Status Record(pid_t pid, const std::string& provider, std::string_view json);
  // Process `pid` ended for `reason` (a kExit*): its last snapshot's counters go to its
  // provider's retired total, the exit is counted. A pid that never reported counts the exit only.
  void Ended(pid_t pid, const std::string& provider, std::string_view reason);

  // Per provider: retired counters plus the live processes' last snapshots (gauges of live
  // processes only).
  std::map<std::string, telemetry::WorkerStats> Stats() const;
  // Per provider, exits by reason.
  const std::map<std::string, std::map<std::string, int64_t>>& Exits() const { return exits_; }

 private:
  struct Live {
    std::string provider;
    telemetry::WorkerStats last;
  };
  std::map<pid_t, Live> live_;
  std::map<std::string, telemetry::WorkerStats> retired_;
  std::map<std::string, std::map<std::string, int64_t>> exits_;
};

}  // namespace kg
