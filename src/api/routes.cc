#include "api/routes.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string_view>
#include <vector>
#include <nlohmann/json.hpp>

#include "api/console_assets.h"
#include "api/events.h"
#include "api/metrics.h"
#include "api/provenance.h"
#include "api/reply.h"
#include "api/submission.h"
#include "common/util.h"
#include "markup/markup.h"
#include "pipeline/document.h"
#include "pipeline/stream_plan.h"
#include "text/text.h"
#include "supervisor/node_registry.h"
#include "supervisor/supervisor.h"

namespace kg::api {

using nlohmann::json;

namespace {

// How long a client should wait before resubmitting to a stopping node's address (by
// then a load balancer has usually moved it to another node).
constexpr int kRetryAfterSeconds = 5;
// How long a node that stopped beating stays listed (marked stale) in /api/v1/workers.
constexpr int64_t kListStaleNodesMs = 3600 * 1000;
// Chunks listed by GET /api/v1/tasks/ID?chunks=1: a page polls it every few seconds, and a
// document of 50 000 chunks would make every answer megabytes ("chunks_truncated" says so).
constexpr size_t kMaxListedChunks = 2000;
// Dead letters shown in a task's view (each carries its error text, which can be long).
constexpr size_t kMaxDeadLetters = 100;
// The most unfinished rows one GET /api/v1/tasks brings up to date (see ListTasks).
constexpr int kMaxHealedRows = 1000;
// The longest `q` of GET /api/v1/tasks: a title search, not a document.
constexpr size_t kMaxTaskQueryBytes = 200;

bool ConstantTimeEqual(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

json TaskJson(const TaskRecord& t) {
  return {{"id", t.id},
          {"title", t.title},
          {"provider", t.provider},
          {"document", t.doc_id},
          {"status", t.status},
          {"chunks_total", t.chunks_total},
          {"chunks_done", t.chunks_done},
          {"chunks_failed", t.chunks_failed},
          {"error", t.error.empty() ? json(nullptr) : json(t.error)},
          {"created_at_ms", t.created_at_ms},
          {"updated_at_ms", t.updated_at_ms},
          {"token_budget", t.token_budget}};
}

json UsageJson(const UsageTotals& u) {
  return {{"prompt_tokens", u.prompt_tokens}, {"completion_tokens", u.completion_tokens}, {"tokens", u.tokens()},
          {"requests", u.requests},           {"cached_chunks", u.cached_chunks},         {"cost", u.cost}};
}

// A chunk's state as the API names it elsewhere (chunks_queued, chunks_running, ...).
const char* ChunkStateApiName(ChunkState s) {
  switch (s) {
    case ChunkState::kReady: return "queued";
    case ChunkState::kLeased: return "running";
    case ChunkState::kDone: return "done";
    case ChunkState::kDead: return "dead";
    case ChunkState::kCancelled: return "cancelled";
  }
  return "unknown";
}

// `usage`: the chunk's ledger row, or null (none yet, or the ledger could not be read).
json ChunkJson(const ChunkInfo& c, json usage) {
  bool finished = c.state == ChunkState::kDone || c.state == ChunkState::kDead;
  // Times the queue does not know (never leased; a Redis record from before they were kept, or
  // a done chunk's expired record) are null, and so is a duration without both ends.
  auto time = [](int64_t ms) { return ms > 0 ? json(ms) : json(nullptr); };
  bool timed = finished && c.leased_at_ms > 0 && c.updated_at_ms >= c.leased_at_ms;
  return {{"id", c.id},
          {"idx", c.idx},
          {"state", ChunkStateApiName(c.state)},
          {"attempts", c.attempts},
          {"crashes", c.crashes},
          {"error", c.last_error.empty() ? json(nullptr) : json(c.last_error)},
          {"leased_at", time(c.leased_at_ms)},
          {"updated_at", time(c.updated_at_ms)},
          {"duration_ms", timed ? json(c.updated_at_ms - c.leased_at_ms) : json(nullptr)},
          {"usage", std::move(usage)}};
}

json EntityJson(const EntityRec& e) {
  return {{"key", e.key}, {"name", e.name}, {"type", e.type}, {"description", e.description},
          {"mentions", e.mentions}};
}

Result<json> ParseBody(const http::Request& req) {
  if (req.body.empty()) return Status::Invalid("request body is empty; expected a JSON object");
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) return Status::Invalid("request body is not valid JSON");
  if (!j.is_object()) return Status::Invalid("request body must be a JSON object");
  return j;
}


// A whole number >= 0 (an offset into a listing).
Result<int> ParseOffset(const std::string& s) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit)) {
    return Status::Invalid("offset must be a whole number from 0 to 999999999");
  }
  return std::stoi(s);
}

Result<int> ParseLimit(const std::string& s) {
  if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), ::isdigit)) {
    return Status::Invalid("limit must be a whole number from 1 to 1000");
  }
  int n = std::stoi(s);
  if (n < 1 || n > 1000) return Status::Invalid("limit must be a whole number from 1 to 1000");
  return n;
}


json BindingJson(const std::string& cap, int value) {
  if (cap.empty()) return nullptr;
  return {{"name", cap}, {"value", value}};
}

json CapsJson(const Config& c) {
  return {{"KG_MAX_TOTAL_PROCESSES", c.max_total_processes},
          {"KG_MAX_PROCESSES_PER_PROVIDER", c.max_processes_per_provider}};
}

// A provider's queue figures as the console names them: queued (leasable now), running
// (leased), delayed (waiting out a retry backoff), dead (dead-lettered), done.
json QueueJson(const ProviderDepth& d) {
  return {{"queued", d.ready}, {"running", d.leased}, {"delayed", d.delayed}, {"dead", d.dead}, {"done", d.done}};
}

// The fields of a node's info (NodeRecord::info_json) that the API shows; each is null when the
// record lacks it (written by an older kgflow). `quarantine`, when given, replaces the record's
// (this node's live one); otherwise each remaining_s is the reported one less the heartbeat's
// age, so it counts down between beats (and reaches 0 on a node that stopped beating).
json NodeInfoFields(const std::string& info_json, int64_t heartbeat_age_ms,
                    const std::optional<std::vector<QuarantineView>>& quarantine) {
  json info = json::parse(info_json, nullptr, false);
  if (info.is_discarded() || !info.is_object()) info = json::object();
  auto field = [&](const char* name) { return info.contains(name) ? info[name] : json(nullptr); };
  json q = field("quarantine");
  if (quarantine) {
    q = json::array();
    for (const auto& v : *quarantine) q.push_back({{"provider", v.provider}, {"remaining_s", v.remaining_s}});
  } else if (q.is_array()) {
    for (auto& e : q) {
      if (!e.is_object()) continue;
      double left = e.value("remaining_s", 0.0) - static_cast<double>(heartbeat_age_ms) / 1000.0;
      e["remaining_s"] = std::max(0.0, left);
    }
  } else {
    q = nullptr;
  }
  return {{"version", field("version")}, {"started_at", field("started_at")}, {"caps", field("caps")},
          {"quarantine", std::move(q)}};
}

}  // namespace

