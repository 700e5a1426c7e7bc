// What the Redis queue must do beyond the contract suite: survive a server restart (fail fast
// with kUnavailable, reconnect, keep its data, wake a waiter blocked across the outage), wait
// without polling, reload its scripts after a flush, and keep the password out of messages.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include <atomic>
#include <chrono>
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
  RedisEndpoint at;
  at.host = "127.0.0.1";
  at.port = port;
  at.ns = ns;
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

// Verifies a refused password is reported as kUnavailable with the server's words and the
// address, never the password itself.
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
  EXPECT_EQ(bad.status().code(), Code::kUnavailable);
  EXPECT_EQ(bad.status().message().find("wrong-secret-2"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("127.0.0.1:" + std::to_string(server.port)), std::string::npos);
  at.password = "right-secret-1";
  auto good = OpenRedisQueue(at, QueueOptions{});
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_TRUE((*good)->Enqueue(Items("t", 1, "p")).ok());
  testing::StopServer(server);
}

}  // namespace
}  // namespace kg
