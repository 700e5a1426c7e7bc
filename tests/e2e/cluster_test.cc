// A cluster on loopback, as the seed deploys it: a real redis-server (queue) and a real mariadbd
// (tasks and graph), one `web` node and `worker` nodes, each a separate process tree with its own
// name and data dir. Nodes are killed with real signals and the servers restarted by pid.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "queue/queue.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::Node;
using testing::ServerProcess;
using testing::TempDir;
using testing::WaitFor;

class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    // Append-only file, fsync always: a restarted Redis has what it acknowledged.
    redis_ = testing::StartServer("redis", dir_.path() + "/redis", 0, {{"KG_TEST_REDIS_AOF", "1"}});
    mysql_ = testing::StartServer("mariadb", dir_.path() + "/mariadb");
    ASSERT_GT(redis_.port, 0);
    ASSERT_GT(mysql_.port, 0);
    testing::WriteFile(dir_.File("kg.toml"), "[providers.slow]\ndelay_ms = 400\n");
  }
  void TearDown() override {
    nodes_.clear();
    testing::StopServer(redis_);
    testing::StopServer(mysql_);
  }

  std::map<std::string, std::string> Env(const std::string& role, const std::string& name) {
    return {{"NODE_ROLE", role},
            {"KG_WORKER_NODE_NAME", name},
            {"REDIS_HOST", "127.0.0.1"},
            {"REDIS_PORT", std::to_string(redis_.port)},
            {"DB_HOST", "127.0.0.1"},
            {"DB_PORT", std::to_string(mysql_.port)},
            {"DB_USER", testing::kMysqlUser},
            {"DB_PASSWORD", testing::kMysqlPassword},
            {"DB_NAME", "kgflow"},
            {"KG_CONFIG", dir_.File("kg.toml")},
            {"KG_HEARTBEAT_SECONDS", "1"},
            {"KG_LEASE_SECONDS", "3"},
            {"KG_WORKERS_PER_PROVIDER", "2"},
            {"KG_CONCURRENCY_PER_PROCESS", "2"},
            {"KG_LOG_LEVEL", "warn"}};
  }
  // A node with a data dir of its own; kept until the test ends (or Kill).
  Node& Start(const std::string& role, const std::string& name, std::map<std::string, std::string> extra = {}) {
    auto env = Env(role, name);
    for (auto& [k, v] : extra) env[k] = v;
    node_dirs_.push_back(std::make_unique<TempDir>());
    nodes_.push_back(std::make_unique<Node>(*node_dirs_.back(), env, std::vector<std::string>{"start"}));
    return *nodes_.back();
  }

  // Submits documents [from, to) through `web`; returns the task ids.
  std::vector<std::string> Submit(Node& web, int from, int to) {
    std::vector<std::string> ids;
    for (int i = from; i < to; ++i) {
      json body = {{"text", testing::DocumentText(i)}, {"title", "doc " + std::to_string(i)}, {"provider", "slow"}};
      auto r = web.http().Post("/api/v1/tasks", body.dump(), "application/json");
      EXPECT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
      if (r && r->status == 202) ids.push_back(json::parse(r->body)["id"]);
    }
    return ids;
  }
  // Statuses of `ids` through `web` ("" for a task the node could not answer about).
  std::map<std::string, int> Statuses(Node& web, const std::vector<std::string>& ids) {
    std::map<std::string, int> by_status;
    for (const auto& id : ids) {
      json t = web.Get("/api/v1/tasks/" + id);
      ++by_status[t.is_null() ? "" : t["status"].get<std::string>()];
    }
    return by_status;
  }
  bool AllDone(Node& web, const std::vector<std::string>& ids, std::chrono::seconds within) {
    std::map<std::string, int> last;
    bool done = WaitFor([&] {
      last = Statuses(web, ids);
      return last["done"] == static_cast<int>(ids.size());
    }, within);
    if (!done) {
      for (auto& [s, n] : last) ADD_FAILURE() << "status '" << s << "': " << n;
    }
    return done;
  }
  // SIGKILL a node and every worker process it started (each in its group).
  static void KillTree(Node& n) {
    auto workers = n.Workers();
    kill(-n.proc().pid(), SIGKILL);
    for (auto& [pid, provider] : workers) kill(-pid, SIGKILL), kill(pid, SIGKILL);
    n.proc().Wait(10s);
  }
  // Names under "nodes" (live) and "down" of a /api/v1/workers answer.
  static std::set<std::string> Names(const json& w, const char* list) {
    std::set<std::string> out;
    if (!w.is_null()) {
      for (const auto& n : w[list]) out.insert(n["name"].get<std::string>());
    }
    return out;
  }
  // The graph an embedded single node builds from documents [0, n).
  json EmbeddedGraph(int n) {
    TempDir d;
    Node single(d, {{"KG_CONFIG", dir_.File("kg.toml")}, {"KG_LOG_LEVEL", "warn"}});
    EXPECT_TRUE(single.ready()) << single.proc().Stderr();
    auto ids = Submit(single, 0, n);
    EXPECT_TRUE(AllDone(single, ids, 120s));
    return testing::GraphOf(single);
  }

  TempDir dir_;
  ServerProcess redis_, mysql_;
  std::vector<std::unique_ptr<TempDir>> node_dirs_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

