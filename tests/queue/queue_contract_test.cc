// The delivery contract of Queue. Every backend runs this suite unchanged: add a
// factory to the INSTANTIATE list below.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "queue/queue.h"
#include "sqlite/db.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

struct Backend {
  std::string name;
  std::function<std::unique_ptr<Queue>(const std::string& dir, QueueOptions)> open;
};
void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }


class QueueContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { q_ = Open(); }
  std::unique_ptr<Queue> Open() {
    QueueOptions o;
    o.max_attempts = 3;
    o.poison_crashes = 2;
    o.backoff_base_ms = 1000;
    o.backoff_max_ms = 8000;
    o.jitter = 0.25;
    o.now_ms = [this] { return now_.load(); };
    return GetParam().open(dir_.path(), o);
  }
  std::vector<ChunkItem> Items(const std::string& task, int n, const std::string& provider = "p") {
    std::vector<ChunkItem> v;
    for (int i = 0; i < n; ++i) v.push_back({task + ":" + std::to_string(i), task, provider, i, "payload" + std::to_string(i)});
    return v;
  }
  std::vector<Lease> LeaseN(int n, const std::string& owner = "w1", bool suspect = false) {
    auto r = q_->LeaseChunks("p", owner, n, 10000, suspect);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : std::vector<Lease>{};
  }

  testing::TempDir dir_;
  std::atomic<int64_t> now_{1'000'000};
  std::unique_ptr<Queue> q_;
};

// Verifies enqueue is idempotent by id and lease hands out each chunk once with a token and deadline.
TEST_P(QueueContract, EnqueueIdempotentAndLeaseOnce) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 3)).ok());
  ASSERT_TRUE(q_->Enqueue(Items("t", 3)).ok());
  auto c = q_->Counts("t");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 3);
  auto a = LeaseN(2);
  auto b = LeaseN(5, "w2");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_TRUE(LeaseN(5, "w3").empty());
  std::set<std::string> ids = {a[0].chunk_id, a[1].chunk_id, b[0].chunk_id};
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(a[0].attempt, 1);
  EXPECT_EQ(a[0].deadline_ms, now_ + 10000);
  EXPECT_EQ(a[0].payload, "payload" + std::to_string(a[0].idx));
  EXPECT_FALSE(a[0].token.empty());
  EXPECT_NE(a[0].token, a[1].token);
}

// Verifies per-provider queues: a worker of one provider never sees another's chunks.
TEST_P(QueueContract, ProvidersAreSeparate) {
  ASSERT_TRUE(q_->Enqueue(Items("a", 2, "p")).ok());
  ASSERT_TRUE(q_->Enqueue(Items("b", 2, "other")).ok());
  auto mine = LeaseN(10);
  ASSERT_EQ(mine.size(), 2u);
  for (const auto& l : mine) EXPECT_EQ(l.task_id, "a");
  auto depths = q_->Depths();
  ASSERT_TRUE(depths.ok());
  EXPECT_EQ((*depths)["other"].ready, 2);
  EXPECT_EQ((*depths)["p"].leased, 2);
}

// Verifies ack completes a chunk and a stale token (or a second ack) is rejected with kConflict.
TEST_P(QueueContract, AckAndStaleTokensAreFenced) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  auto l = LeaseN(1);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(q_->Ack(l[0].chunk_id, "wrong-token").code(), Code::kConflict);
  EXPECT_EQ(q_->Renew(l[0].chunk_id, "wrong-token", 1000).code(), Code::kConflict);
  EXPECT_EQ(q_->Nack(l[0].chunk_id, "wrong-token", "x", true).code(), Code::kConflict);
  EXPECT_TRUE(q_->Ack(l[0].chunk_id, l[0].token).ok());
  EXPECT_EQ(q_->Ack(l[0].chunk_id, l[0].token).code(), Code::kConflict);
  auto c = q_->Counts("t");
  EXPECT_EQ(c->done, 1);
}

