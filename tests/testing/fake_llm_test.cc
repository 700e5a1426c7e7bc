// The fake OpenAI-compatible server (testing/fake_llm.py), driven through its launcher with
// cpp-httplib as the client.
#include "testing/fake_llm.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace kg::testing {
namespace {

using nlohmann::json;

constexpr const char* kSystem = "Extract a graph.";
constexpr const char* kText = "Alice met Bob at Acme Inc. ";

// A chat-completions request whose first user message is `chunk`.
json Request(const std::string& chunk) {
  return {{"model", "fake-model"},
          {"temperature", 0},
          {"response_format", {{"type", "json_object"}}},
          {"messages", json::array({{{"role", "system"}, {"content", kSystem}},
                                    {{"role", "user"}, {"content", chunk}},
                                    {{"role", "user"}, {"content", "a later user message"}}})}};
}

httplib::Result Ask(const FakeLlm& fake, const std::string& chunk, const std::string& key = "",
                    const std::string& path = "/v1/chat/completions") {
  httplib::Client c("127.0.0.1", fake.port());
  c.set_read_timeout(10, 0);
  httplib::Headers h;
  if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
  return c.Post(path, h, Request(chunk).dump(), "application/json");
}

// The assistant's content of a 200 answer ("<no answer>" or "<status N>" otherwise).
std::string Content(const httplib::Result& res) {
  if (!res) return "<no answer>";
  if (res->status != 200) return "<status " + std::to_string(res->status) + ">";
  return json::parse(res->body)["choices"][0]["message"]["content"];
}

// `text` parsed, or a discarded value (equal to nothing a test expects) when it is not JSON.
json Parsed(const std::string& text) { return json::parse(text, nullptr, false); }

std::string FinishReason(const httplib::Result& res) {
  if (!res || res->status != 200) return "";
  return json::parse(res->body)["choices"][0]["finish_reason"];
}

// `text` without the comma of each ", }" and ", ]".
std::string WithoutTrailingCommas(std::string text) {
  for (size_t at = 0; (at = text.find(", ", at)) != std::string::npos;) {
    if (at + 2 < text.size() && (text[at + 2] == '}' || text[at + 2] == ']')) {
      text.erase(at, 1);
    } else {
      ++at;
    }
  }
  return text;
}

// The graph kText gives: what every marker that still answers with a graph must carry.
json Graph() {
  return json::parse(R"({"entities":[
      {"name":"Alice","type":"Person","description":"Alice, named in the text"},
      {"name":"Bob","type":"Person","description":"Bob, named in the text"},
      {"name":"Acme Inc","type":"Organization","description":"Acme Inc, named in the text"}],
    "relations":[{"source":"Alice","target":"Bob","type":"RELATED_TO",
      "description":"Alice met Bob at Acme Inc.","evidence":"Alice met Bob at Acme Inc."}]})");
}

