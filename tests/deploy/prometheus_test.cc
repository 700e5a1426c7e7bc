// A real node scraped by a real Prometheus (Debian's /usr/bin/prometheus, tests/testing/
// prometheus.h): the node's metrics as Prometheus stores them, the alert rules of
// deploy/prometheus/alerts.yml evaluated on them, and every query of the Grafana dashboard
// deploy/grafana/kgflow-dashboard.json answered.
//
// The node is a whole distributed setup on the run's shared servers: its queue on Redis, its task
// store on MySQL, its graph on Neo4j (hence kg_test(... NEO4J): the shared Neo4j's one database is
// the test's alone), with two providers: "fake", an OpenAI-compatible API served by the fake LLM
// (tests/testing/fake_llm.py), and "builtin", the offline extractor.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "testing/fake_llm.h"
#include "testing/neo4j.h"
#include "testing/prometheus.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::FakeLlm;
using testing::Node;
using testing::Prometheus;
using testing::TempDir;
using testing::WaitFor;

const std::string kSource = KG_SOURCE_DIR;
const std::string kAlerts = kSource + "/deploy/prometheus/alerts.yml";
const std::string kDashboard = kSource + "/deploy/grafana/kgflow-dashboard.json";

constexpr int kWorkersPerProvider = 2;
constexpr int kMaxTotal = 8;
constexpr int kMaxPerProvider = 4;
constexpr int kNeo4jPool = 2;
constexpr int kNeo4jMax = 100;

// Sentences of ~120 bytes, one chunk each at KG_CHUNK_SIZE 160 (as in llm_node_test.cc).
std::string Sentence(int i, const std::string& marker = "") {
  static const char* kPeople[] = {"Alice Moreau", "Bruno Keller", "Chen Wei", "Dana Okafor", "Emil Sato"};
  static const char* kOrgs[] = {"Meridian Labs", "Helix Group", "Linden Corp", "Aurora Inc"};
  return std::string(kPeople[i % 5]) + " joined " + kOrgs[i % 4] + " as an engineer in the spring of year number " +
         std::to_string(2000 + i) + (marker.empty() ? "" : " " + marker) + ".\n\n";
}

// The sum of an instant vector's values; NaN when the query fails or returns no series (so any
// comparison with it is false).
double Sum(const Prometheus& p, const std::string& expr) {
  auto v = p.Vector(expr);
  if (!v.ok() || v->empty()) return NAN;
  double s = 0;
  for (const auto& x : *v) s += x.value;
  return s;
}

// What an instant query answers, for failure messages.
std::string Show(const Prometheus& p, const std::string& expr) {
  auto d = p.Query(expr);
  return expr + " -> " + (d.ok() ? (*d)["result"].dump() : d.status().message());
}

using Clock = std::chrono::steady_clock;

// WaitFor until `deadline` (one try at least), asking at most every 250 ms: each try is a query
// to Prometheus, which scrapes every 2 s and evaluates every second anyway. The checks of a test
// share one deadline, so a test whose series are all missing still ends in bounded time.
bool Until(Clock::time_point deadline, const std::function<bool()>& cond) {
  auto next = Clock::now();
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return WaitFor(
      [&] {
        if (Clock::now() < next) return false;
        next = Clock::now() + 250ms;
        return cond();
      },
      std::max(left, std::chrono::milliseconds(0)));
}

