// The kgflow command line as a user runs it: exit codes, messages, checks before sending.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <csignal>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/client.h"
#include "store/task_store.h"
#include "testing/testing.h"

namespace kg {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

using testing::CliRun;

// What a client command of a test needs to reach node `n` with the test's kg.toml.
std::map<std::string, std::string> ClientEnv(testing::Node& n, const testing::TempDir& dir) {
  return {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}, {"KG_CONFIG", dir.File("kg.toml")}};
}

CliRun Kgflow(const std::vector<std::string>& args, const testing::TempDir& dir,
              std::map<std::string, std::string> env = {}) {
  return testing::RunToEnd(args, dir.path(), env, 30s);
}

size_t Lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// Verifies a --url the client cannot use is one line saying what is accepted and exit 2, never an
// abort (ftp:// used to throw std::invalid_argument: exit 134); https:// among them, since the
// client speaks plain HTTP only.
TEST(Cli, BadUrlIsAUsageError) {
  testing::TempDir dir;
  for (const std::string url : {"ftp://x", "http://host:port", "http://127.0.0.1:99999", "http://", "localhost:8080:1",
                                "https://127.0.0.1:8443"}) {
    CliRun r = Kgflow({"tasks", "--url", url}, dir);
    EXPECT_EQ(r.code, 2) << url << ": " << r.err;
    EXPECT_EQ(Lines(r.err), 1u) << url << ": " << r.err;
    EXPECT_NE(r.err.find("expected http://HOST[:PORT]"), std::string::npos) << url << ": " << r.err;
  }
  CliRun tls = Kgflow({"tasks", "--url", "https://127.0.0.1:8443"}, dir);
  EXPECT_NE(tls.err.find("https is not supported"), std::string::npos) << tls.err;
}

// Verifies a --url with a path (http://host:port/api/v1, as people paste it) reaches the running
// node, with a note that the path was ignored (it used to say the node cannot be reached).
TEST(Cli, UrlWithAPathReachesTheNode) {
  testing::TempDir dir;
  testing::Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string base = "http://127.0.0.1:" + std::to_string(n.port());
  for (const std::string& url : std::vector<std::string>{base + "/api/v1", base + "/", "127.0.0.1:" + std::to_string(n.port())}) {
    CliRun r = Kgflow({"graph", "stats", "--url", url}, dir);
    EXPECT_EQ(r.code, 0) << url << ": " << r.err;
    EXPECT_NE(r.out.find("documents 0"), std::string::npos) << url << ": " << r.out;
  }
  CliRun r = Kgflow({"graph", "stats", "--url", base + "/api/v1"}, dir);
  EXPECT_NE(r.err.find("path '/api/v1' ignored"), std::string::npos) << r.err;
  // --url may come before the command too, with a space or an '='.
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--url", base, "graph", "stats"}, {"--url=" + base, "tasks"}}) {
    CliRun g = Kgflow(args, dir);
    EXPECT_EQ(g.code, 0) << args[0] << ": " << g.err;
    EXPECT_EQ(g.err.find("cannot reach"), std::string::npos) << g.err;
  }
  CliRun unknown = Kgflow({"--url", base, "frobnicate"}, dir);
  EXPECT_EQ(unknown.code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("unknown command 'frobnicate'"), std::string::npos) << unknown.err;
}

// Verifies an unknown command is named (CLI11 said "A subcommand is required") and exits 2.
TEST(Cli, UnknownCommandIsNamed) {
  testing::TempDir dir;
  CliRun r = Kgflow({"frobnicate"}, dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.err;
  r = Kgflow({"graph", "frobnicate"}, dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown command 'graph frobnicate'"), std::string::npos) << r.err;
  // An unknown option before the command is named too (it said "A subcommand is required").
  r = Kgflow({"--bogus", "tasks"}, dir);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown option '--bogus'"), std::string::npos) << r.err;
  EXPECT_EQ(Kgflow({"--version"}, dir).code, 0);
}

// Verifies every command-line parse error exits 2 (usage), not CLI11's own codes (105 for a value
// outside a set, 106 for a bad number, ...), and --help/--version exit 0.
TEST(Cli, ParseErrorsExitTwo) {
  testing::TempDir dir;
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:1"}};
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"graph", "export", "--format", "csv"},
           {"tasks", "--limit", "many"},
           {"tasks", "--limit", "0"},
           {"submit"},
           {"tasks", "--no-such-flag"},
           {"tasks", "--status", "bogus"},
           {"submit", "--format", "pdf", "x.txt"},
           {},
           {"graph"}}) {
    CliRun r = Kgflow(args, dir, env);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << ": " << r.err;
  }
  EXPECT_EQ(Kgflow({"--help"}, dir).code, 0);
  EXPECT_EQ(Kgflow({"--version"}, dir).code, 0);
}

