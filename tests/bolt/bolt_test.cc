// The Bolt client against a real Neo4j 5.26 (the run's shared server, or a private one).
#include "bolt/bolt.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "testing/servers.h"
#include "testing/testing.h"

namespace kg::bolt {
namespace {

using kg::testing::Neo4jAt;
using kg::testing::SharedNeo4j;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<Connection> Connect(const Neo4jEndpoint& e) {
  Result<std::unique_ptr<Connection>> c = Connection::Open(e);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(*c) : nullptr;
}

// The shared Neo4j has one database: each test starts from an empty graph.
void Clear(Connection& c) {
  for (;;) {
    Result<QueryResult> r = c.Run("MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS n");
    ASSERT_TRUE(r.ok()) << r.status().message();
    if (r->records.empty() || r->records[0][0].AsInt() == 0) return;
  }
}

class BoltTest : public ::testing::Test {
 protected:
  void SetUp() override {
    e_ = Neo4jAt(SharedNeo4j());
    c_ = Connect(e_);
    ASSERT_NE(c_, nullptr);
    Clear(*c_);
  }
  int64_t CountNodes() {
    Result<QueryResult> r = c_->Run("MATCH (n) RETURN count(n)", {}, AccessMode::kRead);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->records.at(0).at(0).AsInt() : -1;
  }
  Neo4jEndpoint e_;
  std::unique_ptr<Connection> c_;
};

// Verifies the handshake lands on Bolt 5.x (5.8 against 5.26), the server names itself and a
// query with parameters answers.
TEST_F(BoltTest, NegotiatesBolt5AndRuns) {
  EXPECT_EQ(c_->major(), 5);
  EXPECT_GE(c_->minor(), 6);
  EXPECT_EQ(c_->server_agent().rfind("Neo4j/5.", 0), 0u) << c_->server_agent();
  Result<QueryResult> r = c_->Run("RETURN $a + 1 AS x, $s AS s", {{"a", 41}, {"s", "知识"}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->fields, (std::vector<std::string>{"x", "s"}));
  ASSERT_EQ(r->records.size(), 1u);
  EXPECT_EQ(r->records[0][0].AsInt(), 42);
  EXPECT_EQ(r->records[0][1].AsString(), "知识");
  Result<QueryResult> w = c_->Run("CREATE (:T {k: 1}), (:T {k: 2})");
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->summary.Counter("nodes-created"), 2);
  EXPECT_EQ(w->summary.Counter("relationships-created"), 0);
  EXPECT_EQ(CountNodes(), 2);
}

// Verifies a wrong password is refused as a configuration error naming Neo4j's code, without
// the password in the message.
TEST_F(BoltTest, WrongPasswordIsRefused) {
  Neo4jEndpoint bad = e_;
  bad.password = "not-the-Secret-42";
  Result<std::unique_ptr<Connection>> c = Connection::Open(bad);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument) << c.status().message();
  EXPECT_EQ(Neo4jCode(c.status()), "Neo.ClientError.Security.Unauthorized") << c.status().message();
  EXPECT_EQ(c.status().message().find("not-the-Secret-42"), std::string::npos) << c.status().message();
  EXPECT_EQ(c.status().message().find(kg::testing::kNeo4jPassword), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("127.0.0.1:" + std::to_string(e_.port)), std::string::npos);
}

// Verifies a syntax error is kInternal with Neo4j's code, and the same connection answers the
// next query after the RESET it did (the pipelined PULL was IGNORED and drained).
TEST_F(BoltTest, SyntaxErrorThenResetThenGoodQuery) {
  Result<QueryResult> bad = c_->Run("RETRUN 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInternal);
  EXPECT_EQ(Neo4jCode(bad.status()), "Neo.ClientError.Statement.SyntaxError") << bad.status().message();
  EXPECT_FALSE(c_->broken());
  Result<QueryResult> good = c_->Run("RETURN 7");
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(good->records.at(0).at(0).AsInt(), 7);
  // A failure inside a transaction: the server rolls it back; the connection stays usable.
  ASSERT_TRUE(c_->Begin().ok());
  ASSERT_TRUE(c_->Run("CREATE (:T)").ok());
  Result<QueryResult> div = c_->Run("RETURN 1 / 0");
  ASSERT_FALSE(div.ok());
  EXPECT_EQ(Neo4jCode(div.status()), "Neo.ClientError.Statement.ArithmeticError") << div.status().message();
  EXPECT_FALSE(c_->in_transaction());
  EXPECT_EQ(CountNodes(), 0);
  EXPECT_TRUE(c_->Reset().ok());
}

// Verifies the error classes: a uniqueness violation is kConflict, an unknown database is a
// configuration error (kInvalidArgument); both leave the connection usable.
TEST_F(BoltTest, ErrorClasses) {
  ASSERT_TRUE(c_->Run("CREATE CONSTRAINT bolt_test_u IF NOT EXISTS FOR (n:BoltU) REQUIRE n.k IS UNIQUE").ok());
  ASSERT_TRUE(c_->Run("CREATE (:BoltU {k: 1})").ok());
  Result<QueryResult> dup = c_->Run("CREATE (:BoltU {k: 1})");
  Status drop = c_->Run("DROP CONSTRAINT bolt_test_u").status();
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), Code::kConflict) << dup.status().message();
  EXPECT_EQ(Neo4jCode(dup.status()), "Neo.ClientError.Schema.ConstraintValidationFailed");
  EXPECT_TRUE(drop.ok()) << drop.message();

