// The MySQL client library (src/mysql) against a real mariadbd.
#include "mysql/mysql.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "common/util.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg::mysql {
namespace {

using namespace std::chrono_literals;

MysqlEndpoint EndpointOf(const testing::ServerProcess& server, const std::string& db) {
  MysqlEndpoint e = testing::MysqlAt(server, db);
  e.connect_timeout_ms = 2000;
  e.io_timeout_s = 10;
  return e;
}

MysqlEndpoint Shared() { return EndpointOf(testing::SharedMariaDb(), testing::UniqueName("my")); }

std::unique_ptr<Pool> OpenPool(const MysqlEndpoint& e) {
  auto p = Pool::Open(e);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? std::move(p).value() : nullptr;
}

int64_t Count(Connection& c, const std::string& table_sql) {
  auto r = c.QueryOne(table_sql);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() && *r ? (*r)->Int(0) : -1;
}

// Verifies a database name that is not [A-Za-z0-9_]{1,64} is refused before any SQL is
// sent (identifiers cannot be bound), by a connection and by a pool alike.
TEST(Mysql, BadDatabaseNameIsRefused) {
  for (std::string bad : {std::string("x`; DROP DATABASE mysql; -- "), std::string("a-b"), std::string(""),
                          std::string(65, 'a'), std::string("caf\xC3\xA9")}) {
    MysqlEndpoint e = EndpointOf(testing::SharedMariaDb(), bad);
    auto c = Connection::Open(e);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), Code::kInvalidArgument) << c.status().message();
    EXPECT_NE(c.status().message().find("database name"), std::string::npos) << c.status().message();
    EXPECT_EQ(Pool::Open(e).status().code(), Code::kInvalidArgument) << bad;
  }
  std::string longest = testing::UniqueName("ok");
  longest.resize(64, '_');
  auto ok = Connection::Open(EndpointOf(testing::SharedMariaDb(), longest));
  EXPECT_TRUE(ok.ok()) << "64 characters are allowed: " << ok.status().message();
}

// Verifies errors name the endpoint and never carry the password, and a refused login is a
// configuration error (kInvalidArgument: nothing waits for it to pass; a node exits 2).
TEST(Mysql, ErrorsNameTheEndpointButNotThePassword) {
  MysqlEndpoint e = Shared();
  e.password = "s3cret-pw";
  auto c = Connection::Open(e);
  ASSERT_FALSE(c.ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("mysql kgflow@127.0.0.1:" + std::to_string(e.port) + "/" + e.database + ": connect: "),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("(1045)"), std::string::npos) << m;
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument) << m;
  EXPECT_EQ(m.find("s3cret-pw"), std::string::npos) << m;

  auto good = Connection::Open(Shared());
  ASSERT_TRUE(good.ok()) << good.status().message();
  auto bad = (*good)->Exec("SELECT * FROM no_such_table WHERE a=?", {1});
  EXPECT_EQ(bad.status().code(), Code::kInternal);
  EXPECT_EQ((*good)->last_errno(), 1146);
  EXPECT_NE(bad.status().message().find("(1146)"), std::string::npos) << bad.status().message();
  EXPECT_EQ((*good)->Exec("SELECT ?", {1, 2}).status().code(), Code::kInternal) << "param count is checked";
}

