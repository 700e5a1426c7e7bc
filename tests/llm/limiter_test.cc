// The limiters of limiter.h: the local one with a driven clock (exact bounds and waits), the
// Redis one against a real redis-server (bounds under contention between two limiter objects,
// i.e. two processes, slots expiring, the pause, isolation, outages).
#include "llm/limiter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "redis/client.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg::llm {
namespace {

using std::chrono::milliseconds;

// A clock the test moves.
struct DrivenClock {
  std::atomic<int64_t> ms{0};
  std::function<int64_t()> Fn() {
    return [this] { return ms.load(); };
  }
};

Admission MustTry(Limiter& l, int64_t tokens = 1) {
  auto r = l.TryAcquire(tokens);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : Admission{};
}

// The most of the sorted `times` that fall in one half-open window [t, t + w), over every
// window starting at one of them (a window holding most of them can always be moved to start
// at its first).
size_t MaxInWindow(const std::vector<int64_t>& times, int64_t w) {
  size_t best = 0;
  for (size_t i = 0, j = 0; i < times.size(); ++i) {
    while (j < times.size() && times[j] < times[i] + w) ++j;
    best = std::max(best, j - i);
  }
  return best;
}

// Verifies the exact rpm bound with driven time: over 5 minutes, three callers asking every
// millisecond, the admissions in any 60 s window never exceed rpm (also when 60 s / rpm is not
// a whole number of ms), the limiter is not stricter than that (the first minute holds exactly
// rpm), and every refusal's retry_after_ms is exact (the next admission comes at that moment).
TEST(LocalLimiter, RpmNeverExceedsTheLimitInAny60sWindow) {
  for (int rpm : {120, 7, 1000}) {
    SCOPED_TRACE("rpm " + std::to_string(rpm));
    DrivenClock clock;
    auto l = MakeLocalLimiter(RateLimits{0, rpm, 0}, clock.Fn());
    std::vector<int64_t> granted;
    int64_t expect_next = -1;  // when the first refusal since the last admission said to ask again
    for (int64_t t = 0; t < 5 * 60000; ++t) {
      clock.ms = t;
      for (int caller = 0; caller < 3; ++caller) {
        Admission a = MustTry(*l);
        if (a.granted) {
          if (expect_next >= 0) {
            ASSERT_EQ(t, expect_next) << "retry_after_ms was not exact";
          }
          expect_next = -1;
          granted.push_back(t);
        } else {
          ASSERT_EQ(a.reason, "rpm");
          ASSERT_GT(a.retry_after_ms, 0);
          if (expect_next < 0) expect_next = t + a.retry_after_ms;
          ASSERT_EQ(t + a.retry_after_ms, expect_next) << "the wait moved while nothing was admitted";
        }
      }
    }
    EXPECT_LE(MaxInWindow(granted, 60000), static_cast<size_t>(rpm));
    EXPECT_EQ(MaxInWindow({granted.begin(), std::upper_bound(granted.begin(), granted.end(), 59999)}, 60000),
              static_cast<size_t>(rpm));
    EXPECT_GE(granted.size(), static_cast<size_t>(5 * rpm));
  }
}

// Verifies the tpm bucket with driven time: a request's tokens hold the bucket for their share
// of a minute; a request larger than the whole per-minute budget passes when the bucket is
// drained; Release's correction pushes the bucket forward or pulls it back, never below now (no
// credit is banked); and over 5 minutes of random requests the tokens admitted in any 60 s
// window, less the window's last request, stay within tpm.
TEST(LocalLimiter, TpmBucketAndReleaseCorrection) {
  DrivenClock clock;
  auto l = MakeLocalLimiter(RateLimits{0, 0, 6000}, clock.Fn());  // 10 ms per token
  EXPECT_TRUE(MustTry(*l, 100).granted);
  Admission a = MustTry(*l, 1);
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.reason, "tpm");
  EXPECT_EQ(a.retry_after_ms, 1000);
  clock.ms = 999;
  EXPECT_EQ(MustTry(*l, 1).retry_after_ms, 1);
  clock.ms = 1000;
  EXPECT_TRUE(MustTry(*l, 100).granted);  // bucket until 2000
  ASSERT_TRUE(l->Release("", -50).ok());  // until 1500
  clock.ms = 1499;
  EXPECT_EQ(MustTry(*l, 1).retry_after_ms, 1);
  clock.ms = 1500;
  EXPECT_TRUE(MustTry(*l, 100).granted);  // until 2500
  ASSERT_TRUE(l->Release("", 100).ok());  // until 3500
  EXPECT_EQ(MustTry(*l, 1).retry_after_ms, 2000);
  clock.ms = 3500;
  EXPECT_TRUE(MustTry(*l, 10).granted);     // until 3600
  ASSERT_TRUE(l->Release("", -1000).ok());  // would be 3600 - 10000: kept at now
  EXPECT_TRUE(MustTry(*l, 100).granted);    // until 4500: no credit was banked
  clock.ms = 4499;
  EXPECT_EQ(MustTry(*l, 1).retry_after_ms, 1);
  clock.ms = 10000;
  EXPECT_TRUE(MustTry(*l, 12000).granted);  // twice the budget of a minute, on a drained bucket
  EXPECT_EQ(MustTry(*l, 1).retry_after_ms, 120000);
  clock.ms = 200000;  // drained: an extra is charged from now
  ASSERT_TRUE(l->Release("", 100).ok());
  EXPECT_EQ(MustTry(*l, 1).retry_after_ms, 1000);