  Neo4jEndpoint e = e_;
  e.database = "nosuchdb";
  std::unique_ptr<Connection> c = Connect(e);
  ASSERT_NE(c, nullptr);
  Result<QueryResult> r = c->Run("RETURN 1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().message();
  EXPECT_EQ(Neo4jCode(r.status()), "Neo.ClientError.Database.DatabaseNotFound") << r.status().message();
  EXPECT_FALSE(c->broken());
  EXPECT_FALSE(c->Begin().ok());
  EXPECT_FALSE(c->broken());
}

// Verifies a rolled-back transaction leaves nothing and a committed one persists.
TEST_F(BoltTest, RollbackLeavesNothing) {
  ASSERT_TRUE(c_->Begin().ok());
  EXPECT_TRUE(c_->in_transaction());
  ASSERT_TRUE(c_->Run("UNWIND range(1, 50) AS i CREATE (:T {i: i})").ok());
  Result<QueryResult> inside = c_->Run("MATCH (n:T) RETURN count(n)");
  ASSERT_TRUE(inside.ok()) << inside.status().message();
  EXPECT_EQ(inside->records.at(0).at(0).AsInt(), 50);
  ASSERT_TRUE(c_->Rollback().ok());
  EXPECT_FALSE(c_->in_transaction());
  EXPECT_EQ(CountNodes(), 0);
  ASSERT_TRUE(c_->Begin().ok());
  ASSERT_TRUE(c_->Run("CREATE (:T {i: 1})").ok());
  ASSERT_TRUE(c_->Commit().ok());
  EXPECT_EQ(CountNodes(), 1);
}

// Verifies a 100 KiB Chinese string as a parameter is stored and read back exactly: larger than
// a 64 KiB chunk in both directions.
TEST_F(BoltTest, LargeChineseStringCrossesChunks) {
  std::string s;
  while (s.size() < 100 * 1024) s += "知识图谱😀";
  Result<QueryResult> w = c_->Run("CREATE (n:Doc {text: $t}) RETURN size(n.text)", {{"t", s}});
  ASSERT_TRUE(w.ok()) << w.status().message();
  Result<QueryResult> r = c_->Run("MATCH (n:Doc) RETURN n.text", {}, AccessMode::kRead);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->records.size(), 1u);
  EXPECT_EQ(r->records[0][0].AsString().size(), s.size());
  EXPECT_TRUE(r->records[0][0].AsString() == s);
}

// Verifies RunEach streams 10k records in batches (all of them, in order), and that stopping
// early discards the rest and leaves the connection ready.
TEST_F(BoltTest, RunEachStreamsAndStopsEarly) {
  int64_t seen = 0;
  Result<Summary> all = c_->RunEach(
      "UNWIND range(1, 10000) AS i RETURN i", {},
      [&](const std::vector<std::string>& fields, const List& rec) {
        EXPECT_EQ(fields.at(0), "i");
        if (rec.at(0).AsInt() != seen + 1) return Status::Internal("out of order at " + std::to_string(seen));
        ++seen;
        return Status::Ok();
      },
      AccessMode::kRead, 300);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(seen, 10000);
  seen = 0;
  Result<Summary> stopped = c_->RunEach(
      "UNWIND range(1, 10000) AS i RETURN i", {},
      [&](const std::vector<std::string>&, const List&) {
        return ++seen == 450 ? Status::NotFound("enough") : Status::Ok();
      },
      AccessMode::kRead, 300);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), Code::kNotFound);
  EXPECT_EQ(seen, 450);  // not called again after the stop
  EXPECT_FALSE(c_->broken());
  Result<QueryResult> next = c_->Run("RETURN 'after'");
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(next->records.at(0).at(0).AsString(), "after");
}