// Verifies values travel bound, byte for byte: quotes, backslashes, NUL bytes, Chinese,
// 4-byte emoji, SQL-looking text, a value longer than the first read buffer, NULL, integer
// limits and doubles.
TEST(Mysql, ValuesRoundTrip) {
  auto c = Connection::Open(Shared());
  ASSERT_TRUE(c.ok()) << c.status().message();
  Connection& db = **c;
  ASSERT_TRUE(db.Run("CREATE TABLE v(id INT PRIMARY KEY, s LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, "
                     "b LONGBLOB, i BIGINT, d DOUBLE, n VARCHAR(10) NULL) ENGINE=InnoDB")
                  .ok());
  std::string nasty = std::string("it's \"quoted\" \\ back\\slash ") + std::string("nul\0byte", 8) +
                      " 知识图谱 😀🧠 '); DROP TABLE v; -- ?";
  std::string blob;
  for (int i = 0; i < 256; ++i) blob.push_back(static_cast<char>(i));
  std::string big(300000, 'x');
  big += "😀";
  auto ins = db.Exec("INSERT INTO v(id,s,b,i,d,n) VALUES(?,?,?,?,?,?)",
                     {1, nasty, Value::Blob(blob), int64_t{INT64_MIN}, 3.25, nullptr});
  ASSERT_TRUE(ins.ok()) << ins.status().message();
  EXPECT_EQ(*ins, 1u);
  ASSERT_TRUE(db.Exec("INSERT INTO v(id,s,b,i,d,n) VALUES(?,?,?,?,?,?)",
                      {2, big, Value::Blob(big), int64_t{INT64_MAX}, -1e300, "n"})
                  .ok());
  auto rows = db.Query("SELECT id,s,b,i,d,n FROM v WHERE id IN (?,?) ORDER BY id", {1, 2});
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 2u);
  const Row& a = (*rows)[0];
  EXPECT_EQ(a.Str(1), nasty);
  EXPECT_EQ(a.Str(2), blob);
  EXPECT_EQ(a.Int(3), INT64_MIN);
  EXPECT_EQ(a.Double(4), 3.25);
  EXPECT_TRUE(a.IsNull(5));
  EXPECT_FALSE(a.OptStr(5).has_value());
  const Row& b = (*rows)[1];
  EXPECT_EQ(b.Str(1), big);
  EXPECT_EQ(b.Str(2), big);
  EXPECT_EQ(b.Int(3), INT64_MAX);
  EXPECT_EQ(b.Double(4), -1e300);
  EXPECT_EQ(b.OptStr(5), std::optional<std::string>("n"));
  // Found by the exact value, so the comparison happened on the server with the bound bytes.
  auto found = db.QueryOne("SELECT id FROM v WHERE s=?", {nasty});
  ASSERT_TRUE(found.ok() && *found);
  EXPECT_EQ((*found)->Int(0), 1);
  EXPECT_EQ(Count(db, "SELECT COUNT(*) FROM v"), 2);
  // A duplicate key is kConflict with its errno.
  auto dup = db.Exec("INSERT INTO v(id) VALUES(?)", {1});
  EXPECT_EQ(dup.status().code(), Code::kConflict) << dup.status().message();
  EXPECT_EQ(db.last_errno(), 1062);
}

// Verifies concurrent migrations of one database (4 threads, each with its own pool and so
// its own sessions) run each migration exactly once: the one that inserts a row into a table
// without a unique key leaves one row, and every caller succeeds.
TEST(Mysql, ConcurrentMigrationsRunOnce) {
  MysqlEndpoint e = Shared();
  std::vector<Migration> ms = {
      {1, {"CREATE TABLE once_t(x INT NOT NULL) ENGINE=InnoDB"}},
      // The sleep widens the window in which a racing migrator would also see version 2 missing.
      {2, {"DO SLEEP(0.3)", "INSERT INTO once_t(x) VALUES (1)"}},
      {3, {"INSERT INTO once_t(x) VALUES (2)"}},
  };
  std::vector<Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto pool = Pool::Open(e);
      if (!pool.ok()) {
        results[i] = pool.status();
        return;
      }
      results[i] = Migrate(**pool, "test", ms);
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.message();
  auto c = Connection::Open(e);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM once_t"), 2);
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM kg_schema_migrations WHERE component='test' AND dirty=0"), 3);
  // Another component shares the table; running again applies nothing.
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(Migrate(*pool, "other", {{1, {"CREATE TABLE other_t(x INT)"}}}).ok());
  ASSERT_TRUE(Migrate(*pool, "test", ms).ok());
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM once_t"), 2);
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM kg_schema_migrations"), 4);
}

