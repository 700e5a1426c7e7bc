// /metrics of real nodes (`kgflow start` with builtin workers): the page is valid Prometheus
// text (our strict reader and promtool), every per-node family of the metrics contract is
// declared, and the series the supervisor and the queue own move as the node's processes
// and chunks do. The reporter rule between two nodes of one data dir.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <set>

#include "common/util.h"
#include "queue/queue.h"
#include "testing/prom_text.h"
#include "testing/testing.h"

namespace kg {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::Node;
using testing::TempDir;
using testing::Value;
using testing::WaitFor;

// The per-node families of the metrics contract (docs/operations.md, "Metrics") a node with
// embedded backends and the builtin provider always exports. Not here: a family with nothing to
// count has no series and is left off the page (kg_llm_requests_total before an LLM request,
// kg_store_connections* and kg_neo4j_* with embedded backends).
const std::vector<std::pair<std::string, std::string>> kPerNode = {
    {"kg_build_info", "gauge"},
    {"kg_ready", "gauge"},
    {"kg_process_start_time_seconds", "gauge"},
    {"kg_cluster_reporter", "gauge"},
    {"kg_process_cap", "gauge"},
    {"kg_worker_processes", "gauge"},
    {"kg_process_cap_usage_ratio", "gauge"},
    {"kg_provider_process_cap_usage_ratio", "gauge"},
    {"kg_worker_cpu_seconds_total", "counter"},
    {"kg_worker_rss_bytes", "gauge"},
    {"kg_worker_spawns_total", "counter"},
    {"kg_worker_restarts_total", "counter"},
    {"kg_worker_exits_total", "counter"},
    {"kg_provider_quarantined", "gauge"},
    {"kg_provider_quarantine_remaining_seconds", "gauge"},
    {"kg_chunks_total", "counter"},
    {"kg_chunk_duration_seconds", "histogram"},
    {"kg_tasks_submitted_total", "counter"},
    {"kg_tasks_finished_total", "counter"},
    {"kg_llm_tokens_total", "counter"},
    {"kg_llm_cost_total", "counter"},
    {"kg_llm_cache_hits_total", "counter"},
    {"kg_llm_rate_limit_waits_total", "counter"},
    {"kg_llm_rate_limit_wait_seconds_total", "counter"},
    {"kg_http_requests_total", "counter"},
};
const std::vector<std::string> kClusterWide = {"kg_queue_chunks", "kg_node_heartbeat_age_seconds", "kg_node_up",
                                               "kg_graph_nodes", "kg_graph_relations"};

std::string Page(Node& n) {
  auto r = n.http().Get("/metrics");
  EXPECT_TRUE(r && r->status == 200);
  return r ? r->body : "";
}

std::vector<testing::Sample> Samples(Node& n) {
  std::string page = Page(n);
  std::string error;
  auto s = testing::ParseMetrics(page, &error);
  EXPECT_EQ(error, "") << page;
  return s;
}

std::string Submit(Node& n, const std::string& text) {
  auto r = n.http().Post("/api/v1/tasks", json({{"text", text}}).dump(), "application/json");
  if (!r || r->status != 202) return "";
  return json::parse(r->body)["id"];
}

// Verifies the page of a node with workers is valid text format (strict reader; promtool check
// metrics, which also checks naming conventions, finds nothing), declares every per-node family
// of the contract with HELP and TYPE, and those of the cluster-wide series on the reporter.
TEST(Metrics, PageIsValidAndDeclaresEveryFamily) {
  TempDir dir;
  Node n(dir, {{"KG_WORKER_NODE_NAME", "solo"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return n.Workers().size() == 1; }, 10s));
  std::string id = Submit(n, "Mara Voss founded Helix Dynamics.");
  ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 20s));
  std::string page = Page(n);
  std::string error;
  testing::ParseMetrics(page, &error);
  ASSERT_EQ(error, "") << page;
  auto families = testing::Families(page, &error);
  EXPECT_EQ(error, "") << page;
  for (const auto& [name, type] : kPerNode) {
    ASSERT_TRUE(families.count(name)) << name << "\n" << page;
    EXPECT_FALSE(families[name].help.empty()) << name;
    EXPECT_EQ(families[name].type, type) << name;
  }
  for (const auto& name : kClusterWide) EXPECT_TRUE(families.count(name)) << name << " on the reporter";
  testing::WriteFile(dir.File("page.txt"), page);
  auto lint = testing::RunToEnd({"/bin/sh", "-c", "promtool check metrics < '" + dir.File("page.txt") + "'"},
                                dir.path(), {}, 30s);
  // promtool's naming lint (gauges without _total, units, counters with it) finds nothing.
  EXPECT_EQ(lint.out + lint.err, "") << "promtool lint findings";
  EXPECT_EQ(lint.code, 0);
}

