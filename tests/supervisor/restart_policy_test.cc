// The restart policy's arithmetic on an injected clock: backoff growth and ceiling, the
// reset after a stable run, quarantine and its end, the per-minute spawn budget.
#include "supervisor/restart_policy.h"

#include <gtest/gtest.h>

namespace kg {
namespace {

struct FakeClock {
  int64_t now = 1'000'000;
  RestartPolicy::Clock fn() {
    return [this] { return now; };
  }
};

RestartPolicyOptions Options() {
  RestartPolicyOptions o;
  o.backoff_base_ms = 100;
  o.backoff_max_ms = 1000;
  o.stable_ms = 10000;
  o.quarantine_failures = 100;  // out of the way unless a test wants it
  o.failure_window_ms = 60000;
  o.quarantine_ms = 5000;
  o.spawn_budget_per_minute = 1000;
  return o;
}

// Verifies consecutive failures respawn at once, then back off base, 2x, 4x ... capped at the maximum, and
// that spawning is refused exactly until the backoff ends.
TEST(RestartPolicy, BackoffDoublesUpToTheCeiling) {
  FakeClock clock;
  RestartPolicy p(Options(), clock.fn());
  std::vector<int64_t> delays;
  for (int i = 0; i < 8; ++i) {
    auto v = p.OnFailure("bad", clock.now);
    delays.push_back(v.backoff_ms);
    EXPECT_EQ(v.consecutive, i + 1);
    if (v.backoff_ms > 0) {
      EXPECT_FALSE(p.MaySpawn("bad"));
      EXPECT_EQ(p.NextDeadline(), clock.now + v.backoff_ms);
      clock.now += v.backoff_ms - 1;
      EXPECT_FALSE(p.MaySpawn("bad")) << "one ms before the end of the backoff";
      clock.now += 1;
    }
    EXPECT_TRUE(p.MaySpawn("bad"));
    EXPECT_TRUE(p.MaySpawn("good")) << "another provider is never held back";
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{0, 100, 200, 400, 800, 1000, 1000, 1000}));
}

// Verifies a process that ran the stable time resets the streak (crash or clean exit), and one that ran less
// does not.
TEST(RestartPolicy, StableRunResetsTheStreak) {
  FakeClock clock;
  RestartPolicy p(Options(), clock.fn());
  p.OnFailure("a", clock.now);
  EXPECT_EQ(p.OnFailure("a", clock.now).backoff_ms, 100);
  clock.now += 100;
  int64_t started = clock.now;
  clock.now += 9999;  // one ms short of stable
  EXPECT_EQ(p.OnFailure("a", started).backoff_ms, 200) << "not stable yet: the streak goes on";
  clock.now += 200;
  started = clock.now;
  clock.now += 10000;
  auto v = p.OnFailure("a", started);
  EXPECT_EQ(v.consecutive, 1) << "ran 10 s: a fresh streak";
  EXPECT_EQ(v.backoff_ms, 0);
  EXPECT_EQ(p.OnFailure("a", clock.now).backoff_ms, 100);
  clock.now += 100;
  started = clock.now;
  clock.now += 10000;
  p.OnCleanExit("a", started);
  EXPECT_EQ(p.OnFailure("a", clock.now).backoff_ms, 0) << "a stable clean exit also resets";
}

// Verifies N failures within the window quarantine the provider for the quarantine time, failures spread
// wider than the window do not, and the end of a quarantine is reported once.
TEST(RestartPolicy, QuarantineAfterFailuresWithinTheWindow) {
  FakeClock clock;
  auto o = Options();
  o.quarantine_failures = 3;
  o.stable_ms = 1;  // every failure starts a fresh streak: no backoff in the way
  RestartPolicy p(o, clock.fn());
  p.OnFailure("a", clock.now - 10);
  clock.now += 30001;
  p.OnFailure("a", clock.now - 10);
  clock.now += 30000;
  EXPECT_FALSE(p.OnFailure("a", clock.now - 10).quarantined) << "the first failure left the 60 s window";
  clock.now += 1;
  auto v = p.OnFailure("a", clock.now - 10);
  EXPECT_TRUE(v.quarantined);
  EXPECT_TRUE(p.Quarantined("a"));
  EXPECT_FALSE(p.MaySpawn("a"));
  EXPECT_FALSE(p.Quarantined("b"));
  EXPECT_EQ(p.NextDeadline(), clock.now + 5000);
  clock.now += 4999;
  EXPECT_TRUE(p.Quarantined("a"));
  EXPECT_TRUE(p.TakeEndedQuarantines().empty());
  clock.now += 1;
  EXPECT_FALSE(p.Quarantined("a"));
  EXPECT_EQ(p.TakeEndedQuarantines(), std::vector<std::string>{"a"});
  EXPECT_TRUE(p.TakeEndedQuarantines().empty()) << "reported once";
  EXPECT_TRUE(p.MaySpawn("a"));
  EXPECT_FALSE(p.OnFailure("a", clock.now - 10).quarantined) << "the count starts again after a quarantine";
}

// Verifies the spawn budget: at most N spawns in any 60 s, exhaustion reported once, a slot freed when the
// oldest spawn leaves the minute.
TEST(RestartPolicy, SpawnBudgetPerMinute) {
  FakeClock clock;
  auto o = Options();
  o.spawn_budget_per_minute = 3;
  RestartPolicy p(o, clock.fn());
  int64_t first = clock.now;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(p.BudgetAllows());
    p.RecordSpawn();
    clock.now += 1000;
  }
  EXPECT_FALSE(p.BudgetAllows());
  EXPECT_TRUE(p.TakeBudgetExhaustedReport());
  EXPECT_FALSE(p.BudgetAllows());
  EXPECT_FALSE(p.TakeBudgetExhaustedReport()) << "reported once per exhaustion";
  EXPECT_EQ(p.NextDeadline(), first + 60000) << "the loop wakes when a slot frees";
  clock.now = first + 60000;
  EXPECT_FALSE(p.BudgetAllows()) << "still within the minute of the first spawn";
  clock.now = first + 60001;
  EXPECT_TRUE(p.BudgetAllows());
  p.RecordSpawn();
  EXPECT_FALSE(p.BudgetAllows());
  EXPECT_TRUE(p.TakeBudgetExhaustedReport()) << "a new exhaustion is reported again";
}

}  // namespace
}  // namespace kg