// Verifies an expired lease is reclaimed, the old holder is fenced off, and renewal prevents expiry.
TEST_P(QueueContract, RenewAndReclaimExpired) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 2)).ok());
  auto l = LeaseN(2);
  ASSERT_EQ(l.size(), 2u);
  now_ += 5000;
  ASSERT_TRUE(q_->Renew(l[0].chunk_id, l[0].token, 10000).ok());
  now_ += 6000;  // l[1] expired, l[0] renewed until +15000
  auto n = q_->ReclaimExpired();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(q_->Ack(l[1].chunk_id, l[1].token).code(), Code::kConflict);
  EXPECT_TRUE(q_->Ack(l[0].chunk_id, l[0].token).ok());
  auto again = LeaseN(1, "w2");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].chunk_id, l[1].chunk_id);
  EXPECT_EQ(again[0].attempt, 2);
}

// Verifies lease expiry is real at the queue: the next lease call takes an expired lease
// (no periodic sweep needed), counts the attempt, and the old holder can neither renew nor ack.
TEST_P(QueueContract, ExpiredLeaseIsTakenByTheNextLeaseCall) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  auto first = LeaseN(1, "w1");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(LeaseN(1, "w2").empty());  // not yet expired
  now_ += 10001;
  auto second = LeaseN(1, "w2");
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].chunk_id, first[0].chunk_id);
  EXPECT_EQ(second[0].attempt, 2);
  EXPECT_GT(second[0].generation, first[0].generation);
  EXPECT_EQ(q_->Renew(first[0].chunk_id, first[0].token, 10000).code(), Code::kConflict);
  EXPECT_EQ(q_->Ack(first[0].chunk_id, first[0].token).code(), Code::kConflict);
  EXPECT_TRUE(q_->Ack(second[0].chunk_id, second[0].token).ok());
}

// Verifies a lease past its deadline cannot be renewed, even before anyone reclaims it.
TEST_P(QueueContract, RenewAfterTheDeadlineIsRefused) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  auto l = LeaseN(1);
  ASSERT_EQ(l.size(), 1u);
  now_ += 10000;  // exactly at the deadline: still ours
  ASSERT_TRUE(q_->Renew(l[0].chunk_id, l[0].token, 10000).ok());
  now_ += 10001;
  EXPECT_EQ(q_->Renew(l[0].chunk_id, l[0].token, 10000).code(), Code::kConflict);
}

// Verifies an expired lease of a chunk out of attempts is dead-lettered by the lease call, not re-leased.
TEST_P(QueueContract, ExpiredLeaseOutOfAttemptsIsDeadLettered) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  for (int i = 0; i < 3; ++i) {  // max_attempts = 3
    ASSERT_EQ(LeaseN(1).size(), 1u) << i;
    now_ += 10001;
  }
  EXPECT_TRUE(LeaseN(1).empty());
  auto info = q_->Get("t:0");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, ChunkState::kDead);
  EXPECT_NE(info->last_error.find("lease expired"), std::string::npos) << info->last_error;
}

// Verifies fencing generations come from one queue-wide sequence: distinct, growing across
// tasks and providers, and a re-lease after a no-penalty release still gets a larger one.
TEST_P(QueueContract, LeaseGenerationsGrowQueueWide) {
  ASSERT_TRUE(q_->Enqueue(Items("a", 2, "p")).ok());
  ASSERT_TRUE(q_->Enqueue(Items("b", 1, "other")).ok());
  auto a = LeaseN(2);
  ASSERT_EQ(a.size(), 2u);
  auto b = q_->LeaseChunks("other", "w9", 1, 10000, false);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  std::set<int64_t> gens = {a[0].generation, a[1].generation, (*b)[0].generation};
  EXPECT_EQ(gens.size(), 3u);
  EXPECT_GT(*gens.begin(), 0);
  EXPECT_GT((*b)[0].generation, std::max(a[0].generation, a[1].generation));
  ASSERT_TRUE(q_->Release(a[0].chunk_id, a[0].token).ok());
  auto again = LeaseN(1, "w2");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, a[0].attempt);  // a release costs no attempt...
  EXPECT_GT(again[0].generation, *gens.rbegin());  // ...but the generation still moves on
  // A new queue (a wiped queue.db beside a kept graph) starts above every generation handed
  // out before, because the sequence follows the clock.
  now_ += 1;  // the clock moves on (a millisecond covers a thousand generations)
  {
    testing::TempDir other;
    QueueOptions o;
    o.now_ms = [this] { return now_.load(); };
    auto fresh = GetParam().open(other.path(), o);
    ASSERT_TRUE(fresh->Enqueue(Items("f", 1)).ok());
    auto f = fresh->LeaseChunks("p", "w4", 1, 10000, false);
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(f->size(), 1u);
    EXPECT_GT((*f)[0].generation, again[0].generation);
  }
  // A reopened queue continues the sequence.
  q_.reset();
  q_ = Open();
  ASSERT_TRUE(q_->Enqueue(Items("c", 1)).ok());
  auto c = LeaseN(1, "w3");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_GT(c[0].generation, again[0].generation);
}

