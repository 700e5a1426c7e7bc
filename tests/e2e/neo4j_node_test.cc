// A node whose graph is a real Neo4j 5 (NEO4J_URI): several worker processes merging the same
// entities at once, against an embedded node given the same documents; the Bolt connections it
// holds against its budget; its configuration errors.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bolt/bolt.h"
#include "http/client.h"
#include "testing/neo4j.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::Node;
using testing::TempDir;
using testing::WaitFor;

// One query on a connection of the test's own, its first column of the first row as an
// integer (-1 on failure, with the failure reported).
int64_t Scalar(const std::string& cypher) {
  auto c = bolt::Connection::Open(testing::Neo4jAt(testing::SharedNeo4j()));
  if (!c.ok()) {
    ADD_FAILURE() << c.status().message();
    return -1;
  }
  auto r = (*c)->Run(cypher);
  if (!r.ok() || r->records.empty() || r->records[0].empty()) {
    ADD_FAILURE() << cypher << ": " << (r.ok() ? "no row" : r.status().message());
    return -1;
  }
  return r->records[0][0].AsInt();
}

// Client sockets connected to `port` on this host (ESTABLISHED in /proc/net/tcp and tcp6, by
// remote port): the Bolt connections every process here holds to the test's Neo4j. Counted by
// local address: a table read while sockets come and go may list one twice.
int ConnectionsTo(int port) {
  std::set<std::string> seen;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string slot, local, remote, state;
      f >> slot >> local >> remote >> state;
      auto colon = remote.rfind(':');
      if (colon == std::string::npos || state != "01") continue;
      if (std::stoi(remote.substr(colon + 1), nullptr, 16) == port) seen.insert(local);
    }
  }
  return static_cast<int>(seen.size());
}

class Neo4jNode : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& server = testing::SharedNeo4j();
    ASSERT_GT(server.port, 0);
    port_ = server.port;
    // The shared server's one database is this test's alone (RESOURCE_LOCK neo4j): start empty.
    testing::ClearNeo4j(server);
    ASSERT_EQ(Scalar("MATCH (n) RETURN count(n)"), 0);
    testing::WriteFile(dir_.File("kg.toml"), "[providers.slow]\ndelay_ms = 20\n");
  }

  std::map<std::string, std::string> Env() {
    return {{"NEO4J_URI", "bolt://127.0.0.1:" + std::to_string(port_)},
            {"NEO4J_USER", testing::kNeo4jUser},
            {"NEO4J_PASSWORD", testing::kNeo4jPassword},
            {"KG_CONFIG", dir_.File("kg.toml")},
            {"KG_LOG_LEVEL", "info"}};
  }

  std::vector<std::string> Submit(Node& n, int from, int to) {
    std::vector<std::string> ids;
    for (int i = from; i < to; ++i) {
      json body = {{"text", testing::DocumentText(i)}, {"title", "doc " + std::to_string(i)}, {"provider", "slow"}};
      auto r = n.http().Post("/api/v1/tasks", body.dump(), "application/json");
      EXPECT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
      if (r && r->status == 202) ids.push_back(json::parse(r->body)["id"]);
    }
    return ids;
  }

  // True once every task is done; a failed one fails the test with its error (a deadlock
  // that surfaced would show here).
  bool AllDone(Node& n, const std::vector<std::string>& ids, std::chrono::seconds within) {
    std::map<std::string, int> last;
    bool done = WaitFor([&] {
      last.clear();
      for (const auto& id : ids) {
        json t = n.Get("/api/v1/tasks/" + id);
        std::string status = t.is_null() ? "" : t["status"].get<std::string>();
        if (status == "failed") ADD_FAILURE() << "task " << id << " failed: " << t.dump();
        ++last[status];
      }
      return last["done"] == static_cast<int>(ids.size()) || last["failed"] > 0;
    }, within);
    for (auto& [s, count] : last) {
      if (s != "done") ADD_FAILURE() << count << " task(s) " << (s.empty() ? "unreadable" : s);
    }
    return done && last["done"] == static_cast<int>(ids.size());
  }

  TempDir dir_;
  int port_ = 0;
};

