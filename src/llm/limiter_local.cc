// The in-process limiter: the semantics of the Redis limiter (limiter_redis.cc) on state behind
// one mutex, with the injected monotonic clock, so tests drive time. The arithmetic is in
// limiter_math.h; the states:
// - rpm and tpm: a GCRA TAT each, in us of the clock (0: drained).
// - slots: slot id -> expiry (ms); expired ones are dropped on every TryAcquire.
// - pause: the moment (ms) before which nothing is admitted.
#include <algorithm>
#include <cstdint>
#include <map>

#include "common/mutex.h"
#include "common/util.h"
#include "llm/limiter.h"
#include "llm/limiter_math.h"

namespace kg::llm {
namespace {

namespace lm = limiter_math;

constexpr int64_t kLocalSlotTtlMs = 30000;

class LocalLimiter final : public Limiter {
 public:
  LocalLimiter(RateLimits limits, std::function<int64_t()> now_ms)
      : limits_(limits), now_ms_(now_ms ? std::move(now_ms) : std::function<int64_t()>(MonoMs)) {}

  Result<Admission> TryAcquire(int64_t tokens) override {
    if (tokens < 0) return Status::Invalid("llm limiter: negative token count");
    MutexLock lock(mu_);
    const int64_t now_ms = now_ms_();
    const int64_t now = now_ms * 1000;
    // The longest wait among the refusing checks: all of them must pass at once.
    int64_t wait_us = 0;
    std::string why;
    auto refuse = [&](int64_t us, const char* reason) {
      if (us > wait_us) wait_us = us, why = reason;
    };
    if (pause_until_ms_ > now_ms) refuse((pause_until_ms_ - now_ms) * 1000, "paused");
    if (limits_.rpm > 0 && rpm_tat_ > now) refuse(rpm_tat_ - now, "rpm");
    if (limits_.tpm > 0 && tpm_tat_ > now) refuse(tpm_tat_ - now, "tpm");
    bool full = false;
    int64_t oldest_left_ms = -1;
    if (limits_.max_concurrency > 0) {
      int64_t oldest = INT64_MAX;
      for (auto it = slots_.begin(); it != slots_.end();) {
        if (it->second <= now_ms) {
          it = slots_.erase(it);
        } else {
          oldest = std::min(oldest, it->second);
          ++it;
        }
      }
      full = static_cast<int64_t>(slots_.size()) >= limits_.max_concurrency;
      if (full) oldest_left_ms = oldest - now_ms;
    }
    Admission a;
    if (wait_us > 0 || full) {
      a.retry_after_ms = lm::CeilMs(wait_us);
      a.reason = why;
      if (full) {
        int64_t poll = lm::ConcurrencyPollMs(oldest_left_ms);
        if (poll > a.retry_after_ms) a.retry_after_ms = poll, a.reason = "concurrency";
      }
      return a;
    }
    a.granted = true;
    if (limits_.rpm > 0) rpm_tat_ = now + lm::RpmIntervalUs(limits_.rpm);
    if (limits_.tpm > 0 && tokens > 0) tpm_tat_ = now + lm::TokenCostUs(tokens, limits_.tpm);
    if (limits_.max_concurrency > 0) {
      a.slot = "local/" + std::to_string(++next_slot_);
      slots_[a.slot] = now_ms + kLocalSlotTtlMs;
    }
    return a;
  }

  Status Release(const std::string& slot, int64_t tokens_delta) override {
    MutexLock lock(mu_);
    if (!slot.empty()) slots_.erase(slot);
    if (limits_.tpm <= 0 || tokens_delta == 0) return Status::Ok();
    const int64_t now = now_ms_() * 1000;
    const int64_t d = lm::TokenDeltaUs(tokens_delta, limits_.tpm);
    if (d > 0) {
      // Extra tokens are charged from now on when the bucket had drained: the provider counted
      // them within its last minute.
      tpm_tat_ = std::max(tpm_tat_, now) + d;
    } else if (tpm_tat_ > now) {
      tpm_tat_ = std::max(tpm_tat_ + d, now);
    }
    return Status::Ok();
  }

  Status Renew(const std::vector<std::string>& slots) override {
    MutexLock lock(mu_);
    const int64_t expiry = now_ms_() + kLocalSlotTtlMs;
    for (const auto& s : slots) {
      auto it = slots_.find(s);
      if (it != slots_.end()) it->second = expiry;
    }
    return Status::Ok();
  }

  Status Pause(int64_t ms) override {
    if (ms <= 0) return Status::Ok();
    MutexLock lock(mu_);
    pause_until_ms_ = std::max(pause_until_ms_, now_ms_() + ms);
    return Status::Ok();
  }

 private:
  const RateLimits limits_;
  const std::function<int64_t()> now_ms_;
  Mutex mu_;
  int64_t rpm_tat_ KG_GUARDED_BY(mu_) = 0;
  int64_t tpm_tat_ KG_GUARDED_BY(mu_) = 0;
  int64_t pause_until_ms_ KG_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> slots_ KG_GUARDED_BY(mu_);
  uint64_t next_slot_ KG_GUARDED_BY(mu_) = 0;
};

}  // namespace

std::unique_ptr<Limiter> MakeLocalLimiter(RateLimits limits, std::function<int64_t()> now_ms) {
  return std::make_unique<LocalLimiter>(limits, std::move(now_ms));
}

}  // namespace kg::llm