// Verifies the "none" auth scheme logs in to a server with auth off, and is refused (as a
// configuration error) by the shared server, which has auth on.
TEST(BoltAuth, SchemeNone) {
  kg::testing::TempDir dir;  // outlives the server
  kg::testing::ScopedServer open{kg::testing::StartServer(
      "neo4j", dir.path(), 0, {{"KG_TEST_NEO4J_AUTH", "0"}, {"KG_TEST_NEO4J_CONF", "dbms.routing_ttl=1s"}})};
  ASSERT_NE(open.server.port, 0);
  Neo4jEndpoint e = Neo4jAt(open.server);
  e.user.clear();
  e.password.clear();
  Result<std::unique_ptr<Connection>> c = Connection::Open(e);
  ASSERT_TRUE(c.ok()) << c.status().message();
  Result<QueryResult> r = (*c)->Run("RETURN 1");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->records.at(0).at(0).AsInt(), 1);

  // neo4j:// here too, with the server's routing TTL at 1 s: the pool fetches the table again
  // once it expires.
  e.scheme = "neo4j";
  Result<std::unique_ptr<Pool>> pool = Pool::Open(e);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  EXPECT_EQ((*pool)->stats().routing_refreshes, 1);
  {
    Result<Pool::Lease> l = (*pool)->Borrow();
    ASSERT_TRUE(l.ok()) << l.status().message();
    EXPECT_TRUE((*l)->Run("RETURN 1").ok());
  }
  EXPECT_EQ((*pool)->stats().routing_refreshes, 1);  // still fresh
  bool refreshed = kg::testing::WaitFor(
      [&] {
        Result<Pool::Lease> l = (*pool)->Borrow();
        return l.ok() && (*pool)->stats().routing_refreshes >= 2;
      },
      std::chrono::seconds(10));
  EXPECT_TRUE(refreshed) << "the routing table was not fetched again after its TTL";

  Neo4jEndpoint shared = Neo4jAt(SharedNeo4j());
  shared.user.clear();
  shared.password.clear();
  Result<std::unique_ptr<Connection>> refused = Connection::Open(shared);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument) << refused.status().message();
  EXPECT_EQ(Neo4jCode(refused.status()), "Neo.ClientError.Security.Unauthorized") << refused.status().message();
}

// Verifies a deadlock between two connections surfaces as kUnavailable carrying
// Neo.TransientError.Transaction.DeadlockDetected, and the connection that got it stays usable.
TEST_F(BoltTest, DeadlockIsTransient) {
  ASSERT_TRUE(c_->Run("CREATE (:L {k: 'a', v: 0}), (:L {k: 'b', v: 0})").ok());
  std::unique_ptr<Connection> other = Connect(e_);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(c_->Begin().ok());
  ASSERT_TRUE(other->Begin().ok());
  ASSERT_TRUE(c_->Run("MATCH (n:L {k: 'a'}) SET n.v = 1").ok());
  ASSERT_TRUE(other->Run("MATCH (n:L {k: 'b'}) SET n.v = 2").ok());
  Status first;
  std::thread t([&] { first = c_->Run("MATCH (n:L {k: 'b'}) SET n.v = 1").status(); });  // waits for other
  // The cycle closes only once the first waits for its lock: watch for it from a third session.
  std::unique_ptr<Connection> watch = Connect(e_);
  ASSERT_NE(watch, nullptr);
  bool blocked = kg::testing::WaitFor(
      [&] {
        Result<QueryResult> r = watch->Run("SHOW TRANSACTIONS YIELD status WHERE status STARTS WITH 'Blocked' RETURN count(*)",
                                           {}, AccessMode::kRead);
        return r.ok() && r->records.at(0).at(0).AsInt() > 0;
      },
      std::chrono::seconds(10));
  EXPECT_TRUE(blocked) << "the first transaction never waited for the lock";
  Status second = other->Run("MATCH (n:L {k: 'a'}) SET n.v = 2").status();
  if (second.ok()) second = other->Commit();
  t.join();
  Status deadlocked = !first.ok() ? first : second;
  ASSERT_FALSE(deadlocked.ok()) << "no deadlock detected";
  EXPECT_TRUE(first.ok() != second.ok()) << first.message() << " / " << second.message();
  EXPECT_EQ(deadlocked.code(), Code::kUnavailable) << deadlocked.message();
  EXPECT_EQ(Neo4jCode(deadlocked), "Neo.TransientError.Transaction.DeadlockDetected") << deadlocked.message();
  if (first.ok()) {
    ASSERT_TRUE(c_->Commit().ok());
  }
  Connection& loser = first.ok() ? *other : *c_;
  EXPECT_FALSE(loser.broken());
  EXPECT_FALSE(loser.in_transaction());
  Result<QueryResult> r = loser.Run("MATCH (n:L) RETURN n.k, n.v ORDER BY n.k");
  ASSERT_TRUE(r.ok()) << r.status().message();
  int64_t winner = first.ok() ? 1 : 2;
  EXPECT_EQ(r->records.at(0).at(1).AsInt(), winner);
  EXPECT_EQ(r->records.at(1).at(1).AsInt(), winner);
}