class RealPrometheus : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& redis = testing::SharedRedis();
    const auto& mysql = testing::SharedMariaDb();
    const auto& neo4j = testing::SharedNeo4j();
    ASSERT_GT(redis.port, 0);
    ASSERT_GT(mysql.port, 0);
    ASSERT_GT(neo4j.port, 0);
    testing::ClearNeo4j(neo4j);
    ASSERT_FALSE(HasFatalFailure());

    // Requests take a moment, so the work spans several scrapes (a counter Prometheus first sees
    // at its final value has no increase).
    FakeLlm::Options slow;
    slow.latency_ms = 300;
    slow.jitter_ms = 50;
    fake_ = std::make_unique<FakeLlm>(slow);
    ASSERT_GT(fake_->port(), 0);
    // rpm and max_concurrency make requests wait for the limiter; prices make a cost.
    testing::WriteFile(dir_.File("kg.toml"),
                       "[providers.fake]\nkind = \"openai\"\nbase_url = \"" + fake_->base_url() +
                           "\"\nmodel = \"fake-model\"\napi_key_env = \"FAKE_LLM_KEY\"\ntimeout_s = 20\n"
                           "rpm = 300\nmax_concurrency = 2\nprice_in_per_mtok = 1.5\nprice_out_per_mtok = 3\n\n"
                           "[providers.builtin]\nkind = \"builtin\"\ndelay_ms = 500\n");
    name_ = testing::UniqueName("prom");
    std::map<std::string, std::string> env = {
        {"KG_CONFIG", dir_.File("kg.toml")},
        {"KG_PROVIDERS", "fake,builtin"},
        {"FAKE_LLM_KEY", "sk-test-prometheus"},
        {"KG_WORKER_NODE_NAME", name_},
        {"REDIS_HOST", "127.0.0.1"},
        {"REDIS_PORT", std::to_string(redis.port)},
        {"KG_REDIS_NAMESPACE", name_},
        {"DB_HOST", "127.0.0.1"},
        {"DB_PORT", std::to_string(mysql.port)},
        {"DB_USER", testing::kMysqlUser},
        {"DB_PASSWORD", testing::kMysqlPassword},
        {"DB_NAME", name_},
        {"NEO4J_URI", "bolt://127.0.0.1:" + std::to_string(neo4j.port)},
        {"NEO4J_USER", testing::kNeo4jUser},
        {"NEO4J_PASSWORD", testing::kNeo4jPassword},
        {"KG_NEO4J_POOL_SIZE", std::to_string(kNeo4jPool)},
        {"KG_NEO4J_MAX_CONNECTIONS", std::to_string(kNeo4jMax)},
        {"KG_WORKERS_PER_PROVIDER", std::to_string(kWorkersPerProvider)},
        {"KG_MAX_TOTAL_PROCESSES", std::to_string(kMaxTotal)},
        {"KG_MAX_PROCESSES_PER_PROVIDER", std::to_string(kMaxPerProvider)},
        {"KG_CHUNK_SIZE", "160"},
        {"KG_CHUNK_OVERLAP", "0"},
        {"KG_MAX_ATTEMPTS", "2"},
        // One chunk at a time per process: the work spans several scrapes.
        {"KG_CONCURRENCY_PER_PROCESS", "1"},
        {"KG_HEARTBEAT_SECONDS", "1"},
        {"KG_LOG_LEVEL", "info"}};
    node_ = std::make_unique<Node>(dir_, env);
    ASSERT_TRUE(node_->ready()) << node_->proc().Stderr();

    ASSERT_TRUE(std::filesystem::exists(kAlerts)) << kAlerts << " is missing (the alert rules of issue 12)";
    prom_ = std::make_unique<Prometheus>(Prometheus::Options{
        .targets = {"127.0.0.1:" + std::to_string(node_->port())}, .job = "kgflow", .rule_files = {kAlerts}});
    ASSERT_TRUE(prom_->ready());
    // Scraped once before any work: every counter starts from a sample Prometheus has seen.
    ASSERT_TRUE(Until(Clock::now() + 30s, [&] { return Sum(*prom_, "up{job=\"kgflow\"}") == 1; }))
        << Show(*prom_, "up") << "\ntargets: " << (prom_->Targets().ok() ? prom_->Targets()->dump() : "?");
  }

  // Submits the documents: six one-chunk sentences to "fake", one of them garbage (retried, then
  // dead-lettered); eight two-chunk documents to "builtin" (about 4 s of work on its 2 processes).
  void SubmitWork() {
    std::string text;
    for (int i = 0; i < 6; ++i) text += Sentence(i, i == 2 ? "FAKE_GARBAGE" : "");
    Submit({{"text", text}, {"title", "fake"}, {"provider", "fake"}});
    for (int i = 0; i < 8; ++i) {
      Submit({{"text", testing::DocumentText(i)}, {"title", "doc " + std::to_string(i)}, {"provider", "builtin"}});
    }
  }

  void Submit(const json& body) {
    auto r = node_->http().Post("/api/v1/tasks", body.dump(), "application/json");
    ASSERT_TRUE(r && r->status == 202) << (r ? r->body : "no answer");
    tasks_.push_back(json::parse(r->body)["id"]);
  }

  // Waits until every task submitted is finished; adds their chunks done and failed.
  void WaitFinished(int* done, int* failed) {
    *done = *failed = 0;
    std::vector<json> last;
    bool ok = WaitFor(
        [&] {
          last.clear();
          for (const auto& id : tasks_) {
            json t = node_->Get("/api/v1/tasks/" + id);
            if (t.is_null()) return false;
            std::string s = t.value("status", "");
            if (s != "done" && s != "failed" && s != "cancelled") return false;
            last.push_back(t);
          }
          return true;
        },
        60s);
    ASSERT_TRUE(ok) << "tasks not finished within 60 s";
    for (const auto& t : last) {
      *done += t["chunks_done"].get<int>();
      *failed += t["chunks_failed"].get<int>();
    }
  }

  // The node's live worker processes, pid -> provider, from /api/v1/workers.
  std::map<int64_t, std::string> LiveWorkers() {
    std::map<int64_t, std::string> out;
    json w = node_->Get("/api/v1/workers");
    if (w.is_null()) return out;
    for (const auto& n : w["nodes"]) {
      for (const auto& p : n["processes"]) {
        if (p.value("pid", int64_t{0}) > 0) out[p["pid"]] = p.value("provider", "");
      }
    }
    return out;
  }

  TempDir dir_;
  std::string name_;
  std::unique_ptr<FakeLlm> fake_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<Prometheus> prom_;
  std::vector<std::string> tasks_;
};

