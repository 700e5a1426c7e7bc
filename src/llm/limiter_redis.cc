// The Redis limiter: the admission of limiter.h shared by every process on one Redis server and
// namespace. The arithmetic (GCRA, rounding, the semaphore's poll) is in limiter_math.h.
//
// Keys "<ns>:llm:<provider>:..." (all of one provider's in its scripts):
//   :rpm    string  GCRA TAT of requests, us of the server clock; PX until it is reached
//   :tpm    string  GCRA TAT of tokens, likewise
//   :slots  zset    slot ids in flight scored by expiry (ms); PX until the latest expiry
//   :pause  string  present (PX) while the provider is paused
// A drained bucket and an absent key mean the same, so every key expires when its state no
// longer matters: an idle provider leaves nothing behind.
//
// How it meets the contract:
// - Atomic admission: one script checks the pause, both buckets and the semaphore and, only when
//   all admit, advances both TATs and adds the slot. A refusal writes nothing (it may drop
//   expired slots, which were free already).
// - Time: every script reads the server's clock (TIME, and PTTL for the pause), so the clocks
//   of the nodes do not matter.
// - Slots expire: TryAcquire drops slots whose expiry passed before counting; Renew re-scores
//   the given slots that are still present (ZADD XX), so a slot another acquirer has already
//   dropped as expired stays gone and the count never exceeds the limit.
// - Errors: any failure to reach Redis or an error reply is kUnavailable (the caller waits and
//   asks again); a call never blocks longer than the endpoint's socket timeout.
#include <atomic>

#include "llm/limiter.h"
#include "llm/limiter_math.h"
#include "redis/client.h"

namespace kg::llm {
namespace {

namespace lm = limiter_math;
using redis::Call;
using redis::Script;
using redis::Value;

constexpr const char* kPrelude = R"lua(
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000000 + tonumber(T[2])
local NOW_MS = math.floor(NOW / 1000)
local function tat_of(key) return tonumber(redis.call('GET', key) or '0') or 0 end
-- Stores a TAT (us), expiring when it is reached; a TAT not in the future is deleted.
local function set_tat(key, tat)
  if tat > NOW then
    redis.call('SET', key, string.format('%d', tat), 'PX', math.floor((tat - NOW + 999) / 1000) + 1)
  else
    redis.call('DEL', key)
  end
end
-- The slots key lives as long as its latest expiry (`ttl` ms from now).
local function keep_slots(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
)lua";

// KEYS: rpm, tpm, slots, pause. ARGV: rpm interval us (0: no limit), tpm cost us (-1: no
// limit), max slots (0: no limit), slot id, slot ttl ms.
// Returns {1} when granted, else {0, reason, wait us, semaphore full 0/1, oldest slot's ms left}.
constexpr const char* kAcquire = R"lua(
local rpm_t, tpm_cost, max_slots, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local wait, why = 0, ''
local function refuse(us, reason)
  if us > wait then wait, why = us, reason end
end
local p = redis.call('PTTL', KEYS[4])
if p > 0 then refuse(p * 1000, 'paused') end
if rpm_t > 0 then
  local tat = tat_of(KEYS[1])
  if tat > NOW then refuse(tat - NOW, 'rpm') end
end
if tpm_cost >= 0 then
  local tat = tat_of(KEYS[2])
  if tat > NOW then refuse(tat - NOW, 'tpm') end
end
local full, oldest = 0, -1
if max_slots > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', NOW_MS)
  if redis.call('ZCARD', KEYS[3]) >= max_slots then
    full = 1
    local o = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    if o[2] then oldest = tonumber(o[2]) - NOW_MS end
  end
end
if wait > 0 or full == 1 then return {0, why, string.format('%d', wait), full, oldest} end
if rpm_t > 0 then set_tat(KEYS[1], NOW + rpm_t) end
if tpm_cost > 0 then set_tat(KEYS[2], NOW + tpm_cost) end
if max_slots > 0 then
  redis.call('ZADD', KEYS[3], NOW_MS + ttl, ARGV[4])
  keep_slots(KEYS[3], ttl)
end
return {1}
)lua";

// KEYS: tpm, slots. ARGV: slot id ('' none), tpm correction us (signed). A positive one pushes
// the TAT forward (from now when the bucket had drained: the provider counted the extra tokens
// within its last minute); a negative one pulls it back, never below now.
constexpr const char* kRelease = R"lua(
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[2], ARGV[1]) end
local d = tonumber(ARGV[2])
if d > 0 then
  set_tat(KEYS[1], math.max(tat_of(KEYS[1]), NOW) + d)
elseif d < 0 then
  local tat = tat_of(KEYS[1])
  if tat > NOW then set_tat(KEYS[1], math.max(tat + d, NOW)) end
end
return 1
)lua";

// KEYS: slots. ARGV: slot ttl ms, slot ids. Re-scores the slots still present.
constexpr const char* kRenew = R"lua(
local ttl = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', NOW_MS + ttl, ARGV[i]) end
if n > 0 then keep_slots(KEYS[1], ttl) end
return n
)lua";