// Verifies the seed's layout across processes: a web node and two worker nodes sharing Redis and
// MariaDB; one worker node's whole tree SIGKILLed mid-run; every task still reaches done, the graph
// equals the one an embedded single node builds from the same input (nothing lost, nothing applied
// twice), and the dead node leaves the live nodes of /api/v1/workers within its TTL (2 beats).
TEST_F(Cluster, WorkerNodeKilledMidRunLosesNothing) {
  constexpr int kDocs = 200;
  Node& web = Start("web", "web1");
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  Node& w1 = Start("worker", "w1");
  Node& w2 = Start("worker", "w2");
  ASSERT_TRUE(w1.ready()) << w1.proc().Stderr();
  ASSERT_TRUE(w2.ready()) << w2.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return Names(web.Get("/api/v1/workers"), "nodes").count("w2") == 1; }, 15s));
  auto ids = Submit(web, 0, kDocs);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kDocs));
  // Mid-run: some documents merged, most not (one request: 200 task reads take seconds under ASan).
  auto merged = [&] {
    json st = web.Get("/api/v1/graph/stats");
    return st.is_null() ? -1 : st["chunks"].get<int>();
  };
  ASSERT_TRUE(WaitFor([&] { return merged() >= 20; }, 60s));
  ASSERT_LT(merged(), kDocs - 20) << "the run ended before the kill; make it longer";
  ASSERT_FALSE(w1.Workers().empty());
  // The queue itself, as the nodes see it: which chunks w1's workers hold.
  auto queue = OpenRedisQueue(testing::RedisAt(redis_), QueueOptions{});
  ASSERT_TRUE(queue.ok()) << queue.status().message();
  auto held_by = [&](const std::string& prefix) {
    std::set<std::string> held;
    for (const auto& id : ids) {
      auto chunks = (*queue)->ListChunks(id);
      if (!chunks.ok()) continue;
      for (const auto& c : *chunks) {
        if (c.state == ChunkState::kLeased && c.owner.rfind(prefix, 0) == 0) held.insert(c.id);
      }
    }
    return held;
  };
  ASSERT_TRUE(WaitFor([&] { return !held_by("w1/").empty(); }, 30s));
  KillTree(w1);
  auto killed_at = std::chrono::steady_clock::now();
  // Read after the kill: a chunk w1 finished between a look and the kill is not orphaned. Its
  // lease (3 s) has not expired yet.
  std::set<std::string> orphaned = held_by("w1/");
  ASSERT_FALSE(orphaned.empty()) << "w1 held nothing when it was killed";
  // Out of the live nodes once its TTL (2 beats of 1 s) passed, listed as down (10 s: a loaded machine).
  ASSERT_TRUE(WaitFor([&] {
    json w = web.Get("/api/v1/workers");
    return Names(w, "nodes").count("w1") == 0 && Names(w, "down").count("w1") == 1;
  }, 10s));
  auto gone_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
  RecordProperty("left_nodes_after_ms", static_cast<int>(gone_ms.count()));  // a figure, not a timed assertion
  ASSERT_TRUE(AllDone(web, ids, 180s));
  // What w1 held ran again elsewhere: done, after a second lease (the expired one counted).
  for (const auto& id : orphaned) {
    auto c = (*queue)->Get(id);
    ASSERT_TRUE(c.ok()) << id << ": " << c.status().message();
    EXPECT_EQ(c->state, ChunkState::kDone) << id;
    EXPECT_GE(c->attempts, 2) << id;
    EXPECT_EQ(c->owner.rfind("w1/", 0), std::string::npos) << id << " finished by " << c->owner;
  }
  RecordProperty("chunks_rerun_after_kill", static_cast<int>(orphaned.size()));
  json cluster = testing::GraphOf(web);
  json single = EmbeddedGraph(kDocs);
  ASSERT_FALSE(cluster.is_null());
  EXPECT_GT(cluster["entities"].size(), 10u);
  EXPECT_EQ(testing::GraphDiff(cluster, single), "") << "the cluster's graph differs from an embedded node's";
}