// How often the live-update publisher looks for changes while someone listens.
constexpr auto kEventInterval = std::chrono::milliseconds(500);

Routes::Routes(ApiDeps deps, http::Server& svr)
    : d_(deps),
      c_(*deps.config),
      svr_(svr),
      events_([this](const std::vector<std::string>& tasks) { return LiveSnapshot(tasks); }, kEventInterval) {}

// Registers `h` for method+pattern (the server answers 405 and 404 itself).
// With KG_API_TOKEN set, every /api/ route and every mutation needs the bearer token,
// reads included (a knowledge graph can be private); probes and /metrics stay open.
void Routes::Route(const std::string& method, const std::string& pattern, Handler h, http::RouteOptions o) {
  bool guarded = method != "GET" || pattern.rfind("/api/", 0) == 0;
  Handler wrapped = [this, guarded, h](const http::Request& req, http::Response& res) {
    if (guarded && !Guard(req, res)) return;
    h(req, res);
  };
  // The token is checked on the head too, so a client without it never gets to send a body.
  if (guarded) o.before_body = [this](const http::Request& head, http::Response& res) { return Guard(head, res); };
  svr_.Route(method, pattern, std::move(wrapped), std::move(o));
}

bool Routes::Guard(const http::Request& req, http::Response& res) const {
  if (Authorized(req)) return true;
  res.set_header("WWW-Authenticate", "Bearer");
  Fail(res, 401, "missing or wrong bearer token (KG_API_TOKEN)");
  return false;
}

bool Routes::Authorized(const http::Request& req) const {
  if (c_.api_token.empty()) return true;
  std::string h = req.get_header_value("Authorization");
  // The scheme is case-insensitive (RFC 7235); the token is not.
  const std::string scheme = "bearer ";
  if (h.size() < scheme.size()) return false;
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != scheme[i]) return false;
  }
  return ConstantTimeEqual(h.substr(scheme.size()), c_.api_token);
}

void Routes::Register() {
  // Inline: answered on the event loop, so a probe gets through even when every handler thread is busy.
  http::RouteOptions inline_route;
  inline_route.inline_handler = true;
  Route("GET", "/healthz", [](const auto&, auto& res) { Reply(res, 200, {{"status", "ok"}}); }, inline_route);
  Route("GET", "/readyz", [this](const auto&, auto& res) { Ready(res); });
  Route("GET", "/metrics", [this](const auto&, auto& res) { Metrics(res); });
  Route("GET", "/api/v1/workers", [this](const auto&, auto& res) { Workers(res); });
  if (!d_.health_only) {
    // The web console: index.html at /, its other files at /NAME (docs: web/README.md).
    // The page holds no data (every figure comes from /api/ with the token), so it is open. It may
    // run only its own files and talk only to its own node; it may not be framed (clickjacking).
    // Styles: cytoscape sets inline styles, which 'unsafe-inline' allows (without it the graph view
    // logs a CSP violation; tests/console saw it); no script is inline.
    auto asset = [](const http::Request& req, const std::string& name, http::Response& res) {
      const ConsoleAsset* f = FindConsoleAsset(name);
      if (f == nullptr) return Reply(res, 404, {{"error", "no such file: /" + name}});
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: "
                     "blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
                     "frame-ancestors 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Referrer-Policy", "no-referrer");
      // The files change with the binary: the browser asks each time (no stale console after an
      // upgrade) and gets 304 without the body while its copy is current.
      res.set_header("Cache-Control", "no-cache");
      res.set_header("ETag", f->etag);
      if (req.get_header_value("If-None-Match") == f->etag) {
        res.status = 304;
        return;
      }
      res.set_content(std::string(reinterpret_cast<const char*>(f->data), f->size), f->content_type);
    };
    Route("GET", "/", [asset](const auto& req, auto& res) { asset(req, "index.html", res); });
    Route("GET", R"(/([A-Za-z0-9_][A-Za-z0-9_.-]*\.(?:js|css|html)))",
          [asset](const auto& req, auto& res) { asset(req, req.matches[1], res); });
    http::RouteOptions streamed;
    streamed.stream = [this](const http::Request& head, http::Response& res) { return StartSubmit(head, res); };
    Route("POST", "/api/v1/tasks", [this](const auto& req, auto& res) { Submit(req, res); }, streamed);
    Route("POST", "/api/v1/tasks/batch", [this](const auto& req, auto& res) { SubmitBatch(req, res); });
    Route("GET", "/api/v1/events", [this](const auto& req, auto& res) { Events(req, res); });
    Route("GET", "/api/v1/tasks", [this](const auto& req, auto& res) { ListTasks(req, res); });
    Route("GET", R"(/api/v1/tasks/([^/]+))", [this](const auto& req, auto& res) { GetTask(req, res); });
    Route("POST", R"(/api/v1/tasks/([^/]+)/cancel)", [this](const auto& req, auto& res) { Cancel(req, res); });
    Route("POST", R"(/api/v1/tasks/([^/]+)/retry)", [this](const auto& req, auto& res) { Retry(req, res); });
    Route("PUT", R"(/api/v1/providers/([^/]+)/processes)", [this](const auto& req, auto& res) { Scale(req, res); });
    Route("DELETE", R"(/api/v1/providers/([^/]+)/processes)",
          [this](const auto& req, auto& res) { ResetScale(req, res); });
    Route("GET", "/api/v1/providers", [this](const auto&, auto& res) { Providers(res); });
    Route("GET", "/api/v1/graph/stats", [this](const auto&, auto& res) { Stats(res); });
    Route("GET", "/api/v1/graph/entities", [this](const auto& req, auto& res) { Search(req, res); });
    Route("GET", R"(/api/v1/graph/entities/(.+))", [this](const auto& req, auto& res) { Entity(req, res); });
    Route("GET", "/api/v1/graph/export", [this](const auto& req, auto& res) { Export(req, res); });
  }
}

namespace {

void RefuseStopping(http::Response& res) {
  // A client or load balancer retries elsewhere; this node only drains what it holds.
  res.set_header("Retry-After", std::to_string(kRetryAfterSeconds));
  Reply(res, 503, {{"error", "node is stopping and takes no new tasks; retry on another node"}, {"reason", "stopping"}});
}

}  // namespace

// A text/plain document planned piece by piece as it arrives: the body is never held whole
// (the planner keeps a window of text and the queue items; pipeline/stream_plan.h). A body whose
// first non-blank byte is '{' may be a JSON client's mistake, which Submit refuses with advice:
// such a body is kept and handed to Submit whole.
class TextUpload : public http::BodyConsumer {
 public:
  TextUpload(Routes* routes, const http::Request& head, Submission fields, std::string provider, ChunkOptions options)
      : routes_(routes), req_(head), fields_(std::move(fields)), provider_(std::move(provider)), options_(options) {}