// Verifies the normal answer: the OpenAI response shape, the graph read off the first user
// message (capitalised runs, stop words dropped, organisation suffixes, one relation per sentence
// with two entities) and the usage numbers (prompt: bytes of all message contents / 4,
// completion: characters of the content / 4, both rounded up).
TEST(FakeLlm, NormalAnswer) {
  FakeLlm fake;
  ASSERT_GT(fake.port(), 0);
  EXPECT_EQ(fake.base_url(), "http://127.0.0.1:" + std::to_string(fake.port()) + "/v1");
  const std::string chunk =
      "Alice Smith joined Acme Corp in May. The weather was fine. Bob met Alice Smith!";
  auto res = Ask(fake, chunk);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  json body = json::parse(res->body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "fake-model");
  EXPECT_EQ(body["id"].get<std::string>().rfind("fake-", 0), 0u);
  ASSERT_EQ(body["choices"].size(), 1u);
  EXPECT_EQ(body["choices"][0]["index"], 0);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  const std::string content = body["choices"][0]["message"]["content"];
  json graph = Parsed(content);
  ASSERT_TRUE(graph.is_object()) << content;
  json names = json::array();
  for (const auto& e : graph["entities"]) names.push_back({e["name"], e["type"]});
  EXPECT_EQ(names, json::parse(R"([["Alice Smith","Person"],["Acme Corp","Organization"],
                                   ["May","Person"],["Bob","Person"]])"));
  ASSERT_EQ(graph["relations"].size(), 2u);
  EXPECT_EQ(graph["relations"][0], json::parse(R"({"source":"Alice Smith","target":"Acme Corp",
      "type":"RELATED_TO","description":"Alice Smith joined Acme Corp in May.",
      "evidence":"Alice Smith joined Acme Corp in May."})"));
  EXPECT_EQ(graph["relations"][1]["source"], "Bob");
  EXPECT_EQ(graph["relations"][1]["target"], "Alice Smith");
  EXPECT_EQ(graph["relations"][1]["evidence"], "Bob met Alice Smith!");

  const size_t prompt_bytes =
      std::string(kSystem).size() + chunk.size() + std::string("a later user message").size();
  const int prompt = static_cast<int>((prompt_bytes + 3) / 4);
  const int completion = static_cast<int>((content.size() + 3) / 4);
  EXPECT_EQ(body["usage"]["prompt_tokens"], prompt);
  EXPECT_EQ(body["usage"]["completion_tokens"], completion);
  EXPECT_EQ(body["usage"]["total_tokens"], prompt + completion);

  // The same answer at the path without /v1, and request after request on one kept-alive
  // connection.
  httplib::Client c("127.0.0.1", fake.port());
  c.set_keep_alive(true);
  for (int i = 0; i < 3; ++i) {
    auto again = c.Post("/chat/completions", Request(chunk).dump(), "application/json");
    ASSERT_TRUE(again);
    EXPECT_EQ(Content(again), content);
  }
}

// Verifies Chinese text: the 2-4 CJK characters before 公司 make an Organization, and a sentence
// ending in 。 with two of them a relation.
TEST(FakeLlm, ChineseCompanies) {
  FakeLlm fake;
  ASSERT_GT(fake.port(), 0);
  json graph = Parsed(Content(Ask(fake, "阿里巴巴公司投资了腾讯公司。")));
  ASSERT_TRUE(graph.is_object());
  EXPECT_EQ(graph["entities"].size(), 2u);
  EXPECT_EQ(graph["entities"][0]["name"], "阿里巴巴公司");
  EXPECT_EQ(graph["entities"][0]["type"], "Organization");
  EXPECT_EQ(graph["entities"][1]["name"], "腾讯公司");
  ASSERT_EQ(graph["relations"].size(), 1u);
  EXPECT_EQ(graph["relations"][0]["evidence"], "阿里巴巴公司投资了腾讯公司。");
}