// Verifies a restart of Redis, then of MariaDB, in the middle of a run: nodes stay up (/healthz
// 200, /readyz 503 while a backend is away), every worker consumes again after the reconnect (the
// Celery bug: alive but never consuming), a graph-store outage costs no chunk an attempt (none is
// dead-lettered with 2 attempts allowed), and every task completes with the graph an embedded node
// builds (no chunk lost, none applied twice in effect).
TEST_F(Cluster, RedisThenMariaDbRestartMidRun) {
  constexpr int kDocs = 120;
  Node& web = Start("web", "web1");
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  // Two attempts only: a worker that charged the graph store's outage to its chunks quickly would
  // dead-letter them within the outage below.
  Node& w1 = Start("worker", "w1", {{"KG_MAX_ATTEMPTS", "2"}});
  ASSERT_TRUE(w1.ready()) << w1.proc().Stderr();
  auto ids = Submit(web, 0, kDocs / 2);
  ASSERT_TRUE(WaitFor([&] { return Statuses(web, ids)["done"] >= 10; }, 60s));

  testing::StopServer(redis_);
  EXPECT_TRUE(WaitFor([&] {
    auto r = web.http().Get("/readyz");
    return r && r->status == 503 && r->body.find("queue") != std::string::npos;
  }, 15s));
  auto health = web.http().Get("/healthz");
  EXPECT_TRUE(health && health->status == 200);
  redis_ = testing::StartServer("redis", redis_.dir, redis_.port, {{"KG_TEST_REDIS_AOF", "1"}});
  ASSERT_GT(redis_.pid, 0);
  ASSERT_TRUE(WaitFor([&] {
    auto r = web.http().Get("/readyz");
    return r && r->status == 200;
  }, 30s));
  // Work queued after the reconnect is consumed too (a worker that never consumes again fails here).
  auto more = Submit(web, kDocs / 2, kDocs);
  ids.insert(ids.end(), more.begin(), more.end());
  ASSERT_TRUE(WaitFor([&] { return Statuses(web, ids)["done"] >= kDocs / 2 + 10; }, 60s));

  testing::StopServer(mysql_);
  EXPECT_TRUE(WaitFor([&] {
    auto r = web.http().Get("/readyz");
    return r && r->status == 503;
  }, 15s));
  // While the graph store is away (6 s), no chunk is dead-lettered although 2 attempts are all a
  // chunk has: a merge meeting the outage retries inside the store (up to about a minute) and, past
  // that, the worker gives the chunk back without an attempt (not reached in 6 s).
  auto queue = OpenRedisQueue(testing::RedisAt(redis_), QueueOptions{});
  ASSERT_TRUE(queue.ok()) << queue.status().message();
  EXPECT_FALSE(WaitFor([&] {
    auto d = (*queue)->Depths();
    return d.ok() && d->count("slow") && d->at("slow").dead > 0;
  }, 6s)) << "chunks were dead-lettered during the MySQL outage";
  health = web.http().Get("/healthz");
  EXPECT_TRUE(health && health->status == 200);
  mysql_ = testing::StartServer("mariadb", mysql_.dir, mysql_.port);
  ASSERT_GT(mysql_.pid, 0);
  ASSERT_TRUE(AllDone(web, ids, 180s));
  EXPECT_TRUE(w1.proc().Signal(0)) << "the worker node died in the outage\n" << w1.proc().Stderr();
  EXPECT_EQ(testing::GraphDiff(testing::GraphOf(web), EmbeddedGraph(kDocs)), "");
}