// Verifies Pool::InTransaction retries a deadlock to success: two transactions lock two nodes
// in opposite orders (the first attempt of each is held until both hold their first lock), one
// is chosen as the deadlock victim, and both end committed.
TEST_F(BoltTest, InTransactionRetriesDeadlocks) {
  ASSERT_TRUE(c_->Run("CREATE (:L {k: 'a', v: 0}), (:L {k: 'b', v: 0})").ok());
  Result<std::unique_ptr<Pool>> pool = Pool::Open(e_);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  std::atomic<int> attempts{0}, holding{0};
  std::atomic<int> deadlocks{0};
  auto work = [&](const char* first, const char* second) {
    return (*pool)->InTransaction(AccessMode::kWrite, [&](Connection& c) -> Status {
      int n = ++attempts;
      KG_RETURN_IF_ERROR(c.Run("MATCH (n:L {k: $k}) SET n.v = n.v + 1", {{"k", first}}).status());
      if (n <= 2) {  // both first attempts: wait (bounded) until the other holds its first lock
        ++holding;
        kg::testing::WaitFor([&] { return holding >= 2; }, std::chrono::seconds(5));
      }
      Status s = c.Run("MATCH (n:L {k: $k}) SET n.v = n.v + 1", {{"k", second}}).status();
      if (Neo4jCode(s) == "Neo.TransientError.Transaction.DeadlockDetected") ++deadlocks;
      return s;
    });
  };
  Status a, b;
  std::thread ta([&] { a = work("a", "b"); });
  std::thread tb([&] { b = work("b", "a"); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.ok()) << a.message();
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_GE(deadlocks.load(), 1);
  EXPECT_GE(attempts.load(), 3);
  Result<QueryResult> r = c_->Run("MATCH (n:L) RETURN sum(n.v)");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->records.at(0).at(0).AsInt(), 4);  // each committed transaction added 1 to both
}

// Verifies the pool's hard cap: N+3 threads borrowing from a pool of N never have more than N
// connections open, on our side (stats) and on the server's (SHOW TRANSACTIONS by connection);
// and a borrower waits at the cap, then gets kUnavailable "pool exhausted".
TEST_F(BoltTest, PoolCapHolds) {
  constexpr int kCap = 3;
  Neo4jEndpoint e = e_;
  e.pool_size = kCap;
  Result<std::unique_ptr<Pool>> pool = Pool::Open(e);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  std::atomic<bool> done{false};
  std::atomic<int> over_cap{0}, max_in_use{0}, errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kCap + 3; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 8; ++j) {
        Result<Pool::Lease> l = (*pool)->Borrow(AccessMode::kRead);
        if (!l.ok()) {
          ++errors;
          continue;
        }
        Pool::Stats st = (*pool)->stats();
        if (st.open > kCap || st.in_use > kCap) ++over_cap;
        int seen = max_in_use.load();
        while (st.in_use > seen && !max_in_use.compare_exchange_weak(seen, st.in_use)) {
        }
        Result<QueryResult> r = (*l)->Run("UNWIND range(1, 300000) AS i RETURN count(i)", {}, AccessMode::kRead);
        if (!r.ok()) ++errors;
      }
    });
  }
  // The server's view: the distinct connections running a transaction at once, ours excepted.
  size_t server_max = 0;
  std::thread watcher([&] {
    std::unique_ptr<Connection> w = Connect(e_);
    if (w == nullptr) return;
    while (!done) {
      Result<QueryResult> r = w->Run(
          "SHOW TRANSACTIONS YIELD connectionId, currentQuery WHERE NOT currentQuery STARTS WITH 'SHOW' "
          "RETURN connectionId",
          {}, AccessMode::kRead);
      if (!r.ok()) {
        ADD_FAILURE() << r.status().message();
        return;
      }
      std::set<std::string> ids;
      for (const List& rec : r->records) ids.insert(rec.at(0).AsString());
      server_max = std::max(server_max, ids.size());
    }
  });
  for (std::thread& t : threads) t.join();
  done = true;
  watcher.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(over_cap.load(), 0);
  EXPECT_EQ(max_in_use.load(), kCap);  // the cap was reached: the test exercised it
  EXPECT_LE(server_max, static_cast<size_t>(kCap));
  EXPECT_GE(server_max, 2u);
  EXPECT_LE((*pool)->stats().open, kCap);
  EXPECT_EQ((*pool)->stats().in_use, 0);

  // At the cap, Borrow waits borrow_timeout_ms, then says the pool is exhausted.
  e.pool_size = 1;
  e.borrow_timeout_ms = 400;
  Result<std::unique_ptr<Pool>> one = Pool::Open(e);
  ASSERT_TRUE(one.ok()) << one.status().message();
  Result<Pool::Lease> held = (*one)->Borrow();
  ASSERT_TRUE(held.ok()) << held.status().message();
  int64_t start = NowMs();
  Result<Pool::Lease> more = (*one)->Borrow();
  int64_t waited = NowMs() - start;
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.status().code(), Code::kUnavailable);
  EXPECT_NE(more.status().message().find("pool exhausted (1 of 1 in use"), std::string::npos) << more.status().message();
  EXPECT_GE(waited, 390);
}

