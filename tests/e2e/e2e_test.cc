// End to end: `kgflow start` as a real process, the sample documents, the graph.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "queue/queue.h"
#include "testing/testing.h"

namespace kg {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

using testing::Node;

std::vector<std::string> Samples() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(testing::SamplesDir())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string SubmitAll(Node& n, std::vector<std::string>* ids) {
  for (const auto& f : Samples()) {
    json body = {{"text", testing::ReadFile(f)}, {"title", std::filesystem::path(f).stem().string()}, {"source", f}};
    auto r = n.http().Post("/api/v1/tasks", body.dump(), "application/json");
    if (!r || r->status != 202) return "submit " + f + " failed: " + (r ? r->body : "no response");
    ids->push_back(json::parse(r->body)["id"]);
  }
  return "";
}

bool AllDone(Node& n, const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    json t = n.Get("/api/v1/tasks/" + id);
    if (t.is_null() || t["status"] != "done") return false;
  }
  return true;
}

// Verifies the whole pipeline: samples -> done -> entities, relations, provenance; resubmission changes
// nothing; SIGTERM stops the node with exit code 0 and no worker left behind.
TEST(EndToEnd, SamplesBuildAGraphIdempotently) {
  testing::TempDir dir;
  Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::vector<std::string> ids;
  ASSERT_EQ(SubmitAll(n, &ids), "");
  ASSERT_TRUE(testing::WaitFor([&] { return AllDone(n, ids); }, 60s)) << n.proc().Stderr();

  json stats = n.Get("/api/v1/graph/stats");
  EXPECT_EQ(stats["documents"], Samples().size());
  EXPECT_GE(stats["entities"].get<int>(), 30);
  EXPECT_GE(stats["relations"].get<int>(), 30);

  // A known English and a known Chinese fact, with provenance back to a chunk of the right document.
  json e = n.Get("/api/v1/graph/entities/" + httplib::detail::encode_query_param("person:mara voss"));
  ASSERT_FALSE(e.is_null());
  bool founded = false;
  for (const auto& nb : e["neighbours"]) {
    if (nb["type"] == "FOUNDED" && nb["entity"]["name"] == "Helix Dynamics") {
      founded = true;
      ASSERT_FALSE(nb["evidence"].empty());
    }
  }
  EXPECT_TRUE(founded) << e.dump(2);
  ASSERT_FALSE(e["documents"].empty());
  json zh = n.Get("/api/v1/graph/entities/" + httplib::detail::encode_query_param("person:李明"));
  ASSERT_FALSE(zh.is_null());
  bool ceo = false;
  for (const auto& nb : zh["neighbours"]) ceo = ceo || (nb["type"] == "CEO_OF" && nb["entity"]["name"] == "星河科技公司");
  EXPECT_TRUE(ceo) << zh.dump(2);
  json found = n.Get("/api/v1/graph/entities?q=helix");
  ASSERT_FALSE(found["entities"].empty());

  json exported = n.Get("/api/v1/graph/export?format=json");
  ASSERT_FALSE(exported.is_null());
  EXPECT_EQ(exported["relations"].size(), stats["relations"].get<size_t>());
  for (const auto& r : exported["relations"]) ASSERT_FALSE(r["evidence"].empty());
  EXPECT_FALSE(exported["mentions"].empty());

  // Again: new tasks, same documents, nothing changes.
  std::vector<std::string> again;
  ASSERT_EQ(SubmitAll(n, &again), "");
  ASSERT_TRUE(testing::WaitFor([&] { return AllDone(n, again); }, 60s));
  json stats2 = n.Get("/api/v1/graph/stats");
  EXPECT_EQ(stats2, stats);
  EXPECT_EQ(n.Get("/api/v1/graph/export?format=json"), exported);

  auto workers = n.Get("/api/v1/workers");
  ASSERT_EQ(workers["nodes"].size(), 1u);
  std::vector<pid_t> kids = testing::ChildrenOf(n.proc().pid());
  EXPECT_EQ(kids.size(), 1u);

  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  int st = n.proc().Wait(20s);
  ASSERT_NE(st, -1) << "did not stop";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << n.proc().Stderr();
  for (pid_t k : kids) EXPECT_FALSE(testing::Alive(k));
}

