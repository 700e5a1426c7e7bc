#include "llm/openai_provider.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string_view>
#include <utility>

#include "common/outage_log.h"
#include "common/util.h"
#include "llm/http_client.h"
#include "llm/parse.h"

namespace kg::llm {
namespace {

using nlohmann::json;

// What is retried, how often and how long to wait: the provider's retry policy as data.
struct RetryPolicy {
  int max_retries = 4;             // per request (ProviderConfig::max_retries), then the chunk fails
  // 429s are counted apart: the provider-wide pause already paces them, and a chunk must not burn
  // its queue attempts on a storm; past this many in a row the chunk fails this attempt.
  int max_throttled = 100;
  int64_t base_ms = 500;           // backoff before retry n (0-based): uniform in [0, min(cap, base * 2^n)]
  int64_t cap_ms = 8000;           // ("full jitter": spreads the retries of many workers)
  int64_t max_pause_ms = 120000;   // the longest wait a Retry-After-like header is trusted for
  int64_t limiter_error_wait_ms = 1000;  // the limiter's backend (Redis) unreachable: ask again after

  // 408 timeout, 409 conflict/lock, 429 rate limit, 5xx overload; transport errors (status 0,
  // timeouts included) retry too. Every other status is final for the request.
  static bool Retryable(int status) {
    return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500;
  }

  int64_t Backoff(int retry, std::mt19937_64& rng) const {
    int64_t ceiling = cap_ms;
    if (retry < 20) ceiling = std::min<int64_t>(cap_ms, base_ms << retry);
    return std::uniform_int_distribution<int64_t>(0, ceiling)(rng);
  }
};

// The request timeouts (documented in openai_provider.h).
int64_t ConnectTimeoutMs(const ProviderConfig& c) { return int64_t{std::min(10, std::max(1, c.timeout_s))} * 1000; }
int64_t TotalTimeoutMs(const ProviderConfig& c) { return int64_t{std::max(1, c.timeout_s)} * 1000; }

// "6m0s", "12ms", "1.5s", "1h2m", "250us": Go-style durations as OpenAI's x-ratelimit-reset-*
// send them; nullopt when `s` is not one.
std::optional<int64_t> ParseDurationMs(std::string_view s) {
  double total_ms = 0;
  size_t i = 0;
  bool any = false;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == start) return std::nullopt;
    double v = std::strtod(std::string(s.substr(start, i - start)).c_str(), nullptr);
    size_t u = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string_view unit = s.substr(u, i - u);
    double factor;
    if (unit == "h") factor = 3600000;
    else if (unit == "m") factor = 60000;
    else if (unit == "s" || unit.empty()) factor = 1000;
    else if (unit == "ms") factor = 1;
    else if (unit == "us") factor = 0.001;
    else if (unit == "ns") factor = 0.000001;
    else return std::nullopt;
    total_ms += v * factor;
    any = true;
  }
  if (!any) return std::nullopt;
  return static_cast<int64_t>(std::ceil(total_ms));
}

// Milliseconds to wait that a 429 answer asks for, from its headers, in the order openai-python
// trusts them: retry-after-ms, Retry-After (seconds or an HTTP date), then x-ratelimit-reset-*
// (the exhausted bucket's when x-ratelimit-remaining-* says which, else the sooner). nullopt when
// none says anything usable.
std::optional<int64_t> PauseFromHeaders(const HttpResponse& r) {
  auto number = [](const std::string& s) -> std::optional<double> {
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end != '\0' || !(v >= 0)) return std::nullopt;
    return v;
  };
  if (auto ms = number(r.retry_after_ms)) return static_cast<int64_t>(std::ceil(*ms));
  if (auto sec = number(r.retry_after)) return static_cast<int64_t>(std::ceil(*sec * 1000));
  if (!r.retry_after.empty()) {
    time_t at = curl_getdate(r.retry_after.c_str(), nullptr);
    if (at > 0) return std::max<int64_t>(0, (static_cast<int64_t>(at) - std::time(nullptr)) * 1000);
  }
  std::optional<int64_t> req = ParseDurationMs(r.ratelimit_reset_requests);
  std::optional<int64_t> tok = ParseDurationMs(r.ratelimit_reset_tokens);
  bool req_out = r.ratelimit_remaining_requests == "0", tok_out = r.ratelimit_remaining_tokens == "0";
  if (req_out || tok_out) {
    int64_t ms = 0;
    if (req_out && req) ms = std::max(ms, *req);
    if (tok_out && tok) ms = std::max(ms, *tok);
    if (ms > 0) return ms;
  }
  if (req && tok) return std::min(*req, *tok);
  if (req) return req;
  return tok;
}