// Verifies the error markers: the ONCE ones answer their error (status, headers, body) to the
// first request with a chunk text, then the normal answer; a different chunk text with the same
// marker misbehaves again; the ALWAYS ones never stop.
TEST(FakeLlm, ErrorMarkers) {
  FakeLlm fake;
  ASSERT_GT(fake.port(), 0);
  const std::string once_429 = std::string(kText) + "FAKE_429_ONCE";
  auto res = Ask(fake, once_429);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(res->body)["error"]["type"], "rate_limit_exceeded");
  EXPECT_EQ(Parsed(Content(Ask(fake, once_429))), Graph());
  EXPECT_EQ(Parsed(Content(Ask(fake, once_429))), Graph());
  EXPECT_EQ(Ask(fake, once_429 + " again")->status, 429);  // another chunk text

  const std::string ms = std::string(kText) + "FAKE_429_MS_ONCE";
  res = Ask(fake, ms);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("retry-after-ms"), "300");
  EXPECT_FALSE(res->has_header("Retry-After"));
  EXPECT_EQ(Parsed(Content(Ask(fake, ms))), Graph());

  const std::string once_500 = std::string(kText) + "FAKE_500_ONCE";
  res = Ask(fake, once_500);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(json::parse(res->body)["error"]["message"], "internal");
  EXPECT_EQ(Parsed(Content(Ask(fake, once_500))), Graph());

  for (int i = 0; i < 3; ++i) {
    res = Ask(fake, std::string(kText) + "FAKE_503_ALWAYS");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    res = Ask(fake, std::string(kText) + "FAKE_INSUFFICIENT_QUOTA");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 429);
    EXPECT_FALSE(res->has_header("Retry-After"));
    json error = json::parse(res->body)["error"];
    EXPECT_EQ(error["type"], "insufficient_quota");
    EXPECT_EQ(error["code"], "insufficient_quota");
    EXPECT_EQ(error["message"], "You exceeded your current quota");
  }

  // The first marker in the text wins (FAKE_GARBAGE_ONCE is not read as FAKE_GARBAGE).
  EXPECT_EQ(Ask(fake, "FAKE_500_ONCE then FAKE_503_ALWAYS")->status, 500);
  EXPECT_EQ(Ask(fake, "FAKE_503_ALWAYS then FAKE_500_ONCE")->status, 503);
  const std::string garbage_once = std::string(kText) + "FAKE_GARBAGE_ONCE";
  EXPECT_EQ(Content(Ask(fake, garbage_once)), "I cannot help with that.");
  EXPECT_EQ(Parsed(Content(Ask(fake, garbage_once))), Graph());

  json stats = fake.Stats();
  EXPECT_EQ(stats["by_marker"]["FAKE_429_ONCE"], 4);
  EXPECT_EQ(stats["by_marker"]["FAKE_503_ALWAYS"], 4);
  EXPECT_EQ(stats["by_marker"]["FAKE_500_ONCE"], 3);
  EXPECT_EQ(stats["by_status"]["503"], 4);
}

// Verifies the content markers: each answers 200 with the content its name promises, the
// normal graph still inside where the marker keeps one; the ALWAYS ones (no _ONCE) do so on every
// request, FAKE_GARBAGE_ONCE and FAKE_TRUNCATED_ONCE once.
TEST(FakeLlm, ContentMarkers) {
  FakeLlm fake;
  ASSERT_GT(fake.port(), 0);
  const std::string graph = Graph().dump();
  auto ask = [&](const std::string& marker) { return Ask(fake, std::string(kText) + marker); };
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE("request " + std::to_string(i + 1));
    EXPECT_EQ(Content(ask("FAKE_GARBAGE")), "I cannot help with that.");

    std::string fenced = Content(ask("FAKE_FENCED"));
    ASSERT_EQ(fenced.rfind("```json\n", 0), 0u) << fenced;
    ASSERT_EQ(fenced.substr(fenced.size() - 4), "\n```") << fenced;
    EXPECT_EQ(Parsed(fenced.substr(8, fenced.size() - 12)), Graph());

    const std::string think_open = "<think>let me think {not json}</think>";
    std::string think = Content(ask("FAKE_THINK"));
    ASSERT_EQ(think.rfind(think_open, 0), 0u) << think;
    EXPECT_EQ(Parsed(think.substr(think_open.size())), Graph());

    std::string prose = Content(ask("FAKE_PROSE"));
    const std::string before = "Here is the graph:\n", after = "\nHope this helps.";
    ASSERT_EQ(prose.rfind(before, 0), 0u) << prose;
    ASSERT_EQ(prose.substr(prose.size() - after.size()), after) << prose;
    const size_t inner = prose.size() - before.size() - after.size();
    EXPECT_EQ(Parsed(prose.substr(before.size(), inner)), Graph());

    std::string commas = Content(ask("FAKE_TRAILING_COMMA"));
    EXPECT_FALSE(json::accept(commas)) << commas;
    EXPECT_NE(commas.find(", }"), std::string::npos) << commas;
    EXPECT_NE(commas.find(", ]"), std::string::npos) << commas;
    EXPECT_EQ(Parsed(WithoutTrailingCommas(commas)), Graph());

    json wrong = Parsed(Content(ask("FAKE_WRONG_SCHEMA")));
    ASSERT_TRUE(wrong.is_object());
    EXPECT_FALSE(wrong.contains("entities"));
    EXPECT_EQ(wrong["nodes"], Graph()["entities"]);
    EXPECT_EQ(wrong["edges"], Graph()["relations"]);

    auto empty = ask("FAKE_EMPTY");
    EXPECT_EQ(Content(empty), "");
    EXPECT_EQ(FinishReason(empty), "stop");

    json bad = Parsed(Content(ask("FAKE_BAD_RECORDS")));
    ASSERT_TRUE(bad.is_object());
    ASSERT_EQ(bad["entities"].size(), 4u);
    EXPECT_TRUE(bad["entities"][3].value("name", "").empty());
    ASSERT_EQ(bad["relations"].size(), 2u);
    json names = json::array();
    for (const auto& e : bad["entities"]) names.push_back(e.value("name", ""));
    EXPECT_EQ(std::find(names.begin(), names.end(), bad["relations"][1]["target"]), names.end());
    bad["entities"].erase(3);
    bad["relations"].erase(1);
    EXPECT_EQ(bad, Graph());

    EXPECT_EQ(Parsed(Content(ask("FAKE_NOTHING"))),
              json::parse(R"({"entities":[],"relations":[]})"));
  }

  auto truncated = ask("FAKE_TRUNCATED_ONCE");
  EXPECT_EQ(FinishReason(truncated), "length");
  auto whole = ask("FAKE_TRUNCATED_ONCE");
  EXPECT_EQ(FinishReason(whole), "stop");
  EXPECT_EQ(Parsed(Content(whole)), Graph());
  EXPECT_EQ(Content(truncated), Content(whole).substr(0, Content(whole).size() / 2));
  EXPECT_FALSE(json::accept(Content(truncated)));
  EXPECT_EQ(Content(ask("FAKE_GARBAGE")), "I cannot help with that.");  // not a ONCE: still garbage
}