// Verifies a node with three worker processes, four chunks at once each, merging documents
// whose entities recur into Neo4j, finishes every task (no deadlock or lock error surfaces as a
// failure) and builds exactly the graph an embedded node builds from the same documents: every
// document, chunk, entity, mention, relation, evidence set and weight, through the same read
// endpoints (export, stats, search, an entity with its neighbours). Also that the Bolt
// connections held while it works never pass the node's budget.
TEST_F(Neo4jNode, WorkerProcessesOnNeo4jBuildTheEmbeddedGraph) {
  constexpr int kDocs = 40;
  TempDir neo_dir;
  auto env = Env();
  env["KG_WORKERS_PER_PROVIDER"] = "3";
  env["KG_MAX_TOTAL_PROCESSES"] = "3";
  env["KG_CONCURRENCY_PER_PROCESS"] = "4";
  env["KG_NEO4J_POOL_SIZE"] = "2";
  Node neo(neo_dir, env);
  ASSERT_TRUE(neo.ready()) << neo.proc().Stderr();
  TempDir emb_dir;
  Node embedded(emb_dir, {{"KG_CONFIG", dir_.File("kg.toml")}, {"KG_WORKERS_PER_PROVIDER", "1"},
                          {"KG_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(embedded.ready()) << embedded.proc().Stderr();

  auto neo_ids = Submit(neo, 0, kDocs);
  auto emb_ids = Submit(embedded, 0, kDocs);
  int most_connections = 0;
  bool done = WaitFor([&] {
    most_connections = std::max(most_connections, ConnectionsTo(port_));
    json w = neo.Get("/api/v1/graph/stats");
    return !w.is_null() && w["documents"] == kDocs;
  }, 180s);
  ASSERT_TRUE(done) << neo.proc().Stderr().substr(0, 4000);
  ASSERT_TRUE(AllDone(neo, neo_ids, 120s));
  ASSERT_TRUE(AllDone(embedded, emb_ids, 120s));

  json a = testing::GraphOf(neo), b = testing::GraphOf(embedded);
  EXPECT_EQ(testing::GraphDiff(a, b), "") << "Neo4j's graph differs from the embedded one";
  EXPECT_EQ(neo.Get("/api/v1/graph/stats"), embedded.Get("/api/v1/graph/stats"));
  // Descriptions aside (the first non-empty one merged wins: which chunk finished first).
  auto without_descriptions = [](json j) {
    if (j.contains("description")) j.erase("description");
    for (const char* list : {"entities", "neighbours"}) {
      if (!j.contains(list)) continue;
      for (auto& e : j[list]) {
        e.erase("description");
        if (e.contains("entity")) e["entity"].erase("description");
      }
    }
    return j;
  };
  for (const char* q : {"helix", "ALICE", "chen wei", "no such name"}) {
    std::string path = std::string("/api/v1/graph/entities?q=") + http::PercentEncode(q) + "&limit=50";
    json x = neo.Get(path);
    ASSERT_FALSE(x.is_null()) << q;
    EXPECT_EQ(without_descriptions(x), without_descriptions(embedded.Get(path))) << q;
  }
  for (const json& e : b["entities"]) {
    std::string key = e["key"];
    std::string path = "/api/v1/graph/entities/" + http::PercentEncode(key);
    json x = neo.Get(path);
    ASSERT_FALSE(x.is_null()) << key;
    EXPECT_EQ(without_descriptions(x), without_descriptions(embedded.Get(path))) << key;
  }

  // Budget: the API process and 3 worker processes, 2 connections each.
  auto m = neo.http().Get("/metrics");
  ASSERT_TRUE(m && m->status == 200);
  EXPECT_NE(m->body.find("\nkg_neo4j_connections_budget 8\n"), std::string::npos) << m->body.substr(0, 2000);
  ::testing::Test::RecordProperty("most_bolt_connections_seen", most_connections);
  EXPECT_GE(most_connections, 1);
  EXPECT_LE(most_connections, 8) << "the node held more Bolt connections than processes x KG_NEO4J_POOL_SIZE";
}

// Verifies submitting the same documents again (new tasks, newer lease generations) leaves
// the graph in Neo4j exactly as it was: no node, relationship or property more, nothing lost.
// The node reaches Neo4j by a neo4j:// URI (routing: the single server names itself the writer).
TEST_F(Neo4jNode, ResubmittingCreatesNothing) {
  constexpr int kDocs = 12;
  TempDir d;
  auto env = Env();
  env["NEO4J_URI"] = "neo4j://127.0.0.1:" + std::to_string(port_);
  env["KG_WORKERS_PER_PROVIDER"] = "2";
  Node neo(d, env);
  ASSERT_TRUE(neo.ready()) << neo.proc().Stderr();
  ASSERT_TRUE(AllDone(neo, Submit(neo, 0, kDocs), 120s));
  const int64_t nodes = Scalar("MATCH (n) RETURN count(n)");
  const int64_t rels = Scalar("MATCH ()-[r]->() RETURN count(r)");
  const int64_t props = Scalar("MATCH (n) RETURN sum(size(keys(n)))");
  json before = testing::GraphOf(neo);
  ASSERT_GT(nodes, kDocs);
  ASSERT_GT(rels, 0);

  ASSERT_TRUE(AllDone(neo, Submit(neo, 0, kDocs), 120s));
  EXPECT_EQ(Scalar("MATCH (n) RETURN count(n)"), nodes);
  EXPECT_EQ(Scalar("MATCH ()-[r]->() RETURN count(r)"), rels);
  EXPECT_EQ(Scalar("MATCH (n) RETURN sum(size(keys(n)))"), props);
  EXPECT_EQ(testing::GraphDiff(testing::GraphOf(neo), before), "");
}

// Verifies the start-up banner states the node's and the cluster's Bolt connection budget
// (processes x pool, summed over live nodes) and warns when it passes
// KG_NEO4J_MAX_CONNECTIONS, and that a second node sharing the registry raises the cluster's.
TEST_F(Neo4jNode, BudgetIsPrintedAndWarnedAbout) {
  TempDir d;
  auto env = Env();
  env["KG_DATA_DIR"] = d.File("data");  // both nodes share the embedded registry
  env["KG_MAX_TOTAL_PROCESSES"] = "4";
  env["KG_WORKERS_PER_PROVIDER"] = "1";
  env["KG_NEO4J_POOL_SIZE"] = "3";
  env["KG_NEO4J_MAX_CONNECTIONS"] = "20";
  env["KG_WORKER_NODE_NAME"] = "first";
  TempDir d1, d2;
  Node first(d1, env);
  ASSERT_TRUE(first.ready()) << first.proc().Stderr();
  std::string log = first.proc().Stderr() + first.proc().Stdout();
  EXPECT_NE(log.find("this node up to 15 (5 processes x KG_NEO4J_POOL_SIZE 3); the cluster up to 15 over 1 node(s)"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("more than KG_NEO4J_MAX_CONNECTIONS"), std::string::npos) << log;

  env["KG_WORKER_NODE_NAME"] = "second";
  Node second(d2, env);
  ASSERT_TRUE(second.ready()) << second.proc().Stderr();
  log = second.proc().Stderr() + second.proc().Stdout();
  EXPECT_NE(log.find("the cluster up to 30 over 2 node(s)"), std::string::npos) << log;
  EXPECT_NE(log.find("the cluster may open up to 30 Bolt connections (15 from this node), more than "
                     "KG_NEO4J_MAX_CONNECTIONS=20"),
            std::string::npos)
      << log;
}

// Verifies Neo4j stopping and coming back mid-run costs a pause, not a chunk: the node stays
// up (/readyz 503 while the graph is away), workers give back the chunks whose graph write met
// the outage without spending an attempt, the pools replace their dead connections, and every
// task ends done with exactly the graph an embedded node builds. A server of the test's own.
TEST_F(Neo4jNode, RestartMidRunLosesNothing) {
  constexpr int kDocs = 30;
  TempDir servers;
  testing::ScopedServer own{testing::StartServer("neo4j", servers.path() + "/neo4j")};
  ASSERT_GT(own.server.port, 0);
  TempDir d;
  auto env = Env();
  env["NEO4J_URI"] = "bolt://127.0.0.1:" + std::to_string(own.server.port);
  env["KG_WORKERS_PER_PROVIDER"] = "2";
  env["KG_MAX_ATTEMPTS"] = "2";  // an outage that cost attempts would dead-letter chunks
  testing::WriteFile(dir_.File("kg.toml"), "[providers.slow]\ndelay_ms = 150\n");
  Node neo(d, env);
  ASSERT_TRUE(neo.ready()) << neo.proc().Stderr();
  auto ids = Submit(neo, 0, kDocs);
  ASSERT_TRUE(WaitFor([&] {
    json s = neo.Get("/api/v1/graph/stats");
    return !s.is_null() && s["chunks"] >= 4;
  }, 60s));
  testing::StopServer(own.server);
  EXPECT_TRUE(WaitFor([&] {
    auto r = neo.http().Get("/readyz");
    return r && r->status == 503;
  }, 30s)) << "readyz kept answering 200 with the graph away";
  auto alive = neo.http().Get("/healthz");
  EXPECT_TRUE(alive && alive->status == 200);
  auto back = testing::StartServer("neo4j", own.server.dir, own.server.port);
  ASSERT_EQ(back.port, own.server.port);
  own.server = back;
  ASSERT_TRUE(AllDone(neo, ids, 180s)) << neo.proc().Stderr().substr(0, 4000);

  TempDir emb_dir;
  Node embedded(emb_dir, {{"KG_CONFIG", dir_.File("kg.toml")}, {"KG_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(embedded.ready());
  ASSERT_TRUE(AllDone(embedded, Submit(embedded, 0, kDocs), 120s));
  EXPECT_EQ(testing::GraphDiff(testing::GraphOf(neo), testing::GraphOf(embedded)), "");
}

// Verifies a wrong Neo4j password stops the node at once with exit code 2 and a message that
// names what to check, without the password in it.
TEST_F(Neo4jNode, RefusedPasswordExitsTwoAtOnce) {
  TempDir d;
  auto env = Env();
  env["NEO4J_PASSWORD"] = "not-the-secret-42";
  env["KG_DATA_DIR"] = d.File("data");
  env["KG_HTTP_ADDR"] = "127.0.0.1:0";
  auto run = testing::RunToEnd({"start"}, d.path(), env, 60s);
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_NE(run.err.find("NEO4J_PASSWORD"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("not-the-secret-42"), std::string::npos) << run.err;
  EXPECT_EQ(run.out.find("not-the-secret-42"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace kg