// Removes `secret` from `text`, and every 8-byte piece of it too, so that an error message that
// echoes part of a key ("Incorrect API key provided: sk-proj-****abcd") cannot leak it.
std::string Redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  auto replace_all = [&](std::string_view what) {
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 4)) {
      text.replace(at, what.size(), "****");
    }
  };
  replace_all(secret);
  constexpr size_t kPiece = 8;
  for (size_t i = 0; i + kPiece <= secret.size(); ++i) replace_all(std::string_view(secret).substr(i, kPiece));
  return text;
}

// The API's own explanation in an error body ({"error":{"message"}} or the text itself), short.
std::string ErrorMessageOf(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return Snippet(e["message"].get<std::string>());
    if (e.is_string()) return Snippet(e.get<std::string>());
  }
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return Snippet(j["message"].get<std::string>());
  return Snippet(body);
}

// A 429 (or 402) that means "no money left" rather than "too fast": not worth retrying soon.
// DashScope (Qwen) sends insufficient_quota for its token-rate throttling, which does retry.
bool IsBilling(int status, const std::string& body, const ProviderConfig& c) {
  if (status == 402) return true;
  if (status != 429) return false;
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return false;
  const json& e = j["error"];
  auto field = [&](const char* k) { return e.contains(k) && e[k].is_string() ? e[k].get<std::string>() : std::string(); };
  bool dashscope = c.preset == "qwen" || c.base_url.find("dashscope") != std::string::npos;
  if (!dashscope && (field("type") == "insufficient_quota" || field("code") == "insufficient_quota")) return true;
  // Zhipu: code 1113 "balance exhausted", sent as HTTP 429 (numeric or string).
  if (field("code") == "1113" || (e.contains("code") && e["code"].is_number_integer() && e["code"].get<int>() == 1113)) {
    return true;
  }
  return false;
}

// One chunk's extraction, from Extract until its `done` is called.
struct Call {
  std::string text;
  Provider::Done done;
  json messages;  // the conversation so far (system, user, then a re-ask's turns)
  Usage usage;
  int retries = 0;       // of the current request (429s apart)
  int throttled = 0;     // 429s answered to the current request
  uint64_t cut_at_send = 0;  // the provider's cuts_ when the request in flight was sent
  bool reasked = false;  // the corrective re-ask has been sent
  int64_t estimate = 0;  // tokens the limiter counted for the request in flight
  std::string slot;      // the limiter's concurrency slot while a request is in flight
  // Since when the next request has been ready to send, and whether the limiter refused
  // admission meanwhile (then the wait is counted as a rate-limit wait when it is admitted).
  std::chrono::steady_clock::time_point ready_at;
  bool limited = false;
};

class OpenAiProvider final : public Provider {
 public:
  OpenAiProvider(OpenAiOptions o, json extra_body)
      : config_(std::move(o.config)),
        prompt_(std::move(o.prompt)),
        limiter_(std::move(o.limiter)),
        max_in_flight_(o.max_in_flight),
        recorder_(o.recorder),
        extra_body_(std::move(extra_body)),
        url_(TrimSlash(config_.base_url) + "/chat/completions"),
        cap_(o.max_in_flight),
        rng_(std::random_device{}()),
        limiter_outage_("provider " + config_.name + ": rate limiter"),
        transport_outage_("provider " + config_.name) {
    policy_.max_retries = std::max(0, config_.max_retries);
    headers_.push_back("Accept: application/json");
    if (!config_.api_key.empty()) headers_.push_back("Authorization: Bearer " + config_.api_key);
    client_ = std::make_unique<HttpClient>(HttpClient::Options{.max_host_connections = max_in_flight_});
    client_->RunAfter(kRenewEveryMs, [this] { RenewSlots(); });
  }