// Verifies a lease given back wakes a Borrow waiting at the cap: the waiter's own timeout (10
// minutes) is far beyond the test's patience (20 s), so only the notify can let it through.
TEST_F(BoltTest, LeaseGivenBackWakesWaiter) {
  Neo4jEndpoint e = e_;
  e.pool_size = 1;
  e.borrow_timeout_ms = 10 * 60 * 1000;
  Result<std::unique_ptr<Pool>> one = Pool::Open(e);
  ASSERT_TRUE(one.ok()) << one.status().message();
  Result<Pool::Lease> held = (*one)->Borrow();
  ASSERT_TRUE(held.ok()) << held.status().message();
  std::atomic<bool> finished{false};
  Result<Pool::Lease> after = Status::Internal("not yet");
  std::thread waiter([&] {
    after = (*one)->Borrow();
    finished = true;
  });
  bool waiting = kg::testing::WaitFor([&] { return (*one)->stats().waiters == 1; }, std::chrono::seconds(20));
  EXPECT_TRUE(waiting) << "the second Borrow never waited";
  held = Status::Internal("returned");  // destroys the lease
  bool woke = kg::testing::WaitFor([&] { return finished.load(); }, std::chrono::seconds(20));
  if (!woke) {
    // Not woken: the waiter would sit out its 10 minutes. Fail, and abort rather than hang.
    ADD_FAILURE() << "a lease given back did not wake the waiting Borrow";
    std::abort();
  }
  waiter.join();
  EXPECT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ((*one)->stats().waiters, 0);
}

// Verifies a full pool is not a routing failure: with neo4j:// and a pool of one, "pool
// exhausted" (from Borrow and from InTransaction) leaves the routing table alone; the next
// Borrow does not fetch it again.
TEST_F(BoltTest, PoolExhaustedIsNotARoutingFailure) {
  Neo4jEndpoint e = e_;
  e.scheme = "neo4j";
  e.pool_size = 1;
  e.borrow_timeout_ms = 200;
  Result<std::unique_ptr<Pool>> pool = Pool::Open(e);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  ASSERT_EQ((*pool)->stats().routing_refreshes, 1);
  {
    Result<Pool::Lease> held = (*pool)->Borrow();
    ASSERT_TRUE(held.ok()) << held.status().message();
    Result<Pool::Lease> more = (*pool)->Borrow();
    ASSERT_FALSE(more.ok());
    EXPECT_NE(more.status().message().find("pool exhausted"), std::string::npos) << more.status().message();
    RetryPolicy twice;  // the second attempt would see a table made stale by the first
    twice.max_attempts = 2;
    Status s = (*pool)->InTransaction(AccessMode::kWrite, [](Connection&) { return Status::Ok(); }, twice);
    EXPECT_NE(s.message().find("pool exhausted"), std::string::npos) << s.message();
  }
  Result<Pool::Lease> next = (*pool)->Borrow();
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ((*pool)->stats().routing_refreshes, 1) << "a full pool made the routing table stale";
}

// Verifies InTransaction's overall deadline: a function that always fails transiently, with
// attempts unlimited in practice, stops once the next wait would pass max_total, returning the
// last error, after more than one attempt.
TEST_F(BoltTest, InTransactionStopsAtMaxTotal) {
  Result<std::unique_ptr<Pool>> pool = Pool::Open(e_);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  RetryPolicy p;
  p.max_attempts = 1000000000;
  p.initial = std::chrono::milliseconds(2);
  p.max = std::chrono::milliseconds(20);
  p.max_total = std::chrono::milliseconds(300);
  int attempts = 0;
  Status s = (*pool)->InTransaction(
      AccessMode::kWrite,
      [&](Connection&) {
        ++attempts;
        return Status::Unavailable("always transient (" + std::to_string(attempts) + ")");
      },
      p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.message(), "always transient (" + std::to_string(attempts) + ")");  // the last error
  EXPECT_GT(attempts, 1);
  EXPECT_LT(attempts, p.max_attempts);
}