// Verifies an idle waiter wakes when a lease reaches its deadline (the chunk is leasable again),
// instead of sleeping out its whole wait.
TEST_P(QueueContract, WaitForWorkWakesWhenALeaseExpires) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  auto l = q_->LeaseChunks("p", "w1", 1, 300, false);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  now_ += 301;  // the injected clock says the lease is over
  auto t0 = std::chrono::steady_clock::now();
  q_->WaitForWork("p", 10000, -1, false);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(5000));
  EXPECT_EQ(LeaseN(1, "w2").size(), 1u);
}

// Verifies nack retries after an exponential backoff with jitter, then dead-letters with the last error.
TEST_P(QueueContract, NackBacksOffThenDeadLetters) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  int64_t expected_base[] = {1000, 2000};
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto l = LeaseN(1);
    ASSERT_EQ(l.size(), 1u) << attempt;
    EXPECT_EQ(l[0].attempt, attempt);
    ASSERT_TRUE(q_->Nack(l[0].chunk_id, l[0].token, "boom " + std::to_string(attempt), true).ok());
    auto info = q_->Get(l[0].chunk_id);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->state, ChunkState::kReady);
    int64_t delay = info->available_at_ms - now_;
    EXPECT_GE(delay, expected_base[attempt - 1] * 3 / 4);
    EXPECT_LE(delay, expected_base[attempt - 1] * 5 / 4);
    EXPECT_TRUE(LeaseN(1).empty()) << "not before the backoff";
    now_ += delay;
  }
  auto l = LeaseN(1);
  ASSERT_EQ(l.size(), 1u);
  ASSERT_TRUE(q_->Nack(l[0].chunk_id, l[0].token, "final boom", true).ok());
  auto info = q_->Get(l[0].chunk_id);
  EXPECT_EQ(info->state, ChunkState::kDead);
  EXPECT_NE(info->last_error.find("final boom"), std::string::npos);
  EXPECT_EQ(q_->Counts("t")->dead, 1);
}

// Verifies Depths() counts a chunk waiting out a retry backoff as delayed, not ready (ready is
// what a lease could take now), and as ready again once the backoff has passed.
TEST_P(QueueContract, DepthsSplitReadyFromDelayed) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 3)).ok());
  auto l = LeaseN(2);
  ASSERT_EQ(l.size(), 2u);
  ASSERT_TRUE(q_->Nack(l[0].chunk_id, l[0].token, "boom", true).ok());
  ASSERT_TRUE(q_->Release(l[1].chunk_id, l[1].token).ok());  // no backoff: ready at once
  auto d = q_->Depths();
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ((*d)["p"].ready, 2);
  EXPECT_EQ((*d)["p"].delayed, 1);
  EXPECT_EQ((*d)["p"].leased, 0);
  EXPECT_EQ(LeaseN(5).size(), 2u) << "the delayed chunk is not leasable";
  auto info = q_->Get(l[0].chunk_id);
  ASSERT_TRUE(info.ok());
  now_ = info->available_at_ms;  // due now
  d = q_->Depths();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["p"].ready, 1);
  EXPECT_EQ((*d)["p"].delayed, 0);
  EXPECT_EQ((*d)["p"].leased, 2);
}