// Verifies submit checks every argument before sending anything: with one missing file (named with
// the OS reason) the good one is not submitted either and the exit code is 1; a directory needs
// --recursive, which takes its text files and names the ones it skipped and why.
TEST(Cli, SubmitChecksEveryArgumentFirst) {
  testing::TempDir dir;
  testing::Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}};
  testing::WriteFile(dir.File("good.txt"), "Mara Voss founded Helix Dynamics.");
  CliRun r = Kgflow({"submit", dir.File("good.txt"), dir.File("missing.txt")}, dir, env);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot read " + dir.File("missing.txt") + ": No such file or directory"), std::string::npos)
      << r.err;
  EXPECT_EQ(n.Get("/api/v1/tasks")["tasks"].size(), 0u) << "nothing may be submitted";
  // A blank file is refused up front too (the node would answer 400 after the good one was sent).
  testing::WriteFile(dir.File("blank.txt"), " \n\t\n");
  r = Kgflow({"submit", dir.File("good.txt"), dir.File("blank.txt")}, dir, env);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find(dir.File("blank.txt") + " is empty or blank"), std::string::npos) << r.err;
  EXPECT_EQ(n.Get("/api/v1/tasks")["tasks"].size(), 0u) << "nothing may be submitted";

  std::filesystem::create_directories(dir.File("docs/sub"));
  testing::WriteFile(dir.File("docs/a.txt"), "Ada Lovelace met Charles Babbage.");
  testing::WriteFile(dir.File("docs/sub/b.txt"), "Helix Dynamics hired Mara Voss.");
  testing::WriteFile(dir.File("docs/c.bin"), std::string("PK\0\0\x03\x04", 6));
  r = Kgflow({"submit", dir.File("docs")}, dir, env);
  EXPECT_EQ(r.code, 2) << "a directory without --recursive is a usage error: " << r.err;
  EXPECT_NE(r.err.find(dir.File("docs") + " is a directory; use --recursive"), std::string::npos) << r.err;
  EXPECT_EQ(n.Get("/api/v1/tasks")["tasks"].size(), 0u);

  r = Kgflow({"submit", "--recursive", dir.File("docs")}, dir, env);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("skipped " + dir.File("docs/c.bin") + ": not text"), std::string::npos) << r.err;
  EXPECT_EQ(n.Get("/api/v1/tasks")["tasks"].size(), 2u) << r.out;
}

// Verifies submit refuses, before sending, a file that is not text (kg::CheckText's reason) and one
// over the client's KG_MAX_BODY_MB, naming each; no node is needed to say so.
TEST(Cli, SubmitRefusesBinaryAndOversizedFiles) {
  testing::TempDir dir;
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:1"}, {"KG_MAX_BODY_MB", "1"}};
  testing::WriteFile(dir.File("zip.txt"), std::string("PK\0\0\x03\x04", 6));
  testing::WriteFile(dir.File("big.txt"), std::string(1100000, 'a'));
  CliRun r = Kgflow({"submit", dir.File("zip.txt"), dir.File("big.txt")}, dir, env);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find(dir.File("zip.txt") + ": not text: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(dir.File("big.txt") + " is 1100000 bytes; the node accepts at most 1048576 bytes (KG_MAX_BODY_MB)"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("cannot reach"), std::string::npos) << "nothing may be sent: " << r.err;
}

// Verifies the read commands' --json prints the API's JSON as is, `graph entity KEY` shows an
// entity by its URL-encoded key, `cancel`/`retry` reach their routes (a done task: the API's 409
// reason, exit 1), and counts are singular for one ("1 chunk").
// Verifies `graph entity NAME` for a name several entities share lists the candidate keys the
// API answers with (HTTP 300), so the user can ask for one.
TEST(Cli, AmbiguousEntityNameListsTheCandidates) {
  testing::TempDir dir;
  testing::Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}};
  testing::WriteFile(dir.File("a.txt"), "Kai Moreno is the CEO of Hudson.");
  testing::WriteFile(dir.File("b.txt"), "Omar Diaz moved to Hudson.");
  ASSERT_EQ(Kgflow({"submit", "--wait", dir.File("a.txt"), dir.File("b.txt")}, dir, env).code, 0);
  auto api = n.http().Get("/api/v1/graph/entities/Hudson");
  ASSERT_TRUE(api);
  ASSERT_EQ(api->status, 300) << "precondition: the two Hudsons are typed apart (Organization, Location) " << api->body;
  CliRun r = Kgflow({"graph", "entity", "Hudson"}, dir, env);
  EXPECT_EQ(r.code, 1);
  json answer = json::parse(api->body);
  ASSERT_EQ(answer["candidates"].size(), 2u) << api->body;
  for (const auto& key : answer["candidates"]) {
    EXPECT_NE(r.err.find(key.get<std::string>()), std::string::npos) << r.err;
  }
}