// Verifies node names are unique across the cluster: a node with the name of a live node (on
// another host: another UTS namespace) is refused with exit 2 naming the holder; once the holder
// is SIGKILLed and its heartbeat is stale, the name is free.
TEST_F(Cluster, LiveNodeNameIsRefusedClusterWide) {
  Node& first = Start("worker", "shared-name");
  ASSERT_TRUE(first.ready()) << first.proc().Stderr();
  // Another host: the same binary in a UTS namespace with a hostname of its own.
  auto env = Env("worker", "shared-name");
  TempDir other;
  env["KG_DATA_DIR"] = other.path() + "/data";
  env["KG_HEALTH_ADDR"] = "127.0.0.1:" + std::to_string(testing::FreePort());
  std::vector<std::string> args = {"/usr/bin/unshare", "--uts", "sh", "-c",
                                   "hostname kg-other-host && exec " + testing::KgflowBinary() + " start"};
  auto refused = testing::RunToEnd(args, other.path(), env, 30s);
  EXPECT_EQ(refused.code, 2) << refused.err;
  EXPECT_NE(refused.err.find("shared-name"), std::string::npos) << refused.err;
  KillTree(first);
  auto killed_at = std::chrono::steady_clock::now();
  // Once the dead holder's heartbeat is stale (2 beats of 1 s), the other host takes the name: each
  // try either is refused at once (exit 2) or becomes ready.
  int port = std::stoi(env["KG_HEALTH_ADDR"].substr(std::string("127.0.0.1:").size()));
  std::unique_ptr<testing::Process> second;
  int tries = 0;
  ASSERT_TRUE(WaitFor([&] {
    ++tries;
    second = std::make_unique<testing::Process>(args, env, other.path());
    bool ready = WaitFor([&] {
      auto r = httplib::Client("127.0.0.1", port).Get("/readyz");
      return (r && r->status == 200) || second->Wait(0ms) != -1;
    }, 20s);
    return ready && !second->Exited();
  }, 30s)) << second->Stderr();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
  RecordProperty("name_free_after_ms", static_cast<int>(took.count()));
  RecordProperty("tries", tries);
  second->Signal(SIGTERM);
  EXPECT_NE(second->Wait(30s), -1);
}

// Verifies scaling is shared: PUT /api/v1/providers/{name}/processes on the web node reaches every
// worker node (another process tree, sharing only MySQL) within a few beats, up and down, and
// DELETE brings every node back to its configuration.
TEST_F(Cluster, ScalingOnTheWebNodeReachesEveryWorkerNode) {
  Node& web = Start("web", "web1");
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  Node& w1 = Start("worker", "w1");
  Node& w2 = Start("worker", "w2");
  ASSERT_TRUE(w1.ready() && w2.ready()) << w1.proc().Stderr() << w2.proc().Stderr();
  auto runs = [&](Node& n, size_t count) { return WaitFor([&] { return n.Workers().size() == count; }, 15s); };
  ASSERT_TRUE(runs(w1, 2) && runs(w2, 2));  // KG_WORKERS_PER_PROVIDER
  auto put = web.http().Put("/api/v1/providers/slow/processes", R"({"per_node": 3})", "application/json");
  ASSERT_TRUE(put && put->status == 200) << (put ? put->body : "no answer");
  auto asked = std::chrono::steady_clock::now();
  EXPECT_TRUE(runs(w1, 3)) << w1.Workers().size();
  EXPECT_TRUE(runs(w2, 3)) << w2.Workers().size();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - asked);
  RecordProperty("scale_reached_ms", static_cast<int>(took.count()));
  auto del = web.http().Delete("/api/v1/providers/slow/processes");
  ASSERT_TRUE(del && del->status == 200) << (del ? del->body : "no answer");
  EXPECT_TRUE(runs(w1, 2)) << w1.Workers().size();
  EXPECT_TRUE(runs(w2, 2)) << w2.Workers().size();
}

