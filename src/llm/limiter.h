#pragma once
// Admission of LLM requests under a provider's limits: requests per minute, tokens per minute
// (both as GCRA token buckets), requests in flight (a semaphore whose slots expire when their
// holder stops renewing them, e.g. because its process died), and a provider-wide pause set after
// a 429. The Redis limiter holds that state in Redis, so every process of every node that shares
// the Redis server (and namespace) shares the limits; the local one holds it in this process.
//
// Every call is non-blocking (one round trip to Redis at most): a caller that is refused waits
// itself, for about retry_after_ms, and asks again. Thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "redis/endpoint.h"

namespace kg::llm {

struct RateLimits {
  int max_concurrency = 0;  // requests in flight, cluster-wide; 0 = no limit
  int rpm = 0;              // requests per minute; 0 = no limit
  int64_t tpm = 0;          // tokens (prompt + completion) per minute; 0 = no limit
};

struct Admission {
  bool granted = false;
  // Granted: the concurrency slot held until Release (empty when max_concurrency is 0).
  std::string slot;
  // Refused: how long until asking again may succeed (> 0), and why ("paused", "rpm", "tpm",
  // "concurrency"), for logs and metrics.
  int64_t retry_after_ms = 0;
  std::string reason;
};

class Limiter {
 public:
  virtual ~Limiter() = default;
  // Asks to send one request expected to use `tokens` tokens (prompt + max output). Granted only
  // when the provider is not paused, both buckets admit it and a slot is free; then the request
  // and its tokens are counted and the slot is taken, all at once. A refusal changes nothing.
  // With a rpm of R the requests admitted in any 60 s window never exceed R (a burst of 1).
  virtual Result<Admission> TryAcquire(int64_t tokens) = 0;
  // Gives the slot back and corrects the token count by `tokens_delta` (actual - expected; a
  // negative delta returns tokens to the bucket). Releasing an expired or unknown slot is not an
  // error.
  virtual Status Release(const std::string& slot, int64_t tokens_delta) = 0;
  // Keeps `slots` alive for another slot TTL (call it at least every TTL/3 while they are held).
  virtual Status Renew(const std::vector<std::string>& slots) = 0;
  // A 429 or an overload answer: no request of this provider is admitted anywhere for `ms`
  // (an existing longer pause is kept).
  virtual Status Pause(int64_t ms) = 0;
};

// In-process state. `now_ms` is a monotonic clock (tests drive it); slot TTL as below.
std::unique_ptr<Limiter> MakeLocalLimiter(RateLimits limits, std::function<int64_t()> now_ms = {});

// State under keys "<at.ns>:llm:<provider>:*" in Redis, updated by Lua scripts that read the
// server's clock (TIME), so the clocks of the nodes do not matter. `holder` names the process
// ("<node>/<pid>") in slot ids, for diagnosis. A slot not renewed within `slot_ttl_ms` is freed.
// Errors: kUnavailable while Redis is away (the caller treats it as "wait and ask again").
std::unique_ptr<Limiter> MakeRedisLimiter(const RedisEndpoint& at, const std::string& provider,
                                          const std::string& holder, RateLimits limits,
                                          int64_t slot_ttl_ms = 30000);

}  // namespace kg::llm