// Verifies a migration that fails part-way is left dirty and the next start refuses, naming
// the version and what to do; later versions do not run.
TEST(Mysql, DirtyMigrationRefusesToStart) {
  MysqlEndpoint e = Shared();
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  std::vector<Migration> ms = {{1, {"CREATE TABLE d_t(x INT)"}},
                               {2, {"INSERT INTO d_t VALUES (1)", "INSERT INTO no_such_table VALUES (1)"}},
                               {3, {"INSERT INTO d_t VALUES (3)"}}};
  Status first = Migrate(*pool, "dirt", ms);
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.message().find("migration 2 of 'dirt', statement 2 of 2"), std::string::npos) << first.message();
  Status again = Migrate(*pool, "dirt", ms);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("migration 2 of 'dirt' is marked dirty"), std::string::npos) << again.message();
  EXPECT_NE(again.message().find("DELETE that row"), std::string::npos) << again.message();
  auto c = Connection::Open(e);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM d_t WHERE x=3"), 0) << "a later version ran past a dirty one";
  EXPECT_EQ(Migrate(*pool, "dirt", {{2, {}}, {1, {}}}).code(), Code::kInternal) << "versions must increase";
  // The lock was released each time: a different component migrates at once.
  auto t0 = MonoMs();
  EXPECT_TRUE(Migrate(*pool, "clean", {{1, {"CREATE TABLE c_t(x INT)"}}}).ok());
  EXPECT_LT(MonoMs() - t0, 5000);
}

// Verifies a re-runnable migration left dirty by a lost connection (its session KILLed in
// the middle of its statements, as a server restart would) is run again at the next Migrate
// under the lock, and completes; the same dirty version declared not re-runnable refuses.
TEST(Mysql, DirtyRerunnableMigrationIsRunAgain) {
  MysqlEndpoint e = Shared();
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  auto admin = Connection::Open(e);
  ASSERT_TRUE(admin.ok());
  // Statement 2 sleeps while the admin session holds the gate (a named lock of this test's
  // database): the moment at which the migrating session is killed. Run again, it goes on.
  auto gate = (*admin)->QueryOne("SELECT GET_LOCK(CONCAT(DATABASE(), '.gate'), 5)");
  ASSERT_TRUE(gate.ok() && *gate && (*gate)->Int(0) == 1);
  Migration m{1,
              {"CREATE TABLE IF NOT EXISTS r_a(x INT)",
               "DO IF(IS_FREE_LOCK(CONCAT(DATABASE(), '.gate')), 0, SLEEP(20))",
               "CREATE TABLE IF NOT EXISTS r_b(x INT)"},
              true};
  std::thread killer([&] {
    int64_t id = 0;
    bool seen = testing::WaitFor([&] {
      auto r = (*admin)->QueryOne("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ?",
                                  {"DO IF(IS_FREE_LOCK%"});
      if (r.ok() && *r) id = (*r)->Int(0);
      return id != 0;
    }, 10s);
    ASSERT_TRUE(seen) << "the migration never reached its second statement";
    ASSERT_TRUE((*admin)->QueryOne("SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.gate'))").ok());
    // KILL cannot be prepared; the id is the server's own integer, not input.
    ASSERT_TRUE((*admin)->Run("KILL CONNECTION " + std::to_string(id)).ok());
  });
  Status first = Migrate(*pool, "rerun", {m});
  killer.join();
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.message().find("left marked dirty"), std::string::npos) << first.message();
  EXPECT_EQ(Count(**admin, "SELECT COUNT(*) FROM kg_schema_migrations WHERE component='rerun' AND dirty<>0"), 1);
  EXPECT_EQ(Count(**admin, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=DATABASE() "
                           "AND TABLE_NAME='r_b'"),
            0);

  Migration fixed = m;
  fixed.rerunnable = false;
  Status refused = Migrate(*pool, "rerun", {fixed});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("migration 1 of 'rerun' is marked dirty"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("not re-runnable"), std::string::npos) << refused.message();

  Status again = Migrate(*pool, "rerun", {m});
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_EQ(Count(**admin, "SELECT COUNT(*) FROM kg_schema_migrations WHERE component='rerun' AND dirty=0"), 1);
  EXPECT_EQ(Count(**admin, "SELECT COUNT(*) FROM kg_schema_migrations WHERE component='rerun'"), 1);
  EXPECT_EQ(Count(**admin, "SELECT COUNT(*) FROM r_b"), 0) << "r_b was created";
}