TEST(Cli, JsonEntityCancelRetry) {
  testing::TempDir dir;
  testing::Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}};
  testing::WriteFile(dir.File("one.txt"), "Mara Voss founded Helix Dynamics.");
  CliRun r = Kgflow({"submit", "--wait", dir.File("one.txt")}, dir, env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(1 chunk, provider"), std::string::npos) << r.out;

  for (const auto& [args, path] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"graph", "stats", "--json"}, "/api/v1/graph/stats"},
           {{"tasks", "--json"}, "/api/v1/tasks?limit=50"},
           {{"graph", "search", "helix", "--json"}, "/api/v1/graph/entities?q=helix&limit=50"}}) {
    CliRun j = Kgflow(args, dir, env);
    EXPECT_EQ(j.code, 0) << path << ": " << j.err;
    EXPECT_EQ(json::parse(j.out, nullptr, false), n.Get(path)) << path << ": " << j.out;
  }
  CliRun w = Kgflow({"workers", "--json"}, dir, env);
  EXPECT_EQ(w.code, 0) << w.err;
  EXPECT_TRUE(json::parse(w.out, nullptr, false).contains("nodes")) << w.out;

  json found = n.Get("/api/v1/graph/entities?q=helix");
  ASSERT_FALSE(found.is_null());
  ASSERT_FALSE(found["entities"].empty()) << found;
  std::string key = found["entities"][0]["key"];  // "organization:helix dynamics": a space and a colon
  CliRun e = Kgflow({"graph", "entity", key}, dir, env);
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("Helix Dynamics"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("in 1 document, 1 chunk"), std::string::npos) << e.out;
  CliRun ej = Kgflow({"graph", "entity", "--json", key}, dir, env);
  EXPECT_EQ(ej.code, 0) << ej.err;
  EXPECT_EQ(json::parse(ej.out, nullptr, false)["key"], key) << ej.out;
  CliRun none = Kgflow({"graph", "entity", "person:nobody at all"}, dir, env);
  EXPECT_EQ(none.code, 1) << none.err;
  EXPECT_NE(none.err.find("HTTP 404"), std::string::npos) << none.err;

  CliRun sc = Kgflow({"scale", "builtin", "1"}, dir, env);
  EXPECT_EQ(sc.code, 0) << sc.err;
  EXPECT_NE(sc.out.find("provider builtin: asked for 1 per node; target 1 process on node"), std::string::npos)
      << sc.out;
  EXPECT_NE(sc.out.find("provider builtin: 1 process running on node"), std::string::npos) << sc.out;

  std::string id = n.Get("/api/v1/tasks")["tasks"][0]["id"];
  // One task reads as a summary, its JSON only with --json.
  CliRun one = Kgflow({"tasks", id}, dir, env);
  EXPECT_EQ(one.code, 0) << one.err;
  EXPECT_NE(one.out.find("task " + id + ": one"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("status    done"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("chunks    1 of 1 done, 0 failed"), std::string::npos) << one.out;
  EXPECT_EQ(one.out.find('{'), std::string::npos) << one.out;
  CliRun one_json = Kgflow({"tasks", id, "--json"}, dir, env);
  EXPECT_EQ(one_json.code, 0) << one_json.err;
  EXPECT_EQ(json::parse(one_json.out, nullptr, false)["id"], id) << one_json.out;
  CliRun c = Kgflow({"cancel", id}, dir, env);
  EXPECT_EQ(c.code, 1) << c.err;
  EXPECT_NE(c.err.find("only unfinished tasks can be cancelled"), std::string::npos) << c.err;
  CliRun rt = Kgflow({"retry", id}, dir, env);
  EXPECT_EQ(rt.code, 1) << rt.err;
  EXPECT_NE(rt.err.find("only failed or cancelled tasks can be retried"), std::string::npos) << rt.err;
}

// Verifies `kgflow scale beta 5` with a total cap of 3 (alpha running 1) names the cap that binds with its value
// and the target, then waits for the node to run it and prints the count; a target never reached ends, after
// --timeout, with exit 1 and a message saying how many of the target run.
TEST(Cli, ScaleNamesTheBindingCapAndWaitsForTheTarget) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.alpha]\n[providers.beta]\n");
  testing::Node n(dir, {{"KG_CONFIG", dir.File("kg.toml")}, {"KG_MAX_TOTAL_PROCESSES", "3"},
                        {"KG_WORKER_NODE_NAME", "n1"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}};
  CliRun r = Kgflow({"scale", "beta", "5"}, dir, env);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("provider beta: asked for 5 per node; target 2 processes on node n1; clamped by "
                       "KG_MAX_TOTAL_PROCESSES=3 (1 taken by other providers) (caps: KG_MAX_PROCESSES_PER_PROVIDER=3, "
                       "KG_MAX_TOTAL_PROCESSES=3)"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("provider beta: 2 processes running on node n1"), std::string::npos) << r.out;
  int beta = 0;
  for (const auto& [_, provider] : n.Workers()) beta += provider == "beta";
  EXPECT_EQ(beta, 2) << "the count printed is the one running";

  // A provider whose workers exit at start never reaches its target.
  testing::TempDir dir2;
  testing::WriteFile(dir2.File("kg.toml"), "[providers.broken]\nfault = \"exit_on_start\"\n");
  testing::Node b(dir2, {{"KG_CONFIG", dir2.File("kg.toml")}, {"KG_WORKERS_PER_PROVIDER", "0"},
                         {"KG_WORKER_NODE_NAME", "n2"}});
  ASSERT_TRUE(b.ready()) << b.proc().Stderr();
  auto t0 = std::chrono::steady_clock::now();
  CliRun never = Kgflow({"scale", "broken", "2", "--timeout", "2"}, dir2,
                        {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(b.port())}});
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(never.code, 1) << never.err;
  EXPECT_NE(never.out.find("target 2 processes on node n2"), std::string::npos) << never.out;
  // 0 of 2, or 1 when the count catches a process between its start and its exit (a loaded machine).
  EXPECT_TRUE(never.err.find("provider broken: 0 of the target 2 running on node n2 after 2 s") != std::string::npos ||
              never.err.find("provider broken: 1 of the target 2 running on node n2 after 2 s") != std::string::npos)
      << never.err;
}

