// Nodes whose provider is an OpenAI-compatible API: the fake server of tests/testing/fake_llm.py
// stands in for DeepSeek & co. (a test peer), everything else is the real node: worker processes,
// the queue, the task store, the graph. Faults by markers in the text (see fake_llm.py).

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "testing/fake_llm.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using testing::FakeLlm;
using testing::Node;
using testing::TempDir;
using testing::WaitFor;

// Distinctive, so that a search of every log line and response for it cannot miss it.
constexpr const char* kKey = "sk-test-Zq9xK2mW7vLp4Rt8";

std::string ProviderToml(const FakeLlm& fake, const std::string& extra = "") {
  return "[providers.fake]\nkind = \"openai\"\nbase_url = \"" + fake.base_url() +
         "\"\nmodel = \"fake-model\"\napi_key_env = \"FAKE_LLM_KEY\"\ntimeout_s = 20\n" + extra;
}

std::map<std::string, std::string> NodeEnv(const TempDir& dir) {
  return {{"KG_CONFIG", dir.File("kg.toml")}, {"KG_PROVIDERS", "fake"},     {"FAKE_LLM_KEY", kKey},
          {"KG_CHUNK_SIZE", "160"},           {"KG_CHUNK_OVERLAP", "0"},    {"KG_MAX_ATTEMPTS", "2"},
          {"KG_WORKERS_PER_PROVIDER", "2"},   {"KG_LOG_LEVEL", "info"}};
}

// Submits `text`; the task id ("" and a failure when refused).
std::string Submit(Node& n, const std::string& text, const std::string& title, int64_t token_budget = 0) {
  json body = {{"text", text}, {"title", title}};
  if (token_budget > 0) body["token_budget"] = token_budget;
  auto r = n.http().Post("/api/v1/tasks", body.dump(), "application/json");
  if (!r || r->status != 202) {
    ADD_FAILURE() << (r ? r->body : "no answer");
    return "";
  }
  return json::parse(r->body)["id"];
}

// The task once it is finished (done, failed or cancelled), or null at the deadline.
json Finished(Node& n, const std::string& id, std::chrono::milliseconds within = 60s) {
  json t;
  bool ok = WaitFor(
      [&] {
        t = n.Get("/api/v1/tasks/" + id);
        if (t.is_null()) return false;
        std::string s = t.value("status", "");
        return s == "done" || s == "failed" || s == "cancelled";
      },
      within);
  if (!ok) ADD_FAILURE() << "task " << id << " not finished: " << t.dump();
  return ok ? t : json();
}

// Sentences of ~120 bytes, one per chunk at KG_CHUNK_SIZE 160.
std::string Sentence(int i, const std::string& marker = "") {
  static const char* kPeople[] = {"Alice Moreau", "Bruno Keller", "Chen Wei", "Dana Okafor", "Emil Sato"};
  static const char* kOrgs[] = {"Meridian Labs", "Helix Group", "Linden Corp", "Aurora Inc"};
  return std::string(kPeople[i % 5]) + " joined " + kOrgs[i % 4] + " as an engineer in the spring of year number " +
         std::to_string(2000 + i) + (marker.empty() ? "" : " " + marker) + ".\n\n";
}