// Verifies `kgflow submit --wait` reports progress line by line when stdout is not a terminal.
TEST(EndToEnd, CliSubmitWaitShowsProgress) {
  testing::TempDir dir;
  Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}};
  testing::Process submit({"submit", "--wait", Samples()[0], Samples()[1]}, env, dir.path());
  int st = submit.Wait(60s);
  ASSERT_NE(st, -1);
  EXPECT_EQ(WEXITSTATUS(st), 0) << submit.Stderr();
  std::string out = submit.Stdout();
  EXPECT_NE(out.find("submitted"), std::string::npos) << out;
  EXPECT_NE(out.find(" done: "), std::string::npos) << out;
  testing::Process stats({"graph", "stats"}, env, dir.path());
  ASSERT_NE(stats.Wait(20s), -1);
  EXPECT_NE(stats.Stdout().find("documents 2"), std::string::npos) << stats.Stdout();
  testing::Process tasks({"tasks", "--status", "done"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(tasks.Wait(20s)), 0) << tasks.Stderr();
  std::string listed = tasks.Stdout();
  EXPECT_EQ(std::count(listed.begin(), listed.end(), '\n'), 3) << listed;  // header + 2 tasks
  testing::Process search({"graph", "search", "helix"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(search.Wait(20s)), 0);
  EXPECT_NE(search.Stdout().find("Helix Dynamics"), std::string::npos) << search.Stdout();
  testing::Process graphml({"graph", "export", "--format", "graphml"}, env, dir.path());
  ASSERT_EQ(WEXITSTATUS(graphml.Wait(20s)), 0);
  EXPECT_EQ(graphml.Stdout().rfind("<?xml", 0), 0u);
  EXPECT_NE(graphml.Stdout().find("</graphml>"), std::string::npos);
  testing::Process bad_format({"graph", "export", "--format", "csv"}, env, dir.path());
  EXPECT_NE(WEXITSTATUS(bad_format.Wait(20s)), 0);
  testing::Process missing({"submit", dir.File("does-not-exist.txt")}, env, dir.path());
  int ms = missing.Wait(20s);
  EXPECT_EQ(WEXITSTATUS(ms), 1);
  EXPECT_NE(missing.Stderr().find("cannot read"), std::string::npos);
}

// Verifies `submit --wait` draws a progress bar on a terminal (under script(1), which gives it a pty).
TEST(EndToEnd, CliProgressBarOnATerminal) {
  testing::TempDir dir;
  Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string cmd = "KG_HTTP_ADDR=127.0.0.1:" + std::to_string(n.port()) + " " + testing::KgflowBinary() +
                    " submit --wait " + Samples()[0];
  std::string out_file = dir.File("tty.out");
  std::string full = "script -qec '" + cmd + "' /dev/null > " + out_file + " 2>&1";
  ASSERT_EQ(std::system(full.c_str()), 0) << testing::ReadFile(out_file);
  std::string out = testing::ReadFile(out_file);
  EXPECT_NE(out.find("[##############################] 1/1 done"), std::string::npos) << out;
  EXPECT_NE(out.find('\r'), std::string::npos) << "redrawn in place";
}

// Verifies the stop sequence orchestrators expect, in order: with a chunk in flight on a slow
// provider, SIGTERM turns /readyz 503 and POST /api/v1/tasks 503 with Retry-After and a JSON
// reason while the chunk is still leased (and the rest of the API still serves); then the
// chunk finishes (done, not given back); then the process exits 0.
TEST(EndToEnd, GracefulStopStopsTakingWorkThenDrains) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.slow]\ndelay_ms = 6000\n");
  Node n(dir, {{"KG_CONFIG", dir.File("kg.toml")}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  auto sub = n.http().Post("/api/v1/tasks", R"({"text":"Mara Voss founded Helix Dynamics.","provider":"slow"})",
                           "application/json");
  ASSERT_TRUE(sub);
  ASSERT_EQ(sub->status, 202) << sub->body;
  std::string id = json::parse(sub->body)["id"];
  auto running = [&] {
    json t = n.Get("/api/v1/tasks/" + id);
    return !t.is_null() && t["chunks_running"] == 1 && t["chunks_done"] == 0;
  };
  ASSERT_TRUE(testing::WaitFor(running, 10s)) << n.proc().Stderr();

  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto r = n.http().Get("/readyz");
        return r && r->status == 503;
      },
      3s))
      << "readyz must turn 503 at once: " << n.proc().Stderr();
  auto refused = n.http().Post("/api/v1/tasks", R"({"text":"Tomas Reyes joined Helix Dynamics."})", "application/json");
  ASSERT_TRUE(refused) << "the API is still up while draining";
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_FALSE(refused->get_header_value("Retry-After").empty());
  json reason = json::parse(refused->body, nullptr, false);
  ASSERT_FALSE(reason.is_discarded()) << refused->body;
  EXPECT_EQ(reason["reason"], "stopping");
  EXPECT_TRUE(reason["error"].is_string());
  auto health = n.http().Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200) << "alive while draining";
  EXPECT_TRUE(running()) << "the 503s came while the chunk was still in flight";

  int st = n.proc().Wait(40s);
  ASSERT_NE(st, -1) << n.proc().Stderr();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << n.proc().Stderr();
  auto q = OpenSqliteQueue(dir.path() + "/data/queue.db", QueueOptions{});
  ASSERT_TRUE(q.ok()) << q.status().message();
  auto counts = (*q)->Counts(id);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->total, 1);
  EXPECT_EQ(counts->done, 1) << "the in-flight chunk finished before the exit";
  EXPECT_EQ(counts->leased, 0);
  auto tasks = (*q)->Depths();
  ASSERT_TRUE(tasks.ok());
  int64_t all = 0;
  for (const auto& [_, d] : *tasks) all += d.ready + d.delayed + d.leased + d.done + d.dead;
  EXPECT_EQ(all, 1) << "the refused task enqueued nothing";
}