// Verifies what Prometheus stores from a node's /metrics while it works: the worker processes per
// provider and the caps they count against (with their usage ratios), CPU and resident memory per
// process, the queue's depth by state matching the tasks' own counts, chunks done rising while the
// work runs and adding up to the tasks' chunks, LLM requests matching what the LLM server answered,
// the Neo4j connections the workers hold within their maximum and the server's; and the alert rules
// on those series: KgDeadLettersGrowing firing for the dead-lettered chunk (both of its signals
// seeing it), no other alert firing or pending.
TEST_F(RealPrometheus, RealPrometheusScrapesANode) {
  SubmitWork();
  int done = 0, failed = 0;
  WaitFinished(&done, &failed);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(failed, 1) << "the FAKE_GARBAGE chunk";
  const Prometheus& p = *prom_;
  // Every worker writes its counts at least once a second and Prometheus scrapes every 2 s:
  // seconds after the work ended, every series below has its final value (the deadline leaves
  // room for slow scrapes under a sanitizer).
  const auto deadline = Clock::now() + 45s;
  auto holds = [&](const std::string& expr, double want) {
    EXPECT_TRUE(Until(deadline, [&] { return Sum(p, expr) == want; })) << Show(p, expr) << ", want " << want;
  };

  // Processes and caps. Every worker is live (none recycled or crashed), so the ratios are exact.
  for (const char* provider : {"fake", "builtin"}) {
    std::string sel = std::string("{provider=\"") + provider + "\"}";
    holds("sum(kg_worker_processes" + sel + ")", kWorkersPerProvider);
    holds("kg_provider_process_cap_usage_ratio" + sel, double(kWorkersPerProvider) / kMaxPerProvider);
  }
  holds("kg_process_cap{cap=\"total\"}", kMaxTotal);
  holds("kg_process_cap{cap=\"per_provider\"}", kMaxPerProvider);
  holds("kg_process_cap_usage_ratio", 2.0 * kWorkersPerProvider / kMaxTotal);

  // CPU and memory: one series per live worker pid, each above 0 (every worker has run code).
  std::map<int64_t, std::string> workers = LiveWorkers();
  ASSERT_EQ(workers.size(), 2u * kWorkersPerProvider);
  for (const char* metric : {"kg_worker_rss_bytes", "kg_worker_cpu_seconds_total"}) {
    std::map<int64_t, std::string> seen;
    bool ok = Until(deadline, [&] {
          seen.clear();
          auto v = p.Vector(std::string(metric) + " > 0");
          if (!v.ok()) return false;
          for (const auto& s : *v) seen[std::stoll(s.labels.value("pid", "0"))] = s.labels.value("provider", "");
          return seen == workers;
        });
    EXPECT_TRUE(ok) << Show(p, metric) << "\nlive workers: " << json(workers).dump();
  }

  // The queue: everything settled, as the tasks say.
  holds("sum(kg_queue_chunks{state=\"done\"})", done);
  holds("sum(kg_queue_chunks{state=\"dead\"})", failed);
  holds("sum(kg_queue_chunks{state=~\"ready|delayed|leased\"})", 0);

  // Chunks done: rose while Prometheus watched (the work spans several scrapes), and add up to the
  // tasks' done chunks; the garbage chunk was retried, then dead-lettered.
  EXPECT_TRUE(Until(deadline, [&] { return Sum(p, "sum(increase(kg_chunks_total{outcome=\"done\"}[5m]))") > 0; }))
      << Show(p, "kg_chunks_total");
  holds("sum(kg_chunks_total{outcome=\"done\"})", done);
  holds("sum(kg_chunks_total{outcome=\"dead_lettered\"})", 1);
  EXPECT_TRUE(Until(deadline, [&] { return Sum(p, "sum(kg_chunks_total{outcome=\"retry\"})") >= 1; }))
      << Show(p, "kg_chunks_total");
  // Every chunk a worker ran is timed: done, retried or dead-lettered.
  const std::string ran = "sum(kg_chunks_total{outcome=~\"done|retry|dead_lettered\"})";
  EXPECT_TRUE(Until(deadline, [&] { return Sum(p, "sum(kg_chunk_duration_seconds_count)") == Sum(p, ran); }))
      << Show(p, "kg_chunk_duration_seconds_count") << "\n" << Show(p, ran);

  // LLM requests: what the server answered, by status.
  json stats = fake_->Stats();
  for (const auto& [code, n] : stats["by_status"].items()) {
    holds("kg_llm_requests_total{provider=\"fake\",code=\"" + code + "\"}", n.get<double>());
  }
  EXPECT_TRUE(Until(deadline, [&] { return Sum(p, "kg_llm_tokens_total{provider=\"fake\",kind=\"prompt\"}") > 0; }))
      << Show(p, "kg_llm_tokens_total");
  EXPECT_TRUE(Until(deadline, [&] { return Sum(p, "kg_llm_cost_total{provider=\"fake\"}") > 0; }))
      << Show(p, "kg_llm_cost_total");

  // Neo4j connections: the workers hold some (their pools keep them open), never more than their
  // maximum, which covers every live process's pool (KG_NEO4J_POOL_SIZE each) and stays within
  // the node's budget (the API process included); the server's KG_NEO4J_MAX_CONNECTIONS is there.
  holds("kg_neo4j_max_connections", kNeo4jMax);
  const double budget = (1 + kMaxTotal) * kNeo4jPool;
  holds("kg_neo4j_connections_budget", budget);
  double max = NAN, open = NAN, in_use = NAN;
  EXPECT_TRUE(Until(deadline, [&] {
        max = Sum(p, "sum(kg_store_connections_max{backend=\"neo4j\"})");
        open = Sum(p, "sum(kg_store_connections{backend=\"neo4j\",state=\"open\"})");
        in_use = Sum(p, "sum(kg_store_connections{backend=\"neo4j\",state=\"in_use\"})");
        return max >= 2 * kWorkersPerProvider * kNeo4jPool && max <= budget && open > 0 && open <= max &&
               in_use >= 0 && in_use <= open;
      }))
      << "max " << max << " open " << open << " in use " << in_use << "; "
      << Show(p, "{__name__=~\"kg_store_connections.*\"}");
  // The dead-lettered chunk raises KgDeadLettersGrowing from the series the node really exports,
  // both of its signals: the workers' dead_lettered counter and the growth of the queue's dead
  // count (the alert's second branch, asked directly: a subquery at the 1 s evaluation interval).
  auto dead_letters_firing = [&](json* alert) {
    auto alerts = p.Alerts();
    if (!alerts.ok()) return false;
    for (const auto& a : *alerts) {
      if (a["labels"].value("alertname", "") == "KgDeadLettersGrowing" &&
          a.value("state", "") == "firing") {
        *alert = a;
        return true;
      }
    }
    return false;
  };
  json dead_alert;
  ASSERT_TRUE(Until(deadline, [&] { return dead_letters_firing(&dead_alert); }))
      << "KgDeadLettersGrowing not firing after a chunk was dead-lettered; "
      << Show(p, "kg_chunks_total{outcome=\"dead_lettered\"}") << "\n"
      << Show(p, "kg_queue_chunks{state=\"dead\"}") << "\nalerts: " << p.Alerts()->dump();
  EXPECT_EQ(dead_alert["labels"].value("provider", ""), "fake") << dead_alert.dump();
  const std::string dead_growth =
      "max by (provider) (kg_queue_chunks{state=\"dead\",provider=\"fake\"}) - min_over_time(("
      "max by (provider) (kg_queue_chunks{state=\"dead\",provider=\"fake\"}))[15m:])";
  holds(dead_growth, 1);
  // And no other alert fires or is pending (the rules loaded and evaluate on these series).
  auto alerts = p.Alerts();
  ASSERT_TRUE(alerts.ok()) << alerts.status().message();
  for (const auto& a : *alerts) {
    if (a["labels"].value("alertname", "") != "KgDeadLettersGrowing") {
      ADD_FAILURE() << "alert " << a.value("state", "?") << " on a healthy node: " << a.dump();
    }
  }
}