// Verifies a task submitted while no worker serves its provider says so (submit's output, `kgflow tasks`, GET
// task), and that the warning goes once a real worker node of that provider beats, while the task still runs.
TEST(Cli, SubmitWarnsWhileNoWorkerServesTheProvider) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.slow]\ndelay_ms = 1500\n");
  testing::WriteFile(dir.File("doc.txt"), "Mara Voss founded Helix Dynamics. Tomas Reyes joined Helix Dynamics. "
                                          "Ines Duarte advised Helix Dynamics. Omar Haddad left Helix Dynamics. "
                                          "Lena Park chairs Helix Dynamics. Ravi Menon audits Helix Dynamics.\n");
  std::map<std::string, std::string> common = {{"KG_CONFIG", dir.File("kg.toml")}, {"KG_CHUNK_SIZE", "60"},
                                               {"KG_CHUNK_OVERLAP", "0"}, {"KG_HEARTBEAT_SECONDS", "1"}};
  auto with = [&](std::map<std::string, std::string> extra) {
    for (const auto& kv : common) extra.insert(kv);
    return extra;
  };
  testing::Node web(dir, with({{"NODE_ROLE", "web"}}));
  ASSERT_TRUE(web.ready()) << web.proc().Stderr();
  auto env = with({{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(web.port())}});
  CliRun sub = Kgflow({"submit", dir.File("doc.txt")}, dir, env);
  ASSERT_EQ(sub.code, 0) << sub.err;
  std::string id = web.Get("/api/v1/tasks")["tasks"][0]["id"];
  EXPECT_NE(sub.err.find("warning: task " + id + ": no worker is serving provider slow; it waits until one does"),
            std::string::npos) << sub.err;
  CliRun tasks = Kgflow({"tasks"}, dir, env);
  EXPECT_NE(tasks.out.find("warning: task " + id + ": no worker is serving provider slow"), std::string::npos)
      << tasks.out;
  EXPECT_EQ(web.Get("/api/v1/tasks/" + id)["warning"], "no worker is serving provider slow");
  CliRun one = Kgflow({"tasks", id}, dir, env);  // the one-task summary says it too
  EXPECT_NE(one.out.find("  warning   no worker is serving provider slow"), std::string::npos) << one.out;

  testing::Node worker(dir, with({{"KG_HEALTH_ADDR", "127.0.0.1:" + std::to_string(testing::FreePort())},
                                  {"KG_CONCURRENCY_PER_PROCESS", "1"}}),
                       {"worker"}, false);
  json t;
  ASSERT_TRUE(testing::WaitFor([&] {
    t = web.Get("/api/v1/tasks/" + id);
    return !t.is_null() && t["warning"].is_null();
  }, 10s)) << t << worker.proc().Stderr();
  EXPECT_TRUE(t["status"] == "queued" || t["status"] == "running") << "the warning went while the task waits: " << t;
  CliRun again = Kgflow({"submit", dir.File("doc.txt")}, dir, env);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.err.find("no worker is serving"), std::string::npos) << again.err;
  CliRun tasks2 = Kgflow({"tasks"}, dir, env);
  EXPECT_EQ(tasks2.out.find("no worker is serving"), std::string::npos) << tasks2.out;
}