// Verifies every session is REPEATABLE READ on a server whose default a DBA set to READ
// COMMITTED, the first one and the one a reconnect makes after the session was killed.
TEST(Mysql, SessionsAreRepeatableReadWhateverTheServerDefault) {
  testing::TempDir dir;
  testing::ScopedServer own{testing::StartServer("mariadb", dir.File("mariadb"), 0,
                                                  {{"KG_TEST_MARIADB_ARGS", "--transaction-isolation=READ-COMMITTED"}})};
  const testing::ServerProcess& server = own.server;
  ASSERT_GT(server.port, 0);
  MysqlEndpoint e = EndpointOf(server, "iso");
  auto c = Connection::Open(e);
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto isolation = [&](const char* which) {
    auto r = (*c)->QueryOne(std::string("SELECT ") + which);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() && *r ? (*r)->Str(0) : "";
  };
  EXPECT_EQ(isolation("@@GLOBAL.tx_isolation"), "READ-COMMITTED");
  EXPECT_EQ(isolation("@@SESSION.tx_isolation"), "REPEATABLE-READ");
  auto killer = Connection::Open(e);
  ASSERT_TRUE(killer.ok());
  auto id = (*c)->QueryOne("SELECT CONNECTION_ID()");
  ASSERT_TRUE(id.ok() && *id);
  ASSERT_TRUE((*killer)->Run("KILL CONNECTION " + std::to_string((*id)->Int(0))).ok());
  auto lost = (*c)->QueryOne("SELECT 1");  // fails: the session is gone (not replayed)
  EXPECT_FALSE(lost.ok());
  EXPECT_EQ(isolation("@@SESSION.tx_isolation"), "REPEATABLE-READ");
  auto id2 = (*c)->QueryOne("SELECT CONNECTION_ID()");
  ASSERT_TRUE(id2.ok() && *id2);
  EXPECT_NE((*id2)->Int(0), (*id)->Int(0)) << "no reconnect happened";
}

// Verifies an error the server sends in the middle of an unbuffered result (here 1242: a
// scalar subquery that returns one row for the first rows and many for a later one) is
// reported with its errno and text, not as errno 0 with no message.
TEST(Mysql, ErrorInTheMiddleOfAResultIsReported) {
  MysqlEndpoint e = Shared();
  auto c = Connection::Open(e);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Run("CREATE TABLE mid_t(v INT NOT NULL PRIMARY KEY)").ok());
  std::vector<Params> rows;
  for (int v = 1; v <= 200; ++v) rows.push_back({v});
  auto batches = BuildBatches("INSERT INTO mid_t(v) VALUES ", "", 1, rows);
  ASSERT_TRUE(batches.ok());
  ASSERT_TRUE(ExecBatches(**c, *batches).ok());
  int seen = 0;
  Status s = (*c)->QueryEach(
      "SELECT t.v, (SELECT u.v FROM mid_t u WHERE u.v IN (?, t.v)) FROM mid_t t ORDER BY t.v", {1},
      [&](const Row&) {
        ++seen;
        return Status::Ok();
      });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ((*c)->last_errno(), 1242) << s.message();
  EXPECT_NE(s.message().find("(1242)"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("more than 1 row"), std::string::npos) << s.message();
  EXPECT_EQ(seen, 1) << "the error did not come after the first row";
  // The session stays usable.
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM mid_t"), 200);
}

// Verifies Migrate waits for the migration lock: while another session holds it, Migrate
// does not proceed, and it does once the holder releases it.
TEST(Mysql, MigrationWaitsForTheLockHolder) {
  MysqlEndpoint e = Shared();
  auto holder = Connection::Open(e);
  ASSERT_TRUE(holder.ok());
  auto got = (*holder)->QueryOne("SELECT GET_LOCK(?, 1)", {e.database + ".kg_migrate"});
  ASSERT_TRUE(got.ok() && *got && (*got)->Int(0) == 1);
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  std::atomic<bool> done{false};
  Status result;
  std::thread t([&] {
    result = Migrate(*pool, "waits", {{1, {"CREATE TABLE w_t(x INT)"}}});
    done = true;
  });
  // Waiting for something that must NOT happen: a fixed wait is the only way to observe it.
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(done.load()) << "Migrate ran while another session held the lock";
  ASSERT_TRUE((*holder)->QueryOne("SELECT RELEASE_LOCK(?)", {e.database + ".kg_migrate"}).ok());
  EXPECT_TRUE(testing::WaitFor([&] { return done.load(); }, 10s));
  t.join();
  EXPECT_TRUE(result.ok()) << result.message();
}