// Verifies a queue that lost its data (Redis restarted with its files gone) is reported, not hidden:
// an unfinished task whose chunks the queue no longer knows shows "failed" with an error saying the
// queue lost them and to resubmit, instead of "queued" forever; and a node starting on a Redis that
// runs without an append-only file warns that a restart empties the queue.
TEST_F(Cluster, TasksWhoseChunksRedisLostSaySo) {
  Node& web = Start("web", "web1");
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  auto ids = Submit(web, 0, 3);  // no worker node: they stay queued
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(web.Get("/api/v1/tasks/" + ids[0])["status"], "queued");
  testing::StopServer(redis_);
  std::filesystem::remove_all(redis_.dir);
  redis_ = testing::StartServer("redis", redis_.dir, redis_.port);
  ASSERT_GT(redis_.pid, 0);
  json t;
  ASSERT_TRUE(WaitFor([&] {
    t = web.Get("/api/v1/tasks/" + ids[0]);
    return !t.is_null() && t["status"] == "failed";
  }, 30s)) << t;
  EXPECT_NE(t["error"].get<std::string>().find("the queue holds none of this task's 1 chunks"), std::string::npos) << t;
  // A node starting on a Redis without its append-only file says what that risks; one on the
  // durable server (the web node, started before) said nothing.
  EXPECT_EQ(web.proc().Stderr().find("append-only"), std::string::npos) << web.proc().Stderr();
  Node& late = Start("worker", "w-late");
  ASSERT_TRUE(late.ready()) << late.proc().Stderr();
  EXPECT_NE(late.proc().Stderr().find("runs without its append-only file: a restart empties the queue"),
            std::string::npos) << late.proc().Stderr();
}

// Verifies a refused login is a configuration error: a node with a wrong DB_PASSWORD, or a
// REDIS_PASSWORD the server refuses, exits 2 at once (no waiting for an "outage" that will not pass)
// naming what to check, and never prints the password.
TEST_F(Cluster, RefusedCredentialsExitTwoAtOnce) {
  TempDir d;
  auto env = Env("all", "bad-login");
  env["KG_DATA_DIR"] = d.path() + "/data";
  env["KG_HTTP_ADDR"] = "127.0.0.1:" + std::to_string(testing::FreePort());
  env["DB_PASSWORD"] = "wrong-db-secret";
  auto db = testing::RunToEnd({"start"}, d.path(), env, 20s);
  EXPECT_EQ(db.code, 2) << db.err;
  EXPECT_NE(db.err.find("(1045)"), std::string::npos) << db.err;
  EXPECT_EQ(db.err.find("wrong-db-secret"), std::string::npos) << db.err;
  env["DB_PASSWORD"] = testing::kMysqlPassword;
  env["REDIS_PASSWORD"] = "wrong-redis-secret";
  auto redis = testing::RunToEnd({"start"}, d.path(), env, 20s);
  EXPECT_EQ(redis.code, 2) << redis.err;
  EXPECT_NE(redis.err.find("check REDIS_PASSWORD"), std::string::npos) << redis.err;
  EXPECT_EQ(redis.err.find("wrong-redis-secret"), std::string::npos) << redis.err;
}

}  // namespace
}  // namespace kg