// KEYS: pause. ARGV: ms. Sets the pause unless one that ends later is set.
constexpr const char* kPause = R"lua(
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 1
)lua";

Script MakeScript(const char* body) { return Script(std::string(kPrelude) + body); }

// Slot ids are unique within the process across limiter objects; the holder names the process.
std::atomic<uint64_t> g_slot_counter{0};

class RedisLimiter final : public Limiter {
 public:
  RedisLimiter(const RedisEndpoint& at, const std::string& provider, std::string holder, RateLimits limits,
               int64_t slot_ttl_ms)
      : base_(at.ns + ":llm:" + provider),
        what_("llm limiter " + provider),
        holder_(std::move(holder)),
        limits_(limits),
        slot_ttl_ms_(std::max<int64_t>(slot_ttl_ms, 1)),
        client_(at) {}

  Result<Admission> TryAcquire(int64_t tokens) override {
    if (tokens < 0) return Status::Invalid(what_ + ": negative token count");
    std::string slot;
    if (limits_.max_concurrency > 0) slot = holder_ + "/" + std::to_string(++g_slot_counter);
    std::string rpm_t = limits_.rpm > 0 ? std::to_string(lm::RpmIntervalUs(limits_.rpm)) : "0";
    std::string tpm_cost = limits_.tpm > 0 ? std::to_string(lm::TokenCostUs(tokens, limits_.tpm)) : "-1";
    auto r = client_.Run(Call::Eval(acquire_, {Key("rpm"), Key("tpm"), Key("slots"), Key("pause")},
                                    {rpm_t, tpm_cost, std::to_string(limits_.max_concurrency), slot,
                                     std::to_string(slot_ttl_ms_)}));
    if (!r.ok()) return Unavailable(r.status());
    const Value& v = *r;
    if (v.type != Value::Type::kArray || v.a.empty()) return Malformed("acquire");
    Admission a;
    if (v.a[0].Int() == 1) {
      a.granted = true;
      a.slot = std::move(slot);
      return a;
    }
    if (v.a.size() < 5) return Malformed("acquire");
    a.retry_after_ms = lm::CeilMs(v.a[2].Int());
    a.reason = v.a[1].Str();
    if (v.a[3].Int() == 1) {
      int64_t poll = lm::ConcurrencyPollMs(v.a[4].Int(-1));
      if (poll > a.retry_after_ms) a.retry_after_ms = poll, a.reason = "concurrency";
    }
    if (a.retry_after_ms <= 0) a.retry_after_ms = 1;  // a refusal always says to wait
    return a;
  }

  Status Release(const std::string& slot, int64_t tokens_delta) override {
    int64_t d = limits_.tpm > 0 ? lm::TokenDeltaUs(tokens_delta, limits_.tpm) : 0;
    if (slot.empty() && d == 0) return Status::Ok();
    auto r = client_.Run(Call::Eval(release_, {Key("tpm"), Key("slots")}, {slot, std::to_string(d)}));
    return r.ok() ? Status::Ok() : Unavailable(r.status());
  }

  Status Renew(const std::vector<std::string>& slots) override {
    if (slots.empty()) return Status::Ok();
    std::vector<std::string> argv{std::to_string(slot_ttl_ms_)};
    argv.insert(argv.end(), slots.begin(), slots.end());
    auto r = client_.Run(Call::Eval(renew_, {Key("slots")}, std::move(argv)));
    return r.ok() ? Status::Ok() : Unavailable(r.status());
  }

  Status Pause(int64_t ms) override {
    if (ms <= 0) return Status::Ok();
    auto r = client_.Run(Call::Eval(pause_, {Key("pause")}, {std::to_string(ms)}));
    return r.ok() ? Status::Ok() : Unavailable(r.status());
  }

 private:
  std::string Key(const char* name) const { return base_ + ":" + name; }
  // Whatever went wrong on the way to Redis, the caller's answer is to wait and ask again.
  Status Unavailable(const Status& s) const { return Status::Unavailable(what_ + ": " + s.message()); }
  Status Malformed(const char* op) const {
    return Status::Unavailable(what_ + ": " + client_.Where() + ": unexpected reply to " + op);
  }

  const std::string base_;
  const std::string what_;
  const std::string holder_;
  const RateLimits limits_;
  const int64_t slot_ttl_ms_;
  redis::Client client_;
  const Script acquire_ = MakeScript(kAcquire);
  const Script release_ = MakeScript(kRelease);
  const Script renew_ = MakeScript(kRenew);
  const Script pause_ = MakeScript(kPause);
};

}  // namespace

std::unique_ptr<Limiter> MakeRedisLimiter(const RedisEndpoint& at, const std::string& provider,
                                          const std::string& holder, RateLimits limits, int64_t slot_ttl_ms) {
  return std::make_unique<RedisLimiter>(at, provider, holder, limits, slot_ttl_ms);
}

}  // namespace kg::llm
