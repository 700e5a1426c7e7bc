// The OpenAI-compatible provider against the fake server (testing/fake_llm.py): every marker of
// the fake, retries and pauses, the re-ask, the in-flight cap, the rpm limit, the cache key, and
// the API key kept out of every message.
#include "llm/openai_provider.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/util.h"
#include "config/config.h"
#include "llm/limiter.h"
#include "llm/prompt.h"
#include "provider/provider.h"
#include "telemetry/worker_stats.h"
#include "testing/fake_llm.h"
#include "testing/servers.h"
#include "testing/testing.h"

namespace kg::llm {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeLlm;

constexpr const char* kKey = "sk-test-Zq7XvW3pLk9RmT2yBn5CfH8dJ4gAs6E";
constexpr const char* kBody = " here. Alice Smith met Bob Jones at Acme Labs.";

FakeLlm::Options FakeOptions(int latency_ms, const std::string& api_key = "") {
  FakeLlm::Options o;
  o.latency_ms = latency_ms;
  o.api_key = api_key;
  return o;
}

// The chunk is the whole user message, so the fake reads exactly the text the test gives.
Prompt TestPrompt() {
  Prompt p;
  p.version = "test+00000000";
  p.system = "Extract entities and relations as JSON.";
  p.user_template = "{{text}}";
  return p;
}

ProviderConfig Config(const FakeLlm& fake) {
  ProviderConfig c;
  c.name = "fake";
  c.kind = "openai";
  c.base_url = fake.base_url();
  c.model = "fake-model";
  c.api_key_env = "FAKE_API_KEY";
  c.api_key = kKey;
  c.timeout_s = 30;
  c.max_output_tokens = 1000;
  c.max_retries = 2;
  c.price_in_per_mtok = 1e6;  // cost = tokens, to check it adds up
  c.price_out_per_mtok = 1e6;
  return c;
}

std::unique_ptr<Provider> Make(ProviderConfig c, int max_in_flight = 4, RateLimits limits = {},
                               telemetry::Recorder* recorder = nullptr) {
  OpenAiOptions o;
  o.config = std::move(c);
  o.prompt = TestPrompt();
  o.limiter = MakeLocalLimiter(limits);
  o.max_in_flight = max_in_flight;
  o.recorder = recorder;
  auto p = MakeOpenAiProvider(std::move(o));
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? std::move(*p) : nullptr;
}

// Runs Extract on many texts at once and waits for every reply (in the order of `texts`).
std::vector<ProviderReply> ExtractAll(Provider& p, const std::vector<std::string>& texts) {
  Mutex mu;
  CondVar cv;
  std::vector<std::optional<ProviderReply>> out(texts.size());
  size_t done = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    p.Extract(texts[i], [&, i](ProviderReply r) {
      MutexLock l(mu);
      out[i] = std::move(r);
      ++done;
      cv.NotifyAll();
    });
  }
  auto deadline = std::chrono::steady_clock::now() + 120s;
  MutexLock l(mu);
  while (done < texts.size()) {
    if (!cv.WaitUntil(l, deadline)) break;
  }
  std::vector<ProviderReply> replies;
  for (auto& r : out) {
    EXPECT_TRUE(r.has_value()) << "a reply never came";
    replies.push_back(r ? std::move(*r) : ProviderReply{Status::Internal("no reply"), {}, {}, 0, {}});
  }
  return replies;
}

std::vector<std::string> Names(const Extraction& e) {
  std::vector<std::string> n;
  for (const auto& x : e.entities) n.push_back(x.name);
  return n;
}

// The key, or any 8-byte piece of it, in `text`.
bool LeaksKey(const std::string& text) {
  std::string key = kKey;
  for (size_t i = 0; i + 8 <= key.size(); ++i) {
    if (text.find(key.substr(i, 8)) != std::string::npos) return true;
  }
  return false;
}

