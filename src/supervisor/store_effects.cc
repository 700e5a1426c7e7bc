#include "supervisor/store_effects.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "common/util.h"
#include "queue/queue.h"
#include "store/task_store.h"
#include "supervisor/node_registry.h"

namespace kg {

StoreEffects::StoreEffects(Queue& queue, TaskStore& store, std::function<void()> heartbeat, int64_t heartbeat_ms,
                           std::function<void(const std::string&, uint64_t)> persisted)
    : queue_(queue),
      store_(store),
      heartbeat_(std::move(heartbeat)),
      persisted_(std::move(persisted)),
      heartbeat_ms_(heartbeat_ms) {}

StoreEffects::~StoreEffects() {
  Finish();
  Join();
}

void StoreEffects::Start() {
  MutexLock l(join_mu_);
  thread_ = std::thread([this] { Run(); });
  pthread_setname_np(thread_.native_handle(), "kg-guard-db");
}

void StoreEffects::GiveBack(std::vector<Release> releases) {
  if (releases.empty()) return;
  {
    MutexLock l(mu_);
    for (auto& r : releases) releases_.push_back(std::move(r));
  }
  cv_.NotifyOne();
}

void StoreEffects::PersistScale(const std::string& provider, std::optional<int> per_node, uint64_t seq) {
  {
    MutexLock l(mu_);
    settings_[provider] = Setting{per_node, seq};
  }
  cv_.NotifyOne();
}

void StoreEffects::Finish() {
  {
    MutexLock l(mu_);
    finish_ = true;
  }
  cv_.NotifyOne();
}

void StoreEffects::Join() {
  MutexLock l(join_mu_);
  if (thread_.joinable()) thread_.join();
}

void StoreEffects::Give(const Release& r) {
  Result<int> released = 0;
  (void)RetryTransient([&] {
    released = queue_.ReleaseOwner(r.owner, r.crashed, r.how);
    return released.status();
  });
  if (!released.ok()) {
    spdlog::error("supervisor: releasing chunks of {}: {}", r.owner, released.status().message());
  } else if (*released > 0) {
    spdlog::info("supervisor: {} chunks of worker pid={} provider={} given back", *released, r.pid, r.provider);
  }
}

void StoreEffects::Run() {
  int64_t next_heartbeat = 0;
  while (true) {
    std::deque<Release> releases;
    std::map<std::string, Setting> settings;
    bool finish = false;
    {
      MutexLock l(mu_);
      auto due = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<int64_t>(0, next_heartbeat - MonoMs()));
      while (releases_.empty() && settings_.empty() && !finish_ && cv_.WaitUntil(l, due)) {
      }
      releases.swap(releases_);
      settings.swap(settings_);
      finish = finish_;
    }
    // Settings first: the heartbeat's read of the settings must see them. One that cannot
    // be stored waits for the next heartbeat and is tried again, unless a newer one came.
    for (const auto& [p, want] : settings) {
      const auto& n = want.per_node;
      Status s = RetryTransient([&, &p = p] {
        return n ? store_.PutSetting(ScaleSettingKey(p), std::to_string(*n)) : store_.DeleteSetting(ScaleSettingKey(p));
      });
      if (s.ok()) {
        persisted_(p, want.seq);
        continue;
      }
      spdlog::warn("supervisor: could not persist scale of {} yet (tried again with the next heartbeat): {}", p,
                   s.message());
      if (finish) continue;  // stopping: the setting in memory dies with the node
      MutexLock l(mu_);
      if (auto& r = retry_[p]; want.seq > r.seq) r = want;  // the newest failed write is the one to retry
    }
    for (const auto& r : releases) Give(r);
    if (finish) {
      MutexLock l(mu_);
      if (!releases_.empty() || !settings_.empty()) continue;
    }
    if (finish || MonoMs() >= next_heartbeat) {
      heartbeat_();
      next_heartbeat = MonoMs() + heartbeat_ms_;
      MutexLock l(mu_);
      for (auto& [p, want] : retry_) {
        if (auto& s = settings_[p]; want.seq > s.seq) s = want;  // a newer hand-over stays
      }
      retry_.clear();
    }
    if (finish) break;
  }
}

}  // namespace kg