// Verifies a non-retryable nack dead-letters at once.
TEST_P(QueueContract, NonRetryableNackIsDeadAtOnce) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  auto l = LeaseN(1);
  ASSERT_TRUE(q_->Nack(l[0].chunk_id, l[0].token, "bad payload", false).ok());
  EXPECT_EQ(q_->Get(l[0].chunk_id)->state, ChunkState::kDead);
}

// Verifies release gives a chunk back at once without spending an attempt.
TEST_P(QueueContract, ReleaseIsFree) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  auto l = LeaseN(1);
  ASSERT_TRUE(q_->Release(l[0].chunk_id, l[0].token).ok());
  EXPECT_EQ(q_->Release(l[0].chunk_id, l[0].token).code(), Code::kConflict);
  auto again = LeaseN(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 1);
}

// Verifies a crashed owner's chunks come back at once, counted as crashes; a chunk that killed K workers is poison.
TEST_P(QueueContract, CrashedOwnerReleaseAndPoison) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 2)).ok());
  auto l = LeaseN(2, "dead-worker");
  ASSERT_EQ(l.size(), 2u);
  auto n = q_->ReleaseOwner("dead-worker", true, "killed by SIGKILL");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  // Suspect chunks (crashes > 0) are not handed out with others, only alone to an idle worker.
  EXPECT_TRUE(LeaseN(2, "w2", false).empty());
  auto alone = LeaseN(2, "w2", true);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0].crashes, 1);
  EXPECT_EQ(alone[0].attempt, 2);
  ASSERT_TRUE(q_->ReleaseOwner("w2", true, "killed again").ok());  // second crash: poison (K=2)
  auto info = q_->Get(alone[0].chunk_id);
  EXPECT_EQ(info->state, ChunkState::kDead);
  EXPECT_NE(info->last_error.find("poison"), std::string::npos) << info->last_error;
  // The other chunk is still ready and runs.
  auto other = LeaseN(2, "w3", true);
  ASSERT_EQ(other.size(), 1u);
  EXPECT_NE(other[0].chunk_id, alone[0].chunk_id);
  EXPECT_TRUE(q_->Ack(other[0].chunk_id, other[0].token).ok());
}

// Verifies a clean release by owner or prefix spends no attempt and leaves no crash mark.
TEST_P(QueueContract, ReleaseOwnerCleanAndByPrefix) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 3)).ok());
  ASSERT_EQ(LeaseN(1, "node-a/1/1").size(), 1u);
  ASSERT_EQ(LeaseN(1, "node-a/2/2").size(), 1u);
  ASSERT_EQ(LeaseN(1, "node-b/3/3").size(), 1u);
  auto n = q_->ReleaseOwnersWithPrefix("node-a/");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  auto back = LeaseN(5, "w");
  ASSERT_EQ(back.size(), 2u);
  for (const auto& l : back) {
    EXPECT_EQ(l.attempt, 1);
    EXPECT_EQ(l.crashes, 0);
  }
}

// Verifies cancel stops ready and leased chunks and retry revives dead and cancelled ones with fresh attempts.
TEST_P(QueueContract, CancelAndRetry) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 3)).ok());
  auto l = LeaseN(1);
  ASSERT_TRUE(q_->Ack(l[0].chunk_id, l[0].token).ok());
  auto held = LeaseN(1);
  auto n = q_->CancelTask("t");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(q_->Ack(held[0].chunk_id, held[0].token).code(), Code::kConflict);
  EXPECT_TRUE(LeaseN(5).empty());
  auto c = q_->Counts("t");
  EXPECT_EQ(c->cancelled, 2);
  EXPECT_EQ(c->done, 1);
  auto r = q_->RetryTask("t");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 2);
  auto again = LeaseN(5);
  EXPECT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].attempt, 1);
}