// Captures everything logged, at every level, while it lives (then restores the default logger).
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string Text() {
    spdlog::default_logger()->flush();
    return out_.str();
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

struct MarkerCase {
  std::string marker;
  Code code;
  int requests;         // HTTP requests the chunk took
  bool graph;           // the normal graph of kBody (3 entities, 1 relation with its sentence)
  int dropped = 0;
  std::string message{};  // part of the status message
};

// Verifies every marker of the fake: the reply's status, extraction, dropped records, request
// count and usage (summed over the requests, priced), with the API key in none of the messages
// and sent as a Bearer token on every request.
TEST(OpenAiProvider, EveryMarkerOfTheFake) {
  LogCapture logs;
  FakeLlm fake(FakeOptions(0, kKey));
  ProviderConfig config = Config(fake);
  config.timeout_s = 2;  // FAKE_HANG_ONCE: the first request times out
  auto p = Make(config, 32);
  ASSERT_NE(p, nullptr);
  std::vector<MarkerCase> cases = {
      {"plain", Code::kOk, 1, true},
      {"FAKE_429_ONCE", Code::kOk, 2, true},
      {"FAKE_429_MS_ONCE", Code::kOk, 2, true},
      {"FAKE_500_ONCE", Code::kOk, 2, true},
      {"FAKE_503_ALWAYS", Code::kUnavailable, 3, false, 0, "HTTP 503"},
      {"FAKE_HANG_ONCE", Code::kOk, 2, true},
      {"FAKE_GARBAGE", Code::kUnavailable, 2, false, 0, "unusable output after a corrective re-ask: "},
      {"FAKE_GARBAGE_ONCE", Code::kOk, 2, true},
      {"FAKE_FENCED", Code::kOk, 1, true},
      {"FAKE_THINK", Code::kOk, 1, true},
      {"FAKE_PROSE", Code::kOk, 1, true},
      {"FAKE_TRAILING_COMMA", Code::kOk, 1, true},
      {"FAKE_TRUNCATED_ONCE", Code::kOk, 2, true},
      {"FAKE_WRONG_SCHEMA", Code::kUnavailable, 2, false, 0, "unusable output after a corrective re-ask"},
      {"FAKE_EMPTY", Code::kUnavailable, 2, false, 0, "unusable output after a corrective re-ask"},
      {"FAKE_BAD_RECORDS", Code::kOk, 1, true, 2},
      {"FAKE_INSUFFICIENT_QUOTA", Code::kUnavailable, 1, false, 0, "billing: "},
      {"FAKE_NOTHING", Code::kOk, 1, false},
  };
  std::vector<std::string> texts;
  for (const auto& c : cases) texts.push_back(c.marker + kBody);
  std::vector<ProviderReply> replies = ExtractAll(*p, texts);
  int total_requests = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const MarkerCase& c = cases[i];
    const ProviderReply& r = replies[i];
    SCOPED_TRACE(c.marker + ": " + r.status.message());
    total_requests += c.requests;
    EXPECT_EQ(r.status.code(), c.code);
    EXPECT_NE(r.status.message().find(c.message), std::string::npos);
    EXPECT_FALSE(LeaksKey(r.status.message()));
    EXPECT_EQ(r.usage.requests, c.requests);
    EXPECT_EQ(r.dropped_records, c.dropped);
    EXPECT_EQ(r.usage.cost, static_cast<double>(r.usage.prompt_tokens + r.usage.completion_tokens));
    if (c.code == Code::kOk) {
      EXPECT_GT(r.usage.prompt_tokens, 0);
      EXPECT_GT(r.usage.completion_tokens, 0);
      EXPECT_FALSE(r.cache_content.empty());
    } else {
      EXPECT_TRUE(r.cache_content.empty());
      EXPECT_TRUE(r.extraction.entities.empty());
    }
    if (c.graph) {
      EXPECT_EQ(Names(r.extraction), (std::vector<std::string>{"Alice Smith", "Bob Jones", "Acme Labs"}));
      ASSERT_EQ(r.extraction.relations.size(), 1u);
      EXPECT_EQ(r.extraction.relations[0].source, "Alice Smith");
      EXPECT_EQ(r.extraction.relations[0].target, "Bob Jones");
      EXPECT_EQ(r.extraction.relations[0].type, "RELATED_TO");
    } else {
      EXPECT_TRUE(r.extraction.entities.empty());
    }
  }
  // A re-ask is one conversation: its second request carries both turns, so it costs more prompt.
  const ProviderReply& reasked = replies[7];  // FAKE_GARBAGE_ONCE
  const ProviderReply& single = replies[0];
  EXPECT_GT(reasked.usage.prompt_tokens, 2 * single.usage.prompt_tokens);
  EXPECT_NE(replies[6].status.message().find("I cannot help with that."), std::string::npos);  // the snippet

  json stats = fake.Stats();
  EXPECT_EQ(stats["requests"].get<int>(), total_requests);
  std::string logged = logs.Text();
  EXPECT_NE(logged.find("billing: "), std::string::npos) << logged;  // the capture works
  EXPECT_NE(logged.find("retry 1 in"), std::string::npos) << logged;
  EXPECT_FALSE(LeaksKey(logged)) << logged;
  EXPECT_EQ(stats["auth"], json::array({std::string("Bearer ") + kKey}));
}