// Verifies FAKE_HANG_ONCE: the request is read and never answered, in flight until the client
// gives up (and then no longer); the next request with that text is answered meanwhile.
TEST(FakeLlm, HangOnce) {
  FakeLlm fake;
  ASSERT_GT(fake.port(), 0);
  const std::string chunk = std::string(kText) + "FAKE_HANG_ONCE";
  httplib::Client hung("127.0.0.1", fake.port());
  hung.set_read_timeout(60, 0);
  std::atomic<bool> answered{false};
  std::thread client([&] {
    auto res = hung.Post("/v1/chat/completions", Request(chunk).dump(), "application/json");
    answered = static_cast<bool>(res);
  });
  EXPECT_TRUE(WaitFor([&] { return fake.Stats()["in_flight"] == 1; }, std::chrono::seconds(10)));
  EXPECT_EQ(Parsed(Content(Ask(fake, chunk))), Graph());
  EXPECT_EQ(fake.Stats()["in_flight"], 1);
  hung.stop();  // the client gives up
  client.join();
  EXPECT_FALSE(answered);
  EXPECT_TRUE(WaitFor([&] { return fake.Stats()["in_flight"] == 0; }, std::chrono::seconds(10)));
  json stats = fake.Stats();
  EXPECT_EQ(stats["requests"], 2);
  EXPECT_EQ(stats["by_status"], json::parse(R"({"200":1})"));
}

// Verifies --api-key: a request without the key, or with another, gets 401 with the OpenAI error
// body; the right key is answered; /stats lists the Authorization values seen.
TEST(FakeLlm, ApiKey) {
  FakeLlm::Options options;
  options.api_key = "sk-test-123";
  FakeLlm fake(options);
  ASSERT_GT(fake.port(), 0);
  for (const std::string& key : {std::string(""), std::string("sk-wrong")}) {
    auto res = Ask(fake, kText, key);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401);
    EXPECT_EQ(json::parse(res->body),
              json::parse(
                  R"({"error":{"message":"invalid api key","type":"invalid_request_error"}})"));
  }
  EXPECT_EQ(Parsed(Content(Ask(fake, kText, "sk-test-123"))), Graph());
  json stats = fake.Stats();
  EXPECT_EQ(stats["auth"], json::parse(R"(["Bearer sk-wrong","Bearer sk-test-123"])"));
  EXPECT_EQ(stats["by_status"], json::parse(R"({"200":1,"401":2})"));
}