  // The loop stops first, so no callback or timer touches the members below once they go: Stop(),
  // not reset(), since reset() nulls client_ before the loop ends and a callback still running
  // (a 429's RunAfter) would call through it (seen under UBSan). Then the concurrency slots of
  // the abandoned requests go back (on Redis they would otherwise stay taken, cluster-wide, until
  // their TTL).
  ~OpenAiProvider() override {
    client_->Stop();
    for (const auto& [id, c] : calls_) {
      if (!c->slot.empty()) (void)limiter_->Release(c->slot, 0);
    }
  }

  void Extract(const std::string& text, Done done) override {
    client_->RunAfter(0, [this, text, done = std::move(done)]() mutable {
      auto c = std::make_unique<Call>();
      c->text = std::move(text);
      c->done = std::move(done);
      c->messages = json::array({{{"role", "system"}, {"content", prompt_.system}},
                                 {{"role", "user"}, {"content", prompt_.UserMessage(c->text)}}});
      uint64_t id = next_id_++;
      calls_.emplace(id, std::move(c));
      Ready(id, /*first=*/false);
      Admit();
    });
  }

  const std::string& name() const override { return config_.name; }

  std::string CacheKey(const std::string& text) const override {
    Sha256 h;
    auto field = [&](std::string_view f) {
      h.Update(std::to_string(f.size()));
      h.Update(":");
      h.Update(f);
    };
    field("openai");
    field(config_.base_url);
    field(config_.model);
    field(prompt_.version);
    field(config_.json_mode ? "json" : "text");
    field(extra_body_.is_null() ? std::string() : extra_body_.dump());
    field(text);
    return h.HexDigest();
  }

  ProviderReply FromCache(const std::string& content, const std::string& text) const override {
    ProviderReply r;
    ParsedOutput p = ParseExtractionOutput(content, "stop", text);
    if (p.problem != OutputProblem::kNone) {
      r.status = Status::Invalid("cached content no longer parses: " + p.detail);
      return r;
    }
    r.extraction = std::move(p.extraction);
    r.dropped_records = p.dropped_records;
    return r;
  }

 private:
  static constexpr int64_t kRenewEveryMs = 10000;  // a third of the limiters' default slot TTL

  static std::string TrimSlash(std::string s) {
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
  }

  // Everything below runs on the loop thread only.

  // Puts the call in the admission queue: at the back (a new chunk) or `first` (a retry or a
  // re-ask, ahead of newer chunks).
  void Ready(uint64_t id, bool first) {
    Call& c = *calls_.at(id);
    c.ready_at = std::chrono::steady_clock::now();
    c.limited = false;
    if (first) {
      waiting_.push_front(id);
    } else {
      waiting_.push_back(id);
    }
  }

  // Lets waiting chunks go, oldest first, while the in-flight cap allows and the limiter admits;
  // a refusal arms one timer after which only the head asks again.
  void Admit() {
    if (admit_timer_armed_) return;
    while (!waiting_.empty() && in_flight_ < cap_) {
      uint64_t id = waiting_.front();
      Call& c = *calls_.at(id);
      c.estimate = EstimateTokens(c);
      Result<Admission> a = limiter_->TryAcquire(c.estimate);
      limiter_outage_.Record(a.ok() ? Status::Ok() : a.status());
      if (!a.ok()) return ArmAdmit(policy_.limiter_error_wait_ms);
      if (!a->granted) {
        // Every call waiting now waits for the limiter (those behind the head wait for it too).
        for (uint64_t w : waiting_) calls_.at(w)->limited = true;
        return ArmAdmit(std::max<int64_t>(1, a->retry_after_ms));
      }
      c.slot = a->slot;
      waiting_.pop_front();
      if (c.limited && recorder_ != nullptr) {
        auto waited = std::chrono::steady_clock::now() - c.ready_at;
        recorder_->RateLimitWait(std::chrono::duration<double>(waited).count());
      }
      c.limited = false;
      Send(id);
    }
  }

  void ArmAdmit(int64_t ms) {
    admit_timer_armed_ = true;
    client_->RunAfter(ms, [this] {
      admit_timer_armed_ = false;
      Admit();
    });
  }

  int64_t EstimateTokens(const std::string& text) const override {
    return static_cast<int64_t>(prompt_.system.size() + prompt_.UserMessage(text).size()) / 3 +
           config_.max_output_tokens;
  }