// Verifies the path from submission to graph through a real LLM-style provider, and its worst
// case: one chunk whose output is always garbage is dead-lettered after a corrective re-ask with a
// reason quoting the output, while every sibling chunk of the same task lands in the graph; the
// API key went to the server and appears in no log line and no API response.
TEST(LlmNode, GarbageChunkIsDeadLetteredWhileItsSiblingsSucceed) {
  FakeLlm fake;
  TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), ProviderToml(fake));
  Node n(dir, NodeEnv(dir));
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string text;
  for (int i = 0; i < 6; ++i) text += Sentence(i, i == 3 ? "FAKE_GARBAGE" : "");
  std::string id = Submit(n, text, "six chunks");
  json t = Finished(n, id);
  ASSERT_FALSE(t.is_null());
  int total = t["chunks_total"];
  EXPECT_GE(total, 4) << t.dump();  // a sentence or two a chunk
  EXPECT_EQ(t["chunks_done"], total - 1) << t.dump();
  EXPECT_EQ(t["chunks_failed"], 1) << t.dump();
  std::string error = t.value("error", "");
  EXPECT_NE(error.find("corrective re-ask"), std::string::npos) << error;
  EXPECT_NE(error.find("I cannot help with that"), std::string::npos) << "no snippet of the output: " << error;
  // The siblings' entities are in the graph.
  json alice = n.Get("/api/v1/graph/entities?q=Alice%20Moreau");
  ASSERT_FALSE(alice.is_null());
  EXPECT_FALSE(alice["entities"].empty()) << alice.dump();
  // Two attempts of the garbage chunk, each a request and its re-ask: 4; the five others one each.
  json stats = fake.Stats();
  EXPECT_EQ(stats["by_marker"].value("FAKE_GARBAGE", 0), 4) << stats.dump();
  // The key was sent, as a bearer token, and is nowhere else.
  EXPECT_NE(stats["auth"].dump().find(std::string("Bearer ") + kKey), std::string::npos) << stats.dump();
  std::string seen = n.proc().Stderr() + n.proc().Stdout();
  for (const char* path : {"/api/v1/tasks", "/api/v1/providers", "/api/v1/workers", "/metrics", "/readyz"}) {
    auto r = n.http().Get(path);
    ASSERT_TRUE(r) << path;
    seen += r->body;
  }
  seen += t.dump();
  auto check = testing::RunToEnd({"check-config"}, dir.path(), NodeEnv(dir), 20s);
  EXPECT_EQ(check.code, 0) << check.err;
  EXPECT_NE(check.out.find("FAKE_LLM_KEY"), std::string::npos) << check.out;
  seen += check.out + check.err;
  EXPECT_EQ(seen.find(kKey), std::string::npos) << "the API key leaked";
}

// Verifies the response cache: the same document submitted again is extracted from the task
// store's cache, with zero requests to the provider, and the ledger says so (tokens on the first
// task, cached chunks on the second).
TEST(LlmNode, ResubmittedDocumentCostsNoRequest) {
  FakeLlm fake;
  TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), ProviderToml(fake));
  Node n(dir, NodeEnv(dir));
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string text;
  for (int i = 0; i < 4; ++i) text += Sentence(i);
  json first = Finished(n, Submit(n, text, "first"));
  ASSERT_FALSE(first.is_null());
  ASSERT_EQ(first["status"], "done") << first.dump();
  int chunks = first["chunks_total"];
  int requests = fake.Stats()["requests"];
  EXPECT_EQ(requests, chunks);
  EXPECT_EQ(first["usage"]["requests"], chunks) << first.dump();
  EXPECT_GT(first["usage"]["prompt_tokens"].get<int64_t>(), 0) << first.dump();
  EXPECT_GT(first["usage"]["completion_tokens"].get<int64_t>(), 0) << first.dump();
  EXPECT_EQ(first["usage"]["cached_chunks"], 0) << first.dump();

  json second = Finished(n, Submit(n, text, "again"));
  ASSERT_FALSE(second.is_null());
  EXPECT_EQ(second["status"], "done") << second.dump();
  EXPECT_EQ(fake.Stats()["requests"], requests) << "a re-submitted document reached the provider";
  EXPECT_EQ(second["usage"]["cached_chunks"], chunks) << second.dump();
  EXPECT_EQ(second["usage"]["requests"], 0) << second.dump();
  EXPECT_EQ(second["usage"]["prompt_tokens"], 0) << second.dump();
  // The provider's summary adds both tasks.
  json providers = n.Get("/api/v1/providers");
  ASSERT_FALSE(providers.is_null());
  EXPECT_NE(providers.dump().find("\"cached_chunks\":" + std::to_string(chunks)), std::string::npos)
      << providers.dump();
  EXPECT_NE(providers.dump().find("\"requests\":" + std::to_string(chunks)), std::string::npos) << providers.dump();
}

// Verifies the per-task token budget with chunks in flight at once: a call reserves its worst case
// against the budget, so once a task has spent it, the task stops with status cancelled and a
// reason naming the budget, and its remaining chunks have sent no request.
TEST(LlmNode, TokenBudgetStopsTheTask) {
  FakeLlm fake;
  TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), ProviderToml(fake));
  auto env = NodeEnv(dir);
  env["KG_WORKERS_PER_PROVIDER"] = "1";  // one process, 32 chunks in flight (the default for an LLM)
  Node n(dir, env);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string text;
  for (int i = 0; i < 8; ++i) text += Sentence(i);
  json t = Finished(n, Submit(n, text, "budgeted", /*token_budget=*/1));
  ASSERT_FALSE(t.is_null());
  EXPECT_EQ(t["status"], "cancelled") << t.dump();
  EXPECT_NE(t.value("error", "").find("token budget reached"), std::string::npos) << t.dump();
  // The first call reserves its worst case, which is over the budget: the other chunks wait for it
  // instead of starting, then see the budget spent.
  EXPECT_EQ(t["chunks_done"], 1) << t.dump();
  EXPECT_EQ(fake.Stats()["requests"], 1);
  EXPECT_EQ(t["usage"]["requests"], 1) << t.dump();
  // A retry would stop at once: refused, saying what to do instead.
  auto retry = n.http().Post("/api/v1/tasks/" + t["id"].get<std::string>() + "/retry", "", "application/json");
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->status, 409) << retry->body;
  EXPECT_NE(retry->body.find("larger token_budget"), std::string::npos) << retry->body;
}