// Verifies --rpm-limit: within 60 s, the (N+1)th admitted request gets 429 with Retry-After: 1, and
// refused requests do not count; /config raises the limit at run time.
TEST(FakeLlm, RpmLimit) {
  FakeLlm::Options options;
  options.rpm_limit = 3;
  FakeLlm fake(options);
  ASSERT_GT(fake.port(), 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Content(Ask(fake, kText + std::to_string(i))).front(), '{');
  for (int i = 0; i < 2; ++i) {
    auto res = Ask(fake, kText);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 429);
    EXPECT_EQ(res->get_header_value("Retry-After"), "1");
    EXPECT_EQ(json::parse(res->body)["error"]["type"], "rate_limit_exceeded");
  }
  fake.Configure({{"rpm_limit", 5}});  // 3 admitted so far, the two refused not counted
  EXPECT_EQ(Ask(fake, kText)->status, 200);
  EXPECT_EQ(Ask(fake, kText)->status, 200);
  EXPECT_EQ(Ask(fake, kText)->status, 429);
  fake.Configure({{"rpm_limit", 0}});  // no limit
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Ask(fake, kText)->status, 200);
  EXPECT_EQ(fake.Stats()["by_status"], json::parse(R"({"200":10,"429":3})"));
}

// Verifies /stats (requests, in-flight peak, statuses, arrivals in order) and MaxInWindow: one
// client's requests, each delayed 200 ms, arrive at least 200 ms apart, so no 0.2 s window holds
// two of them, while a window as long as the run holds all.
TEST(FakeLlm, StatsAndMaxInWindow) {
  FakeLlm::Options options;
  options.latency_ms = 200;
  FakeLlm fake(options);
  ASSERT_GT(fake.port(), 0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Ask(fake, kText)->status, 200);
  EXPECT_EQ(Ask(fake, kText, "", "/v1/no-such-path")->status, 404);
  json stats = fake.Stats();
  EXPECT_EQ(stats["requests"], 5);
  EXPECT_EQ(stats["in_flight"], 0);
  EXPECT_EQ(stats["max_in_flight"], 1);
  EXPECT_EQ(stats["by_status"], json::parse(R"({"200":4,"404":1})"));
  EXPECT_TRUE(stats["by_marker"].empty());
  std::vector<double> arrivals = stats["arrivals"].get<std::vector<double>>();
  ASSERT_EQ(arrivals.size(), 5u);
  for (size_t i = 1; i < arrivals.size(); ++i) EXPECT_GE(arrivals[i] - arrivals[i - 1], 0.2) << i;
  EXPECT_GT(arrivals[0], 0);
  EXPECT_EQ(fake.MaxInWindow(0.2), 1);
  EXPECT_EQ(fake.MaxInWindow(3600), 5);
  // The shortest span of three arrivals: a window that long (half-open, [t, t + s)) holds two.
  double span3 = 3600;
  for (size_t i = 2; i < arrivals.size(); ++i) {
    span3 = std::min(span3, arrivals[i] - arrivals[i - 2]);
  }
  EXPECT_EQ(fake.MaxInWindow(span3), 2);
  EXPECT_EQ(fake.MaxInWindow(span3 + 1e-3), 3);
}

// Verifies /reset: counters, arrivals, the rpm window and the ONCE markers' memory start over.
TEST(FakeLlm, Reset) {
  FakeLlm::Options options;
  options.rpm_limit = 2;
  FakeLlm fake(options);
  ASSERT_GT(fake.port(), 0);
  const std::string once = std::string(kText) + "FAKE_500_ONCE";
  EXPECT_EQ(Ask(fake, once)->status, 500);
  EXPECT_EQ(Ask(fake, once)->status, 200);
  EXPECT_EQ(Ask(fake, once)->status, 429);
  fake.Reset();
  json stats = fake.Stats();
  EXPECT_EQ(stats["requests"], 0);
  EXPECT_EQ(stats["max_in_flight"], 0);
  EXPECT_TRUE(stats["by_status"].empty());
  EXPECT_TRUE(stats["arrivals"].empty());
  EXPECT_TRUE(stats["by_marker"].empty());
  EXPECT_EQ(fake.MaxInWindow(3600), 0);
  EXPECT_EQ(Ask(fake, once)->status, 500);
  EXPECT_EQ(Ask(fake, once)->status, 200);
  EXPECT_EQ(fake.Stats()["requests"], 2);
}