// Verifies Get and ListChunks report each chunk's idx, when its lease began and its last change:
// a leased then acked chunk has both set with leased_at <= updated_at (the ack's time), a chunk
// dead-lettered by a nack ends at the nack's time, and a never-leased chunk has leased_at 0.
TEST_P(QueueContract, ChunkInfoHasLeaseAndUpdateTimes) {
  const int64_t enqueued = now_;
  ASSERT_TRUE(q_->Enqueue(Items("t", 3)).ok());
  now_ += 500;
  auto l = LeaseN(1);
  ASSERT_EQ(l.size(), 1u);
  ASSERT_EQ(l[0].chunk_id, "t:0");
  const int64_t leased = now_;
  now_ += 700;
  ASSERT_TRUE(q_->Ack(l[0].chunk_id, l[0].token).ok());
  const int64_t acked = now_;
  now_ += 100;
  auto d = LeaseN(1);
  ASSERT_EQ(d.size(), 1u);
  ASSERT_EQ(d[0].chunk_id, "t:1");
  now_ += 300;
  ASSERT_TRUE(q_->Nack(d[0].chunk_id, d[0].token, "bad output", false).ok());

  auto done = q_->Get("t:0");
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(done->idx, 0);
  EXPECT_EQ(done->state, ChunkState::kDone);
  EXPECT_EQ(done->leased_at_ms, leased);
  EXPECT_EQ(done->updated_at_ms, acked);
  EXPECT_LE(done->leased_at_ms, done->updated_at_ms);
  auto fresh = q_->Get("t:2");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->idx, 2);
  EXPECT_EQ(fresh->leased_at_ms, 0) << "never leased";
  EXPECT_EQ(fresh->updated_at_ms, enqueued);

  auto list = q_->ListChunks("t");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*list)[i].idx, i) << "in idx order";
  EXPECT_EQ((*list)[0].leased_at_ms, leased);
  EXPECT_EQ((*list)[0].updated_at_ms, acked);
  EXPECT_EQ((*list)[1].state, ChunkState::kDead);
  EXPECT_EQ((*list)[1].leased_at_ms, acked + 100);
  EXPECT_EQ((*list)[1].updated_at_ms, acked + 400);
  EXPECT_EQ((*list)[2].leased_at_ms, 0);
}