// Verifies the series the supervisor and the queue own on a node with builtin workers: build
// info, ready, processes by state, cap ratios, CPU, submissions; a SIGKILLed worker moves
// kg_worker_exits_total{reason="crashed"} from 0 to 1 (and restarts, spawns); a chunk waiting out
// a retry backoff is counted as delayed, not ready; the single node reports the cluster series
// and its own heartbeat.
TEST(Metrics, NodeSeriesFollowProcessesAndQueue) {
  TempDir dir;
  const double before = std::floor(static_cast<double>(NowMs()) / 1000.0);
  Node n(dir, {{"KG_WORKER_NODE_NAME", "solo"}, {"KG_MAX_TOTAL_PROCESSES", "4"},
               {"KG_MAX_PROCESSES_PER_PROVIDER", "2"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  ASSERT_TRUE(WaitFor([&] { return n.Workers().size() == 1; }, 10s));
  const std::map<std::string, std::string> crashed = {{"provider", "builtin"}, {"reason", "crashed"}};
  auto s = Samples(n);
  EXPECT_EQ(Value(s, "kg_build_info", {{"version", KG_VERSION}, {"node", "solo"}, {"role", "all"}}), 1);
  EXPECT_EQ(Value(s, "kg_ready"), 1);
  auto started = Value(s, "kg_process_start_time_seconds");
  ASSERT_TRUE(started.has_value());
  EXPECT_GE(*started, before) << "the node's own start, not an earlier one";
  EXPECT_LE(*started, static_cast<double>(NowMs()) / 1000.0);
  EXPECT_EQ(Value(s, "kg_cluster_reporter"), 1);
  EXPECT_EQ(Value(s, "kg_worker_exits_total", crashed), 0) << "exported from the start";
  EXPECT_EQ(Value(s, "kg_worker_exits_total", {{"provider", "builtin"}, {"reason", "stopped"}}), 0);
  EXPECT_EQ(Value(s, "kg_worker_restarts_total", {{"provider", "builtin"}}), 0);
  EXPECT_EQ(Value(s, "kg_worker_spawns_total", {{"provider", "builtin"}}), 1);
  EXPECT_EQ(Value(s, "kg_provider_quarantined", {{"provider", "builtin"}}), 0);
  EXPECT_EQ(Value(s, "kg_process_cap_usage_ratio"), 0.25);
  EXPECT_EQ(Value(s, "kg_provider_process_cap_usage_ratio", {{"provider", "builtin"}}), 0.5);
  EXPECT_EQ(Value(s, "kg_worker_processes", {{"provider", "builtin"}, {"state", "busy"}}), 0);
  EXPECT_EQ(Value(s, "kg_node_up", {{"node", "solo"}}), 1);
  // Enough text that the worker uses CPU time the kernel sees (it counts in 10 ms ticks).
  std::string large;
  for (int i = 0; i < 400; ++i) large += testing::DocumentText(i) + "\n";
  std::vector<std::string> ids = {Submit(n, large), Submit(n, testing::DocumentText(1000)),
                                  Submit(n, testing::DocumentText(1001))};
  for (const auto& id : ids) ASSERT_FALSE(id.empty());
  EXPECT_EQ(Value(Samples(n), "kg_tasks_submitted_total"), 3);
  pid_t victim = n.Workers().begin()->first;
  const std::map<std::string, std::string> mine = {{"provider", "builtin"},
                                                   {"pid", std::to_string(victim)}};
  for (const auto& id : ids) {
    ASSERT_TRUE(WaitFor([&] { return n.Get("/api/v1/tasks/" + id)["status"] == "done"; }, 60s));
  }
  // Sampled every 2 s while busy, 10 s while idle.
  ASSERT_TRUE(WaitFor([&] { return Value(Samples(n), "kg_worker_cpu_seconds_total", mine) > 0; },
                      20s))
      << Page(n);
  EXPECT_GT(Value(Samples(n), "kg_worker_rss_bytes", mine), 1 << 20);
  // Its tasks are done before the worker's "idle" line reaches the supervisor: wait for it.
  EXPECT_TRUE(WaitFor(
      [&] { return Value(Samples(n), "kg_worker_processes", {{"provider", "builtin"}, {"state", "idle"}}) == 1; },
      10s))
      << Page(n);

  ASSERT_EQ(kill(victim, SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return Value(Samples(n), "kg_worker_exits_total", crashed) == 1; }, 10s)) << Page(n);
  ASSERT_TRUE(WaitFor(
      [&] { return Value(Samples(n), "kg_worker_spawns_total", {{"provider", "builtin"}}) == 2; },
      10s));
  s = Samples(n);
  EXPECT_EQ(Value(s, "kg_worker_restarts_total", {{"provider", "builtin"}}), 1);
  EXPECT_EQ(Value(s, "kg_worker_exits_total", {{"provider", "builtin"}, {"reason", "stopped"}}), 0);
  EXPECT_FALSE(Value(s, "kg_worker_cpu_seconds_total", mine).has_value()) << "a dead process's series goes";

  // A chunk of a provider no node runs, leased and nacked: it waits out its backoff.
  // A backoff of 10 minutes: the chunk stays delayed however slowly the scrapes below run.
  QueueOptions slow_retry;
  slow_retry.backoff_base_ms = 600000;
  auto q = OpenSqliteQueue(dir.path() + "/data/queue.db", slow_retry);
  ASSERT_TRUE(q.ok()) << q.status().message();
  ASSERT_TRUE((*q)->Enqueue({{"ghost-1:0", "ghost-1", "ghost", 0, "{}"},
                             {"ghost-1:1", "ghost-1", "ghost", 1, "{}"}})
                  .ok());
  auto l = (*q)->LeaseChunks("ghost", "test", 1, 60000, false);
  ASSERT_TRUE(l.ok() && l->size() == 1u);
  ASSERT_TRUE((*q)->Nack((*l)[0].chunk_id, (*l)[0].token, "boom", true).ok());
  s = Samples(n);
  EXPECT_EQ(Value(s, "kg_queue_chunks", {{"provider", "ghost"}, {"state", "delayed"}}), 1) << Page(n);
  EXPECT_EQ(Value(s, "kg_queue_chunks", {{"provider", "ghost"}, {"state", "ready"}}), 1);
  EXPECT_EQ(Value(s, "kg_queue_chunks", {{"provider", "ghost"}, {"state", "leased"}}), 0);
}

// Verifies exactly one of two nodes sharing a data dir exports the cluster-wide series (the one
// with the smaller name), both export kg_cluster_reporter and their per-node series, and the
// other node takes over once the reporter stops.
TEST(Metrics, ExactlyOneReporterBetweenTwoNodes) {
  TempDir dir;
  Node beta(dir, {{"KG_WORKER_NODE_NAME", "beta"}, {"KG_HEARTBEAT_SECONDS", "1"}});
  ASSERT_TRUE(beta.ready()) << beta.proc().Stderr();
  Node alpha(dir, {{"KG_WORKER_NODE_NAME", "alpha"}, {"KG_HEARTBEAT_SECONDS", "1"}});
  ASSERT_TRUE(alpha.ready()) << alpha.proc().Stderr();
  ASSERT_FALSE(Submit(alpha, "Mara Voss founded Helix Dynamics.").empty());  // the queue has a provider
  auto reporter = [](Node& n) { return Value(Samples(n), "kg_cluster_reporter"); };
  ASSERT_TRUE(WaitFor([&] { return reporter(beta) == 0; }, 10s)) << "beta sees alpha registered";
  EXPECT_EQ(reporter(alpha), 1);
  auto a = Samples(alpha), b = Samples(beta);
  EXPECT_TRUE(Value(a, "kg_queue_chunks", {{"provider", "builtin"}, {"state", "ready"}}).has_value());
  EXPECT_EQ(Value(a, "kg_node_up", {{"node", "beta"}}), 1);
  for (const auto& s : b) {
    EXPECT_EQ(std::find(kClusterWide.begin(), kClusterWide.end(), s.name), kClusterWide.end())
        << s.name << " exported by a node that is not the reporter";
  }
  EXPECT_TRUE(Value(b, "kg_worker_spawns_total", {{"provider", "builtin"}}).has_value()) << "per-node series stay";
  alpha.proc().Signal(SIGTERM);  // a clean stop removes its record
  ASSERT_NE(alpha.proc().Wait(30s), -1);
  ASSERT_TRUE(WaitFor([&] { return reporter(beta) == 1; }, 10s));
  EXPECT_TRUE(Value(Samples(beta), "kg_queue_chunks", {{"provider", "builtin"}, {"state", "done"}}).has_value());
}

}  // namespace
}  // namespace kg