// Verifies that requests wait out their latency side by side: 300 clients, each on its own
// connection opened beforehand, send at once a request delayed 500 ms, and all 300 are in flight
// together before the first is answered.
TEST(FakeLlm, ConcurrentSlowRequests) {
  constexpr int kClients = 300;
  FakeLlm::Options options;
  options.latency_ms = 500;
  FakeLlm fake(options);
  ASSERT_GT(fake.port(), 0);
  std::latch connected(kClients + 1), go(1);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", fake.port());
      c.set_keep_alive(true);
      c.set_connection_timeout(10, 0);
      c.set_read_timeout(30, 0);
      // 404 on a path the server counts, over the connection the request then reuses.
      auto warm = c.Get("/warm-up");
      connected.count_down();
      go.wait();
      const std::string body = Request(kText + std::to_string(i)).dump();
      auto res = c.Post("/v1/chat/completions", body, "application/json");
      if (warm && res && res->status == 200) ++ok;
    });
  }
  connected.arrive_and_wait();
  fake.Reset();  // the warm-ups are not counted
  go.count_down();
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, kClients);
  json stats = fake.Stats();
  EXPECT_EQ(stats["requests"], kClients);
  EXPECT_EQ(stats["max_in_flight"], kClients);
  EXPECT_EQ(stats["by_status"]["200"], kClients);
}

// Verifies the script's own lifetime: it exits 0 on SIGTERM, by itself after --max-seconds,
// and within seconds of its parent's death.
TEST(FakeLlm, ExitsOnSignalDeadlineAndOrphaning) {
  TempDir dir;
  auto start = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = FakeLlmCommand();
    args.insert(args.end(), {"--port-file", dir.File(name)});
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Process>(args, std::map<std::string, std::string>{}, dir.path());
  };
  auto listening = [&](const std::string& name) {
    return WaitFor([&] { return !ReadFile(dir.File(name)).empty(); }, std::chrono::seconds(10));
  };

  auto term = start("term.port", {});
  ASSERT_TRUE(listening("term.port"));
  ASSERT_TRUE(term->Signal(SIGTERM));
  int st = term->Wait(std::chrono::seconds(10));
  ASSERT_NE(st, -1) << "still running 10 s after SIGTERM";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;

  // Long enough to start listening on a loaded machine (the clock runs from the script's start).
  auto deadline = start("deadline.port", {"--max-seconds", "4"});
  ASSERT_TRUE(listening("deadline.port"));
  st = deadline->Wait(std::chrono::seconds(15));
  ASSERT_NE(st, -1) << "still running 15 s after --max-seconds 4";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;

  // A shell starts the script in the background, writes its pid and exits once it listens.
  std::string cmd;
  for (const std::string& a : FakeLlmCommand()) cmd += "'" + a + "' ";
  const std::string port_file = dir.File("orphan.port"), pid_file = dir.File("orphan.pid");
  cmd += "--port-file '" + port_file + "' >/dev/null 2>&1 & echo $! > '" + pid_file + "'; " +
         "while [ ! -s '" + port_file + "' ]; do sleep 0.05; done";
  Process shell({"/bin/sh", "-c", cmd}, {}, dir.path());
  ASSERT_NE(shell.Wait(std::chrono::seconds(10)), -1);
  pid_t orphan = std::atoi(ReadFile(pid_file).c_str());
  ASSERT_GT(orphan, 0);
  EXPECT_TRUE(WaitFor([&] { return !Alive(orphan); }, std::chrono::seconds(10)))
      << "the script outlived its parent by 10 s";
  if (Alive(orphan)) kill(orphan, SIGKILL);
}

}  // namespace
}  // namespace kg::testing