// Verifies ListFirstChunks gives the first chunks by idx (enqueued out of order), none
// for 0 and all for a negative maximum or one above the count.
TEST_P(QueueContract, ListChunksStopsAtTheMaximum) {
  auto items = Items("t", 5);
  std::reverse(items.begin(), items.end());
  ASSERT_TRUE(q_->Enqueue(items).ok());
  auto idx = [&](int64_t max) {
    std::vector<int> out;
    auto list = q_->ListFirstChunks("t", max);
    EXPECT_TRUE(list.ok()) << list.status().message();
    if (list.ok()) {
      for (const auto& c : *list) out.push_back(c.idx);
    }
    return out;
  };
  EXPECT_EQ(idx(3), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(idx(0), std::vector<int>{});
  EXPECT_EQ(idx(-1), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(idx(9), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(q_->ListChunks("t")->size(), 5u);
}

// Verifies (at compile time) that an implementation overriding the capped read still offers the
// one-argument ListChunks: an override named like a base-class overload would hide it.
struct OverridesTheCappedRead : Queue {
  Result<std::vector<ChunkInfo>> ListFirstChunks(const std::string& task_id, int64_t max_chunks) override;
};
template <class Q>
concept ListsAllChunks = requires(Q& q) { q.ListChunks(std::string("t")); };
static_assert(ListsAllChunks<OverridesTheCappedRead>, "ListChunks(task) must stay callable on a Queue implementation");

// Verifies a second connection (another process in production) sees the same queue and never double-leases.
TEST_P(QueueContract, ConcurrentLeasersNeverShareAChunk) {
  std::vector<ChunkItem> items = Items("t", 200);
  ASSERT_TRUE(q_->Enqueue(items).ok());
  std::vector<std::unique_ptr<Queue>> conns;
  for (int i = 0; i < 4; ++i) conns.push_back(Open());
  std::mutex mu;
  std::multiset<std::string> seen;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      while (true) {
        auto r = conns[i]->LeaseChunks("p", "w" + std::to_string(i), 3, 10000, false);
        ASSERT_TRUE(r.ok()) << r.status().message();
        if (r->empty()) return;
        for (const auto& l : *r) {
          ASSERT_TRUE(conns[i]->Ack(l.chunk_id, l.token).ok());
          std::lock_guard<std::mutex> g(mu);
          seen.insert(l.chunk_id);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen.size(), 200u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 200u);
  EXPECT_EQ(q_->Counts("t")->done, 200);
}

// Verifies threads sharing one connection (a worker process) and another connection (another process)
// never lose or double an ack: every chunk ends done after exactly one attempt.
TEST_P(QueueContract, SharedConnectionThreadsLoseNothing) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 300)).ok());
  auto other = Open();
  std::atomic<int> acked{0};
  auto work = [&](Queue& q, const std::string& owner) {
    while (true) {
      auto r = q.LeaseChunks("p", owner, 2, 60000, false);
      ASSERT_TRUE(r.ok()) << r.status().message();
      if (r->empty()) return;
      for (const auto& l : *r) {
        ASSERT_TRUE(q.Renew(l.chunk_id, l.token, 60000).ok());
        ASSERT_TRUE(q.Counts("t").ok());
        Status s = q.Ack(l.chunk_id, l.token);
        ASSERT_TRUE(s.ok()) << s.message();
        ++acked;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { work(*q_, "shared" + std::to_string(i)); });
  threads.emplace_back([&] { work(*other, "other"); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(acked.load(), 300);
  auto chunks = q_->ListChunks("t");
  ASSERT_TRUE(chunks.ok());
  for (const auto& c : *chunks) {
    EXPECT_EQ(c.state, ChunkState::kDone) << c.id;
    EXPECT_EQ(c.attempts, 1) << c.id;
  }
}

// Verifies WaitForWork returns promptly when work arrives from another connection, and times out otherwise.
TEST_P(QueueContract, WaitForWorkWakesOnEnqueue) {
  auto other = Open();
  auto t0 = std::chrono::steady_clock::now();
  q_->WaitForWork("p", 200, -1, true);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(other->Enqueue(Items("t", 1)).ok());
  });
  t0 = std::chrono::steady_clock::now();
  q_->WaitForWork("p", 5000, -1, true);
  auto waited = std::chrono::steady_clock::now() - t0;
  producer.join();
  EXPECT_LT(waited, std::chrono::milliseconds(3000));
  EXPECT_EQ(LeaseN(1).size(), 1u);
}

// Verifies a busy worker is not woken (no spin) by a suspect chunk it may not take, while an idle one is.
TEST_P(QueueContract, WaitForWorkSkipsSuspectChunksForBusyWorkers) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 1)).ok());
  ASSERT_EQ(LeaseN(1, "crashed").size(), 1u);
  ASSERT_TRUE(q_->ReleaseOwner("crashed", true, "boom").ok());
  auto t0 = std::chrono::steady_clock::now();
  q_->WaitForWork("p", 300, -1, false);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));
  t0 = std::chrono::steady_clock::now();
  q_->WaitForWork("p", 3000, -1, true);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
}

// Counts from the chunks themselves, the truth Counts() must agree with.
TaskCounts Tally(Queue& q, const std::string& task) {
  TaskCounts c;
  auto chunks = q.ListChunks(task);
  EXPECT_TRUE(chunks.ok());
  for (const auto& ch : chunks.ok() ? *chunks : std::vector<ChunkInfo>{}) {
    ++c.total;
    switch (ch.state) {
      case ChunkState::kReady: ++c.ready; break;
      case ChunkState::kLeased: ++c.leased; break;
      case ChunkState::kDone: ++c.done; break;
      case ChunkState::kDead: ++c.dead; break;
      case ChunkState::kCancelled: ++c.cancelled; break;
    }
  }
  return c;
}

void ExpectCounts(Queue& q, const std::string& task, const std::string& step) {
  TaskCounts want = Tally(q, task);
  auto got = q.Counts(task);
  ASSERT_TRUE(got.ok()) << step;
  EXPECT_EQ(got->total, want.total) << step;
  EXPECT_EQ(got->ready, want.ready) << step;
  EXPECT_EQ(got->leased, want.leased) << step;
  EXPECT_EQ(got->done, want.done) << step;
  EXPECT_EQ(got->dead, want.dead) << step;
  EXPECT_EQ(got->cancelled, want.cancelled) << step;
}