// Verifies `cancel TASK` cancels an unfinished task (on a slow provider) and `retry TASK` queues it
// again, each saying what it did and exiting 0.
TEST(Cli, CancelThenRetryAnUnfinishedTask) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.slow]\ndelay_ms = 60000\n");
  testing::Node n(dir, {{"KG_CONFIG", dir.File("kg.toml")}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = ClientEnv(n, dir);
  testing::WriteFile(dir.File("one.txt"), "Mara Voss founded Helix Dynamics.");
  CliRun r = Kgflow({"submit", "--provider", "slow", dir.File("one.txt")}, dir, env);
  ASSERT_EQ(r.code, 0) << r.err;
  std::string id = n.Get("/api/v1/tasks")["tasks"][0]["id"];
  CliRun c = Kgflow({"cancel", id}, dir, env);
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("task " + id + " cancelled: "), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("status cancelled"), std::string::npos) << c.out;
  EXPECT_EQ(n.Get("/api/v1/tasks/" + id)["status"], "cancelled");
  CliRun rt = Kgflow({"retry", id}, dir, env);
  EXPECT_EQ(rt.code, 0) << rt.err;
  EXPECT_NE(rt.out.find("task " + id + " retried: "), std::string::npos) << rt.out;
  EXPECT_NE(n.Get("/api/v1/tasks/" + id)["status"], "cancelled");
}

// Verifies a KG_CONFIG file that cannot be opened is reported with its path and the OS reason
// (toml++ alone said "File could not be opened for reading (line 0)"), exit 2, one line.
TEST(Cli, MissingConfigFileNamesPathAndReason) {
  testing::TempDir dir;
  CliRun r = Kgflow({"check-config"}, dir, {{"KG_CONFIG", dir.File("nope.toml")}});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("KG_CONFIG='" + dir.File("nope.toml") + "': cannot open: No such file or directory"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("line 0"), std::string::npos) << r.err;
  EXPECT_EQ(Lines(r.err), 1u) << r.err;
}

// Verifies a blank KG_API_TOKEN is a configuration error naming the variable (exit 2), in the
// CLI and at node start, rather than a token nobody can send.
TEST(Cli, BlankApiTokenIsAConfigurationError) {
  testing::TempDir dir;
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:1"}, {"KG_API_TOKEN", "  "}};
  CliRun r = Kgflow({"tasks"}, dir, env);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("KG_API_TOKEN"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("cannot reach"), std::string::npos) << r.err;
  env["KG_HTTP_ADDR"] = "127.0.0.1:" + std::to_string(testing::FreePort());
  env["KG_DATA_DIR"] = dir.File("data");
  CliRun s = Kgflow({"start"}, dir, env);
  EXPECT_EQ(s.code, 2) << s.err;
  EXPECT_NE(s.err.find("KG_API_TOKEN"), std::string::npos) << s.err;
}

