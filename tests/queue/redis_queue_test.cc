// What the Redis queue must do beyond the contract suite: survive a server restart (fail fast
// with kUnavailable, reconnect, keep its data, wake a waiter blocked across the outage), wait
// without polling, cope with a refused SUBSCRIBE, reload its scripts after a flush, keep the
// password out of messages, and let done work expire (what it costs in memory until then).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/util.h"
#include "queue/queue.h"
#include "redis/client.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

RedisEndpoint At(int port, const std::string& ns) {
  testing::ServerProcess server;
  server.port = port;
  RedisEndpoint at = testing::RedisAt(server, ns);
  at.connect_timeout_ms = 500;
  at.socket_timeout_ms = 1000;
  return at;
}

std::unique_ptr<Queue> MustOpen(const RedisEndpoint& at) {
  auto q = OpenRedisQueue(at, QueueOptions{});
  EXPECT_TRUE(q.ok()) << q.status().message();
  return q.ok() ? std::move(q).value() : nullptr;
}

std::vector<ChunkItem> Items(const std::string& task, int n, const std::string& provider) {
  std::vector<ChunkItem> v;
  for (int i = 0; i < n; ++i) v.push_back({task + ":" + std::to_string(i), task, provider, i, "x"});
  return v;
}

// An integer after `field` in INFO `section` (e.g. "total_commands_processed:"), or -1.
int64_t InfoField(redis::Client& c, const std::string& section, const std::string& field) {
  auto v = c.Run(redis::Call::Cmd({"INFO", section}));
  if (!v.ok()) return -1;
  auto at = v->s.find(field);
  if (at == std::string::npos) return 0;
  return std::stoll(v->s.substr(at + field.size()));
}

// Stops what a test started even when an assertion ends it early: the worker thread (woken
// through its wake_fd) and the servers, by pid.
struct Cleanup {
  std::atomic<bool> stop{false};
  UniqueFd wake{eventfd(0, EFD_CLOEXEC)};
  std::thread worker;
  std::vector<testing::ServerProcess> servers;
  ~Cleanup() {
    stop = true;
    uint64_t one = 1;
    if (::write(wake.get(), &one, sizeof one) < 0) ADD_FAILURE() << "cannot wake the worker";
    if (worker.joinable()) worker.join();
    for (const auto& s : servers) testing::StopServer(s);
  }
};

int64_t Subscribers(redis::Client& c, const std::string& channel) {
  auto v = c.Run(redis::Call::Cmd({"PUBSUB", "NUMSUB", channel}));
  return v.ok() && v->a.size() == 2 ? v->a[1].Int() : -1;
}

// The keys matching `pattern` (SCAN, which skips keys whose TTL has passed), or {"?"} on error.
std::vector<std::string> Keys(redis::Client& c, const std::string& pattern) {
  std::vector<std::string> out;
  std::string cursor = "0";
  do {
    auto v = c.Run(redis::Call::Cmd({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}));
    if (!v.ok() || v->a.size() != 2) return {"?"};
    cursor = v->a[0].Str();
    for (const auto& k : v->a[1].a) out.push_back(k.Str());
  } while (cursor != "0");
  return out;
}

// A key's PTTL: -1 without a TTL, -2 when it does not exist.
int64_t Pttl(redis::Client& c, const std::string& key) {
  auto v = c.Run(redis::Call::Cmd({"PTTL", key}));
  return v.ok() ? v->Int(-3) : -3;
}

// The bytes of every key matching `pattern`, by MEMORY USAGE with every element counted.
int64_t MemoryOf(redis::Client& c, const std::string& pattern) {
  int64_t total = 0;
  for (const auto& k : Keys(c, pattern)) {
    auto v = c.Run(redis::Call::Cmd({"MEMORY", "USAGE", k, "SAMPLES", "0"}));
    if (!v.ok()) return -1;
    total += v->Int(0);
  }
  return total;
}