// The two arrivals of a chunk's requests at the fake, in seconds since the fake started.
std::vector<double> ArrivalsOf(const FakeLlm& fake) {
  return fake.Stats()["arrivals"].get<std::vector<double>>();
}

// Verifies that a 429's Retry-After (1 s) and retry-after-ms (300 ms) are honoured: the retry
// arrives at least that long after the refused request.
TEST(OpenAiProvider, RetryAfterIsHonoured) {
  FakeLlm fake;
  auto p = Make(Config(fake));
  ASSERT_NE(p, nullptr);
  const std::vector<std::pair<std::string, double>> cases = {{"FAKE_429_ONCE", 1.0}, {"FAKE_429_MS_ONCE", 0.3}};
  for (const auto& [marker, pause_s] : cases) {
    fake.Reset();
    ProviderReply r = ExtractNow(*p, marker + kBody);
    EXPECT_TRUE(r.status.ok()) << r.status.message();
    EXPECT_EQ(r.usage.requests, 2);
    std::vector<double> a = ArrivalsOf(fake);
    ASSERT_EQ(a.size(), 2u);
    EXPECT_GE(a[1] - a[0], pause_s - 0.01) << marker;  // the fake's clock reads to the microsecond
  }
}

// Verifies that a 429 pause holds back the other chunks too (the limiter is paused for the whole
// provider): nothing arrives at the fake during the 1 s Retry-After.
TEST(OpenAiProvider, A429PausesEveryChunk) {
  FakeLlm fake(FakeOptions(50));
  auto p = Make(Config(fake), 1);
  ASSERT_NE(p, nullptr);
  std::vector<std::string> texts = {std::string("FAKE_429_ONCE") + kBody, "Second chunk. Carol Wu met Dan Lee.",
                                    "Third chunk. Eve Ray met Fay Kim."};
  auto replies = ExtractAll(*p, texts);
  for (const auto& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.message();
  std::vector<double> a = ArrivalsOf(fake);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_GE(a[1] - a[0], 0.99);  // the first chunk's retry, or the next chunk, waited out the pause
}

// Verifies the timeout: a request the server never answers fails after the total timeout and is
// retried; with retries spent the chunk is kUnavailable saying it timed out.
TEST(OpenAiProvider, HangTimesOutThenRetries) {
  FakeLlm fake;
  ProviderConfig c = Config(fake);
  c.timeout_s = 1;
  auto p = Make(c);
  ASSERT_NE(p, nullptr);
  ProviderReply r = ExtractNow(*p, std::string("FAKE_HANG_ONCE") + kBody);
  EXPECT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.usage.requests, 2);

  c.max_retries = 0;
  auto once = Make(c);
  ProviderReply failed = ExtractNow(*once, std::string("FAKE_HANG_ONCE other") + kBody);
  EXPECT_EQ(failed.status.code(), Code::kUnavailable);
  EXPECT_NE(failed.status.message().find("Timeout"), std::string::npos) << failed.status.message();
  EXPECT_NE(failed.status.message().find("gave up after 0 retries"), std::string::npos) << failed.status.message();
}

// Verifies that a refused API key is a clear, final error (dead-lettered at once: every retry would be
// refused alike) that names the variable and never the key; the right key then works.
TEST(OpenAiProvider, WrongKeyIsAClearErrorWithoutTheKey) {
  FakeLlm fake(FakeOptions(0, "the-right-key-0000"));
  auto p = Make(Config(fake));
  ASSERT_NE(p, nullptr);
  ProviderReply r = ExtractNow(*p, std::string("plain") + kBody);
  EXPECT_EQ(r.status.code(), Code::kInvalidArgument);  // final: every retry would be refused alike
  EXPECT_NE(r.status.message().find("HTTP 401"), std::string::npos) << r.status.message();
  EXPECT_NE(r.status.message().find("FAKE_API_KEY was refused"), std::string::npos) << r.status.message();
  EXPECT_FALSE(LeaksKey(r.status.message())) << r.status.message();
  EXPECT_EQ(r.usage.requests, 1);  // not retried: the queue retries later

  ProviderConfig right = Config(fake);
  right.api_key = "the-right-key-0000";
  auto ok = Make(right);
  EXPECT_TRUE(ExtractNow(*ok, std::string("plain") + kBody).status.ok());
}