// Verifies KG_LOG_LEVEL takes any case: check-config shows the level as spdlog knows it and a
// node starts with it (it used to be "expected one of trace, ...": exit 2).
TEST(Cli, LogLevelInAnyCase) {
  testing::TempDir dir;
  CliRun r = Kgflow({"check-config"}, dir, {{"KG_LOG_LEVEL", "WARN"}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("KG_LOG_LEVEL=warn"), std::string::npos) << r.out;
  testing::Node n(dir, {{"KG_LOG_LEVEL", "Error"}});
  EXPECT_TRUE(n.ready()) << n.proc().Stderr();
}

// Verifies files go as they are (text/plain, no JSON escaping): a file just under the node's
// body limit full of quotes and line breaks, which JSON would double, is accepted; and a
// Markdown or HTML file is stripped of its markup by its extension (or --format).
TEST(Cli, SubmitSendsFilesAsTextByFormat) {
  testing::TempDir dir;
  testing::Node n(dir, {{"KG_MAX_BODY_MB", "1"}, {"KG_CHUNK_SIZE", "100000"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())},
                                            {"KG_MAX_BODY_MB", "1"}};
  std::string quoted;
  while (quoted.size() < 1048576 - 100) quoted += "He said \"go\".\n";
  testing::WriteFile(dir.File("quotes.txt"), quoted);
  CliRun r = Kgflow({"submit", dir.File("quotes.txt")}, dir, env);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(n.Get("/api/v1/tasks")["tasks"].size(), 1u) << r.err;

  testing::WriteFile(dir.File("table.md"), "# Firms\n\n| Company | City |\n|---|---|\n| Helix Dynamics | Oslo |\n");
  testing::WriteFile(dir.File("page.htm"), "<html><body><p>Mara Voss founded <b>Orbital Freight</b>.</p>"
                                            "<script>var Evil = 1;</script></body></html>");
  testing::WriteFile(dir.File("raw.md"), "**kept** as text");
  r = Kgflow({"submit", "--wait", dir.File("table.md"), dir.File("page.htm")}, dir, env);
  ASSERT_EQ(r.code, 0) << r.err;
  r = Kgflow({"submit", "--wait", "--format", "text", dir.File("raw.md")}, dir, env);
  ASSERT_EQ(r.code, 0) << r.err;
  auto ex = n.http().Get("/api/v1/graph/export?format=json");
  ASSERT_TRUE(ex);
  json graph = json::parse(ex->body, nullptr, false);
  ASSERT_TRUE(graph.contains("chunks")) << ex->body.substr(0, 500);
  std::string texts;
  for (const auto& c : graph["chunks"]) texts += c["text"].get<std::string>() + "\n";
  EXPECT_NE(texts.find("Helix Dynamics"), std::string::npos) << texts;
  EXPECT_NE(texts.find("Mara Voss founded Orbital Freight."), std::string::npos) << texts;
  EXPECT_NE(texts.find("**kept** as text"), std::string::npos) << "--format text keeps it as is: " << texts;
  EXPECT_EQ(texts.find("| Helix"), std::string::npos) << texts;
  EXPECT_EQ(texts.find("<b>"), std::string::npos) << texts;
  EXPECT_EQ(texts.find("Evil"), std::string::npos) << texts;
}

// Verifies `submit --batch FILE...` sends every file in one batch request: each becomes a task
// with its title, source and format (Markdown stripped), printed in order, --wait follows them to
// the end; a set over KG_MAX_BODY_MB once JSON-escaped is refused before anything is sent (exit 1).
TEST(Cli, SubmitBatchSendsEveryFileInOneRequest) {
  testing::TempDir dir;
  testing::Node n(dir, {{"KG_MAX_BODY_MB", "1"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())},
                                            {"KG_MAX_BODY_MB", "1"}};
  testing::WriteFile(dir.File("a.txt"), "Mara Voss founded Helix Dynamics.\n");
  testing::WriteFile(dir.File("b.md"), "# Firms\n\n**Ana Lund** joined Meridian Analytics.\n");
  CliRun r = Kgflow({"submit", "--batch", "--wait", dir.File("a.txt"), dir.File("b.md")}, dir, env);
  ASSERT_EQ(r.code, 0) << r.err;
  json tasks = n.Get("/api/v1/tasks")["tasks"];
  ASSERT_EQ(tasks.size(), 2u) << tasks;
  std::string first = r.out.substr(0, r.out.find('\n'));
  EXPECT_NE(first.find("submitted " + dir.File("a.txt") + " as task "), std::string::npos) << r.out;
  std::set<std::string> titles;
  for (const auto& t : tasks) {
    titles.insert(t["title"].get<std::string>());
    EXPECT_EQ(t["status"], "done") << t;
  }
  EXPECT_EQ(titles, (std::set<std::string>{"a", "b"}));
  auto ex = n.http().Get("/api/v1/graph/export?format=json");
  ASSERT_TRUE(ex);
  EXPECT_NE(ex->body.find("Ana Lund joined Meridian Analytics."), std::string::npos) << "Markdown stripped";
  EXPECT_EQ(ex->body.find("**Ana"), std::string::npos);

  // Each file fits the limit as sent alone; their quotes, escaped, push the batch over it.
  std::string quoted;
  while (quoted.size() < 500 * 1024) quoted += "He said \"go\".\n";
  testing::WriteFile(dir.File("q1.txt"), quoted);
  testing::WriteFile(dir.File("q2.txt"), quoted);
  CliRun over = Kgflow({"submit", "--batch", dir.File("q1.txt"), dir.File("q2.txt")}, dir, env);
  EXPECT_EQ(over.code, 1) << over.err;
  EXPECT_NE(over.err.find("KG_MAX_BODY_MB"), std::string::npos) << over.err;
  EXPECT_NE(over.err.find("nothing submitted"), std::string::npos) << over.err;
  EXPECT_EQ(n.Get("/api/v1/tasks")["tasks"].size(), 2u) << "nothing more was created";
}

// Verifies `submit --token-budget N` gives each task that budget, alone and with --batch (none
// without it), a budget that is not a whole number >= 0 is a usage error (exit 2) sending nothing,
// and `tasks ID` shows the task's tokens against its budget and its cost, as the API reports them.
TEST(Cli, TokenBudgetIsSentAndTasksShowsTokensAndCost) {
  testing::TempDir dir;
  testing::Node n(dir);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = {{"KG_HTTP_ADDR", "127.0.0.1:" + std::to_string(n.port())}};
  testing::WriteFile(dir.File("a.txt"), "Mara Voss founded Helix Dynamics.\n");
  testing::WriteFile(dir.File("b.txt"), "Ana Lund joined Meridian Analytics.\n");
  testing::WriteFile(dir.File("c.txt"), "Tomas Reyes led Ardent Capital.\n");
  CliRun r = Kgflow({"submit", "--token-budget", "500", dir.File("a.txt")}, dir, env);
  ASSERT_EQ(r.code, 0) << r.err;
  r = Kgflow({"submit", "--batch", "--token-budget", "70", dir.File("b.txt"), dir.File("c.txt")}, dir, env);
  ASSERT_EQ(r.code, 0) << r.err;
  r = Kgflow({"submit", dir.File("c.txt")}, dir, env);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* bad : {"-1", "lots", "1.5"}) {
    CliRun refused = Kgflow({"submit", "--token-budget", bad, dir.File("a.txt")}, dir, env);
    EXPECT_EQ(refused.code, 2) << bad << ": " << refused.err;
  }
  json tasks = n.Get("/api/v1/tasks")["tasks"];
  ASSERT_EQ(tasks.size(), 4u) << tasks;
  std::map<std::string, std::multiset<int64_t>> budgets;  // by title
  std::string budgeted;
  for (const auto& t : tasks) {
    budgets[t["title"].get<std::string>()].insert(t["token_budget"].get<int64_t>());
    if (t["token_budget"] == 500) budgeted = t["id"].get<std::string>();
  }
  EXPECT_EQ(budgets["a"], (std::multiset<int64_t>{500}));
  EXPECT_EQ(budgets["b"], (std::multiset<int64_t>{70}));
  EXPECT_EQ(budgets["c"], (std::multiset<int64_t>{0, 70}));

  // Spending as a worker would record it, into the node's own store.
  {
    auto store = OpenSqliteTaskStore(dir.path() + "/data/tasks.db");
    ASSERT_TRUE(store.ok()) << store.status().message();
    UsageTotals u;
    u.prompt_tokens = 100;
    u.completion_tokens = 20;
    u.requests = 2;
    u.cached_chunks = 1;
    u.cost = 0.0375;
    ASSERT_TRUE((*store)->AddUsage(budgeted, budgeted + ":test", "builtin", u).ok());
  }
  json usage = n.Get("/api/v1/tasks/" + budgeted)["usage"];
  ASSERT_TRUE(usage.is_object()) << usage;
  ASSERT_GE(usage["tokens"].get<int64_t>(), 120) << usage;
  CliRun shown = Kgflow({"tasks", budgeted}, dir, env);
  ASSERT_EQ(shown.code, 0) << shown.err;
  const int64_t requests = usage["requests"], cached = usage["cached_chunks"];
  EXPECT_NE(shown.out.find(fmt::format("tokens    {} of a budget of 500 ({} prompt, {} completion), {} request{}, {} "
                                       "chunk{} from the cache",
                                       usage["tokens"].get<int64_t>(), usage["prompt_tokens"].get<int64_t>(),
                                       usage["completion_tokens"].get<int64_t>(), requests, requests == 1 ? "" : "s",
                                       cached, cached == 1 ? "" : "s")),
            std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find(fmt::format("cost      {:.4f}", usage["cost"].get<double>())), std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find("cost      0.0375"), std::string::npos) << shown.out;
}