// Verifies a Redis restart: a call during the outage fails with kUnavailable within the socket
// timeout, the next calls reconnect, nothing enqueued before is lost, and a worker that was
// blocked in WaitForWork when the server went away is woken by an Enqueue after it came back
// (the Celery worker that "never consumes again after a reconnect").
TEST(RedisQueue, SurvivesARestartAndWakesTheBlockedWorker) {
  setenv("KG_TEST_REDIS_AOF", "1", 1);  // appendfsync always: the restart keeps the data
  testing::TempDir dir;
  // Declared before the cleanup, so that they outlive the worker thread it joins.
  std::unique_ptr<Queue> worker_q, producer_q;
  std::atomic<int> leased{0}, errors{0}, waits{0};
  Cleanup cleanup;
  auto server = testing::StartServer("redis", dir.path() + "/redis");
  unsetenv("KG_TEST_REDIS_AOF");
  ASSERT_GT(server.port, 0);
  cleanup.servers.push_back(server);
  RedisEndpoint at = At(server.port, "kg");
  worker_q = MustOpen(at);
  producer_q = MustOpen(at);
  ASSERT_TRUE(worker_q && producer_q);
  redis::Client admin(at);
  ASSERT_TRUE(producer_q->Enqueue(Items("kept", 3, "other")).ok());

  // A worker as the real one runs: wait, lease, back off a little on an error, repeat.
  cleanup.worker = std::thread([&] {
    while (!cleanup.stop) {
      worker_q->WaitForWork("p", 60000, cleanup.wake.get(), false);
      ++waits;
      auto r = worker_q->LeaseChunks("p", "w1", 4, 60000, false);
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().message();
        ++errors;
        std::this_thread::sleep_for(milliseconds(100));
        continue;
      }
      for (const auto& l : *r) {
        if (worker_q->Ack(l.chunk_id, l.token).ok()) ++leased;
      }
    }
  });
  std::string wake = "kg:{p}:wake";
  ASSERT_TRUE(testing::WaitFor([&] { return Subscribers(admin, wake) == 1; }, milliseconds(5000)));

  testing::StopServer(server);
  cleanup.servers.clear();
  auto t0 = Clock::now();
  auto depths = producer_q->Depths();
  EXPECT_LT(Clock::now() - t0, milliseconds(3000));
  ASSERT_FALSE(depths.ok());
  EXPECT_EQ(depths.status().code(), Code::kUnavailable) << depths.status().message();
  EXPECT_NE(depths.status().message().find("redis 127.0.0.1:" + std::to_string(server.port)), std::string::npos)
      << depths.status().message();
  // The waiter noticed (its subscriber saw the connection close) and its lease call failed.
  ASSERT_TRUE(testing::WaitFor([&] { return errors.load() > 0; }, milliseconds(5000)));

  setenv("KG_TEST_REDIS_AOF", "1", 1);
  auto again = testing::StartServer("redis", dir.path() + "/redis", server.port);
  unsetenv("KG_TEST_REDIS_AOF");
  ASSERT_EQ(again.port, server.port);
  cleanup.servers.push_back(again);
  // Calls reconnect by themselves (after the reconnect backoff, at most ~2.5 s).
  ASSERT_TRUE(testing::WaitFor([&] { return producer_q->Depths().ok(); }, milliseconds(10000)));
  auto kept = producer_q->Counts("kept");
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_EQ(kept->ready, 3) << "chunks enqueued before the restart survive it";

  // The worker resubscribes on its own and blocks again (60 s wait) ...
  ASSERT_TRUE(testing::WaitFor([&] { return Subscribers(admin, wake) == 1; }, milliseconds(10000)))
      << "the worker never subscribed again after the restart";
  int waits_before = waits.load();
  // ... and an Enqueue from another connection wakes it at once.
  t0 = Clock::now();
  ASSERT_TRUE(producer_q->Enqueue(Items("after", 2, "p")).ok());
  EXPECT_TRUE(testing::WaitFor([&] { return leased.load() == 2; }, milliseconds(3000)))
      << "a worker blocked across the outage did not consume after the reconnect";
  EXPECT_LT(Clock::now() - t0, milliseconds(3000));
  EXPECT_LE(waits.load() - waits_before, 3) << "the worker spun instead of blocking";
}