// Verifies a session killed in the middle of a transaction (KILL CONNECTION from another
// session) is recovered by InTransaction: it reconnects, re-prepares and replays the body,
// and the killed attempt's write is gone (rolled back by the server), so it lands once.
TEST(Mysql, InTransactionRecoversAKilledConnection) {
  MysqlEndpoint e = Shared();
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  auto killer = Connection::Open(e);
  ASSERT_TRUE(killer.ok());
  ASSERT_TRUE((*killer)->Run("CREATE TABLE k_t(id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))").ok());
  auto conn = pool->Borrow();
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  int attempts = 0;
  Status s = (*conn)->InTransaction([&](Connection& c) -> Status {
    ++attempts;
    KG_RETURN_IF_ERROR(c.Exec("INSERT INTO k_t(v) VALUES(?)", {"once"}).status());
    if (attempts == 1) {
      KG_ASSIGN_OR_RETURN(auto id, c.QueryOne("SELECT CONNECTION_ID()"));
      // KILL cannot be prepared; the id is the server's own integer, not input.
      EXPECT_TRUE(id && (*killer)->Run("KILL CONNECTION " + std::to_string(id->Int(0))).ok());
    }
    return c.Exec("UPDATE k_t SET v=? WHERE v=?", {"done", "once"}).status();
  });
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(Count(**killer, "SELECT COUNT(*) FROM k_t"), 1);
  EXPECT_EQ(Count(**killer, "SELECT COUNT(*) FROM k_t WHERE v='done'"), 1);
  // The same connection keeps working after the reconnect, with prepared statements again.
  auto after = (*conn)->QueryOne("SELECT COUNT(*) FROM k_t WHERE v=?", {"done"});
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ((**after).Int(0), 1);
}

// Verifies a deadlock (1213) is retried: two transactions lock two rows in opposite order,
// the server picks a victim, InTransaction runs it again, and both increments land once each.
TEST(Mysql, InTransactionRetriesDeadlocks) {
  MysqlEndpoint e = Shared();
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  {
    auto c = pool->Borrow();
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->Run("CREATE TABLE dl(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB").ok());
    ASSERT_TRUE((*c)->Exec("INSERT INTO dl VALUES (?,0),(?,0)", {1, 2}).ok());
  }
  std::atomic<int> locked{0}, attempts{0};
  auto body = [&](int first, int second) {
    return [&, first, second](Connection& c) -> Status {
      int a = ++attempts;
      KG_RETURN_IF_ERROR(c.Exec("UPDATE dl SET n=n+1 WHERE id=?", {first}).status());
      if (a <= 2) {  // both first attempts hold their first row before either takes its second
        ++locked;
        testing::WaitFor([&] { return locked.load() >= 2; }, 5s);
      }
      return c.Exec("UPDATE dl SET n=n+1 WHERE id=?", {second}).status();
    };
  };
  Status s1, s2;
  std::thread t1([&] { s1 = pool->InTransaction(body(1, 2)); });
  std::thread t2([&] { s2 = pool->InTransaction(body(2, 1)); });
  t1.join();
  t2.join();
  EXPECT_TRUE(s1.ok()) << s1.message();
  EXPECT_TRUE(s2.ok()) << s2.message();
  EXPECT_EQ(attempts.load(), 3) << "one victim, retried once";
  auto c = pool->Borrow();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Count(**c, "SELECT SUM(n) FROM dl"), 4);
}

// Verifies a lock wait timeout (1205, which rolls back only the statement) is retried after
// an explicit ROLLBACK: the attempt's earlier insert does not survive into the retry.
TEST(Mysql, InTransactionRollsBackALockWaitTimeoutBeforeRetrying) {
  MysqlEndpoint e = Shared();
  e.io_timeout_s = 3;  // lock waits end after 2 s
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  auto holder = Connection::Open(e);
  ASSERT_TRUE(holder.ok());
  Connection& h = **holder;
  ASSERT_TRUE(h.Run("CREATE TABLE lw(id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB").ok());
  ASSERT_TRUE(h.Run("CREATE TABLE lw_log(x INT NOT NULL) ENGINE=InnoDB").ok());
  ASSERT_TRUE(h.Exec("INSERT INTO lw VALUES (?,?)", {1, 0}).ok());
  ASSERT_TRUE(h.Run("START TRANSACTION").ok());
  ASSERT_TRUE(h.Exec("UPDATE lw SET n=10 WHERE id=?", {1}).ok());  // holds the row
  std::atomic<int> attempts{0};
  Status s;
  std::thread t([&] {
    s = pool->InTransaction([&](Connection& c) -> Status {
      ++attempts;
      KG_RETURN_IF_ERROR(c.Exec("INSERT INTO lw_log VALUES (?)", {1}).status());
      return c.Exec("UPDATE lw SET n=n+1 WHERE id=?", {1}).status();
    });
  });
  EXPECT_TRUE(testing::WaitFor([&] { return attempts.load() >= 2; }, 15s));
  ASSERT_TRUE(h.Run("COMMIT").ok());
  t.join();
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Count(h, "SELECT n FROM lw WHERE id=1"), 11);
  EXPECT_EQ(Count(h, "SELECT COUNT(*) FROM lw_log"), 1) << "a timed-out attempt's insert was committed";
}