  bool Write(std::string_view piece, http::Response& res) override {
    if (whole_) {
      req_.body.append(piece);
      return true;
    }
    if (!planner_) {
      prefix_.append(piece);
      size_t first = prefix_.find_first_not_of(" \t\r\n");
      if (first == std::string::npos) return true;  // blank so far: undecided
      if (prefix_[first] == '{' && !req_.has_param("format")) {
        whole_ = true;
        req_.body = std::move(prefix_);
        return true;
      }
      return Start(res);
    }
    return Feed(piece, res);
  }

  void Finish(http::Response& res) override {
    if (whole_) return routes_->Submit(req_, res);
    if (!planner_ && !Start(res)) return;
    auto plan = planner_->Finish();
    if (!plan.ok()) return Fail(res, 400, "'text' is not text: " + plan.status().message());
    routes_->Accept(provider_, fields_.title.empty() ? "untitled" : fields_.title, fields_.source, std::move(plan).value(),
                    false, fields_.token_budget, res);
  }

 private:
  // The planner, fed what was held while undecided.
  bool Start(http::Response& res) {
    const std::string title = fields_.title.empty() ? "untitled" : fields_.title;
    planner_.emplace(RandomId("t"), provider_, fields_.id, title, fields_.source, options_);
    std::string held = std::move(prefix_);
    prefix_.clear();
    return Feed(held, res);
  }

  bool Feed(std::string_view piece, http::Response& res) {
    if (Status s = planner_->Add(piece); !s.ok()) {
      Fail(res, 400, "'text' is not text: " + s.message());
      return false;
    }
    return true;
  }

  Routes* routes_;
  http::Request req_;  // the head; the body only when kept whole
  Submission fields_;
  std::string provider_;
  ChunkOptions options_;
  std::string prefix_;  // blank bytes before the first that decides
  bool whole_ = false;
  std::optional<StreamPlanner> planner_;
};

std::unique_ptr<http::BodyConsumer> Routes::StartSubmit(const http::Request& head, http::Response& res) {
  if (!Guard(head, res)) return nullptr;
  if (stopping_) {
    RefuseStopping(res);
    return nullptr;
  }
  // JSON, markup and multipart bodies are read whole (they are parsed whole anyway).
  if (!IsPlainTextUpload(head)) return nullptr;
  // The fields are in the query: checked before a byte of the body is read.
  auto fields = ParseQueryFields(head);
  if (!fields.ok()) {
    Fail(res, fields.status());
    return nullptr;
  }
  std::string provider = fields->provider;
  if (!CheckSubmission(&provider, fields->id, res)) return nullptr;
  return std::make_unique<TextUpload>(this, head, std::move(fields).value(), provider,
                                      ChunkOptions{c_.chunk_size, c_.chunk_overlap});
}

Status Routes::CheckFields(std::string* provider, const std::string& doc_id) const {
  if (provider->empty()) *provider = c_.enabled_providers.front();
  if (!c_.HasProvider(*provider)) {
    return Status::Invalid("unknown provider '" + *provider + "'; known: " + c_.KnownProviders());
  }
  for (char ch : doc_id) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) {
      return Status::Invalid("'id' may contain only A-Z a-z 0-9 . _ -");
    }
  }
  return Status::Ok();
}

bool Routes::CheckSubmission(std::string* provider, const std::string& doc_id, http::Response& res) const {
  Status s = CheckFields(provider, doc_id);
  if (!s.ok()) Fail(res, s);
  return s.ok();
}

Result<Routes::Planned> Routes::Plan(const Submission& sub) const {
  if (Status t = CheckText(sub.text); !t.ok()) return Status::Invalid("'text' is not text: " + t.message());
  markup::Format format = markup::Format::kText;
  if (!sub.format.empty() && !markup::ParseFormat(sub.format, &format)) {
    return Status::Invalid("'format' must be text, markdown or html");
  }
  // Markup parsers get valid UTF-8 (PlanTask would replace bad bytes anyway, after them).
  // `text` views the request's body unless markup had to be stripped: no copy of a large document.
  std::string_view text = sub.text;
  std::string stripped;
  if (format != markup::Format::kText) {
    std::string sanitized;
    std::string_view in = sub.text;
    if (!IsValidUtf8(in)) in = sanitized = SanitizeUtf8(in);
    auto r = markup::ToText(in, format);
    if (!r.ok()) return r.status();
    stripped = std::move(r).value();
    text = stripped;
  }
  Planned out;
  out.provider = sub.provider;
  KG_RETURN_IF_ERROR(CheckFields(&out.provider, sub.id));
  out.title = sub.title.empty() ? "untitled" : sub.title;
  out.source = sub.source;
  out.markup = format != markup::Format::kText;
  out.token_budget = sub.token_budget;
  out.plan = PlanTask(RandomId("t"), out.provider, sub.id, out.title, sub.source, text,
                      {c_.chunk_size, c_.chunk_overlap});
  return out;
}

void Routes::Submit(const http::Request& req, http::Response& res) {
  if (stopping_) return RefuseStopping(res);
  // JSON, a text/* body with the fields in the query, or a multipart upload (submission.h).
  auto sub = ParseSubmission(req);
  if (!sub.ok()) return Fail(res, sub.status());
  auto planned = Plan(*sub);
  if (!planned.ok()) return Fail(res, planned.status());
  Accept(planned->provider, planned->title, planned->source, std::move(planned->plan), planned->markup,
         planned->token_budget, res);
}