// Verifies an idle WaitForWork blocks instead of polling: a one-second wait costs the server a
// bounded number of commands (the question for the next due chunk), not one per tick.
TEST(RedisQueue, IdleWaitDoesNotPoll) {
  testing::TempDir dir;
  auto server = testing::StartServer("redis", dir.path() + "/redis");
  ASSERT_GT(server.port, 0);
  RedisEndpoint at = At(server.port, "kg");
  auto q = MustOpen(at);
  ASSERT_TRUE(q);
  redis::Client admin(at);
  // A chunk leased for a long time: the waiter has a deadline to watch but nothing to take.
  ASSERT_TRUE(q->Enqueue(Items("t", 1, "p")).ok());
  ASSERT_TRUE(q->LeaseChunks("p", "w", 1, 600000, false).ok());
  q->WaitForWork("p", 10, -1, false);  // subscribes and loads its script once
  int64_t before = InfoField(admin, "stats", "total_commands_processed:");
  int64_t scripts_before = InfoField(admin, "commandstats", "cmdstat_evalsha:calls=");
  ASSERT_GE(before, 0);
  auto t0 = Clock::now();
  q->WaitForWork("p", 1000, -1, false);
  auto waited = Clock::now() - t0;
  int64_t scripts = InfoField(admin, "commandstats", "cmdstat_evalsha:calls=") - scripts_before;
  int64_t after = InfoField(admin, "stats", "total_commands_processed:");
  EXPECT_GE(waited, milliseconds(900)) << "returned early with nothing to do";
  // The wait asks once for the next due time (one script; its TIME and 3 ZRANGEs count as
  // commands too); the two INFOs of this test count themselves.
  EXPECT_EQ(scripts, 1) << "an idle wait of 1 s ran " << scripts << " scripts";
  EXPECT_LE(after - before, 8) << "an idle wait of 1 s sent " << (after - before) << " commands";
  testing::StopServer(server);
}