  int64_t EstimateTokens(const Call& c) const {
    int64_t bytes = 0;
    for (const json& m : c.messages) bytes += static_cast<int64_t>(m["content"].get_ref<const std::string&>().size());
    return bytes / 3 + config_.max_output_tokens;
  }

  void Send(uint64_t id) {
    Call& c = *calls_.at(id);
    json body = {{"model", config_.model},
                 {"messages", c.messages},
                 {"temperature", config_.temperature},
                 {"max_tokens", config_.max_output_tokens}};
    if (config_.json_mode) body["response_format"] = {{"type", "json_object"}};
    if (extra_body_.is_object()) {
      for (auto it = extra_body_.begin(); it != extra_body_.end(); ++it) body[it.key()] = it.value();
    }
    HttpRequest req;
    req.url = url_;
    req.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    req.headers = headers_;
    req.connect_timeout_ms = ConnectTimeoutMs(config_);
    req.total_timeout_ms = TotalTimeoutMs(config_);
    ++in_flight_;
    ++c.usage.requests;
    c.cut_at_send = cuts_;
    client_->Post(std::move(req), [this, id](HttpResponse r) { OnResponse(id, std::move(r)); });
  }

  void OnResponse(uint64_t id, HttpResponse r) {
    Call& c = *calls_.at(id);
    if (recorder_ != nullptr) recorder_->LlmRequest(r.status);  // 0: no answer ("transport")
    // Only a request sent since the last cut may raise the cap: the answers of requests sent before
    // a 429 would otherwise undo the cut within the same wave.
    bool at_cap = in_flight_ >= cap_ && c.cut_at_send == cuts_;
    --in_flight_;

    // Read the answer first: its usage corrects the limiter's token count.
    json j;
    int64_t prompt_tokens = 0, completion_tokens = 0;
    bool has_usage = false;
    if (r.status == 200) {
      j = json::parse(r.body, nullptr, false);
      if (j.is_object() && j.contains("usage") && j["usage"].is_object()) {
        const json& u = j["usage"];
        auto count = [&](const char* k) {
          return u.contains(k) && u[k].is_number_integer() ? u[k].get<int64_t>() : int64_t{0};
        };
        prompt_tokens = count("prompt_tokens");
        completion_tokens = count("completion_tokens");
        has_usage = true;
      }
    }
    c.usage.prompt_tokens += prompt_tokens;
    c.usage.completion_tokens += completion_tokens;
    // Without a usage report the estimate stays counted (a failed request may still have cost).
    int64_t delta = has_usage ? prompt_tokens + completion_tokens - c.estimate : 0;
    Status released = limiter_->Release(c.slot, delta);
    if (!released.ok()) limiter_outage_.Record(released);
    c.slot.clear();

    // A server that cannot be reached is logged when it starts and when it ends, not only in the
    // chunks' errors once their retries are spent.
    if (r.status == 0) {
      transport_outage_.Record(Status::Unavailable("cannot reach " + url_ + " (base_url of provider " + config_.name +
                                                   "): " + r.error + "; chunks wait and retry"));
    } else {
      transport_outage_.Record(Status::Ok());
    }
    if (r.status == 200) {
      OnOk(id, c, j, at_cap);
    } else if (r.status == 429 || r.status == 402) {
      On429(id, r);
    } else if (RetryPolicy::Retryable(r.status)) {
      std::string what = r.status == 0 ? "request to " + url_ + ": " + r.error
                                       : "HTTP " + std::to_string(r.status) + " from " + url_ + ": " +
                                             ErrorMessageOf(r.body);
      int64_t wait = policy_.Backoff(c.retries, rng_);
      if (auto header = PauseFromHeaders(r)) wait = std::max(wait, std::min(*header, policy_.max_pause_ms));
      Retry(id, wait, what);
    } else if (r.status == 401 || r.status == 403) {
      std::string msg = "HTTP " + std::to_string(r.status) + " from " + url_ + ": " +
                        (config_.api_key.empty() ? std::string("no API key is configured (api_key_env is empty)")
                                                 : "the API key in " + config_.api_key_env + " was refused") +
                        " (" + ErrorMessageOf(r.body) + "); fix it and retry the task";
      // Final for the chunk: every retry would be refused the same way (a queue of chunks each
      // sending it five times). The task's retry sends them again once the key is fixed.
      Fail(id, Status::Invalid(msg), &logged_auth_);
    } else if (r.status == 404) {
      Fail(id,
           Status::Invalid("HTTP 404 from " + url_ + ": check base_url and model '" + config_.model + "' (" +
                           ErrorMessageOf(r.body) + "); fix it and retry the task"),
           &logged_not_found_);
    } else if (r.status >= 400 && r.status < 500) {
      // The request itself is refused (e.g. the chunk is longer than the model's context): this
      // chunk will never succeed here.
      Fail(id, Status::Invalid("HTTP " + std::to_string(r.status) + " from " + url_ + ": " + ErrorMessageOf(r.body)));
    } else {
      Fail(id, Status::Unavailable("unexpected HTTP " + std::to_string(r.status) + " from " + url_));
    }
    Admit();
  }

