// The Bolt client against a real Neo4j 5.26 (the run's shared server, or a private one).
#include "bolt/bolt.h"

#include <gtest/gtest.h>

#include <string>

#include "testing/servers.h"

namespace kg::bolt {
namespace {

using kg::testing::Neo4jAt;
using kg::testing::SharedNeo4j;

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

}  // namespace
}  // namespace kg::bolt