// Verifies a server that stops answering (SIGSTOP: the socket stays open, nothing comes back)
// fails a call with kUnavailable within the socket timeout, also on a connection made again
// after a drop (hiredis's reconnect forgets the timeout; ours sets it on every connect).
TEST(RedisQueue, HungServerFailsWithinTheSocketTimeoutAfterAReconnect) {
  testing::TempDir dir;
  auto server = testing::StartServer("redis", dir.path() + "/redis");
  ASSERT_GT(server.port, 0);
  RedisEndpoint at = At(server.port, "kg");  // socket timeout 1 s
  auto q = MustOpen(at);
  ASSERT_TRUE(q);
  redis::Client admin(at);
  // Drop every client connection but the admin's: the queue's next call connects anew.
  ASSERT_TRUE(admin.Run(redis::Call::Cmd({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"})).ok());
  EXPECT_FALSE(q->Depths().ok());  // the dropped connection is noticed...
  ASSERT_TRUE(testing::WaitFor([&] { return q->Depths().ok(); }, milliseconds(5000)));  // ...and replaced
  ASSERT_EQ(::kill(static_cast<pid_t>(server.pid), SIGSTOP), 0);
  auto t0 = Clock::now();
  auto r = q->Enqueue(Items("t", 1, "p"));
  auto took = Clock::now() - t0;
  ASSERT_EQ(::kill(static_cast<pid_t>(server.pid), SIGCONT), 0);
  EXPECT_EQ(r.code(), Code::kUnavailable) << r.message();
  EXPECT_LT(took, milliseconds(2500)) << "a call to a hung server outlived the 1 s socket timeout";
  testing::StopServer(server);
}

// Verifies a flushed script cache (a restarted or failed-over server) is repaired by reloading
// the script and retrying once, invisibly to the caller.
TEST(RedisQueue, ReloadsScriptsAfterAFlush) {
  RedisEndpoint at = At(testing::SharedRedis().port, testing::UniqueName("q"));
  auto q = MustOpen(at);
  ASSERT_TRUE(q);
  ASSERT_TRUE(q->Enqueue(Items("t", 2, "p")).ok());
  redis::Client admin(at);
  ASSERT_TRUE(admin.Run(redis::Call::Cmd({"SCRIPT", "FLUSH"})).ok());
  auto l = q->LeaseChunks("p", "w", 2, 60000, false);
  ASSERT_TRUE(l.ok()) << l.status().message();
  EXPECT_EQ(l->size(), 2u);
}

// Verifies a chunk written before the queue kept lease and update times (its hash lacks both
// fields) reads them as 0, and its next lease records them.
TEST(RedisQueue, ChunkWithoutLeaseTimesReadsZero) {
  RedisEndpoint at = At(testing::SharedRedis().port, testing::UniqueName("q"));
  auto q = MustOpen(at);
  ASSERT_TRUE(q);
  ASSERT_TRUE(q->Enqueue(Items("old", 1, "p")).ok());
  redis::Client admin(at);
  ASSERT_TRUE(admin.Run(redis::Call::Cmd({"HDEL", at.ns + ":{p}:c:old:0", "leased_at", "updated_at"})).ok());
  auto c = q->Get("old:0");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->leased_at_ms, 0);
  EXPECT_EQ(c->updated_at_ms, 0);
  auto list = q->ListChunks("old");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].leased_at_ms, 0);
  auto l = q->LeaseChunks("p", "w", 1, 60000, false);
  ASSERT_TRUE(l.ok() && l->size() == 1u);
  c = q->Get("old:0");
  ASSERT_TRUE(c.ok());
  EXPECT_GT(c->leased_at_ms, 0);
  EXPECT_EQ(c->updated_at_ms, c->leased_at_ms);
}

// Verifies a refused password is reported as a configuration error (kInvalidArgument: opening does
// not wait for it to pass, as for an outage) with the server's words, the address and the variable
// to check, never the password itself.
TEST(RedisQueue, PasswordNeverInMessages) {
  testing::TempDir dir;
  auto server = testing::StartServer("redis", dir.path() + "/redis");
  ASSERT_GT(server.port, 0);
  redis::Client admin(At(server.port, "kg"));
  ASSERT_TRUE(admin.Run(redis::Call::Cmd({"CONFIG", "SET", "requirepass", "right-secret-1"})).ok());
  RedisEndpoint at = At(server.port, "kg");
  at.password = "wrong-secret-2";
  auto bad = OpenRedisQueue(at, QueueOptions{});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("check REDIS_PASSWORD"), std::string::npos) << bad.status().message();
  EXPECT_EQ(bad.status().message().find("wrong-secret-2"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("127.0.0.1:" + std::to_string(server.port)), std::string::npos);
  at.password = "right-secret-1";
  auto good = OpenRedisQueue(at, QueueOptions{});
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_TRUE((*good)->Enqueue(Items("t", 1, "p")).ok());
  testing::StopServer(server);
}

// A queue of its own namespace on the shared server whose done work expires after 1 s.
struct RetentionQueue {
  RedisEndpoint at = At(testing::SharedRedis().port, testing::UniqueName("q"));
  std::unique_ptr<Queue> q;
  std::string error;
  RetentionQueue() {
    QueueOptions o;
    o.done_retention_ms = 1000;
    auto opened = OpenRedisQueue(at, o);
    if (opened.ok()) q = std::move(opened).value();
    else error = opened.status().message();
  }
};

// Verifies done work leaves Redis after the retention: once every chunk of a task is acked,
// each of its keys expires (none left under the namespace), after which the queue no longer
// knows the task (Counts total 0, Get kNotFound, ListChunks empty, CancelTask and RetryTask 0)
// while per-provider depths stay right (done counts every ack). A dead and a cancelled chunk,
// and their tasks' keys, get no TTL; an expired done chunk of a kept task is listed as done and
// not brought back by a repeated Enqueue; a retried dead chunk, once acked, expires with its task.
TEST(RedisQueue, DoneWorkExpiresAfterTheRetention) {
  RetentionQueue rq;
  ASSERT_TRUE(rq.q) << rq.error;
  auto& q = rq.q;
  const RedisEndpoint& at = rq.at;
  redis::Client admin(at);
  const std::string base = at.ns + ":{p}";
  ASSERT_TRUE(q->Enqueue(Items("tfin", 3, "p")).ok());
  ASSERT_TRUE(q->Enqueue(Items("tdead", 2, "p")).ok());
  ASSERT_TRUE(q->Enqueue(Items("tcancel", 2, "p")).ok());
  ASSERT_TRUE(q->Enqueue(Items("tother", 1, "other")).ok());
  auto cancelled = q->CancelTask("tcancel");
  ASSERT_TRUE(cancelled.ok() && *cancelled == 2);
  auto leases = q->LeaseChunks("p", "w", 10, 60000, false);
  ASSERT_TRUE(leases.ok()) << leases.status().message();
  ASSERT_EQ(leases->size(), 5u);
  for (const auto& l : *leases) {
    if (l.chunk_id == "tdead:0") {
      ASSERT_TRUE(q->Nack(l.chunk_id, l.token, "cannot be read", false).ok());
    } else {
      ASSERT_TRUE(q->Ack(l.chunk_id, l.token).ok());
    }
  }
  // Right after the acks everything is still there.
  auto fin = q->Counts("tfin");
  ASSERT_TRUE(fin.ok());
  EXPECT_EQ(fin->total, 3);
  EXPECT_EQ(fin->done, 3);
  auto got = q->Get("tfin:0");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->state, ChunkState::kDone);
  EXPECT_EQ(Keys(admin, at.ns + ":*:tfin*").size(), 5u);  // 3 chunks, :tc, :tn

  ASSERT_TRUE(testing::WaitFor([&] { return Keys(admin, at.ns + ":*:tfin*").empty(); }, milliseconds(10000)))
      << "the keys of a finished task outlived the 1 s retention";
  fin = q->Counts("tfin");
  ASSERT_TRUE(fin.ok());
  EXPECT_EQ(fin->total, 0);
  EXPECT_EQ(q->Get("tfin:0").status().code(), Code::kNotFound);
  auto list = q->ListChunks("tfin");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  auto n = q->CancelTask("tfin");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  n = q->RetryTask("tfin");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  auto depths = q->Depths();
  ASSERT_TRUE(depths.ok());
  EXPECT_EQ((*depths)["p"].ready, 0);
  EXPECT_EQ((*depths)["p"].leased, 0);
  EXPECT_EQ((*depths)["p"].dead, 1);
  EXPECT_EQ((*depths)["p"].done, 4) << "done counts every ack, expired or not";
  EXPECT_EQ((*depths)["other"].ready, 1);
  EXPECT_EQ((*depths)["other"].done, 0);

  // The dead letter and the cancelled chunks stay, with their tasks' keys; the done chunk of the
  // task holding the dead letter expired by itself.
  ASSERT_TRUE(testing::WaitFor([&] { return Pttl(admin, base + ":c:tdead:1") == -2; }, milliseconds(10000)));
  for (const std::string key : {":c:tdead:0", ":tc:tdead", ":tn:tdead", ":c:tcancel:0", ":c:tcancel:1",
                                ":tc:tcancel", ":tn:tcancel"}) {
    EXPECT_EQ(Pttl(admin, base + key), -1) << key << " must stay, without a TTL";
  }
  auto dead = q->Counts("tdead");
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(dead->total, 2);
  EXPECT_EQ(dead->done, 1);
  EXPECT_EQ(dead->dead, 1);
  list = q->ListChunks("tdead");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].state, ChunkState::kDead);
  EXPECT_EQ((*list)[0].last_error, "cannot be read");
  EXPECT_EQ((*list)[1].id, "tdead:1");
  EXPECT_EQ((*list)[1].state, ChunkState::kDone);
  EXPECT_EQ(q->Get("tdead:1").status().code(), Code::kNotFound);
  auto kept = q->Counts("tcancel");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->cancelled, 2);
  // Enqueue stays idempotent while the task lives: the expired done chunk is not run again.
  ASSERT_TRUE(q->Enqueue(Items("tdead", 2, "p")).ok());
  dead = q->Counts("tdead");
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(dead->total, 2);
  EXPECT_EQ(dead->ready, 0) << "an expired done chunk came back";

  // Retried and acked, the dead letter's task is finished and goes too.
  n = q->RetryTask("tdead");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  leases = q->LeaseChunks("p", "w", 10, 60000, false);
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  ASSERT_TRUE(q->Ack((*leases)[0].chunk_id, (*leases)[0].token).ok());
  ASSERT_TRUE(testing::WaitFor([&] { return Keys(admin, at.ns + ":*:tdead*").empty(); }, milliseconds(10000)));
  depths = q->Depths();
  ASSERT_TRUE(depths.ok());
  EXPECT_EQ((*depths)["p"].dead, 0);
  EXPECT_EQ((*depths)["p"].done, 5);

  // A task the queue forgot takes new chunks like any other.
  ASSERT_TRUE(q->Enqueue({{"tfin:3", "tfin", "p", 3, "x"}}).ok());
  fin = q->Counts("tfin");
  ASSERT_TRUE(fin.ok());
  EXPECT_EQ(fin->total, 1);
  EXPECT_EQ(fin->ready, 1);
}