// Verifies that a call outlasting the lease keeps its chunk: with 2 s leases and a provider that
// answers after 5 s, every chunk is sent once (its lease renewed while the call waits; an expired
// lease would hand the chunk to another worker, which would send it again) and the task is done.
TEST(LlmNode, CallsLongerThanTheLeaseAreSentOnce) {
  FakeLlm::Options o;
  o.latency_ms = 5000;
  FakeLlm fake(o);
  TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), ProviderToml(fake));
  auto env = NodeEnv(dir);
  env["KG_LEASE_SECONDS"] = "2";
  Node n(dir, env);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string text;
  for (int i = 0; i < 4; ++i) text += Sentence(i);
  json t = Finished(n, Submit(n, text, "slow provider"), 60s);
  ASSERT_FALSE(t.is_null());
  EXPECT_EQ(t["status"], "done") << t.dump();
  EXPECT_EQ(fake.Stats()["requests"], t["chunks_total"]) << fake.Stats().dump();
}

// Verifies that a preset is all a user needs: KG_PROVIDERS=deepseek and DEEPSEEK_API_KEY (here with
// DEEPSEEK_BASE_URL pointing at the fake server) build a graph with the key as the bearer token;
// without the key the node does not start: exit 2 naming the variable.
TEST(LlmNode, PresetNeedsOnlyItsKey) {
  FakeLlm fake;
  TempDir dir;
  std::map<std::string, std::string> env = {{"KG_PROVIDERS", "deepseek"},
                                            {"DEEPSEEK_BASE_URL", fake.base_url()},
                                            {"DEEPSEEK_API_KEY", kKey},
                                            {"KG_LOG_LEVEL", "info"}};
  {
    Node n(dir, env);
    ASSERT_TRUE(n.ready()) << n.proc().Stderr();
    json t = Finished(n, Submit(n, Sentence(1) + Sentence(2), "preset"));
    ASSERT_FALSE(t.is_null());
    EXPECT_EQ(t["status"], "done") << t.dump();
    json stats = fake.Stats();
    EXPECT_GE(stats["requests"].get<int>(), 1);
    EXPECT_NE(stats["auth"].dump().find(std::string("Bearer ") + kKey), std::string::npos) << stats.dump();
    EXPECT_EQ((n.proc().Stderr() + n.proc().Stdout()).find(kKey), std::string::npos);
  }
  env.erase("DEEPSEEK_API_KEY");
  auto run = testing::RunToEnd({"start"}, dir.path(), env, 20s);
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_NE(run.err.find("DEEPSEEK_API_KEY"), std::string::npos) << run.err;
}