// Verifies Counts() agrees with the chunks' states after every kind of transition (the SQLite
// queue keeps the counts beside the chunks instead of counting them on every call).
TEST_P(QueueContract, CountsFollowEveryTransition) {
  ASSERT_TRUE(q_->Enqueue(Items("t", 12)).ok());
  ASSERT_TRUE(q_->Enqueue(Items("t", 12)).ok());  // idempotent: no double count
  ASSERT_TRUE(q_->Enqueue(Items("u", 3)).ok());
  ExpectCounts(*q_, "t", "enqueue");
  auto a = LeaseN(6, "w1");
  ASSERT_EQ(a.size(), 6u);
  ExpectCounts(*q_, "t", "lease");
  ASSERT_TRUE(q_->Ack(a[0].chunk_id, a[0].token).ok());
  ASSERT_TRUE(q_->Ack(a[0].chunk_id, a[0].token).code() == Code::kConflict);  // a stale ack changes nothing
  ASSERT_TRUE(q_->Nack(a[1].chunk_id, a[1].token, "boom", true).ok());
  ASSERT_TRUE(q_->Nack(a[2].chunk_id, a[2].token, "never", false).ok());
  ASSERT_TRUE(q_->Release(a[3].chunk_id, a[3].token).ok());
  ExpectCounts(*q_, "t", "ack, nack, dead, release");
  ASSERT_TRUE(q_->ReleaseOwner("w1", true, "killed").ok());
  ExpectCounts(*q_, "t", "crashed owner");
  auto b = LeaseN(3, "w2");
  now_ += 60000;
  ASSERT_TRUE(q_->ReclaimExpired().ok());
  ExpectCounts(*q_, "t", "reclaim");
  ASSERT_TRUE(q_->CancelTask("t").ok());
  ExpectCounts(*q_, "t", "cancel");
  ASSERT_TRUE(q_->RetryTask("t").ok());
  ExpectCounts(*q_, "t", "retry");
  ExpectCounts(*q_, "u", "other task untouched");
  EXPECT_EQ(q_->Counts("none")->total, 0);
}

// Verifies a queue made before the counts were kept (its chunks there, no count table) gets
// them filled from its chunks when opened, and keeps them from then on.
TEST(SqliteQueue, CountsOfAnOlderQueueAreFilledOnOpen) {
  testing::TempDir dir;
  std::string path = dir.path() + "/queue.db";
  {
    auto q = OpenSqliteQueue(path, QueueOptions{});
    ASSERT_TRUE(q.ok());
    std::vector<ChunkItem> items;
    for (int i = 0; i < 5; ++i) items.push_back({"t:" + std::to_string(i), "t", "p", i, "x"});
    ASSERT_TRUE((*q)->Enqueue(items).ok());
    auto l = (*q)->LeaseChunks("p", "w", 2, 60000, false);
    ASSERT_TRUE(l.ok() && l->size() == 2u);
    ASSERT_TRUE((*q)->Ack((*l)[0].chunk_id, (*l)[0].token).ok());
  }
  {
    auto db = sqlite::Db::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("DROP TRIGGER chunks_counts_insert; DROP TRIGGER chunks_counts_state; "
                            "DROP TRIGGER chunks_counts_delete; DROP TABLE task_counts;").ok());
  }
  auto q = OpenSqliteQueue(path, QueueOptions{});
  ASSERT_TRUE(q.ok()) << q.status().message();
  ExpectCounts(**q, "t", "after the upgrade");
  EXPECT_EQ((*q)->Counts("t")->done, 1);
  EXPECT_EQ((*q)->Counts("t")->leased, 1);
  EXPECT_EQ((*q)->Counts("t")->ready, 3);
  auto l = (*q)->LeaseChunks("p", "w", 1, 60000, false);
  ASSERT_TRUE(l.ok() && l->size() == 1u);
  ExpectCounts(**q, "t", "a lease after the upgrade");
}