// Verifies a chunk enqueued into a finished task (its keys already counting down) makes the
// task live again: its index and counts lose their TTL and outlive the retention.
TEST(RedisQueue, ANewChunkKeepsAFinishedTask) {
  RetentionQueue rq;
  ASSERT_TRUE(rq.q) << rq.error;
  auto& q = rq.q;
  const RedisEndpoint& at = rq.at;
  redis::Client admin(at);
  const std::string base = at.ns + ":{p}";
  ASSERT_TRUE(q->Enqueue(Items("tre", 1, "p")).ok());
  auto l = q->LeaseChunks("p", "w", 1, 60000, false);
  ASSERT_TRUE(l.ok() && l->size() == 1);
  ASSERT_TRUE(q->Ack((*l)[0].chunk_id, (*l)[0].token).ok());
  EXPECT_GT(Pttl(admin, base + ":tn:tre"), 0);
  ASSERT_TRUE(q->Enqueue({{"tre:1", "tre", "p", 1, "x"}}).ok());
  EXPECT_EQ(Pttl(admin, base + ":tn:tre"), -1);
  EXPECT_EQ(Pttl(admin, base + ":tc:tre"), -1);
  // Past the retention (the acked chunk, which got the same TTL, is gone) the task is whole.
  ASSERT_TRUE(testing::WaitFor([&] { return Pttl(admin, base + ":c:tre:0") == -2; }, milliseconds(10000)));
  auto c = q->Counts("tre");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->total, 2);
  EXPECT_EQ(c->done, 1);
  EXPECT_EQ(c->ready, 1);
  auto list = q->ListChunks("tre");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
}