// Verifies a second node on a port in use fails to start with exit code 1 and says why.
TEST(EndToEnd, PortInUseIsAClearError) {
  testing::TempDir dir, dir2;
  Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  Node clash(dir2, {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}}, {"start"}, false);
  int st = clash.proc().Wait(10s);
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
  EXPECT_NE(clash.proc().Stderr().find("cannot listen on 127.0.0.1:" + std::to_string(n.port())), std::string::npos)
      << clash.proc().Stderr();
  // The node that cannot listen never started its guard: no worker was spawned (a process
  // that is reaped by now would leave no trace in /proc, but its spawn is logged).
  EXPECT_EQ(clash.proc().Stderr().find("spawned worker"), std::string::npos) << clash.proc().Stderr();
}

// Verifies a bad configuration value stops start-up with exit code 2 and one line naming it.
TEST(EndToEnd, BadConfigExitsTwo) {
  testing::TempDir dir;
  for (auto [var, value] : std::vector<std::pair<std::string, std::string>>{
           {"KG_MAX_TOTAL_PROCESSES", "lots"}, {"NODE_ROLE", "boss"}, {"KG_PROVIDERS", "nope"}}) {
    testing::Process p({"start"}, {{var, value}, {"KG_DATA_DIR", dir.File("d")}}, dir.path());
    int st = p.Wait(20s);
    ASSERT_NE(st, -1) << var;
    EXPECT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 2) << var;
    std::string err = p.Stderr();
    EXPECT_NE(err.find(var), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  testing::Process check({"check-config"}, {{"KG_API_TOKEN", "hide-me-123"}}, dir.path());
  ASSERT_EQ(WEXITSTATUS(check.Wait(20s)), 0);
  EXPECT_EQ(check.Stdout().find("hide-me-123"), std::string::npos);
  EXPECT_NE(check.Stdout().find("KG_API_TOKEN=****"), std::string::npos);
}

}  // namespace
}  // namespace kg