// Every document is checked and planned before anything is written, so a bad one creates
// nothing; then one Enqueue carries every chunk, and the task rows follow (chunks first, as in
// Accept: a crash between leaves chunks that still reach the graph, never a row without them).
void Routes::SubmitBatch(const http::Request& req, http::Response& res) {
  if (stopping_) return RefuseStopping(res);
  auto batch = ParseBatch(req, kMaxBatchDocuments);
  if (!batch.ok()) return Fail(res, batch.status());
  if (batch->count > kMaxBatchDocuments) {
    return Fail(res, 413, fmt::format("the batch holds {} documents; at most {} are taken per request: split it",
                                      batch->count, kMaxBatchDocuments));
  }
  std::vector<Planned> planned;
  planned.reserve(batch->documents.size());
  std::map<std::string, std::string> where_of_id;  // a document id given twice is ambiguous
  size_t chunks = 0;
  for (const auto& doc : batch->documents) {
    const Submission& sub = doc.fields;
    if (!sub.id.empty()) {
      auto [it, fresh] = where_of_id.emplace(sub.id, doc.where);
      if (!fresh) return Fail(res, 400, doc.where + ": 'id' " + sub.id + " is also the id of " + it->second);
    }
    auto p = Plan(sub);
    if (!p.ok()) return Fail(res, p.status().With(doc.where));
    if (p->plan.items.empty()) {
      return Fail(res, 400, doc.where + (p->markup ? ": 'text' has no text once its markup is stripped"
                                                   : ": 'text' is empty or blank"));
    }
    chunks += p->plan.items.size();
    planned.push_back(std::move(p).value());
  }
  std::vector<ChunkItem> items;
  items.reserve(chunks);
  for (auto& p : planned) {
    p.chunks = static_cast<int>(p.plan.items.size());
    p.task_id = p.plan.items.front().task_id;
    std::move(p.plan.items.begin(), p.plan.items.end(), std::back_inserter(items));
    p.plan.items.clear();
  }
  if (stopping_) return RefuseStopping(res);
  Status s = d_.queue->Enqueue(items);
  if (!s.ok()) return Fail(res, 503, "queue unavailable, no task created: " + s.message());
  items.clear();
  json tasks = json::array();
  std::set<std::string> providers;
  for (size_t i = 0; i < planned.size(); ++i) {
    const Planned& p = planned[i];
    TaskRecord t;
    t.id = p.task_id;
    t.title = p.title;
    t.provider = p.provider;
    t.doc_id = p.plan.doc_id;
    t.source = p.source;
    t.chunks_total = p.chunks;
    t.token_budget = p.token_budget;
    s = d_.store->Create(t);
    if (!s.ok()) {
      return Fail(res, 503, fmt::format("task store unavailable after {} of {} tasks ({}); every document's chunks "
                                        "are queued and reach the graph; resubmitting is safe for the graph",
                                        i, planned.size(), s.message()));
    }
    // Workers that finished chunks before the row existed wrote their progress to nothing. A task
    // none of whose chunks has moved yet is what its new row says: no write for it.
    auto counts = d_.queue->Counts(t.id);
    if (!counts.ok() || counts->ready != counts->total) {
      if (Status r = RefreshProgress(*d_.store, *d_.queue, t); !r.ok()) spdlog::warn("batch submit: {}", r.message());
    }
    ++tasks_submitted_;
    tasks.push_back({{"id", t.id}, {"chunks", t.chunks_total}, {"document", t.doc_id}});
    providers.insert(p.provider);
  }
  json warnings = json::array();
  auto served = ServedProviders();
  for (const auto& p : providers) {
    if (json w = ServingWarning(served, p, "queued"); !w.is_null()) warnings.push_back(w);
  }
  Reply(res, 201, {{"tasks", tasks}, {"warnings", warnings}});
}

void Routes::Accept(const std::string& provider, const std::string& title, const std::string& source, TaskPlan plan,
                    bool markup, int64_t token_budget, http::Response& res) {
  // A streamed upload can end after the node began to stop: refused like any new task.
  if (stopping_) return RefuseStopping(res);
  if (plan.items.empty()) {
    return Fail(res, 400, markup ? "'text' has no text once its markup is stripped" : "'text' is empty or blank");
  }
  const std::string task_id = plan.items.front().task_id;
  // Chunks first: if we die before the task row exists, the chunks still reach the graph.
  Status s = d_.queue->Enqueue(plan.items);
  if (!s.ok()) return Fail(res, 503, "queue unavailable: " + s.message());
  TaskRecord t;
  t.id = task_id;
  t.title = title;
  t.provider = provider;
  t.doc_id = plan.doc_id;
  t.source = source;
  t.chunks_total = static_cast<int>(plan.items.size());
  t.token_budget = token_budget;
  s = d_.store->Create(t);
  if (!s.ok()) return Fail(res, 503, "task store unavailable: " + s.message());
  ++tasks_submitted_;
  // Workers that finished chunks before the row existed wrote their progress to nothing.
  if (Status r = RefreshProgress(*d_.store, *d_.queue, task_id); !r.ok()) spdlog::warn("submit: {}", r.message());
  res.set_header("Location", "/api/v1/tasks/" + task_id);
  Reply(res, 202, {{"id", task_id}, {"status", "queued"}, {"chunks_total", t.chunks_total},
                   {"document", plan.doc_id}, {"provider", provider}, {"token_budget", token_budget},
                   {"warning", ServingWarning(ServedProviders(), provider, "queued")}});
}

// Task with live counts from the queue (the stored row may lag a worker's update) and its LLM
// usage from the ledger. With `chunks`, one capped read of the queue serves "chunks", the usage
// per chunk (read for those chunks only) and the dead letters: a page polling a task of 50 000
// chunks every few seconds reads what it shows.
Result<json> Routes::TaskView(const std::string& id, bool chunks) {
  auto t = d_.store->Get(id);
  if (!t.ok()) return t.status();
  std::optional<Result<std::vector<ChunkInfo>>> list;
  // One more than shown, to know whether there are more.
  if (chunks) list = d_.queue->ListFirstChunks(id, static_cast<int64_t>(kMaxListedChunks) + 1);
  const bool listed = list && list->ok();
  json out = TaskViewOf(*t, ServedProviders(), listed ? &**list : nullptr);
  auto usage = d_.store->TaskUsage(id);
  Status read = usage.status();
  out["usage"] = usage.ok() ? UsageJson(*usage) : json(nullptr);
  std::map<std::string, UsageTotals> per_chunk_usage;
  bool per_chunk_read = false;
  size_t shown = listed ? std::min((*list)->size(), kMaxListedChunks) : 0;
  if (chunks) {
    // "chunks_usage": the ledger rows of the listed chunks only (so at most kMaxListedChunks), in
    // chunk order; null when the ledger or the queue (which says which chunks are listed) fails.
    json arr = nullptr;
    if (read.ok() && listed) {
      std::vector<std::string> ids;
      ids.reserve(shown);
      for (size_t i = 0; i < shown; ++i) ids.push_back((**list)[i].id);
      auto per_chunk = d_.store->ChunkUsageOf(id, ids);
      read = per_chunk.status();
      if (per_chunk.ok()) {
        arr = json::array();
        for (const std::string& chunk : ids) {
          auto u = per_chunk->find(chunk);
          if (u == per_chunk->end()) continue;
          json c = UsageJson(u->second);
          c["chunk_id"] = chunk;
          arr.push_back(std::move(c));
        }
        per_chunk_usage = std::move(per_chunk).value();
        per_chunk_read = true;
      }
    }
    out["chunks_usage"] = std::move(arr);
  }
  usage_outage_.Record(read);
  if (!read.ok()) out["usage_error"] = "task store: " + read.message();
  if (chunks) {
    // The queue is the truth of each chunk's state; when it does not answer, the task is still
    // shown (as with the ledger: null and why).
    if (!listed) {
      out["chunks"] = nullptr;
      out["chunks_error"] = "queue: " + list->status().message();
      return out;
    }
    json arr = json::array();
    for (size_t i = 0; i < shown; ++i) {
      const ChunkInfo& c = (**list)[i];
      auto u = per_chunk_usage.find(c.id);
      arr.push_back(ChunkJson(c, per_chunk_read && u != per_chunk_usage.end() ? UsageJson(u->second) : json(nullptr)));
    }
    out["chunks"] = std::move(arr);
    out["chunks_truncated"] = (*list)->size() > kMaxListedChunks;
  }
  return out;
}