  DrivenClock c2;
  auto r = MakeLocalLimiter(RateLimits{0, 0, 6000}, c2.Fn());
  std::mt19937 rng(7);
  std::vector<std::pair<int64_t, int64_t>> admitted;  // (time, tokens)
  for (int64_t t = 0; t < 5 * 60000; ++t) {
    c2.ms = t;
    int64_t tokens = 1 + rng() % 3000;
    if (MustTry(*r, tokens).granted) admitted.push_back({t, tokens});
  }
  ASSERT_GT(admitted.size(), 10u);
  int64_t worst = 0;
  for (size_t i = 0; i < admitted.size(); ++i) {
    int64_t sum = 0;
    for (size_t j = i; j < admitted.size() && admitted[j].first < admitted[i].first + 60000; ++j) {
      worst = std::max(worst, sum);  // the window's tokens before its request j
      sum += admitted[j].second;
    }
  }
  EXPECT_LE(worst, 6000);
}

// Verifies that a refusal changes nothing: a request refused for a full semaphore does not use
// the rpm or tpm bucket, and one refused by the rpm bucket takes no slot.
TEST(LocalLimiter, RefusalChangesNothing) {
  DrivenClock clock;
  auto l = MakeLocalLimiter(RateLimits{1, 60, 60000}, clock.Fn());
  Admission a = MustTry(*l, 100);
  ASSERT_TRUE(a.granted);
  clock.ms = 1000;  // both buckets drained; the slot is still held
  Admission b = MustTry(*l, 100);
  EXPECT_FALSE(b.granted);
  EXPECT_EQ(b.reason, "concurrency");
  EXPECT_GE(b.retry_after_ms, 1);
  EXPECT_LE(b.retry_after_ms, 200);
  ASSERT_TRUE(l->Release(a.slot, 0).ok());
  Admission c = MustTry(*l, 100);  // the refusal used neither bucket
  ASSERT_TRUE(c.granted);
  ASSERT_TRUE(l->Release(c.slot, 0).ok());
  clock.ms = 1001;
  EXPECT_EQ(MustTry(*l).reason, "rpm");
  clock.ms = 2000;
  Admission d = MustTry(*l);  // the rpm refusal took no slot
  EXPECT_TRUE(d.granted);
}

// Verifies the semaphore with driven time: at most max_concurrency slots; a released slot is free
// at once; a slot not renewed within the TTL (30 s) is freed, a renewed one is kept; a refusal
// waits no longer than until the oldest slot expires; releasing an unknown slot is no error.
TEST(LocalLimiter, SlotsExpireUnlessRenewed) {
  DrivenClock clock;
  auto l = MakeLocalLimiter(RateLimits{2, 0, 0}, clock.Fn());
  Admission a = MustTry(*l), b = MustTry(*l);
  ASSERT_TRUE(a.granted && b.granted);
  EXPECT_FALSE(a.slot.empty());
  EXPECT_NE(a.slot, b.slot);
  Admission c = MustTry(*l);
  EXPECT_FALSE(c.granted);
  EXPECT_EQ(c.reason, "concurrency");
  clock.ms = 29999;
  ASSERT_TRUE(l->Renew({a.slot}).ok());  // a until 59999
  clock.ms = 30000;                       // b expired
  Admission d = MustTry(*l);              // until 60000
  EXPECT_TRUE(d.granted);
  EXPECT_FALSE(MustTry(*l).granted);
  clock.ms = 59995;
  Admission e = MustTry(*l);
  EXPECT_FALSE(e.granted);
  EXPECT_EQ(e.retry_after_ms, 4);  // a expires at 59999
  EXPECT_TRUE(l->Release(b.slot, 0).ok());  // expired: not an error
  EXPECT_TRUE(l->Release("nobody/1", 0).ok());
  ASSERT_TRUE(l->Release(a.slot, 0).ok());
  EXPECT_TRUE(MustTry(*l).granted);
}