// Verifies causal consistency under neo4j://: the pool keeps the latest bookmark (from an
// auto-commit write and from COMMIT), a read on another connection of the pool sends it, and
// the server accepts it; a bogus bookmark is refused by the server.
TEST_F(BoltTest, ReadsCarryTheLatestBookmark) {
  Neo4jEndpoint e = e_;
  e.scheme = "neo4j";
  e.pool_size = 2;
  Result<std::unique_ptr<Pool>> pool = Pool::Open(e);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  Result<Pool::Lease> w = (*pool)->Borrow(AccessMode::kWrite);
  ASSERT_TRUE(w.ok()) << w.status().message();
  Result<QueryResult> made = (*w)->Run("CREATE (:Booked {k: 1})");
  ASSERT_TRUE(made.ok()) << made.status().message();
  const std::string first = (*w)->last_bookmark();
  ASSERT_FALSE(first.empty()) << "an auto-commit write gave no bookmark";
  EXPECT_EQ((*pool)->stats().bookmark, first);
  // The write lease is still held: the read goes out on the pool's other connection.
  Result<Pool::Lease> r = (*pool)->Borrow(AccessMode::kRead);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*pool)->stats().open, 2);
  Result<QueryResult> seen = (*r)->Run("MATCH (n:Booked) RETURN count(n)", {}, AccessMode::kRead);
  ASSERT_TRUE(seen.ok()) << seen.status().message();
  EXPECT_EQ((*r)->sent_bookmarks(), std::vector<std::string>{first});
  EXPECT_EQ(seen->records.at(0).at(0).AsInt(), 1);

  // A committed transaction's bookmark replaces it, and a read transaction (BEGIN) sends it.
  ASSERT_TRUE((*w)->Begin().ok());
  ASSERT_TRUE((*w)->Run("CREATE (:Booked {k: 2})").ok());
  ASSERT_TRUE((*w)->Commit().ok());
  const std::string second = (*w)->last_bookmark();
  ASSERT_FALSE(second.empty());
  EXPECT_NE(second, first);
  EXPECT_EQ((*pool)->stats().bookmark, second);
  ASSERT_TRUE((*r)->Begin(AccessMode::kRead).ok());
  EXPECT_EQ((*r)->sent_bookmarks(), std::vector<std::string>{second});
  Result<QueryResult> in_tx = (*r)->Run("MATCH (n:Booked) RETURN count(n)", {}, AccessMode::kRead);
  ASSERT_TRUE(in_tx.ok()) << in_tx.status().message();
  EXPECT_EQ(in_tx->records.at(0).at(0).AsInt(), 2);
  ASSERT_TRUE((*r)->Commit().ok());
  // Writes send none.
  ASSERT_TRUE((*w)->Run("RETURN 1").ok());
  EXPECT_TRUE((*w)->sent_bookmarks().empty());

  // The server checks what it is sent: a bogus bookmark is an error, on RUN and on BEGIN.
  std::unique_ptr<Connection> c = Connect(e);
  ASSERT_NE(c, nullptr);
  c->set_bookmark_hooks({[] { return std::vector<std::string>{"not-a-bookmark"}; }, nullptr});
  Result<QueryResult> bogus = c->Run("RETURN 1", {}, AccessMode::kRead);
  ASSERT_FALSE(bogus.ok());
  EXPECT_EQ(Neo4jCode(bogus.status()), "Neo.ClientError.Transaction.InvalidBookmark") << bogus.status().message();
  Status begin = c->Begin(AccessMode::kRead);
  ASSERT_FALSE(begin.ok());
  EXPECT_EQ(Neo4jCode(begin), "Neo.ClientError.Transaction.InvalidBookmark") << begin.message();
  c->set_bookmark_hooks({[&] { return std::vector<std::string>{second}; }, nullptr});
  Result<QueryResult> good = c->Run("MATCH (n:Booked) RETURN count(n)", {}, AccessMode::kRead);
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(good->records.at(0).at(0).AsInt(), 2);
}