json Routes::TaskViewOf(TaskRecord t, const std::set<std::string>& served, const std::vector<ChunkInfo>* listed) {
  auto counts = d_.queue->Counts(t.id);
  if (counts.ok() && counts->total > 0) {
    t.chunks_done = counts->done;
    t.chunks_failed = counts->dead;
    if (t.status != "cancelled") t.status = DeriveStatus(*counts);
  } else if (counts.ok() && t.chunks_total > 0 && (t.status == "queued" || t.status == "running")) {
    // A task's chunks are queued before its row is written, so an unfinished row whose chunks the
    // queue does not know means the queue lost them: a Redis restarted without persistence, or
    // flushed. Their text was only there; say so instead of showing "queued" forever.
    t.status = "failed";
    t.error = fmt::format(
        "the queue holds none of this task's {} chunks: it lost them (Redis restarted without persistence, "
        "or flushed; see docs/deployment.md); submit the document again",
        t.chunks_total - t.chunks_done);
  }
  json out = TaskJson(t);
  out["warning"] = ServingWarning(served, t.provider, t.status);
  if (counts.ok()) {
    out["chunks_queued"] = counts->ready;
    out["chunks_running"] = counts->leased;
  }
  if (counts.ok() && counts->dead > 0) {
    // The dead letters among the first chunks only (those of the caller's list, or as many read
    // here), at most kMaxDeadLetters: the queue has no read of dead chunks alone, and this view is
    // polled. "dead_letters_truncated" says when the task has more dead chunks than shown.
    Result<std::vector<ChunkInfo>> read = std::vector<ChunkInfo>{};
    if (!listed) {
      read = d_.queue->ListFirstChunks(t.id, static_cast<int64_t>(kMaxListedChunks));
      if (read.ok()) listed = &*read;
    }
    json dead = json::array();
    if (listed) {
      const size_t n = std::min(listed->size(), kMaxListedChunks);
      for (size_t i = 0; i < n && dead.size() < kMaxDeadLetters; ++i) {
        const ChunkInfo& c = (*listed)[i];
        if (c.state == ChunkState::kDead) dead.push_back({{"chunk", c.id}, {"attempts", c.attempts}, {"error", c.last_error}});
      }
    }
    out["dead_letters_truncated"] = static_cast<int64_t>(dead.size()) < counts->dead;
    if (out["error"].is_null() && !dead.empty()) out["error"] = dead[0]["error"];
    out["dead_letters"] = std::move(dead);
  }
  return out;
}

void Routes::GetTask(const http::Request& req, http::Response& res) {
  std::string chunks = req.get_param_value("chunks");
  if (!chunks.empty() && chunks != "0" && chunks != "1") return Fail(res, 400, "chunks must be 0 or 1");
  auto v = TaskView(req.matches[1], chunks == "1");
  if (!v.ok()) return Fail(res, v.status());
  Reply(res, 200, *v);
}

void Routes::ListTasks(const http::Request& req, http::Response& res) {
  std::string status = req.get_param_value("status");
  static const std::set<std::string> kStatuses = {"", "queued", "running", "done", "failed", "cancelled"};
  if (!kStatuses.count(status)) {
    return Fail(res, 400, "status must be one of queued, running, done, failed, cancelled");
  }
  TaskFilter filter;
  filter.status = status;
  filter.provider = req.get_param_value("provider");
  filter.text = req.get_param_value("q");
  if (filter.text.size() > kMaxTaskQueryBytes) {
    return Fail(res, 400, fmt::format("q must be at most {} bytes", kMaxTaskQueryBytes));
  }
  if (filter.provider.size() > 255) return Fail(res, 400, "provider must be at most 255 bytes");
  if (req.has_param("limit")) {
    auto l = ParseLimit(req.get_param_value("limit"));
    if (!l.ok()) return Fail(res, l.status());
    filter.limit = *l;
  }
  if (req.has_param("offset")) {
    auto o = ParseOffset(req.get_param_value("offset"));
    if (!o.ok()) return Fail(res, o.status());
    filter.offset = *o;
  }
  // Unfinished rows are brought up to date from the queue (a worker killed between its ack and
  // its progress write leaves its row behind). The console polls this every few seconds, so only
  // rows that can be on the page answered are healed, and the cost follows the page size:
  //  - asked for finished tasks, the newest unfinished rows first (as many as the page reaches:
  //    one may have finished and belong on it);
  //  - then the unfinished rows of the page itself, and the page is read again when there were
  //    any (a healed row may have left the filter or changed its counts).
  // Rows with nothing new are not written; a failure is logged and the listing goes on.
  auto heal = [&](const std::vector<TaskRecord>& rows) {
    bool any = false;
    for (const auto& t : rows) {
      if (t.status != "queued" && t.status != "running") continue;
      list_progress_outage_.Record(RefreshProgress(*d_.store, *d_.queue, t));
      any = true;
    }
    return any;
  };
  if (!filter.status.empty() && filter.status != "queued" && filter.status != "running") {
    const int reach = std::min(filter.offset + filter.limit, kMaxHealedRows);
    for (const char* open : {"queued", "running"}) {
      TaskFilter unfinished = filter;
      unfinished.status = open;
      unfinished.offset = 0;
      unfinished.limit = reach;
      auto rows = d_.store->ListFiltered(unfinished);
      if (rows.ok()) heal(rows->tasks);
    }
  }
  auto page = d_.store->ListFiltered(filter);
  if (!page.ok()) return Fail(res, page.status());
  if (heal(page->tasks)) {
    page = d_.store->ListFiltered(filter);
    if (!page.ok()) return Fail(res, page.status());
  }
  json arr = json::array();
  auto served = ServedProviders();
  for (const auto& t : page->tasks) {
    arr.push_back(TaskJson(t));
    arr.back()["warning"] = ServingWarning(served, t.provider, t.status);
  }
  Reply(res, 200, {{"tasks", arr}, {"total", page->total}, {"offset", filter.offset}, {"limit", filter.limit}});
}

void Routes::Cancel(const http::Request& req, http::Response& res) {
  std::string id = req.matches[1];
  auto t = d_.store->Get(id);
  if (!t.ok()) return Fail(res, t.status());
  // A finished task has nothing left to cancel; saying "cancelled" would misreport it.
  auto counts = d_.queue->Counts(id);
  if (!counts.ok()) return Fail(res, counts.status());
  if (t->status == "done" || (counts->total > 0 && counts->done == counts->total)) {
    return Fail(res, 409, "task " + id + " is done; only unfinished tasks can be cancelled");
  }
  // The row first: if cancelling the chunks then fails, the task says cancelled and a second
  // cancel finishes the job; the other order could leave cancelled chunks under a live row.
  Status s = d_.store->MarkCancelled(id);
  if (!s.ok()) return Fail(res, s);
  auto n = d_.queue->CancelTask(id);
  if (!n.ok()) return Fail(res, n.status());
  auto v = TaskView(id);
  if (!v.ok()) return Fail(res, v.status());
  (*v)["chunks_cancelled"] = *n;
  Reply(res, 200, *v);
}