// Verifies (and prints) what a chunk costs in Redis memory before it expires, by MEMORY USAGE
// of every key of the namespace: per chunk of a 1000-chunk task with a 1200-byte payload (the
// default chunk size), queued and done, and for a one-chunk task. A done chunk drops its
// payload. Figures for docs/deployment.md, "4. Sizing".
TEST(RedisQueue, ChunkMemoryBeforeExpiry) {
  RedisEndpoint at = At(testing::SharedRedis().port, testing::UniqueName("q"));
  auto q = MustOpen(at);
  ASSERT_TRUE(q);
  redis::Client admin(at);
  const std::string payload(1200, 'x');
  const int kChunks = 1000;
  std::vector<ChunkItem> items;
  for (int i = 0; i < kChunks; ++i) {
    items.push_back({"d0123456789abcdef01234567:" + std::to_string(i), "tbig", "p", i, payload});
  }
  ASSERT_TRUE(q->Enqueue(items).ok());
  int64_t queued = MemoryOf(admin, at.ns + ":*");
  auto l = q->LeaseChunks("p", "w", kChunks, 600000, false);
  ASSERT_TRUE(l.ok() && static_cast<int>(l->size()) == kChunks);
  for (const auto& lease : *l) ASSERT_TRUE(q->Ack(lease.chunk_id, lease.token).ok());
  int64_t done = MemoryOf(admin, at.ns + ":*");

  redis::Client one_admin(At(at.port, at.ns + "one"));
  auto one = MustOpen(At(at.port, at.ns + "one"));
  ASSERT_TRUE(one);
  ASSERT_TRUE(one->Enqueue({{"d0123456789abcdef01234567:0", "tone", "p", 0, payload}}).ok());
  int64_t one_queued = MemoryOf(one_admin, at.ns + "one:*");
  auto l1 = one->LeaseChunks("p", "w", 1, 600000, false);
  ASSERT_TRUE(l1.ok() && l1->size() == 1);
  ASSERT_TRUE(one->Ack((*l1)[0].chunk_id, (*l1)[0].token).ok());
  int64_t one_done = MemoryOf(one_admin, at.ns + "one:*");

  std::printf("KG_FIGURE redis bytes per chunk (1000-chunk task, payload %zu B): queued %lld, done %lld\n",
              payload.size(), static_cast<long long>(queued / kChunks), static_cast<long long>(done / kChunks));
  std::printf("KG_FIGURE redis bytes of a one-chunk task (payload %zu B, provider keys included): queued %lld, done %lld\n",
              payload.size(), static_cast<long long>(one_queued), static_cast<long long>(one_done));
  EXPECT_GT(queued / kChunks, static_cast<int64_t>(payload.size()));
  EXPECT_LT(done / kChunks, queued / kChunks - static_cast<int64_t>(payload.size())) << "the payload was kept";
  EXPECT_LT(one_done, one_queued - static_cast<int64_t>(payload.size()));
}