// Verifies a read timeout: a query running longer than io_timeout_ms gives kUnavailable and a
// broken connection, which a pool then closes instead of lending again.
TEST_F(BoltTest, ReadTimeout) {
  Neo4jEndpoint e = e_;
  e.io_timeout_ms = 300;
  std::unique_ptr<Connection> c = Connect(e);
  ASSERT_NE(c, nullptr);
  int64_t start = NowMs();
  Result<QueryResult> r = c->Run("UNWIND range(1, 20000000) AS i WITH i WHERE i < 0 RETURN count(i)");
  int64_t took = NowMs() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().message();
  EXPECT_NE(r.status().message().find("timed out after 300 ms"), std::string::npos) << r.status().message();
  EXPECT_GE(took, 290);
  EXPECT_TRUE(c->broken());
  Result<QueryResult> again = c->Run("RETURN 1");
  EXPECT_EQ(again.status().code(), Code::kUnavailable);
  // Under neo4j://, a read timeout in InTransaction is not a routing failure: the server is
  // there, only slow; the routing table is not fetched again.
  e.scheme = "neo4j";
  Result<std::unique_ptr<Pool>> pool = Pool::Open(e);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  ASSERT_EQ((*pool)->stats().routing_refreshes, 1);
  RetryPolicy twice;  // the second attempt would see a table made stale by the first
  twice.max_attempts = 2;
  Status slow = (*pool)->InTransaction(
      AccessMode::kWrite,
      [](Connection& tx) { return tx.Run("UNWIND range(1, 20000001) AS i WITH i WHERE i < 0 RETURN count(i)").status(); },
      twice);
  EXPECT_NE(slow.message().find("timed out after 300 ms"), std::string::npos) << slow.message();
  {
    Result<Pool::Lease> l = (*pool)->Borrow();
    ASSERT_TRUE(l.ok()) << l.status().message();
  }
  EXPECT_EQ((*pool)->stats().routing_refreshes, 1) << "a read timeout made the routing table stale";
  // The query may still run on the server after the socket closed: stop it (if it has not
  // ended yet), so that it does not slow the tests after this one.
  Result<QueryResult> stop = c_->Run(
      "SHOW TRANSACTIONS YIELD transactionId AS id, currentQuery WHERE currentQuery CONTAINS $q "
      "TERMINATE TRANSACTIONS id YIELD message RETURN message",
      {{"q", "range(1, 2000000"}});  // a parameter, so that this query does not match itself
  ASSERT_TRUE(stop.ok()) << stop.status().message();
}

// A listening socket whose accept queue is full: a connect to it is never answered.
struct Blackhole {
  int listener = -1;
  std::vector<int> fillers;
  int port = 0;
  Blackhole() {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listener, 0) != 0) return;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    for (int i = 0; i < 16; ++i) {  // fill the queue until a connect stays pending
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      fillers.push_back(fd);
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), len);
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 200) == 0) return;
    }
    port = 0;
  }
  ~Blackhole() {
    for (int fd : fillers) ::close(fd);
    if (listener >= 0) ::close(listener);
  }
};

// Verifies the connect timeout: a server that never answers the SYN is given up on after
// connect_timeout_ms with kUnavailable naming the timeout.
TEST(BoltTimeouts, ConnectTimeout) {
  Blackhole hole;
  ASSERT_NE(hole.port, 0) << "could not fill a listen queue";
  Neo4jEndpoint e;
  e.host = "127.0.0.1";
  e.port = hole.port;
  e.connect_timeout_ms = 500;
  int64_t start = NowMs();
  Result<std::unique_ptr<Connection>> c = Connection::Open(e);
  int64_t took = NowMs() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_NE(c.status().message().find("connect: timed out after 500 ms"), std::string::npos) << c.status().message();
  EXPECT_GE(took, 490);
}

// Verifies the handshake read obeys io_timeout_ms against a server that accepts and says
// nothing, and that connection refused is kUnavailable.
TEST(BoltTimeouts, SilentServerAndRefused) {
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::listen(l, 8), 0);
  ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  Neo4jEndpoint e;
  e.host = "127.0.0.1";
  e.port = ntohs(a.sin_port);
  e.io_timeout_ms = 300;
  int64_t start = NowMs();
  Result<std::unique_ptr<Connection>> c = Connection::Open(e);
  int64_t took = NowMs() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_GE(took, 290);
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_NE(c.status().message().find("handshake: read: timed out after 300 ms"), std::string::npos)
      << c.status().message();
  ::close(l);
  Result<std::unique_ptr<Connection>> refused = Connection::Open(e);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  EXPECT_NE(refused.status().message().find("connect: Connection refused"), std::string::npos)
      << refused.status().message();
}

// Verifies a connection whose server went away (a restart on the same dir and port) is
// replaced on the next Borrow by the health check, that a Borrow while the server is down is
// kUnavailable, and (neo4j://) that the failure makes the pool fetch the routing table again
// although its TTL (300 s) has not expired.
class BoltRestart : public ::testing::TestWithParam<const char*> {};