void Routes::Retry(const http::Request& req, http::Response& res) {
  std::string id = req.matches[1];
  auto t = d_.store->Get(id);
  if (!t.ok()) return Fail(res, t.status());
  if (t->status != "failed" && t->status != "cancelled") {
    auto counts = d_.queue->Counts(id);
    if (!(counts.ok() && (counts->dead > 0 || counts->cancelled > 0))) {
      return Fail(res, 409, "task " + id + " is " + t->status + "; only failed or cancelled tasks can be retried");
    }
  }
  // A task stopped at its token budget would stop again at once: its spending stays in the ledger.
  if (t->token_budget > 0) {
    auto used = d_.store->TaskUsage(id);
    if (!used.ok()) return Fail(res, used.status());
    if (used->tokens() >= t->token_budget) {
      return Fail(res, 409,
                  "task " + id + " has spent its token budget (" + std::to_string(used->tokens()) + " of " +
                      std::to_string(t->token_budget) +
                      " tokens); submit the document again with a larger token_budget (answers already "
                      "received come from the cache at no cost)");
    }
  }
  // Revive the chunks, then reopen the row: reopening bumps the task's epoch, so progress read
  // before it (counts from before the revival included) cannot land, and the row, open again,
  // is brought up to date by the next refresh.
  auto n = d_.queue->RetryTask(id);
  if (!n.ok()) return Fail(res, n.status());
  Status s = d_.store->Reopen(id);
  if (!s.ok()) return Fail(res, s);
  if (Status r = RefreshProgress(*d_.store, *d_.queue, id); !r.ok()) spdlog::warn("retry: {}", r.message());
  auto v = TaskView(id);
  if (!v.ok()) return Fail(res, v.status());
  (*v)["chunks_requeued"] = *n;
  Reply(res, 202, *v);
}

void Routes::Scale(const http::Request& req, http::Response& res) {
  std::string provider = req.matches[1];
  if (!c_.providers.count(provider)) {
    return Fail(res, 404, "unknown provider '" + provider + "'; known: " + c_.KnownProviders());
  }
  auto body = ParseBody(req);
  if (!body.ok()) return Fail(res, body.status());
  const json& j = *body;
  if (!j.contains("per_node") || !j["per_node"].is_number_integer() || j["per_node"].get<int64_t>() < 0 ||
      j["per_node"].get<int64_t>() > 100000) {
    return Fail(res, 400, "'per_node' must be a whole number from 0 to 100000");
  }
  int n = static_cast<int>(j["per_node"].get<int64_t>());
  if (!d_.supervisor) {
    // A web node: persist; worker nodes pick it up with their next heartbeat. The answer
    // applies both caps of this node's configuration to every provider's setting.
    Status s = d_.store->PutSetting(ScaleSettingKey(provider), std::to_string(n));
    if (!s.ok()) return Fail(res, s);
    std::map<std::string, int> wanted;
    for (const auto& p : c_.enabled_providers) {
      auto v = d_.store->GetSetting(ScaleSettingKey(p));
      std::optional<int> o = v.ok() && v->has_value() ? ParseScaleSetting(**v) : std::nullopt;
      wanted[p] = p == provider ? n : o.value_or(c_.workers_per_provider);
    }
    int capped = c_.HasProvider(provider) ? ApplyProcessCaps(c_, wanted)[provider]
                                          : std::min(n, c_.max_processes_per_provider);
    CapBinding bind;
    if (c_.HasProvider(provider)) {
      bind = BindingCap(c_, wanted, provider);
    } else if (capped < n) {
      bind = {"KG_MAX_PROCESSES_PER_PROVIDER", c_.max_processes_per_provider,
              "KG_MAX_PROCESSES_PER_PROVIDER=" + std::to_string(c_.max_processes_per_provider)};
    }
    Reply(res, 200, {{"provider", provider}, {"requested", n}, {"per_node", capped}, {"clamped", capped < n},
                     {"reason", bind.reason}, {"configured", c_.workers_per_provider}, {"override", n},
                     {"target", capped}, {"binding_cap", BindingJson(bind.cap, bind.value)}, {"caps", CapsJson(c_)},
                     {"node", nullptr},
                     {"applied", fmt::format("stored; worker nodes apply it within {} s", c_.heartbeat_seconds)}});
    return;
  }
  if (!c_.HasProvider(provider)) return Fail(res, 409, "provider '" + provider + "' is not enabled on this node");
  auto r = d_.supervisor->Scale(provider, n);
  if (!r.ok()) return Fail(res, r.status());
  Reply(res, 200, {{"provider", r->provider}, {"requested", r->requested}, {"per_node", r->per_node},
                   {"clamped", r->clamped}, {"reason", r->reason}, {"configured", r->configured},
                   {"override", r->override_per_node ? json(*r->override_per_node) : json(nullptr)},
                   {"target", r->per_node}, {"binding_cap", BindingJson(r->binding_cap, r->binding_value)},
                   {"caps", CapsJson(c_)}, {"node", c_.node_name}, {"applied", "now"}});
}

// DELETE: drop the runtime override, back to KG_WORKERS_PER_PROVIDER.
void Routes::ResetScale(const http::Request& req, http::Response& res) {
  std::string provider = req.matches[1];
  if (!c_.providers.count(provider)) {
    return Fail(res, 404, "unknown provider '" + provider + "'; known: " + c_.KnownProviders());
  }
  if (!d_.supervisor || !c_.HasProvider(provider)) {
    Status s = d_.store->DeleteSetting(ScaleSettingKey(provider));
    if (!s.ok()) return Fail(res, s);
    Reply(res, 200, {{"provider", provider}, {"configured", c_.workers_per_provider}, {"override", nullptr},
                     {"per_node", std::min({c_.workers_per_provider, c_.max_processes_per_provider,
                                            c_.max_total_processes})},
                     {"applied", fmt::format("removed; worker nodes apply it within {} s", c_.heartbeat_seconds)}});
    return;
  }
  auto r = d_.supervisor->ResetScale(provider);
  if (!r.ok()) return Fail(res, r.status());
  Reply(res, 200, {{"provider", r->provider}, {"configured", r->configured}, {"override", nullptr},
                   {"per_node", r->per_node}, {"target", r->per_node},
                   {"binding_cap", BindingJson(r->binding_cap, r->binding_value)}, {"caps", CapsJson(c_)},
                   {"node", c_.node_name}, {"applied", "now"}});
}