// Verifies a SUBSCRIBE the server refuses (here an ACL without the command) is not taken for a
// subscription: the wait returns instead of sleeping through its whole timeout with no wake-up
// coming, later waits pace the retries (about one a second, no spinning), and once the server
// accepts again the worker subscribes and is woken by an Enqueue at once.
TEST(RedisQueue, RefusedSubscribeIsNotTakenForASubscription) {
  testing::TempDir dir;
  std::unique_ptr<Queue> worker_q, producer_q;
  std::atomic<int> leased{0}, waits{0};
  Cleanup cleanup;
  auto server = testing::StartServer("redis", dir.path() + "/redis");
  ASSERT_GT(server.port, 0);
  cleanup.servers.push_back(server);
  RedisEndpoint at = At(server.port, "kg");
  redis::Client admin(at);
  ASSERT_TRUE(admin.Run(redis::Call::Cmd({"ACL", "SETUSER", "default", "-subscribe"})).ok());
  worker_q = MustOpen(at);
  producer_q = MustOpen(at);
  ASSERT_TRUE(worker_q && producer_q);
  auto t0 = Clock::now();
  cleanup.worker = std::thread([&] {
    while (!cleanup.stop) {
      worker_q->WaitForWork("p", 60000, cleanup.wake.get(), false);
      ++waits;
      auto r = worker_q->LeaseChunks("p", "w1", 4, 60000, false);
      if (!r.ok()) continue;
      for (const auto& l : *r) {
        if (worker_q->Ack(l.chunk_id, l.token).ok()) ++leased;
      }
    }
  });
  // Refused at once, then a wait without a subscriber until the retry, refused again, ...
  ASSERT_TRUE(testing::WaitFor([&] { return waits.load() >= 4; }, milliseconds(10000)))
      << "a wait after a refused SUBSCRIBE slept as if subscribed (" << waits.load() << " waits)";
  EXPECT_GE(Clock::now() - t0, milliseconds(1500)) << "waits spun on a refused SUBSCRIBE";
  EXPECT_LE(waits.load(), 8);

  ASSERT_TRUE(admin.Run(redis::Call::Cmd({"ACL", "SETUSER", "default", "+subscribe"})).ok());
  ASSERT_TRUE(testing::WaitFor([&] { return Subscribers(admin, "kg:{p}:wake") == 1; }, milliseconds(5000)))
      << "the worker never subscribed once the server accepted";
  int waits_before = waits.load();
  t0 = Clock::now();
  ASSERT_TRUE(producer_q->Enqueue(Items("t", 2, "p")).ok());
  EXPECT_TRUE(testing::WaitFor([&] { return leased.load() == 2; }, milliseconds(3000)));
  EXPECT_LT(Clock::now() - t0, milliseconds(3000));
  EXPECT_LE(waits.load() - waits_before, 3) << "the worker spun instead of blocking";
}

}  // namespace
}  // namespace kg
