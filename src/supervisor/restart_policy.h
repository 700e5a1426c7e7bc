#pragma once
// When a provider's workers may be (re)spawned: the crash-loop breaker of one node.
//
// - Consecutive failures of a provider back off: the first respawns at once, then
//   base, 2 x base, 4 x base ... up to max. A process that ran `stable_ms` resets the streak.
// - `quarantine_failures` failures within `failure_window_ms` quarantine the provider for
//   `quarantine_ms`: none of its processes is spawned until it ends.
// - On top, a fork-storm guard for the node: at most `spawn_budget_per_minute` spawns in
//   any 60 s.
//
// Pure arithmetic over an injected monotonic clock (milliseconds), so it is tested
// without processes. Not thread-safe: the supervisor calls it under its mutex.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kg {

struct RestartPolicyOptions {
  int64_t backoff_base_ms = 100;
  int64_t backoff_max_ms = 30000;
  int64_t stable_ms = 10000;
  int quarantine_failures = 5;
  int64_t failure_window_ms = 60000;
  int64_t quarantine_ms = 300000;
  int spawn_budget_per_minute = 60;
};

class RestartPolicy {
 public:
  using Clock = std::function<int64_t()>;  // monotonic milliseconds

  RestartPolicy(RestartPolicyOptions options, Clock clock);

  // What a failure led to, for the log.
  struct Verdict {
    int consecutive = 0;      // the failure streak, this one included (0 after a quarantine)
    int64_t backoff_ms = 0;   // delay before the next spawn of the provider
    bool quarantined = false;  // this failure started a quarantine
  };
  // A process of `provider` that started at `started_at` crashed, or a spawn failed
  // (started_at = now).
  Verdict OnFailure(const std::string& provider, int64_t started_at);
  // A process of `provider` that started at `started_at` exited cleanly or was stopped:
  // no penalty; the streak resets if it ran long enough.
  void OnCleanExit(const std::string& provider, int64_t started_at);

  bool Quarantined(const std::string& provider) const;
  // Milliseconds until the quarantine of `provider` ends; 0 when it is not quarantined.
  int64_t QuarantineRemainingMs(const std::string& provider) const;
  bool BackingOff(const std::string& provider) const;
  // Neither backing off nor quarantined.
  bool MaySpawn(const std::string& provider) const { return !Quarantined(provider) && !BackingOff(provider); }
  // Providers whose quarantine has ended since the last call (each reported once).
  std::vector<std::string> TakeEndedQuarantines();

  // Spawn budget of the node. True if a spawn now stays within the budget.
  bool BudgetAllows();
  // Counts a spawn against the budget.
  void RecordSpawn();
  // True exactly once per exhaustion of the budget (for a single log line).
  bool TakeBudgetExhaustedReport();

  // The next instant (monotonic ms) at which a backoff or quarantine ends, or INT64_MAX.
  int64_t NextDeadline() const;

  const RestartPolicyOptions& options() const { return o_; }

 private:
  struct ProviderState {
    int consecutive_failures = 0;
    int64_t next_spawn_at = 0;
    int64_t quarantined_until = 0;
    std::deque<int64_t> failures;  // within failure_window_ms
  };

  RestartPolicyOptions o_;
  Clock clock_;
  std::map<std::string, ProviderState> providers_;
  std::deque<int64_t> spawn_times_;
  bool budget_exhausted_ = false;
  bool budget_reported_ = false;
};

}  // namespace kg