// The providers come from the configuration, so they are listed whatever the store says; an
// unreadable ledger makes each "usage" null and says why in "usage_error", an unreadable queue
// each "queue" null and says why in "queue_error". The queue is the cluster's (every node reads
// the same one); LLM requests by status are this node's workers' (null without a supervisor).
void Routes::Providers(http::Response& res) {
  auto usage = d_.store->ProviderUsage();
  usage_outage_.Record(usage.status());
  auto depths = d_.queue->Depths();
  depths_outage_.Record(depths.status());
  std::map<std::string, ProviderTelemetry> telemetry;
  if (d_.supervisor) telemetry = d_.supervisor->Telemetry();
  json arr = json::array();
  for (const auto& name : c_.enabled_providers) {
    const auto& p = c_.providers.at(name);
    json u = nullptr;
    if (usage.ok()) {
      auto it = usage->find(name);
      u = UsageJson(it == usage->end() ? UsageTotals{} : it->second);
    }
    json q = nullptr;
    if (depths.ok()) {
      auto it = depths->find(name);
      q = QueueJson(it == depths->end() ? ProviderDepth{} : it->second);
    }
    json requests = nullptr;
    if (d_.supervisor) {
      requests = json::object();
      auto it = telemetry.find(name);
      if (it != telemetry.end()) {
        for (const auto& [code, n] : it->second.stats.llm_requests) requests[code] = n;
      }
    }
    arr.push_back({{"name", name}, {"kind", p.kind}, {"delay_ms", p.delay_ms}, {"usage", std::move(u)},
                   {"queue", std::move(q)}, {"llm_requests", std::move(requests)}});
  }
  json out = {{"providers", arr}};
  if (!usage.ok()) out["usage_error"] = "task store: " + usage.status().message();
  if (!depths.ok()) out["queue_error"] = "queue: " + depths.status().message();
  Reply(res, 200, out);
}

json Routes::NodesJson(Status* error) {
  json nodes = json::array();
  int64_t now = NowMs();
  auto list = d_.store->ListNodes(now - kListStaleNodesMs);
  if (error) *error = list.status();
  if (list.ok()) {
    for (const auto& n : *list) {
      json procs = json::parse(n.processes_json, nullptr, false);
      // This node's own table is live, not as of its last beat.
      bool self = d_.supervisor && n.name == c_.node_name && n.pid == getpid();
      if (self) procs = json::parse(d_.supervisor->SnapshotJson());
      if (procs.is_discarded() || !procs.is_array()) procs = json::array();
      bool stale = !self && NodeIsStale(n, now);
      if (stale) {
        // What a node that stopped beating runs is not known: no pid is shown as live.
        for (auto& p : procs) {
          p["last_pid"] = p.value("pid", json(0));
          p["pid"] = 0;
          p["state"] = "unknown";
        }
      }
      int64_t age = self ? 0 : HeartbeatAgeMs(n, now);
      json node = {{"name", n.name}, {"role", n.role}, {"host", n.host}, {"pid", n.pid},
                   {"heartbeat_at", n.heartbeat_at_ms}, {"heartbeat_age_ms", age},
                   {"heartbeat_interval_ms", n.heartbeat_ms}, {"stale", stale}, {"processes", procs}};
      std::optional<std::vector<QuarantineView>> live;
      if (self) live = d_.supervisor->Quarantines();
      node.update(NodeInfoFields(n.info_json, age, live));
      nodes.push_back(std::move(node));
    }
  }
  return nodes;
}

std::set<std::string> Routes::ServedProviders() { return ServedFrom(NodesJson()); }

std::set<std::string> Routes::ServedFrom(const json& nodes) {
  std::set<std::string> served;
  for (const auto& n : nodes) {
    if (n["stale"].get<bool>()) continue;
    for (const auto& p : n["processes"]) {
      std::string state = p.value("state", "");
      if (p.value("pid", int64_t{0}) > 0 && (state == "starting" || state == "idle" || state == "busy")) {
        served.insert(p.value("provider", ""));
      }
    }
  }
  return served;
}

json Routes::ServingWarning(const std::set<std::string>& served, const std::string& provider,
                            const std::string& status) {
  if ((status != "queued" && status != "running") || served.count(provider)) return nullptr;
  return "no worker is serving provider " + provider;
}

// Per provider: the configuration, the runtime override in force (null: none) and, on a
// node with a supervisor, what it runs after the caps.
json Routes::ScalingJson() {
  json arr = json::array();
  if (d_.supervisor) {
    for (const auto& p : d_.supervisor->Scales()) {
      arr.push_back({{"provider", p.provider}, {"configured", p.configured},
                     {"override", p.override_per_node ? json(*p.override_per_node) : json(nullptr)},
                     {"per_node", p.per_node}});
    }
    return arr;
  }
  for (const auto& name : c_.enabled_providers) {
    auto v = d_.store->GetSetting(ScaleSettingKey(name));
    std::optional<int> o = v.ok() && v->has_value() ? ParseScaleSetting(**v) : std::nullopt;
    arr.push_back({{"provider", name}, {"configured", c_.workers_per_provider},
                   {"override", o ? json(*o) : json(nullptr)}});
  }
  return arr;
}

// Live nodes under "nodes"; a node whose beats stopped (stale: more than 2 of its intervals) leaves
// them at once for "down", where it stays, with what it last reported, for an hour or until its name
// is taken over.
void Routes::Workers(http::Response& res) {
  json live = json::array(), down = json::array();
  Status listed;
  json nodes = NodesJson(&listed);
  if (!listed.ok()) return Fail(res, 503, "node registry: " + listed.message());
  for (auto& n : nodes) (n["stale"].get<bool>() ? down : live).push_back(std::move(n));
  Reply(res, 200, {{"nodes", std::move(live)}, {"down", std::move(down)}, {"scaling", ScalingJson()}});
}

Status Routes::Readiness() {
  if (stopping_) return Status::Unavailable("node is stopping; draining in-flight work");
  // Every backend answers (each call is one cheap round trip; a server down or restarting is 503 until
  // the backend's reconnect succeeds; /healthz stays 200 meanwhile).
  // The graph is asked for one entity by key (a point lookup on every backend; kNotFound is an
  // answer), not for its statistics, which count every row (seconds on a large MySQL graph).
  auto d = d_.queue->Depths();
  auto t = d_.store->GetSetting("readyz");
  auto g = d_.graph->GetEntity("readyz:probe");
  if (!d.ok()) return d.status().With("queue");
  if (!t.ok()) return t.status().With("task store");
  if (!g.ok() && g.status().code() != Code::kNotFound) return g.status().With("graph");
  return Status::Ok();
}

void Routes::Ready(http::Response& res) {
  Status s = Readiness();
  if (s.ok()) return Reply(res, 200, {{"status", "ready"}});
  if (stopping_) return Reply(res, 503, {{"status", "stopping"}, {"error", s.message()}});
  Fail(res, 503, s.message());
}

void Routes::Metrics(http::Response& res) {
  auto page = RenderMetrics(d_, svr_.stats(), {Readiness(), tasks_submitted_.load()});
  if (!page.ok()) return Fail(res, page.status());
  res.set_content(*page, "text/plain; version=0.0.4");
}

void Routes::Stats(http::Response& res) {
  auto s = d_.graph->Stats();
  if (!s.ok()) return Fail(res, s.status());
  Reply(res, 200, {{"documents", s->documents}, {"chunks", s->chunks}, {"entities", s->entities},
                   {"relations", s->relations}});
}