// Verifies a body's own error rolls back and is returned without a retry.
TEST(Mysql, InTransactionRollsBackOtherErrors) {
  auto pool = OpenPool(Shared());
  ASSERT_TRUE(pool);
  auto c = pool->Borrow();
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Run("CREATE TABLE rb(x INT) ENGINE=InnoDB").ok());
  int attempts = 0;
  Status s = (*c)->InTransaction([&](Connection& db) -> Status {
    ++attempts;
    KG_RETURN_IF_ERROR(db.Exec("INSERT INTO rb VALUES (?)", {1}).status());
    return Status::Conflict("fenced");
  });
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM rb"), 0);
  // Nesting would commit the outer transaction early: refused.
  Status nested = (*c)->InTransaction([](Connection& db) {
    return db.InTransaction([](Connection& inner) { return inner.Exec("INSERT INTO rb VALUES (?)", {2}).status(); });
  });
  EXPECT_EQ(nested.code(), Code::kInternal) << nested.message();
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM rb"), 0);
}

// Verifies the pool's hard cap: at most pool_size connections exist, a borrow beyond waits
// until its deadline (kUnavailable) or until one comes back, and the counts say so.
TEST(Mysql, PoolHasAHardCap) {
  MysqlEndpoint e = Shared();
  e.pool_size = 2;
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  {
    auto a = pool->Borrow();
    auto b = pool->Borrow();
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(pool->stats().in_use, 2);
    EXPECT_EQ(pool->stats().open, 2);
    auto t0 = MonoMs();
    auto c = pool->Borrow(200ms);
    EXPECT_EQ(c.status().code(), Code::kUnavailable);
    EXPECT_GE(MonoMs() - t0, 190);
    EXPECT_NE(c.status().message().find("2 of 2 connections in use"), std::string::npos) << c.status().message();
    EXPECT_EQ(pool->stats().borrow_timeouts, 1);
    std::thread giver([a = std::move(*a)]() mutable {
      std::this_thread::sleep_for(100ms);
      a = PooledConnection();  // gives it back
    });
    auto d = pool->Borrow(5s);
    EXPECT_TRUE(d.ok()) << d.status().message();
    giver.join();
  }
  EXPECT_EQ(pool->stats().in_use, 0);
  // Many threads, few connections: the cap holds and every call completes.
  std::atomic<int> peak{0}, failures{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&] {
      for (int k = 0; k < 20; ++k) {
        auto c = pool->Borrow(10s);
        if (!c.ok()) {
          ++failures;
          continue;
        }
        int open = pool->stats().open;
        int p = peak.load();
        while (open > p && !peak.compare_exchange_weak(p, open)) {
        }
        if (!(*c)->QueryOne("SELECT ?", {k}).ok()) ++failures;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(peak.load(), 2);
}

// Verifies multi-row statements: placeholders are text, values bound (a value that looks
// like SQL stays a value); batches are cut by the byte budget into power-of-two row counts;
// an upsert of many rows is few statements and lands every row.
TEST(Mysql, BatchesSplitByBudgetAndUpsert) {
  std::vector<Params> rows;
  for (int i = 0; i < 1000; ++i) rows.push_back({i, "v'),(" + std::to_string(i) + ",'x"});
  auto small = BuildBatches("INSERT INTO bt(id,v) VALUES ", " ON DUPLICATE KEY UPDATE v=VALUES(v)", 2, rows, 2000);
  ASSERT_TRUE(small.ok());
  size_t total = 0;
  for (const Batch& b : *small) {
    EXPECT_EQ(b.rows & (b.rows - 1), 0u) << "power of two: " << b.rows;
    EXPECT_LE(b.sql.size() + b.rows * 2 * 9 + b.rows * 12, 2000u + 200u);
    EXPECT_EQ(b.params.size(), b.rows * 2);
    total += b.rows;
  }
  EXPECT_EQ(total, 1000u);
  EXPECT_GT(small->size(), 10u);
  EXPECT_EQ(BuildBatches("x", "", 3, rows).status().code(), Code::kInternal) << "rows of the wrong width";
  std::vector<Params> huge = {{1, std::string(5u << 20, 'h')}, {2, "s"}};
  auto split = BuildBatches("h", "", 2, huge);
  ASSERT_TRUE(split.ok());
  EXPECT_EQ(split->size(), 2u) << "a row over the budget goes alone";

  auto c = Connection::Open(Shared());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Run("CREATE TABLE bt(id INT PRIMARY KEY, v VARCHAR(40) NOT NULL) ENGINE=InnoDB").ok());
  auto batches = BuildBatches("INSERT INTO bt(id,v) VALUES ", " ON DUPLICATE KEY UPDATE v=VALUES(v)", 2, rows);
  ASSERT_TRUE(batches.ok());
  EXPECT_LE(batches->size(), 10u) << "1000 rows in a handful of statements";
  auto affected = ExecBatches(**c, *batches);
  ASSERT_TRUE(affected.ok()) << affected.status().message();
  EXPECT_EQ(*affected, 1000u);
  EXPECT_EQ(Count(**c, "SELECT COUNT(*) FROM bt"), 1000);
  auto v = (*c)->QueryOne("SELECT v FROM bt WHERE id=?", {7});
  ASSERT_TRUE(v.ok() && *v);
  EXPECT_EQ((*v)->Str(0), "v'),(7,'x");
}

// Verifies a stopped server gives kUnavailable within a deadline (not a hang), is logged as
// one outage however many calls fail, and the pool recovers once a server is back on the
// same port with the same data.
TEST(Mysql, StoppedServerIsUnavailableAndThePoolRecovers) {
  testing::TempDir dir;
  testing::ServerProcess server = testing::StartServer("mariadb", dir.path() + "/m");
  ASSERT_GT(server.port, 0);
  MysqlEndpoint e = EndpointOf(server, "outage");
  e.connect_timeout_ms = 1000;
  e.io_timeout_s = 5;
  auto pool = OpenPool(e);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->InTransaction([](Connection& c) -> Status {
    KG_RETURN_IF_ERROR(c.Run("CREATE TABLE kept(x INT)"));
    return c.Exec("INSERT INTO kept VALUES (?)", {42}).status();
  }).ok());
  EXPECT_FALSE(Outages(e).down);

  testing::StopServer(server);
  for (int i = 0; i < 5; ++i) {
    auto t0 = MonoMs();
    Status s = pool->InTransaction([](Connection& c) { return c.Exec("INSERT INTO kept VALUES (?)", {1}).status(); });
    EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
    EXPECT_LT(MonoMs() - t0, 8000) << "a stopped server must fail fast";
    auto b = pool->Borrow(1s);
    EXPECT_EQ(b.status().code(), Code::kUnavailable);
  }
  EXPECT_TRUE(Outages(e).down);
  EXPECT_EQ(Outages(e).outages, 1) << "one outage, however many failed calls";
  EXPECT_LE(pool->stats().open, e.pool_size);

  testing::ServerProcess again = testing::StartServer("mariadb", dir.path() + "/m", server.port);
  ASSERT_EQ(again.port, server.port);
  int64_t seen = -1;
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        auto c = pool->Borrow(1s);
        if (!c.ok()) return false;
        auto r = (*c)->QueryOne("SELECT SUM(x) FROM kept");
        if (!r.ok() || !*r) return false;
        seen = (*r)->Int(0);
        return true;
      },
      20s));
  EXPECT_EQ(seen, 42) << "the data survived the restart and the failed inserts left nothing";
  EXPECT_FALSE(Outages(e).down);
  EXPECT_EQ(Outages(e).outages, 1);
  testing::StopServer(again);
}

}  // namespace
}  // namespace kg::mysql