// Verifies that a prompt file that does not parse stops start-up (exit 2, naming the provider and
// what is wrong) instead of failing every worker's set-up in a loop.
TEST(LlmNode, BadPromptFileStopsStartUp) {
  FakeLlm fake;
  TempDir dir;
  testing::WriteFile(dir.File("prompt.md"), "no version line here\n--- user\n{{text}}\n");
  testing::WriteFile(dir.File("kg.toml"), ProviderToml(fake, "prompt_file = \"" + dir.File("prompt.md") + "\"\n"));
  auto run = testing::RunToEnd({"start"}, dir.path(), NodeEnv(dir), 30s);
  EXPECT_EQ(run.code, 2) << run.err;
  EXPECT_NE(run.err.find("provider fake prompt_file"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("version"), std::string::npos) << run.err;
  EXPECT_EQ(fake.Stats()["requests"], 0);
}

// Verifies that 429s cost no attempt: every chunk is answered 429 (with Retry-After) once, with
// KG_MAX_ATTEMPTS=1 so that a single nack would dead-letter it; every chunk ends done, after two
// requests each (the provider paused and retried itself).
TEST(LlmNode, RateLimitedRequestsCostNoAttempt) {
  FakeLlm fake;
  TempDir dir;
  testing::WriteFile(dir.File("kg.toml"), ProviderToml(fake));
  auto env = NodeEnv(dir);
  env["KG_MAX_ATTEMPTS"] = "1";
  Node n(dir, env);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string text;
  for (int i = 0; i < 8; ++i) text += Sentence(i, "FAKE_429_ONCE");
  json t = Finished(n, Submit(n, text, "throttled"), 90s);
  ASSERT_FALSE(t.is_null());
  EXPECT_EQ(t["status"], "done") << t.dump();
  int total = t["chunks_total"];
  EXPECT_EQ(t["chunks_done"], total) << t.dump();
  json stats = fake.Stats();
  EXPECT_EQ(stats["by_status"].value("429", 0), total) << stats.dump();
  EXPECT_EQ(stats["requests"], 2 * total) << stats.dump();
  EXPECT_EQ(t["usage"]["requests"], 2 * total) << t.dump();
}

// Verifies the cluster-wide request limit: two nodes sharing one Redis (and one MariaDB), one
// provider with rpm = 120, a backlog far over what a minute allows; at the fake server, no
// 60-second window ever holds more than 120 requests, and the limit was the bottleneck (more than
// 120 requests over the run, so a window was full).
TEST(LlmCluster, TwoNodesNeverExceedTheRpmInAnyMinute) {
  TempDir dir;
  testing::ScopedServer redis{testing::StartServer("redis", dir.path() + "/redis")};
  testing::ScopedServer mysql{testing::StartServer("mariadb", dir.path() + "/mariadb")};
  ASSERT_GT(redis.server.port, 0);
  ASSERT_GT(mysql.server.port, 0);
  FakeLlm fake;
  testing::WriteFile(dir.File("kg.toml"), ProviderToml(fake, "rpm = 120\n"));
  std::vector<std::unique_ptr<TempDir>> dirs;
  std::vector<std::unique_ptr<Node>> nodes;
  for (const char* name : {"llm-a", "llm-b"}) {
    std::map<std::string, std::string> env = {{"KG_CONFIG", dir.File("kg.toml")},
                                              {"KG_PROVIDERS", "fake"},
                                              {"FAKE_LLM_KEY", kKey},
                                              {"KG_WORKER_NODE_NAME", name},
                                              {"REDIS_HOST", "127.0.0.1"},
                                              {"REDIS_PORT", std::to_string(redis.server.port)},
                                              {"DB_HOST", "127.0.0.1"},
                                              {"DB_PORT", std::to_string(mysql.server.port)},
                                              {"DB_USER", testing::kMysqlUser},
                                              {"DB_PASSWORD", testing::kMysqlPassword},
                                              {"DB_NAME", "kgflow"},
                                              {"KG_WORKERS_PER_PROVIDER", "2"},
                                              {"KG_CONCURRENCY_PER_PROCESS", "16"},
                                              {"KG_LOG_LEVEL", "warn"}};
    dirs.push_back(std::make_unique<TempDir>());
    nodes.push_back(std::make_unique<Node>(*dirs.back(), env));
    ASSERT_TRUE(nodes.back()->ready()) << nodes.back()->proc().Stderr();
  }
  json batch = json::array();
  for (int i = 0; i < 300; ++i) batch.push_back({{"text", Sentence(i)}, {"title", "d" + std::to_string(i)}});
  auto r = nodes[0]->http().Post("/api/v1/tasks/batch", batch.dump(), "application/json");
  ASSERT_TRUE(r && r->status == 201) << (r ? r->body.substr(0, 300) : "no answer");
  // Past a full minute of requests (the first arrival starts it), or every chunk sent (which, within
  // a minute, breaks the limit: the check below says so).
  ASSERT_TRUE(WaitFor(
      [&] {
        json s = fake.Stats();
        auto a = s["arrivals"];
        return a.size() >= 300 || (a.size() > 1 && a.back().get<double>() - a.front().get<double>() >= 65.0);
      },
      120s))
      << fake.Stats()["requests"];
  int most = fake.MaxInWindow(60.0);
  int total = fake.Stats()["requests"];
  EXPECT_LE(most, 120) << "requests in one 60 s window";
  EXPECT_GT(total, 120) << "the limit was never reached, so this proves nothing";
  std::cerr << "max in any 60 s window: " << most << " of " << total << " requests\n";
}

}  // namespace
}  // namespace kg