TEST_P(BoltRestart, DeadConnectionReplacedAfterRestart) {
  kg::testing::TempDir tmp;  // outlives the server
  const std::string dir = tmp.path();
  // Shutdown does not wait 10 s for the open transaction the second part leaves behind.
  const std::map<std::string, std::string> env{{"KG_TEST_NEO4J_CONF", "db.shutdown_transaction_end_timeout=0s"}};
  kg::testing::ServerProcess first = kg::testing::StartServer("neo4j", dir, 0, env);
  ASSERT_NE(first.port, 0);
  kg::testing::ScopedServer guard{first};
  Neo4jEndpoint e = Neo4jAt(first);
  e.scheme = GetParam();
  bool routing = e.scheme == "neo4j";
  e.pool_size = 2;
  e.borrow_timeout_ms = 2000;
  Result<std::unique_ptr<Pool>> pool = Pool::Open(e);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  {
    Result<Pool::Lease> l = (*pool)->Borrow();
    ASSERT_TRUE(l.ok()) << l.status().message();
    ASSERT_TRUE((*l)->Run("CREATE (:Kept {k: 1})").ok());
  }
  ASSERT_EQ((*pool)->stats().open, 1);
  EXPECT_EQ((*pool)->stats().routing_refreshes, routing ? 1 : 0);
  kg::testing::StopServer(first);
  Result<Pool::Lease> down = (*pool)->Borrow();
  ASSERT_FALSE(down.ok()) << "borrowed a connection from a stopped server";
  EXPECT_EQ(down.status().code(), Code::kUnavailable) << down.status().message();
  EXPECT_EQ((*pool)->stats().open, 0);
  guard.server = kg::testing::StartServer("neo4j", dir, first.port, env);
  ASSERT_EQ(guard.server.port, first.port);
  Result<Pool::Lease> l = (*pool)->Borrow();
  ASSERT_TRUE(l.ok()) << l.status().message();
  Result<QueryResult> r = (*l)->Run("MATCH (n:Kept) RETURN count(n)");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->records.at(0).at(0).AsInt(), 1);
  EXPECT_EQ((*pool)->stats().routing_refreshes, routing ? 2 : 0);
  l = Status::Internal("returned");  // the lease goes back

  // The server restarts in the middle of a transaction: InTransaction retries on a new
  // connection, and the write lands once.
  int attempts = 0;
  Status s = (*pool)->InTransaction(AccessMode::kWrite, [&](Connection& c) -> Status {
    if (++attempts == 1) {
      kg::testing::StopServer(guard.server);
      guard.server = kg::testing::StartServer("neo4j", dir, first.port, env);
    }
    return c.Run("CREATE (:Kept {k: 2})").status();
  });
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(attempts, 2);
  Result<Pool::Lease> again = (*pool)->Borrow();
  ASSERT_TRUE(again.ok()) << again.status().message();
  r = (*again)->Run("MATCH (n:Kept) RETURN count(n)");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->records.at(0).at(0).AsInt(), 2);
}

INSTANTIATE_TEST_SUITE_P(Schemes, BoltRestart, ::testing::Values("bolt", "neo4j"));

// Verifies neo4j:// routing against the single server: ROUTE names it as writer, reader and
// router, and the pool's connections for writes and reads go to it.
TEST_F(BoltTest, RoutingTableNamesTheServer) {
  Neo4jEndpoint e = e_;
  e.scheme = "neo4j";
  std::unique_ptr<Connection> c = Connect(e);
  ASSERT_NE(c, nullptr);
  Result<Connection::RoutingTable> t = c->Route();
  ASSERT_TRUE(t.ok()) << t.status().message();
  std::string port = ":" + std::to_string(e.port);
  ASSERT_EQ(t->writers.size(), 1u);
  EXPECT_TRUE(t->writers[0].size() > port.size() && t->writers[0].ends_with(port)) << t->writers[0];
  ASSERT_FALSE(t->readers.empty());
  ASSERT_FALSE(t->routers.empty());
  EXPECT_GT(t->ttl_seconds, 0);
  EXPECT_EQ(t->database, "neo4j");

  Result<std::unique_ptr<Pool>> pool = Pool::Open(e);
  ASSERT_TRUE(pool.ok()) << pool.status().message();
  {
    Result<Pool::Lease> w = (*pool)->Borrow(AccessMode::kWrite);
    ASSERT_TRUE(w.ok()) << w.status().message();
    EXPECT_EQ((*w)->address(), t->writers[0]);
    ASSERT_TRUE((*w)->Run("CREATE (:Routed)").ok());
  }
  Result<Pool::Lease> r = (*pool)->Borrow(AccessMode::kRead);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(std::find(t->readers.begin(), t->readers.end(), (*r)->address()), t->readers.end()) << (*r)->address();
  Result<QueryResult> q = (*r)->Run("MATCH (n:Routed) RETURN count(n)", {}, AccessMode::kRead);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->records.at(0).at(0).AsInt(), 1);
  EXPECT_EQ((*pool)->stats().open, 1);  // the router's connection served both
}

}  // namespace
}  // namespace kg::bolt