// Verifies the alert KgWorkerProcessDied: a worker process SIGKILLed (a crash, not a stop) turns
// it firing, with the provider, within seconds of the next scrape; it is not firing before.
TEST_F(RealPrometheus, WorkerDiedAlertFires) {
  const Prometheus& p = *prom_;
  // The crash counter is exported at 0 from the start (else increase() misses the first crash).
  ASSERT_TRUE(Until(Clock::now() + 20s, [&] { return Sum(p, "sum(kg_worker_exits_total{reason=\"crashed\"})") == 0; }))
      << Show(p, "kg_worker_exits_total");
  auto is_firing = [&](std::string* provider) {
    auto alerts = p.Alerts();
    if (!alerts.ok()) return false;
    for (const auto& a : *alerts) {
      if (a["labels"].value("alertname", "") == "KgWorkerProcessDied" && a.value("state", "") == "firing") {
        if (provider) *provider = a["labels"].value("provider", "");
        return true;
      }
    }
    return false;
  };
  ASSERT_FALSE(is_firing(nullptr)) << "firing before any crash: " << p.Alerts()->dump();

  pid_t victim = 0;
  for (const auto& [pid, provider] : LiveWorkers()) {
    if (provider == "builtin") victim = static_cast<pid_t>(pid);
  }
  ASSERT_GT(victim, 0) << node_->Get("/api/v1/workers").dump();
  ASSERT_EQ(testing::WorkerProvider(victim), "builtin") << "pid " << victim << " is not a worker of the node";
  ASSERT_EQ(kill(victim, SIGKILL), 0);

  std::string provider;
  EXPECT_TRUE(Until(Clock::now() + 45s, [&] { return is_firing(&provider); }))
      << "KgWorkerProcessDied not firing 45 s after SIGKILL of worker " << victim << "; "
      << Show(p, "kg_worker_exits_total") << "\nalerts: " << p.Alerts()->dump();
  EXPECT_EQ(provider, "builtin");
}