// Verifies the pause with driven time: nothing is admitted until it ends, a shorter pause does
// not shorten it, a longer one extends it, and the refusal says how long is left.
TEST(LocalLimiter, PauseBlocksAndIsNeverShortened) {
  DrivenClock clock;
  auto l = MakeLocalLimiter(RateLimits{}, clock.Fn());
  EXPECT_TRUE(MustTry(*l).granted);
  ASSERT_TRUE(l->Pause(1000).ok());
  Admission a = MustTry(*l);
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.reason, "paused");
  EXPECT_EQ(a.retry_after_ms, 1000);
  clock.ms = 500;
  ASSERT_TRUE(l->Pause(100).ok());
  EXPECT_EQ(MustTry(*l).retry_after_ms, 500);
  ASSERT_TRUE(l->Pause(2000).ok());  // until 2500
  clock.ms = 2499;
  EXPECT_EQ(MustTry(*l).retry_after_ms, 1);
  clock.ms = 2500;
  EXPECT_TRUE(MustTry(*l).granted);
}

// ---------------------------------------------------------------------------------------------
// The Redis limiter on the run's shared redis-server, each test in a namespace of its own.

RedisEndpoint At(int port, const std::string& ns) {
  testing::ServerProcess server;
  server.port = port;
  RedisEndpoint at = testing::RedisAt(server, ns);
  at.connect_timeout_ms = 500;
  at.socket_timeout_ms = 1000;
  return at;
}

RedisEndpoint Shared(const std::string& ns) { return At(testing::SharedRedis().port, ns); }

int64_t MonoUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// An admission seen from the client: it happened on the server between these two moments.
struct Stamp {
  int64_t before_us, after_us;
};

// The most admissions certainly inside one half-open window of `w_us`: those that started no
// earlier than the window's start and returned before its end (on the monotonic clock, which
// NTP slews at the rate of the server's TIME). Never more than the server admitted in a window
// of that length, whatever the round trips took.
size_t MaxCertainlyInWindow(const std::vector<Stamp>& s, int64_t w_us) {
  size_t best = 0;
  for (const Stamp& start : s) {
    size_t n = 0;
    for (const Stamp& x : s) n += x.before_us >= start.before_us && x.after_us < start.before_us + w_us;
    best = std::max(best, n);
  }
  return best;
}