// Verifies the in-flight cap: 200 chunks at 1 s each with max_in_flight 100 keep exactly 100
// requests at the fake at once, never more, and all succeed.
TEST(OpenAiProvider, InFlightCapHolds) {
  FakeLlm fake(FakeOptions(1000));  // long enough for 100 requests to be sent under ASan too
  auto p = Make(Config(fake), 100);
  ASSERT_NE(p, nullptr);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back("Chunk " + std::to_string(i) + kBody);
  auto replies = ExtractAll(*p, texts);
  for (const auto& r : replies) ASSERT_TRUE(r.status.ok()) << r.status.message();
  json stats = fake.Stats();
  EXPECT_EQ(stats["requests"].get<int>(), 200);
  EXPECT_EQ(stats["max_in_flight"].get<int>(), 100);
}

// Verifies the rpm limit of the local limiter: at 60 rpm (one request a second, a burst of one)
// no two of 4 chunks' requests reach the fake within 0.8 s of each other.
TEST(OpenAiProvider, RpmLimitSpacesRequests) {
  FakeLlm fake;
  auto p = Make(Config(fake), 8, RateLimits{.rpm = 60});
  ASSERT_NE(p, nullptr);
  std::vector<std::string> texts;
  for (int i = 0; i < 4; ++i) texts.push_back("Rpm " + std::to_string(i) + kBody);
  auto replies = ExtractAll(*p, texts);
  for (const auto& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(ArrivalsOf(fake).size(), 4u);
  EXPECT_EQ(fake.MaxInWindow(0.8), 1);
}

// Verifies what the provider counts into the worker's Recorder: each HTTP answer by its status (a
// 429 then a 200: {"429":1,"200":1}); a request held back by the limiter (concurrency 1, two
// chunks at once) as one wait, of about the first request's latency, and the request that went
// straight through as none; a server that cannot be reached as "transport", once per attempt.
TEST(OpenAiProvider, RecorderCountsAnswersWaitsAndTransportFailures) {
  FakeLlm fake(FakeOptions(400));
  {
    telemetry::Recorder rec;
    auto p = Make(Config(fake), 4, {}, &rec);
    ASSERT_NE(p, nullptr);
    ProviderReply r = ExtractNow(*p, std::string("FAKE_429_MS_ONCE") + kBody);
    EXPECT_TRUE(r.status.ok()) << r.status.message();
    p.reset();
    EXPECT_EQ(rec.Snapshot().llm_requests,
              (std::map<std::string, int64_t>{{"429", 1}, {"200", 1}}));
  }
  {
    telemetry::Recorder rec;
    auto p = Make(Config(fake), 4, RateLimits{.max_concurrency = 1}, &rec);
    ASSERT_NE(p, nullptr);
    auto replies = ExtractAll(*p, {std::string("First") + kBody, std::string("Second") + kBody});
    for (const auto& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.message();
    p.reset();
    telemetry::WorkerStats s = rec.Snapshot();
    EXPECT_EQ(s.llm_requests, (std::map<std::string, int64_t>{{"200", 2}}));
    EXPECT_EQ(s.llm_rate_limit_waits, 1) << "only the second request waited for the limiter";
    EXPECT_GE(s.llm_rate_limit_wait_seconds, 0.3) << "it waited for the first answer (400 ms)";
    EXPECT_LT(s.llm_rate_limit_wait_seconds, 10);
  }
  {
    telemetry::Recorder rec;
    ProviderConfig c = Config(fake);
    // Nothing listens there.
    c.base_url = "http://127.0.0.1:" + std::to_string(testing::FreePort()) + "/v1";
    c.max_retries = 1;
    auto p = Make(c, 4, {}, &rec);
    ASSERT_NE(p, nullptr);
    ProviderReply r = ExtractNow(*p, std::string("plain") + kBody);
    EXPECT_EQ(r.status.code(), Code::kUnavailable) << r.status.message();
    p.reset();
    telemetry::WorkerStats s = rec.Snapshot();
    EXPECT_EQ(s.llm_requests, (std::map<std::string, int64_t>{{"transport", 2}}))
        << "a request and its retry";
    EXPECT_EQ(s.llm_rate_limit_waits, 0);
  }
}

// Verifies the response-cache key: stable for the same configuration and text (across provider
// objects), different for another text, model, base URL or prompt version; and FromCache turns a
// reply's cache_content back into its extraction with no request and no usage.
TEST(OpenAiProvider, CacheKeyAndFromCache) {
  FakeLlm fake;
  auto a = Make(Config(fake));
  auto b = Make(Config(fake));
  ProviderConfig other_model = Config(fake);
  other_model.model = "other-model";
  auto c = Make(other_model);
  ProviderConfig other_url = Config(fake);
  other_url.base_url += "/";
  auto d = Make(other_url);
  OpenAiOptions o;
  o.config = Config(fake);
  o.prompt = TestPrompt();
  o.prompt.version = "test+11111111";
  o.limiter = MakeLocalLimiter({});
  auto e = std::move(*MakeOpenAiProvider(std::move(o)));

  std::string text = std::string("plain") + kBody;
  std::string key = a->CacheKey(text);
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(key, a->CacheKey(text));
  EXPECT_EQ(key, b->CacheKey(text));
  EXPECT_NE(key, a->CacheKey(text + " "));
  EXPECT_NE(key, c->CacheKey(text));
  EXPECT_NE(key, d->CacheKey(text));
  EXPECT_NE(key, e->CacheKey(text));

  ProviderReply live = ExtractNow(*a, text);
  ASSERT_TRUE(live.status.ok()) << live.status.message();
  int64_t requests = fake.Stats()["requests"].get<int>();
  ProviderReply cached = a->FromCache(live.cache_content, text);
  EXPECT_TRUE(cached.status.ok()) << cached.status.message();
  EXPECT_EQ(Names(cached.extraction), Names(live.extraction));
  ASSERT_EQ(cached.extraction.relations.size(), live.extraction.relations.size());
  for (size_t i = 0; i < live.extraction.relations.size(); ++i) {
    EXPECT_EQ(cached.extraction.relations[i].sentence, live.extraction.relations[i].sentence) << i;
  }
  EXPECT_EQ(cached.usage.requests, 0);
  EXPECT_EQ(cached.usage.prompt_tokens + cached.usage.completion_tokens, 0);
  EXPECT_EQ(fake.Stats()["requests"].get<int>(), requests);
  EXPECT_EQ(a->FromCache("I cannot help with that.", text).status.code(), Code::kInvalidArgument);
}

// A loopback server answering POST /v1/chat/completions with a fixed status and body, for the
// statuses the fake does not give.
class FixedServer {
 public:
  FixedServer(int status, std::string body, httplib::Headers headers = {}) {
    server_.Post("/v1/chat/completions", [this, status, body, headers](const httplib::Request&, httplib::Response& res) {
      res.status = status;
      for (const auto& [k, v] : headers) res.set_header(k, v);
      res.set_content(body, "application/json");
      MutexLock l(mu_);
      arrivals_ms_.push_back(MonoMs());
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    EXPECT_TRUE(testing::WaitFor([this] { return server_.is_running(); }, 10s));
  }
  ~FixedServer() {
    server_.stop();
    thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int requests() {
    MutexLock l(mu_);
    return static_cast<int>(arrivals_ms_.size());
  }
  std::vector<int64_t> arrivals_ms() {
    MutexLock l(mu_);
    return arrivals_ms_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  Mutex mu_;
  std::vector<int64_t> arrivals_ms_ KG_GUARDED_BY(mu_);
  std::thread thread_;
};

ProviderConfig FixedConfig(const FixedServer& server) {
  ProviderConfig config;
  config.name = "fixed";
  config.kind = "openai";
  config.base_url = server.base_url();
  config.model = "fake-model";
  config.api_key_env = "FAKE_API_KEY";
  config.api_key = kKey;
  return config;
}

// Verifies the final answers: 400 dead-letters the chunk (kInvalidArgument) without a retry;
// 404 and 402 are kUnavailable naming the problem, not retried; an error text echoing the key is
// scrubbed.
TEST(OpenAiProvider, FinalStatuses) {
  struct Case {
    int status;
    std::string body;
    Code code;
    std::string message;
  };
  std::vector<Case> cases = {
      {400, R"({"error":{"message":"This model's maximum context length is 8192 tokens"}})", Code::kInvalidArgument,
       "HTTP 400 from http://127.0.0.1:"},
      {404, R"({"error":{"message":"model not found"}})", Code::kInvalidArgument, "check base_url and model 'fake-model'"},
      {402, R"({"error":{"message":"Insufficient Balance"}})", Code::kUnavailable, "billing: HTTP 402"},
      {401, std::string(R"({"error":{"message":"Incorrect API key provided: )") + std::string(kKey).substr(0, 10) +
                "****" + std::string(kKey).substr(30) + "\"}}",
       Code::kInvalidArgument, "Incorrect API key provided: "},
  };
  LogCapture logs;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.status);
    FixedServer server(c.status, c.body);
    auto p = Make(FixedConfig(server));
    ProviderReply r = ExtractNow(*p, std::string("plain") + kBody);
    EXPECT_EQ(r.status.code(), c.code) << r.status.message();
    EXPECT_NE(r.status.message().find(c.message), std::string::npos) << r.status.message();
    EXPECT_FALSE(LeaksKey(r.status.message())) << r.status.message();
    EXPECT_EQ(server.requests(), 1);
  }
  std::string logged = logs.Text();
  EXPECT_NE(logged.find("Incorrect API key provided"), std::string::npos) << logged;  // logged once
  EXPECT_FALSE(LeaksKey(logged)) << logged;
}

// Verifies the x-ratelimit-reset-* durations of a 429 (OpenAI's "1s", "6m0s"): the exhausted
// bucket's reset (requests: remaining 0) is waited out, not the other's; and that 429s do not spend
// max_retries (0 here): the provider keeps asking, paced by the pause, until it is destroyed.
TEST(OpenAiProvider, RateLimitResetHeadersPause) {
  FixedServer server(429, R"({"error":{"message":"Rate limit reached for requests","type":"requests"}})",
                     {{"x-ratelimit-remaining-requests", "0"},
                      {"x-ratelimit-reset-requests", "1s"},
                      {"x-ratelimit-remaining-tokens", "9000"},
                      {"x-ratelimit-reset-tokens", "6m0s"}});
  ProviderConfig config = FixedConfig(server);
  config.max_retries = 0;
  auto p = Make(config);
  std::atomic<bool> answered{false};
  p->Extract(std::string("plain") + kBody, [&](ProviderReply) { answered = true; });
  ASSERT_TRUE(testing::WaitFor([&] { return server.arrivals_ms().size() >= 3; }, 30s));
  p.reset();  // abandons the call
  EXPECT_FALSE(answered.load()) << "a 429 spent a retry";
  std::vector<int64_t> a = server.arrivals_ms();
  EXPECT_GE(a[1] - a[0], 1000);
  EXPECT_GE(a[2] - a[1], 1000);
}

// A limiter that records what the provider asks of it (and lets the local one decide).
class RecordingLimiter final : public Limiter {
 public:
  struct Log {
    Mutex mu;
    std::vector<int64_t> acquired KG_GUARDED_BY(mu);  // tokens of granted admissions
    std::vector<int64_t> deltas KG_GUARDED_BY(mu);
    int released_slots KG_GUARDED_BY(mu) = 0;
    std::vector<std::string> granted_slots KG_GUARDED_BY(mu);
    std::vector<std::string> renewed KG_GUARDED_BY(mu);  // every slot of every Renew call
  };
  RecordingLimiter(std::shared_ptr<Log> log, RateLimits limits) : log_(std::move(log)), inner_(MakeLocalLimiter(limits)) {}
  Result<Admission> TryAcquire(int64_t tokens) override {
    auto a = inner_->TryAcquire(tokens);
    MutexLock l(log_->mu);
    if (a.ok() && a->granted) {
      log_->acquired.push_back(tokens);
      log_->granted_slots.push_back(a->slot);
    }
    return a;
  }
  Status Release(const std::string& slot, int64_t delta) override {
    {
      MutexLock l(log_->mu);
      log_->deltas.push_back(delta);
      if (!slot.empty()) ++log_->released_slots;
    }
    return inner_->Release(slot, delta);
  }
  Status Renew(const std::vector<std::string>& slots) override {
    {
      MutexLock l(log_->mu);
      log_->renewed.insert(log_->renewed.end(), slots.begin(), slots.end());
    }
    return inner_->Renew(slots);
  }
  Status Pause(int64_t ms) override { return inner_->Pause(ms); }

 private:
  std::shared_ptr<Log> log_;  // shared: the test reads it while the provider owns the limiter
  std::unique_ptr<Limiter> inner_;
};

// Verifies the token accounting with the limiter: each request is admitted for prompt bytes / 3
// + max_output_tokens, and released with the correction (actual usage - estimate); every slot
// taken is given back, the re-ask's request included.
TEST(OpenAiProvider, LimiterSeesEstimateAndCorrection) {
  FakeLlm fake;
  auto log = std::make_shared<RecordingLimiter::Log>();
  OpenAiOptions o;
  o.config = Config(fake);
  o.prompt = TestPrompt();
  o.limiter = std::make_unique<RecordingLimiter>(log, RateLimits{.max_concurrency = 5});
  auto p = std::move(*MakeOpenAiProvider(std::move(o)));
  std::string text = std::string("FAKE_GARBAGE_ONCE") + kBody;
  ProviderReply r = ExtractNow(*p, text);
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.usage.requests, 2);
  MutexLock l(log->mu);
  ASSERT_EQ(log->acquired.size(), 2u);
  ASSERT_EQ(log->deltas.size(), 2u);
  int64_t first_estimate = static_cast<int64_t>(TestPrompt().system.size() + text.size()) / 3 + 1000;
  EXPECT_EQ(log->acquired[0], first_estimate);
  EXPECT_GT(log->acquired[1], first_estimate);  // the re-ask carries the whole conversation
  int64_t actual = r.usage.prompt_tokens + r.usage.completion_tokens;
  EXPECT_EQ(log->acquired[0] + log->deltas[0] + log->acquired[1] + log->deltas[1], actual);
  EXPECT_EQ(log->released_slots, 2);
}

// Verifies that the slot of a long request is renewed while it is in flight (the provider renews
// every 10 s, a third of the limiters' default TTL), so a slow answer does not lose its slot.
TEST(OpenAiProvider, SlotsInFlightAreRenewed) {
  FakeLlm fake(FakeOptions(13000));
  auto log = std::make_shared<RecordingLimiter::Log>();
  OpenAiOptions o;
  o.config = Config(fake);
  o.prompt = TestPrompt();
  o.limiter = std::make_unique<RecordingLimiter>(log, RateLimits{.max_concurrency = 1});
  auto p = std::move(*MakeOpenAiProvider(std::move(o)));
  ProviderReply r = ExtractNow(*p, std::string("plain") + kBody);
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  MutexLock l(log->mu);
  ASSERT_EQ(log->granted_slots.size(), 1u);
  ASSERT_FALSE(log->granted_slots[0].empty());
  EXPECT_EQ(log->renewed, std::vector<std::string>{log->granted_slots[0]});
}

// Verifies MakeProvider for kind openai: the compiled-in prompt and a local limiter without
// REDIS_HOST, the Redis limiter with it; both extract through the fake. A missing key names its
// variable.
TEST(OpenAiProvider, MakeProviderBuildsIt) {
  FakeLlm fake;
  kg::Config node;
  node.node_name = "test-node";
  node.concurrency_per_process = 3;
  auto local = MakeProvider(Config(fake), node);
  ASSERT_TRUE(local.ok()) << local.status().message();
  EXPECT_TRUE(ExtractNow(**local, std::string("plain") + kBody).status.ok());

  node.redis_host = "127.0.0.1";
  node.redis_port = testing::SharedRedis().port;
  node.redis_namespace = "openai-test-" + std::to_string(::getpid());
  ProviderConfig limited = Config(fake);
  limited.max_concurrency = 2;
  limited.rpm = 600;
  auto redis = MakeProvider(limited, node);
  ASSERT_TRUE(redis.ok()) << redis.status().message();
  auto replies = ExtractAll(**redis, {"One. Alice Smith met Bob Jones.", "Two. Carol Wu met Dan Lee."});
  for (const auto& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.message();

  ProviderConfig no_key = Config(fake);
  no_key.api_key.clear();
  auto bad = MakeProvider(no_key, node);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("FAKE_API_KEY"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace kg::llm