// Verifies `submit --wait` survives a node restart: the node is killed while the CLI waits,
// the CLI says once that it is reconnecting, a new node on the same address and data picks
// the task up, and the CLI follows it to the end with exit 0.
TEST(Cli, SubmitWaitReconnectsAcrossANodeRestart) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.slow]\ndelay_ms = 1500\n");
  testing::Node n(dir, {{"KG_CONFIG", dir.File("kg.toml")}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = ClientEnv(n, dir);
  env["KG_DATA_DIR"] = dir.path() + "/data";
  testing::WriteFile(dir.File("one.txt"), "Mara Voss founded Helix Dynamics. Ana Lund joined Helix Dynamics.");
  testing::Process cli({"submit", "--wait", "--reconnect-timeout", "8", "--provider", "slow", dir.File("one.txt")}, env,
                       dir.path());
  ASSERT_TRUE(testing::WaitFor([&] { return cli.Stdout().find("submitted") != std::string::npos; }, 20s))
      << cli.Stderr();
  ASSERT_TRUE(n.proc().Signal(SIGKILL));
  ASSERT_NE(n.proc().Wait(10s), -1);
  ASSERT_TRUE(testing::WaitFor([&] { return cli.Stderr().find("reconnecting") != std::string::npos; }, 20s))
      << cli.Stderr();
  EXPECT_FALSE(cli.Exited());
  std::map<std::string, std::string> node_env = env;
  testing::Process again({"start"}, node_env, dir.path());
  int st = cli.Wait(60s);
  ASSERT_NE(st, -1) << "the CLI still waits: " << cli.Stderr();
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << cli.Stderr();
  std::string err = cli.Stderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << "one line lost, one reconnected: " << err;
  EXPECT_NE(err.find("reconnected"), std::string::npos) << err;
  EXPECT_NE(cli.Stdout().find("done"), std::string::npos) << cli.Stdout();
  again.Signal(SIGTERM);
  again.Wait(20s);
}

// Verifies a file is sent as it was checked or not at all (ReadAsChecked, on which each piece of a submit
// is read): unchanged it reads; grown (the old client sent only the checked size, maybe cut mid-character),
// shrunk (it said "cannot reach" the node), or rewritten to the same size with a new mtime it is refused as
// "FILE changed while being sent"; a read error is a read error.
TEST(Cli, FileThatChangedSinceItsCheckIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("doc.txt");
  const std::string text = "Mara Voss founded Helix Dynamics.\n";
  testing::WriteFile(path, text);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto checked = StampOf(fd, path);
  ASSERT_TRUE(checked.ok()) << checked.status().message();
  EXPECT_EQ(checked->size, static_cast<int64_t>(text.size()));
  char buf[256];
  auto n = ReadAsChecked(fd, path, *checked, 0, buf, sizeof buf);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(std::string(buf, *n), text);
  auto refused = [&](const char* what) {
    auto r = ReadAsChecked(fd, path, *checked, 0, buf, sizeof buf);
    ASSERT_FALSE(r.ok()) << what << ": read " << *r << " bytes";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << what;
    EXPECT_EQ(r.status().message(), path + " changed while being sent") << what;
  };
  std::ofstream(path, std::ios::app) << "Ana Lund joined Helix Dynamics.\n";
  refused("grown");
  ASSERT_EQ(::truncate(path.c_str(), 5), 0);
  refused("shrunk");
  testing::WriteFile(path, text);  // the checked size again, another mtime
  timespec times[2] = {{0, UTIME_OMIT}, {checked->mtime_ns / 1000000000 + 7, 0}};
  ASSERT_EQ(::futimens(fd, times), 0);
  refused("same size, new mtime");
  ::close(fd);

  int dfd = ::open(dir.path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(dfd, 0);
  auto dstamp = StampOf(dfd, dir.path());
  ASSERT_TRUE(dstamp.ok());
  auto r = ReadAsChecked(dfd, dir.path(), *dstamp, 0, buf, sizeof buf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().message().rfind("cannot read " + dir.path() + ": ", 0), 0u) << r.status().message();
  ::close(dfd);
}

// Verifies `submit` refuses a FIFO as not a regular file at once, exit 1 and nothing submitted (its check used
// to open it for reading and wait for a writer forever).
TEST(Cli, SubmitRefusesAFifo) {
  testing::TempDir dir;
  ASSERT_EQ(::mkfifo(dir.File("pipe.txt").c_str(), 0600), 0);
  CliRun r = Kgflow({"submit", dir.File("pipe.txt")}, dir, {{"KG_HTTP_ADDR", "127.0.0.1:1"}});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find(dir.File("pipe.txt") + ": not a regular file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing submitted"), std::string::npos) << r.err;
}

// Verifies `submit --wait` gives up on a node that accepts connections but never answers (SIGSTOPped): exit 1
// after its 60 s reconnect budget and a short poll, well within 110 s (each poll used to wait 120 s for an
// answer, so it took minutes).
TEST(Cli, SubmitWaitGivesUpOnANodeThatStopsAnswering) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), "[providers.slow]\ndelay_ms = 60000\n");
  testing::Node n(dir, {{"KG_CONFIG", dir.File("kg.toml")}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::map<std::string, std::string> env = ClientEnv(n, dir);
  testing::WriteFile(dir.File("one.txt"), "Mara Voss founded Helix Dynamics.");
  testing::Process cli({"submit", "--wait", "--reconnect-timeout", "8", "--provider", "slow", dir.File("one.txt")}, env,
                       dir.path());
  ASSERT_TRUE(testing::WaitFor([&] { return cli.Stdout().find("submitted") != std::string::npos; }, 20s))
      << cli.Stderr();
  ASSERT_TRUE(n.proc().Signal(SIGSTOP));
  struct Resume {
    testing::Node& n;
    ~Resume() { n.proc().Signal(SIGCONT); }  // before the node is stopped, whatever happened
  } resume{n};
  int st = cli.Wait(60s);
  ASSERT_NE(st, -1) << "the CLI still waits on a node that never answers: " << cli.Stderr();
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 1) << cli.Stderr();
  EXPECT_NE(cli.Stderr().find("reconnecting for up to 8 s"), std::string::npos) << cli.Stderr();
  EXPECT_NE(cli.Stderr().find("cannot reach http://127.0.0.1:" + std::to_string(n.port()) + " for 8 s"),
            std::string::npos) << cli.Stderr();
}

}  // namespace
}  // namespace kg
