#pragma once
// The arithmetic both limiters share (limiter_local.cc in C++, limiter_redis.cc in Lua with the
// numbers computed here): GCRA intervals in microseconds and the poll for a full semaphore.
//
// GCRA with a burst of 1 (tolerance 0): a bucket keeps its theoretical arrival time TAT; a
// request is admitted only when TAT <= now, and then TAT = now + cost. So two admissions are at
// least `cost` of the first apart.
// - rpm R: cost = T = ceil(60e6 / R) us. n admissions in a half-open 60 s window [x, x + 60 s)
//   span at least (n - 1) T < 60e6 us, so n - 1 < 60e6 / T <= R: n <= R. T is rounded UP to a
//   whole microsecond (the clocks' unit) so that the bound is not lost to rounding when 60e6 / R
//   is not a whole number; with T exact a closed window [x, x + 60 s] could hold R + 1 (at x and
//   at x + 60 s), which the half-open window excludes.
// - tpm M: cost = tokens * 60e6 / M us, rounded up. The tolerance is the request's own cost
//   (a "burst of one request"): a request passes when the bucket is drained (TAT <= now) however
//   many tokens it asks for, since one asking for more than M tokens could otherwise never run.
//   Hence the tokens admitted in any 60 s window are below M plus the last request's tokens.
#include <algorithm>
#include <cstdint>
#include <random>

namespace kg::llm::limiter_math {

inline constexpr int64_t kMinuteUs = 60'000'000;
// Tokens beyond this are counted as this many (keeps tokens * 60e6 within int64).
inline constexpr int64_t kMaxTokens = 100'000'000'000;

// The emission interval of `rpm` requests per minute (rpm > 0), in us, rounded up.
inline int64_t RpmIntervalUs(int64_t rpm) { return (kMinuteUs + rpm - 1) / rpm; }

// The bucket time `tokens` (>= 0) take at `tpm` (> 0), in us, rounded up (charging).
inline int64_t TokenCostUs(int64_t tokens, int64_t tpm) {
  tokens = std::min(tokens, kMaxTokens);
  return (tokens * kMinuteUs + tpm - 1) / tpm;
}

// A token correction (actual - expected) in us: an extra is charged rounded up, a refund is
// given back rounded down, so rounding never favours the caller.
inline int64_t TokenDeltaUs(int64_t delta, int64_t tpm) {
  if (delta >= 0) return TokenCostUs(delta, tpm);
  return -(std::min(-delta, kMaxTokens) * kMinuteUs / tpm);
}

// How long a caller refused by a full semaphore waits before asking again: a short poll of
// 50-200 ms with jitter (holders release at unknown times; jitter spreads the askers), or until
// the oldest slot expires when that comes sooner (`oldest_left_ms` < 0: unknown).
inline int64_t ConcurrencyPollMs(int64_t oldest_left_ms) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  int64_t poll = 50 + static_cast<int64_t>(rng() % 151);
  if (oldest_left_ms > 0) poll = std::min(poll, oldest_left_ms);
  return std::max<int64_t>(poll, 1);
}

// Microseconds to whole milliseconds, rounded up (a wait never ends early).
inline int64_t CeilMs(int64_t us) { return (us + 999) / 1000; }

}  // namespace kg::llm::limiter_math