  void OnOk(uint64_t id, Call& c, const json& j, bool at_cap) {
    const json* message = nullptr;
    std::string finish;
    if (j.is_object() && j.contains("choices") && j["choices"].is_array() && !j["choices"].empty() &&
        j["choices"][0].is_object()) {
      const json& choice = j["choices"][0];
      if (choice.contains("message") && choice["message"].is_object()) message = &choice["message"];
      if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) finish = choice["finish_reason"];
    }
    if (message == nullptr) {
      // Not a chat completion: a proxy's page or a cut body. Retried like a transport error.
      std::string what = "malformed answer from " + url_ + ": " + Snippet(j.is_discarded() ? "" : j.dump());
      return Retry(id, policy_.Backoff(c.retries, rng_), what);
    }
    std::string content;
    if (message->contains("content") && (*message)["content"].is_string()) content = (*message)["content"];

    // AIMD: a success while the cap was full earns one more slot.
    if (at_cap) cap_ = std::min(max_in_flight_, cap_ + 1);

    ParsedOutput p = ParseExtractionOutput(content, finish, c.text);
    if (p.problem == OutputProblem::kNone) {
      ProviderReply reply;
      reply.extraction = std::move(p.extraction);
      reply.dropped_records = p.dropped_records;
      reply.cache_content = std::move(content);
      return Finish(id, std::move(reply));
    }
    if (c.reasked) {
      return Fail(id, Status::Unavailable("unusable output after a corrective re-ask: " + p.detail));
    }
    c.reasked = true;
    c.retries = 0;
    c.throttled = 0;
    c.messages.push_back({{"role", "assistant"}, {"content", content}});
    c.messages.push_back({{"role", "user"}, {"content", prompt_.CorrectionMessage(p.detail)}});
    Ready(id, /*first=*/true);
  }

  void On429(uint64_t id, const HttpResponse& r) {
    Call& c = *calls_.at(id);
    std::string msg = ErrorMessageOf(r.body);
    if (IsBilling(r.status, r.body, config_)) {
      return Fail(id, Status::Unavailable("billing: HTTP " + std::to_string(r.status) + " from " + url_ + ": " + msg),
                  &logged_billing_);
    }
    std::optional<int64_t> header = PauseFromHeaders(r);
    // Without a header: the backoff, but never under base_ms, so that the pause always happens.
    int64_t pause = header ? std::min(*header, policy_.max_pause_ms)
                           : std::max(policy_.base_ms, policy_.Backoff(std::min(c.throttled, 20), rng_));
    if (pause > 0) {
      Status s = limiter_->Pause(pause);
      if (!s.ok()) limiter_outage_.Record(s);
    }
    // AIMD: the provider is saturated; a quarter fewer requests in flight from this process.
    cap_ = std::max(1, cap_ - std::max(1, cap_ / 4));
    ++cuts_;
    std::string what = "HTTP 429 from " + url_ + ": " + msg;
    if (c.throttled >= policy_.max_throttled) {
      return Fail(id, Status::Unavailable(what + " (gave up after " + std::to_string(c.throttled) + " 429s)"));
    }
    ++c.throttled;
    spdlog::debug("provider {}: {}; again in {} ms", config_.name, Redact(what, config_.api_key), pause);
    client_->RunAfter(pause, [this, id] {
      Ready(id, /*first=*/true);
      Admit();
    });
  }

  // Sends the request again after `wait_ms` (through the limiter, ahead of newer chunks), or
  // fails the chunk when its retries are spent.
  void Retry(uint64_t id, int64_t wait_ms, const std::string& what) {
    Call& c = *calls_.at(id);
    if (c.retries >= policy_.max_retries) {
      return Fail(id, Status::Unavailable(what + " (gave up after " + std::to_string(c.retries) + " retries)"));
    }
    ++c.retries;
    spdlog::debug("provider {}: {}; retry {} in {} ms", config_.name, Redact(what, config_.api_key), c.retries, wait_ms);
    client_->RunAfter(wait_ms, [this, id] {
      Ready(id, /*first=*/true);
      Admit();
    });
  }

  // Ends the chunk with `status`; a configuration problem (`logged` set) is logged once.
  void Fail(uint64_t id, Status status, bool* logged = nullptr) {
    status = Status(status.code(), Redact(status.message(), config_.api_key));
    if (logged != nullptr && !*logged) {
      *logged = true;
      spdlog::error("provider {}: {} (logged once)", config_.name, status.message());
    }
    ProviderReply reply;
    reply.status = std::move(status);
    Finish(id, std::move(reply));
  }

  void Finish(uint64_t id, ProviderReply reply) {
    auto it = calls_.find(id);
    std::unique_ptr<Call> c = std::move(it->second);
    calls_.erase(it);
    reply.usage = c->usage;
    reply.usage.cost = static_cast<double>(c->usage.prompt_tokens) * config_.price_in_per_mtok / 1e6 +
                       static_cast<double>(c->usage.completion_tokens) * config_.price_out_per_mtok / 1e6;
    c->done(std::move(reply));
  }

  void RenewSlots() {
    std::vector<std::string> slots;
    for (const auto& [id, c] : calls_) {
      if (!c->slot.empty()) slots.push_back(c->slot);
    }
    if (!slots.empty()) {
      Status s = limiter_->Renew(slots);
      if (!s.ok()) limiter_outage_.Record(s);
    }
    client_->RunAfter(kRenewEveryMs, [this] { RenewSlots(); });
  }

  const ProviderConfig config_;
  const Prompt prompt_;
  const std::unique_ptr<Limiter> limiter_;
  const int max_in_flight_;
  telemetry::Recorder* const recorder_;  // borrowed, may be null
  const json extra_body_;  // null or an object
  const std::string url_;
  std::vector<std::string> headers_;
  RetryPolicy policy_;

  // Loop thread only.
  int cap_;           // the adaptive in-flight cap, 1..max_in_flight_
  uint64_t cuts_ = 0;  // times the cap was cut (on a 429)
  int in_flight_ = 0;
  uint64_t next_id_ = 0;
  std::map<uint64_t, std::unique_ptr<Call>> calls_;
  std::deque<uint64_t> waiting_;  // admission order
  bool admit_timer_armed_ = false;
  bool logged_auth_ = false, logged_billing_ = false, logged_not_found_ = false;
  std::mt19937_64 rng_;
  OutageLog limiter_outage_;
  OutageLog transport_outage_;  // the server unreachable (transport errors)

  std::unique_ptr<HttpClient> client_;  // last: destroyed (loop stopped) before the rest
};

}  // namespace

Result<std::unique_ptr<Provider>> MakeOpenAiProvider(OpenAiOptions options) {
  const ProviderConfig& c = options.config;
  auto invalid = [&](const std::string& what) { return Status::Invalid("provider " + c.name + ": " + what); };
  if (c.kind != "openai") return invalid("kind is '" + c.kind + "', not 'openai'");
  if (c.base_url.empty()) return invalid("base_url is empty");
  if (c.model.empty()) return invalid("model is empty");
  if (!c.api_key_env.empty() && c.api_key.empty()) return invalid("the API key variable " + c.api_key_env + " is not set");
  if (options.limiter == nullptr) return invalid("no rate limiter");
  if (options.max_in_flight < 1) return invalid("max_in_flight must be at least 1");
  json extra;
  if (!c.extra_body.empty()) {
    extra = json::parse(c.extra_body, nullptr, false);
    if (!extra.is_object()) return invalid("extra_body is not a JSON object");
  }
  return std::unique_ptr<Provider>(std::make_unique<OpenAiProvider>(std::move(options), std::move(extra)));
}

}  // namespace kg::llm