// The target expressions of every panel of a Grafana dashboard (rows' nested panels included),
// each with its panel's title.
void CollectTargets(const json& panels, std::vector<std::pair<std::string, std::string>>* out) {
  for (const auto& panel : panels) {
    for (const auto& t : panel.value("targets", json::array())) {
      if (t.contains("expr")) out->push_back({panel.value("title", "?"), t["expr"]});
    }
    if (panel.contains("panels")) CollectTargets(panel["panels"], out);
  }
}

// Replaces every occurrence of `from` in `s`.
void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// Verifies every query of the Grafana dashboard, its template variables replaced as Grafana would
// for "All" ($node, $instance: .*) and a 1m $__rate_interval, is valid PromQL and returns at least
// one series from a node that has worked (chunks done, retried and dead-lettered, LLM requests,
// tokens and cost, limiter waits, Neo4j connections); the failure names every panel that returns
// nothing.
TEST_F(RealPrometheus, DashboardPanelsReturnData) {
  json dash = json::parse(testing::ReadFile(kDashboard), nullptr, false);
  ASSERT_TRUE(dash.is_object()) << kDashboard << " is not JSON";
  std::vector<std::pair<std::string, std::string>> targets;
  CollectTargets(dash["panels"], &targets);
  ASSERT_GE(targets.size(), 20u) << "the dashboard lost its panels";
  std::set<std::string> variables;
  for (const auto& v : dash["templating"]["list"]) variables.insert(v["name"]);
  ASSERT_TRUE(variables.count("DS_PROMETHEUS") && variables.count("node")) << dash["templating"].dump();

  SubmitWork();
  int done = 0, failed = 0;
  WaitFinished(&done, &failed);
  ASSERT_FALSE(HasFatalFailure());
  const Prometheus& p = *prom_;
  // Prometheus saw the queue settle, then scraped three more times: the workers' last counts (a
  // line a second) are in, and every counter has several samples in a 1m window.
  const auto deadline = Clock::now() + 45s;
  ASSERT_TRUE(Until(deadline, [&] { return Sum(p, "sum(kg_queue_chunks{state=~\"ready|delayed|leased\"})") == 0; }))
      << Show(p, "kg_queue_chunks");
  const std::string scrapes = "count_over_time(up{job=\"kgflow\"}[10m])";
  const double settled = Sum(p, scrapes);
  ASSERT_TRUE(Until(deadline, [&] { return Sum(p, scrapes) >= settled + 3; })) << Show(p, scrapes);

  std::string empty;
  std::set<std::string> panels;
  for (auto [title, expr] : targets) {
    panels.insert(title);
    std::string q = expr;
    for (const std::string& v : variables) {
      if (v == "DS_PROMETHEUS") continue;
      ReplaceAll(q, "${" + v + "}", ".*");
      ReplaceAll(q, "$" + v, ".*");
    }
    ReplaceAll(q, "$__rate_interval", "1m");
    ReplaceAll(q, "$__interval", "1m");
    ReplaceAll(q, "$__range", "5m");
    ASSERT_EQ(q.find('$'), std::string::npos) << "an unknown variable in panel '" << title << "': " << expr;
    auto d = p.Query(q);
    if (!d.ok()) {
      empty += "\n  " + title + ": " + q + " -> " + d.status().message();
    } else if ((*d)["result"].empty()) {
      empty += "\n  " + title + ": " + q + " -> no series";
    }
  }
  EXPECT_TRUE(empty.empty()) << "panels with a query that returns nothing:" << empty;
  EXPECT_GE(panels.size(), 15u);
}

}  // namespace
}  // namespace kg
