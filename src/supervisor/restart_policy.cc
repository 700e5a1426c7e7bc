#include "supervisor/restart_policy.h"

#include <algorithm>
#include <climits>

namespace kg {

RestartPolicy::RestartPolicy(RestartPolicyOptions options, Clock clock) : o_(options), clock_(std::move(clock)) {}

RestartPolicy::Verdict RestartPolicy::OnFailure(const std::string& provider, int64_t started_at) {
  int64_t now = clock_();
  auto& ps = providers_[provider];
  if (now - started_at >= o_.stable_ms) ps.consecutive_failures = 0;
  ++ps.consecutive_failures;
  Verdict v;
  v.consecutive = ps.consecutive_failures;
  if (ps.consecutive_failures >= 2) {
    int shift = std::min(ps.consecutive_failures - 2, 20);
    v.backoff_ms = std::min(o_.backoff_max_ms, o_.backoff_base_ms << shift);
  }
  ps.next_spawn_at = now + v.backoff_ms;
  ps.failures.push_back(now);
  while (!ps.failures.empty() && ps.failures.front() < now - o_.failure_window_ms) ps.failures.pop_front();
  if (static_cast<int>(ps.failures.size()) >= o_.quarantine_failures) {
    ps.quarantined_until = now + o_.quarantine_ms;
    ps.failures.clear();
    ps.consecutive_failures = 0;
    ps.next_spawn_at = 0;
    v.quarantined = true;
    v.backoff_ms = 0;
    v.consecutive = 0;
  }
  return v;
}

void RestartPolicy::OnCleanExit(const std::string& provider, int64_t started_at) {
  if (clock_() - started_at >= o_.stable_ms) providers_[provider].consecutive_failures = 0;
}

int64_t RestartPolicy::QuarantineRemainingMs(const std::string& provider) const {
  auto it = providers_.find(provider);
  if (it == providers_.end()) return 0;
  return std::max<int64_t>(0, it->second.quarantined_until - clock_());
}

bool RestartPolicy::Quarantined(const std::string& provider) const {
  auto it = providers_.find(provider);
  return it != providers_.end() && it->second.quarantined_until > clock_();
}

bool RestartPolicy::BackingOff(const std::string& provider) const {
  auto it = providers_.find(provider);
  return it != providers_.end() && it->second.next_spawn_at > clock_();
}

std::vector<std::string> RestartPolicy::TakeEndedQuarantines() {
  std::vector<std::string> out;
  int64_t now = clock_();
  for (auto& [p, ps] : providers_) {
    if (ps.quarantined_until != 0 && ps.quarantined_until <= now) {
      ps.quarantined_until = 0;
      out.push_back(p);
    }
  }
  return out;
}

bool RestartPolicy::BudgetAllows() {
  int64_t now = clock_();
  while (!spawn_times_.empty() && spawn_times_.front() < now - 60000) spawn_times_.pop_front();
  bool exhausted = static_cast<int64_t>(spawn_times_.size()) >= o_.spawn_budget_per_minute;
  if (!exhausted) budget_reported_ = false;
  budget_exhausted_ = exhausted;
  return !exhausted;
}

void RestartPolicy::RecordSpawn() { spawn_times_.push_back(clock_()); }

bool RestartPolicy::TakeBudgetExhaustedReport() {
  if (!budget_exhausted_ || budget_reported_) return false;
  budget_reported_ = true;
  return true;
}

int64_t RestartPolicy::NextDeadline() const {
  int64_t now = clock_();
  int64_t next = INT64_MAX;
  for (const auto& [_, ps] : providers_) {
    if (ps.next_spawn_at > now) next = std::min(next, ps.next_spawn_at);
    if (ps.quarantined_until > now) next = std::min(next, ps.quarantined_until);
  }
  // A spent budget frees a slot when its oldest spawn leaves the minute.
  if (budget_exhausted_ && !spawn_times_.empty()) next = std::min(next, spawn_times_.front() + 60000);
  return next;
}

}  // namespace kg