void Routes::Search(const http::Request& req, http::Response& res) {
  int limit = 20;
  if (req.has_param("limit")) {
    auto l = ParseLimit(req.get_param_value("limit"));
    if (!l.ok()) return Fail(res, l.status());
    limit = *l;
  }
  auto list = d_.graph->SearchEntities(req.get_param_value("q"), limit);
  if (!list.ok()) return Fail(res, list.status());
  json arr = json::array();
  for (const auto& e : *list) arr.push_back(EntityJson(e));
  Reply(res, 200, {{"entities", arr}});
}

// `{key}` is an entity key ("organization:meridian analytics") or, failing that, a name
// matched on its normalised form across types: one match answers as its key would,
// several answer 300 with the candidate keys, none 404.
void Routes::Entity(const http::Request& req, http::Response& res) {
  const std::string asked = req.matches[1];
  auto d = d_.graph->GetEntity(asked);
  if (!d.ok() && d.status().code() == Code::kNotFound) {
    auto keys = d_.graph->FindByName(NormalizeName(asked));
    if (!keys.ok()) return Fail(res, keys.status());
    if (keys->empty()) return Fail(res, 404, "entity " + asked + " not found (neither a key nor a name)");
    if (keys->size() > 1) {
      return Reply(res, 300, {{"error", "name " + asked + " is ambiguous; ask for one of the candidate keys"},
                              {"candidates", *keys}});
    }
    d = d_.graph->GetEntity(keys->front());
  }
  if (!d.ok()) return Fail(res, d.status());
  // Provenance: the text of the chunks behind the relations and mentions (capped), and for
  // each relation the sentence naming both ends, found in the whole chunk text.
  const EvidencePick pick = PickEvidenceChunks(*d);
  // The entity and its relations are read; an unreadable chunk table only loses their text, so
  // the view still answers ("evidence" null, "evidence_error" why, no sentence).
  auto chunks = d_.graph->GetChunks(pick.ids);
  if (!chunks.ok()) spdlog::warn("entity {}: evidence: {}", asked, chunks.status().message());
  std::map<std::string_view, const ChunkRec*> chunk_of;
  json evidence = chunks.ok() ? json::object() : json(nullptr);
  std::vector<ChunkRec> got;
  if (chunks.ok()) got = std::move(chunks).value();
  for (const ChunkRec& c : got) {
    chunk_of.emplace(c.id, &c);
    evidence[c.id] = {{"doc_id", c.doc_id},
                      {"idx", c.idx},
                      {"text", std::string(Utf8Prefix(c.text, kEvidenceTextMax))}};
  }
  json out = EntityJson(d->entity);
  json nb = json::array();
  // Each chunk's sentences are folded once, when a relation first looks in it (a chunk is the
  // evidence of many relations).
  std::map<std::string_view, std::vector<FoldedSentence>> sentences_of;
  for (const auto& n : d->neighbours) {
    json sentence = nullptr, sentence_chunk = nullptr;
    for (const std::string& id : n.relation.evidence) {
      auto it = chunk_of.find(id);
      if (it == chunk_of.end()) continue;
      auto folded = sentences_of.find(it->first);
      if (folded == sentences_of.end()) {
        folded = sentences_of.emplace(it->first, FoldSentences(it->second->text)).first;
      }
      if (auto found = SentenceNaming(folded->second, d->entity.name, n.entity.name)) {
        sentence = std::string(Utf8Prefix(*found, kEvidenceTextMax));
        sentence_chunk = id;
        break;
      }
    }
    nb.push_back({{"direction", n.direction}, {"type", n.relation.type}, {"weight", n.relation.weight},
                  {"evidence", n.relation.evidence}, {"entity", EntityJson(n.entity)}, {"sentence", sentence},
                  {"sentence_chunk", sentence_chunk}});
  }
  out["neighbours"] = nb;
  out["chunks"] = d->chunks;
  out["documents"] = d->documents;
  out["evidence"] = evidence;
  out["evidence_truncated"] = pick.truncated;
  if (!chunks.ok()) out["evidence_error"] = "graph: " + chunks.status().message();
  Reply(res, 200, out);
}

// Streams with chunked transfer encoding: memory stays bounded whatever the graph size.
// Once the first bytes are out the status is 200; a failure after that ends the response
// without its final chunk, so the client sees a truncated transfer, not a short graph.
void Routes::Export(const http::Request& req, http::Response& res) {
  std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
  if (format != "json" && format != "graphml") return Fail(res, 400, "format must be json or graphml");
  GraphStore* graph = d_.graph;
  bool as_json = format == "json";
  res.set_chunked_content_provider(as_json ? "application/json" : "application/graphml+xml",
                                   [graph, as_json](const http::PieceWriter& write) {
                                     ByteSink out = [&write](std::string_view piece) { return write(piece); };
                                     Status s = as_json ? StreamJson(*graph, out) : StreamGraphml(*graph, out);
                                     if (!s.ok()) spdlog::warn("api: graph export ended early: {}", s.message());
                                     return s.ok();
                                   });
}

// Server-sent events: `hello` first, then `task` and `workers` events as things change
// (api/events.h), a heartbeat comment while nothing does, and `end` when the node stops.
void Routes::Events(const http::Request& req, http::Response& res) {
  std::string task = req.get_param_value("task");
  if (!task.empty()) {
    auto t = d_.store->Get(task);
    if (!t.ok()) return Fail(res, t.status());
  }
  json hello = {{"node", c_.node_name}, {"version", KG_VERSION}, {"task", task.empty() ? json(nullptr) : json(task)}};
  res.set_event_stream([this, task, hello = hello.dump()](std::shared_ptr<http::EventChannel> channel) {
    channel->Send("hello", hello);
    events_.Add(std::move(channel), task);
  });
}

// Recent tasks and the followed ones, each as GET /api/v1/tasks/{id} gives it, and the nodes
// and scaling as GET /api/v1/workers gives them, without heartbeat_age_ms (it changes at every
// look; heartbeat_at says the same).
std::map<std::string, LiveItem> Routes::LiveSnapshot(const std::vector<std::string>& tasks) {
  std::map<std::string, LiveItem> out;
  auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  json nodes = NodesJson();
  std::set<std::string> served = ServedFrom(nodes);
  auto add = [&](const TaskRecord& t) { out["task:" + t.id] = {"task", dump(TaskViewOf(t, served))}; };
  auto recent = d_.store->List("", 200);
  if (recent.ok()) {
    for (const auto& t : *recent) add(t);
  }
  for (const auto& id : tasks) {
    if (out.count("task:" + id)) continue;
    auto t = d_.store->Get(id);
    if (t.ok()) add(*t);
  }
  for (auto& n : nodes) {
    n.erase("heartbeat_age_ms");
    // Time left in a quarantine changes at every look too; the provider's being there does not.
    if (n["quarantine"].is_array()) {
      for (auto& q : n["quarantine"]) q.erase("remaining_s");
    }
  }
  out["workers"] = {"workers", dump({{"nodes", nodes}, {"scaling", ScalingJson()}})};
  return out;
}

}  // namespace kg::api