// Verifies the rpm bound under contention: 8 threads on two limiter objects (two processes)
// sharing one Redis hammer TryAcquire for 3 s at rpm=600; in any window W (1 s windows, and the
// whole run) the admissions never exceed the half-open bound ceil(rpm * W / 60 s) (which is
// rpm/60*W, +1 only for a window that is not a whole number of intervals).
TEST(RedisLimiter, RpmBoundUnderContention) {
  constexpr int kRpm = 600;
  RedisEndpoint at = Shared(testing::UniqueName("lim"));
  auto l1 = MakeRedisLimiter(at, "p", "n1/1", RateLimits{0, kRpm, 0});
  auto l2 = MakeRedisLimiter(at, "p", "n2/2", RateLimits{0, kRpm, 0});
  std::mutex mu;
  std::vector<Stamp> stamps;
  std::atomic<int> errors{0};
  const int64_t end_us = MonoUs() + 3'000'000;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      Limiter& l = i % 2 ? *l1 : *l2;
      std::minstd_rand rng(i + 1);
      while (MonoUs() < end_us) {
        int64_t before = MonoUs();
        auto r = l.TryAcquire(1);
        int64_t after = MonoUs();
        if (!r.ok()) {
          ++errors;
          return;
        }
        if (r->granted) {
          std::lock_guard<std::mutex> lock(mu);
          stamps.push_back({before, after});
        } else {
          // Some ask again right when told, the others sooner: many arrive when the bucket drains.
          int64_t wait = std::min<int64_t>(r->retry_after_ms, 20);
          int64_t pause = rng() % 2 ? wait : static_cast<int64_t>(rng() % static_cast<uint64_t>(wait + 1));
          std::this_thread::sleep_for(milliseconds(pause));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(errors.load(), 0);
  ASSERT_GE(stamps.size(), 5u);
  auto bound = [](int64_t w_us) { return static_cast<size_t>((kRpm * w_us + 60'000'000 - 1) / 60'000'000); };
  EXPECT_LE(MaxCertainlyInWindow(stamps, 1'000'000), bound(1'000'000));
  int64_t first = stamps.front().before_us, last = 0;
  for (const Stamp& s : stamps) first = std::min(first, s.before_us), last = std::max(last, s.after_us);
  int64_t whole = last - first + 1;
  EXPECT_LE(stamps.size(), bound(whole)) << "over " << whole << " us";
}

// Verifies the tpm bucket on Redis: a request larger than the budget of a minute passes on a
// drained bucket and then holds it; a negative correction pulls the bucket back to now but
// banks no credit; a positive one pushes it forward.
TEST(RedisLimiter, TpmBucketAndReleaseCorrection) {
  auto l = MakeRedisLimiter(Shared(testing::UniqueName("lim")), "p", "n/1", RateLimits{0, 0, 60000});  // 1 ms/token
  EXPECT_TRUE(MustTry(*l, 120000).granted);
  Admission a = MustTry(*l, 1);
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.reason, "tpm");
  EXPECT_GT(a.retry_after_ms, 100000);
  EXPECT_LE(a.retry_after_ms, 120000);
  ASSERT_TRUE(l->Release("", -120000).ok());
  EXPECT_TRUE(MustTry(*l, 1).granted);
  ASSERT_TRUE(l->Release("", 100000).ok());
  Admission b = MustTry(*l, 1);
  EXPECT_EQ(b.reason, "tpm");
  EXPECT_GT(b.retry_after_ms, 90000);
  EXPECT_LE(b.retry_after_ms, 101000);
  ASSERT_TRUE(l->Release("", -1000000).ok());  // far more than is held: back to now, not below
  EXPECT_TRUE(MustTry(*l, 30000).granted);
  Admission c = MustTry(*l, 1);
  EXPECT_FALSE(c.granted);
  EXPECT_GT(c.retry_after_ms, 20000);
}

// Verifies the semaphore across processes: 6 threads on two limiter objects sharing one Redis
// take and release slots for 2 s with max_concurrency 3; requests in flight never exceed 3 (and
// reach it), and every slot is given back.
TEST(RedisLimiter, ConcurrencyNeverExceedsTheLimitAcrossProcesses) {
  RedisEndpoint at = Shared(testing::UniqueName("lim"));
  auto l1 = MakeRedisLimiter(at, "p", "n1/1", RateLimits{3, 0, 0});
  auto l2 = MakeRedisLimiter(at, "p", "n2/2", RateLimits{3, 0, 0});
  std::atomic<int> in_flight{0}, most{0}, grants{0}, errors{0};
  const int64_t end_us = MonoUs() + 2'000'000;
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      Limiter& l = i % 2 ? *l1 : *l2;
      std::minstd_rand rng(i + 1);
      while (MonoUs() < end_us) {
        auto r = l.TryAcquire(1);
        if (!r.ok()) {
          ++errors;
          return;
        }
        if (!r->granted) {
          std::this_thread::sleep_for(milliseconds(std::min<int64_t>(r->retry_after_ms, static_cast<int64_t>(rng() % 5))));
          continue;
        }
        ++grants;
        int now = ++in_flight;  // counted after the grant and uncounted before the release: never too many
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(milliseconds(static_cast<int64_t>(rng() % 4)));
        --in_flight;
        if (!l.Release(r->slot, 0).ok()) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 3) << "the limit was never reached: the test proved nothing";
  EXPECT_GT(grants.load(), 10);
  redis::Client admin(at);
  auto n = admin.Run(redis::Call::Cmd({"ZCARD", at.ns + ":llm:p:slots"}));
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(n->Int(-1), 0);
}

// Verifies that a slot not renewed is freed after its TTL (its holder died): another process
// gets it, and its first refusal waited no longer than the TTL. Slot ids name the holder.
TEST(RedisLimiter, UnrenewedSlotIsFreedAfterItsTtl) {
  RedisEndpoint at = Shared(testing::UniqueName("lim"));
  auto dead = MakeRedisLimiter(at, "p", "n1/1", RateLimits{1, 0, 0}, 300);
  auto other = MakeRedisLimiter(at, "p", "n2/2", RateLimits{1, 0, 0}, 300);
  Admission a = MustTry(*dead);
  ASSERT_TRUE(a.granted);
  EXPECT_EQ(a.slot.rfind("n1/1/", 0), 0u) << a.slot;
  Admission b = MustTry(*other);
  EXPECT_FALSE(b.granted);
  EXPECT_EQ(b.reason, "concurrency");
  EXPECT_LE(b.retry_after_ms, 300);
  EXPECT_TRUE(testing::WaitFor([&] { return MustTry(*other).granted; }, milliseconds(5000)));
  EXPECT_TRUE(dead->Release(a.slot, 0).ok());  // expired: not an error
}

// Verifies that Renew keeps a slot past its TTL: while it is renewed every 100 ms another
// process is refused for 2.5 TTLs; once renewing stops the slot is freed.
TEST(RedisLimiter, RenewKeepsTheSlot) {
  RedisEndpoint at = Shared(testing::UniqueName("lim"));
  auto holder = MakeRedisLimiter(at, "p", "n1/1", RateLimits{1, 0, 0}, 1000);
  auto other = MakeRedisLimiter(at, "p", "n2/2", RateLimits{1, 0, 0}, 1000);
  Admission a = MustTry(*holder);
  ASSERT_TRUE(a.granted);
  std::atomic<bool> stop{false};
  std::atomic<int> renew_errors{0};
  std::thread renewer([&] {
    while (!stop) {
      if (!holder->Renew({a.slot, "unknown/1"}).ok()) ++renew_errors;
      std::this_thread::sleep_for(milliseconds(100));
    }
  });
  int granted = 0;
  for (int64_t end = MonoUs() + 2'500'000; MonoUs() < end;) {
    Admission b = MustTry(*other);
    granted += b.granted;
    std::this_thread::sleep_for(milliseconds(50));
  }
  stop = true;
  renewer.join();
  EXPECT_EQ(renew_errors.load(), 0);
  EXPECT_EQ(granted, 0);
  EXPECT_TRUE(testing::WaitFor([&] { return MustTry(*other).granted; }, milliseconds(5000)));
}

// Verifies the pause: it blocks every limiter object of the provider in the namespace, a shorter
// pause does not shorten it, other providers and namespaces are not paused, and it ends.
TEST(RedisLimiter, PauseBlocksEveryLimiterAndIsNeverShortened) {
  std::string ns = testing::UniqueName("lim");
  auto a = MakeRedisLimiter(Shared(ns), "p", "n1/1", RateLimits{});
  auto b = MakeRedisLimiter(Shared(ns), "p", "n2/2", RateLimits{2, 600, 1000});
  auto other_provider = MakeRedisLimiter(Shared(ns), "q", "n1/1", RateLimits{});
  auto other_ns = MakeRedisLimiter(Shared(ns + "x"), "p", "n1/1", RateLimits{});
  ASSERT_TRUE(a->Pause(60000).ok());
  for (Limiter* l : {a.get(), b.get()}) {
    Admission r = MustTry(*l);
    EXPECT_FALSE(r.granted);
    EXPECT_EQ(r.reason, "paused");
    EXPECT_GT(r.retry_after_ms, 50000);
    EXPECT_LE(r.retry_after_ms, 60000);
  }
  ASSERT_TRUE(b->Pause(100).ok());
  EXPECT_GT(MustTry(*b).retry_after_ms, 50000);
  EXPECT_TRUE(MustTry(*other_provider).granted);
  EXPECT_TRUE(MustTry(*other_ns).granted);

  ASSERT_TRUE(other_provider->Pause(200).ok());
  EXPECT_EQ(MustTry(*other_provider).reason, "paused");
  EXPECT_TRUE(testing::WaitFor([&] { return MustTry(*other_provider).granted; }, milliseconds(5000)));
}

// Verifies that buckets are per provider and per namespace: a provider's exhausted rpm refuses
// it alone.
TEST(RedisLimiter, ProvidersAndNamespacesAreIndependent) {
  std::string ns = testing::UniqueName("lim");
  RateLimits one{1, 1, 100};
  auto p = MakeRedisLimiter(Shared(ns), "p", "n/1", one);
  auto q = MakeRedisLimiter(Shared(ns), "q", "n/1", one);
  auto p2 = MakeRedisLimiter(Shared(ns + "x"), "p", "n/1", one);
  EXPECT_TRUE(MustTry(*p).granted);
  Admission r = MustTry(*p);
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(r.reason, "rpm");
  EXPECT_GT(r.retry_after_ms, 50000);
  EXPECT_TRUE(MustTry(*q).granted);
  EXPECT_TRUE(MustTry(*p2).granted);
}

// The values and TTLs of a provider's keys, to compare states.
std::vector<std::string> Snapshot(redis::Client& c, const std::string& base) {
  std::vector<std::string> out;
  for (const char* k : {"rpm", "tpm"}) {
    auto v = c.Run(redis::Call::Cmd({"GET", base + ":" + k}));
    out.push_back(v.ok() ? v->Str() : "error");
  }
  auto z = c.Run(redis::Call::Cmd({"ZRANGE", base + ":slots", "0", "-1", "WITHSCORES"}));
  if (z.ok()) {
    for (const auto& e : z->a) out.push_back(e.Str());
  }
  return out;
}

// Verifies on Redis that a refusal writes nothing (buckets and slots as they were), and that
// an idle provider leaves no key behind, an unreleased slot's included.
TEST(RedisLimiter, RefusalWritesNothingAndIdleKeysExpire) {
  RedisEndpoint at = Shared(testing::UniqueName("lim"));
  redis::Client admin(at);
  const std::string base = at.ns + ":llm:p";
  auto l = MakeRedisLimiter(at, "p", "n/1", RateLimits{1, 1, 6}, 300);  // rpm 60 s, tpm 10 s a token
  ASSERT_TRUE(MustTry(*l, 1).granted);
  auto before = Snapshot(admin, base);
  ASSERT_EQ(before.size(), 4u);  // rpm, tpm, one slot and its score
  Admission r = MustTry(*l, 1);
  EXPECT_FALSE(r.granted);
  EXPECT_EQ(Snapshot(admin, base), before);

  auto keys = [&] {
    auto v = admin.Run(redis::Call::Cmd({"KEYS", base + ":*"}));
    return v.ok() ? static_cast<int>(v->a.size()) : -1;
  };
  std::string ns2 = testing::UniqueName("lim");
  RedisEndpoint at2 = Shared(ns2);
  auto idle = MakeRedisLimiter(at2, "p", "n/1", RateLimits{1, 600, 600000}, 300);
  ASSERT_TRUE(MustTry(*idle, 1000).granted);  // rpm 100 ms, tpm 100 ms, slot 300 ms; not released
  auto left = [&] {
    auto v = admin.Run(redis::Call::Cmd({"KEYS", ns2 + ":llm:*"}));
    return v.ok() ? static_cast<int>(v->a.size()) : -1;
  };
  for (const char* k : {"rpm", "tpm", "slots"}) {  // each key expires (-2: already gone), none is kept (-1)
    auto ttl = admin.Run(redis::Call::Cmd({"PTTL", ns2 + ":llm:p:" + k}));
    ASSERT_TRUE(ttl.ok()) << ttl.status().message();
    EXPECT_NE(ttl->Int(), -1) << k;
  }
  EXPECT_TRUE(testing::WaitFor([&] { return left() == 0; }, milliseconds(5000)));
  EXPECT_GT(keys(), 0);  // the first provider's rpm bucket still holds (60 s)
}

// Verifies outages: with nothing listening every call fails with kUnavailable naming the
// address; a server that stops fails the next call with kUnavailable within the client's
// timeouts (not a crash or a hang), and once it is back (scripts flushed) the limiter works again.
TEST(RedisLimiter, RedisDownIsUnavailable) {
  int port = testing::FreePort();
  auto l = MakeRedisLimiter(At(port, "kg"), "p", "n/1", RateLimits{1, 60, 100});
  auto r = l->TryAcquire(1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.status().message();
  EXPECT_EQ(l->Release("n/1/1", 10).code(), Code::kUnavailable);
  EXPECT_EQ(l->Renew({"n/1/1"}).code(), Code::kUnavailable);
  EXPECT_EQ(l->Pause(10).code(), Code::kUnavailable);

  testing::TempDir dir;
  testing::ServerProcess server = testing::StartServer("redis", dir.File("redis"));
  ASSERT_GT(server.port, 0);
  auto own = MakeRedisLimiter(At(server.port, "kg"), "p", "n/1", RateLimits{0, 0, 0});
  EXPECT_TRUE(MustTry(*own).granted);
  testing::StopServer(server);
  auto down = own->TryAcquire(1);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), Code::kUnavailable) << down.status().message();
  testing::ScopedServer again{testing::StartServer("redis", dir.File("redis"), server.port)};
  ASSERT_GT(again.server.port, 0);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        auto x = own->TryAcquire(1);
        return x.ok() && x->granted;
      },
      milliseconds(10000)));
}

}  // namespace
}  // namespace kg::llm