// Verifies a queue made before lease times were kept (no leased_at column) gains the column when
// opened: its chunks read leased_at 0 (never leased, as far as it knows) and the next lease records it.
TEST(SqliteQueue, AnOlderQueueGainsLeaseTimesOnOpen) {
  testing::TempDir dir;
  std::string path = dir.path() + "/queue.db";
  int64_t now = 5'000'000;
  QueueOptions o;
  o.now_ms = [&now] { return now; };
  {
    auto q = OpenSqliteQueue(path, o);
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE((*q)->Enqueue({{"t:0", "t", "p", 0, "x"}, {"t:1", "t", "p", 1, "x"}}).ok());
    ASSERT_EQ((*q)->LeaseChunks("p", "w", 1, 60000, false)->size(), 1u);
  }
  {
    auto db = sqlite::Db::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("ALTER TABLE chunks DROP COLUMN leased_at").ok());
  }
  auto q = OpenSqliteQueue(path, o);
  ASSERT_TRUE(q.ok()) << q.status().message();
  auto held = (*q)->Get("t:0");
  ASSERT_TRUE(held.ok()) << held.status().message();
  EXPECT_EQ(held->state, ChunkState::kLeased);
  EXPECT_EQ(held->leased_at_ms, 0);
  EXPECT_EQ(held->updated_at_ms, 5'000'000);
  now += 10;
  ASSERT_EQ((*q)->LeaseChunks("p", "w", 1, 60000, false)->size(), 1u);
  EXPECT_EQ((*q)->Get("t:1")->leased_at_ms, 5'000'010);
}

// Verifies opening a queue that is already in the current shape needs no write lock: it opens while
// another connection holds a write transaction (before, the open waited the busy timeout and failed).
TEST(SqliteQueue, ReopenTakesNoWriteLock) {
  testing::TempDir dir;
  std::string path = dir.path() + "/queue.db";
  ASSERT_TRUE(OpenSqliteQueue(path, QueueOptions{}).ok());
  auto writer = sqlite::Db::Open(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Exec("BEGIN IMMEDIATE").ok());
  auto q = OpenSqliteQueue(path, QueueOptions{});
  EXPECT_TRUE(q.ok()) << q.status().message();
  ASSERT_TRUE((*writer)->Exec("COMMIT").ok());
}

// Verifies the backoff formula grows exponentially, respects the cap and stays within the jitter band.
TEST(QueueBackoff, ExponentialCappedJittered) {
  QueueOptions o;
  o.backoff_base_ms = 100;
  o.backoff_max_ms = 1000;
  o.jitter = 0.2;
  EXPECT_EQ(BackoffMs(o, 1, 0.5), 100);
  EXPECT_EQ(BackoffMs(o, 2, 0.5), 200);
  EXPECT_EQ(BackoffMs(o, 3, 0.5), 400);
  EXPECT_EQ(BackoffMs(o, 10, 0.5), 1000);
  EXPECT_EQ(BackoffMs(o, 1, 0.0), 80);
  EXPECT_EQ(BackoffMs(o, 1, 0.999999), 119);
}

INSTANTIATE_TEST_SUITE_P(Backends, QueueContract,
                         ::testing::Values(Backend{"sqlite",
                                                   [](const std::string& dir, QueueOptions o) {
                                                     auto q = OpenSqliteQueue(dir + "/queue.db", std::move(o));
                                                     EXPECT_TRUE(q.ok()) << q.status().message();
                                                     return std::move(q).value();
                                                   }},
                                           // Each call opens a namespace of its own on the shared
                                           // server (a fresh queue), or, for the same directory,
                                           // the same namespace again (a reopened queue).
                                           Backend{"redis",
                                                   [](const std::string& dir, QueueOptions o) {
                                                     static std::mutex mu;
                                                     static std::map<std::string, std::string> names;
                                                     std::string ns;
                                                     {
                                                       std::lock_guard<std::mutex> g(mu);
                                                       auto& n = names[dir];
                                                       if (n.empty()) n = testing::UniqueName("q");
                                                       ns = n;
                                                     }
                                                     auto q = OpenRedisQueue(testing::RedisAt(testing::SharedRedis(), ns),
                                                                             std::move(o));
                                                     EXPECT_TRUE(q.ok()) << q.status().message();
                                                     return std::move(q).value();
                                                   }}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace kg
