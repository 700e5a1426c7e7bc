#include "supervisor/worker_accounts.h"

namespace kg {

WorkerAccounts::WorkerAccounts(const std::vector<std::string>& providers) {
  for (const auto& p : providers) {
    retired_[p];
    for (auto reason : {kExitStopped, kExitRecycled, kExitCrashed}) exits_[p][std::string(reason)] = 0;
  }
}

Status WorkerAccounts::Record(pid_t pid, const std::string& provider, std::string_view json) {
  auto s = telemetry::WorkerStats::FromJson(json);
  if (!s.ok()) return s.status();
  live_[pid] = {provider, std::move(s).value()};
  return Status::Ok();
}

void WorkerAccounts::Ended(pid_t pid, const std::string& provider, std::string_view reason) {
  auto it = live_.find(pid);
  if (it != live_.end()) {
    retired_[it->second.provider].AddCounters(it->second.last);
    live_.erase(it);
  }
  ++exits_[provider][std::string(reason)];
}

std::map<std::string, telemetry::WorkerStats> WorkerAccounts::Stats() const {
  std::map<std::string, telemetry::WorkerStats> out = retired_;
  for (const auto& [_, l] : live_) out[l.provider].Add(l.last);
  return out;
}

}  // namespace kg
