#include "api/server.h"

#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <filesystem>

#include <nlohmann/json.hpp>
#include <set>

#include "api/dashboard.h"
#include "common/util.h"
#include "pipeline/document.h"
#include "supervisor/node_registry.h"

namespace kg {

using nlohmann::json;

namespace {

int HttpStatus(Code c) {
  switch (c) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kConflict: return 409;
    case Code::kUnavailable: return 503;
    case Code::kInternal: return 500;
  }
  return 500;
}

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void Fail(httplib::Response& res, int status, const std::string& msg) { Reply(res, status, {{"error", msg}}); }
void Fail(httplib::Response& res, const Status& s) { Fail(res, HttpStatus(s.code()), s.message()); }

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
          {"updated_at_ms", t.updated_at_ms}};
}

json EntityJson(const EntityRec& e) {
  return {{"key", e.key}, {"name", e.name}, {"type", e.type}, {"description", e.description},
          {"mentions", e.mentions}};
}

// Debian's cpp-httplib 0.11 is compiled with a listen backlog of 5, so a burst of new
// connections overflows the accept queue and clients see resets. listen() on a listening
// socket updates its backlog, so find ours and raise it.
void TuneListener(int port) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = 0;
    try {
      fd = std::stoi(e.path().filename().string());
    } catch (...) {
      continue;
    }
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = addr.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)
            : addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                         : -1;
    if (p != port) continue;
    ::listen(fd, SOMAXCONN);
  }
}

}  // namespace

class ApiServer::Impl {
 public:
  explicit Impl(ApiDeps d) : d_(d), c_(*d.config) {
    svr_.set_payload_max_length(static_cast<size_t>(c_.max_body_mb) * 1024 * 1024);
    // Debian's cpp-httplib sets SO_REUSEPORT by default, so a second node on the same
    // port would silently share its traffic. SO_REUSEADDR only (restarts still rebind at
    // once), and the listener is close-on-exec from its creation.
    svr_.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      fcntl(sock, F_SETFD, fcntl(sock, F_GETFD) | FD_CLOEXEC);
    });
    svr_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg = res.status == 404   ? "no such endpoint"
                        : res.status == 413 ? "request body too large (KG_MAX_BODY_MB)"
                        : res.status == 405 ? "method not allowed"
                                            : "request failed with status " + std::to_string(res.status);
      Fail(res, res.status, msg);
    });
    svr_.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      spdlog::error("api: {} {}: {}", req.method, req.path, what);
      Fail(res, 500, "internal error");
    });
    Routes();
  }

  Result<int> Bind(const std::string& host, int port) {
    int bound = port == 0 ? svr_.bind_to_any_port(host) : (svr_.bind_to_port(host, port) ? port : -1);
    if (bound < 0) return Status::Unavailable("cannot listen on " + host + ":" + std::to_string(port));
    TuneListener(bound);
    return bound;
  }
  bool Serve() { return svr_.listen_after_bind(); }
  void Stop() { svr_.stop(); }

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  // Registers `h` for method+pattern and remembers the pattern so other methods get 405.
  void Route(const std::string& method, const std::string& pattern, Handler h) {
    bool mutation = method != "GET";
    Handler wrapped = [this, mutation, h](const httplib::Request& req, httplib::Response& res) {
      if (mutation && !Authorized(req)) {
        res.set_header("WWW-Authenticate", "Bearer");
        Fail(res, 401, "missing or wrong bearer token (KG_API_TOKEN)");
        return;
      }
      h(req, res);
    };
    if (method == "GET") svr_.Get(pattern, wrapped);
    else if (method == "POST") svr_.Post(pattern, wrapped);
    else if (method == "PUT") svr_.Put(pattern, wrapped);
    else if (method == "DELETE") svr_.Delete(pattern, wrapped);
    methods_[pattern].insert(method);
  }

  void FinishRoutes() {
    for (const auto& [pattern, allowed] : methods_) {
      std::string allow;
      for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
      Handler deny = [allow](const httplib::Request&, httplib::Response& res) {
        res.set_header("Allow", allow);
        Fail(res, 405, "method not allowed; allowed: " + allow);
      };
      if (!allowed.count("GET")) svr_.Get(pattern, deny);
      if (!allowed.count("POST")) svr_.Post(pattern, deny);
      if (!allowed.count("PUT")) svr_.Put(pattern, deny);
      if (!allowed.count("DELETE")) svr_.Delete(pattern, deny);
      svr_.Patch(pattern, deny);
    }
  }

  bool Authorized(const httplib::Request& req) const {
    if (c_.api_token.empty()) return true;
    std::string h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    return h.rfind(prefix, 0) == 0 && ConstantTimeEqual(h.substr(prefix.size()), c_.api_token);
  }

  void Routes() {
    Route("GET", "/healthz", [](const auto&, auto& res) { Reply(res, 200, {{"status", "ok"}}); });
    Route("GET", "/readyz", [this](const auto&, auto& res) { Ready(res); });
    Route("GET", "/metrics", [this](const auto&, auto& res) { Metrics(res); });
    Route("GET", "/api/v1/workers", [this](const auto&, auto& res) { Workers(res); });
    if (!d_.health_only) {
      Route("GET", "/", [](const auto&, auto& res) { res.set_content(kDashboardHtml, "text/html; charset=utf-8"); });
      Route("POST", "/api/v1/tasks", [this](const auto& req, auto& res) { Submit(req, res); });
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
    FinishRoutes();
  }

  static Result<json> ParseBody(const httplib::Request& req) {
    if (req.body.empty()) return Status::Invalid("request body is empty; expected a JSON object");
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded()) return Status::Invalid("request body is not valid JSON");
    if (!j.is_object()) return Status::Invalid("request body must be a JSON object");
    return j;
  }

  static Result<std::string> OptString(const json& j, const char* key, size_t max_len) {
    if (!j.contains(key) || j[key].is_null()) return std::string();
    if (!j[key].is_string()) return Status::Invalid(std::string("'") + key + "' must be a string");
    std::string v = j[key].get<std::string>();
    if (v.size() > max_len) return Status::Invalid(std::string("'") + key + "' is longer than " + std::to_string(max_len));
    return v;
  }

  void Submit(const httplib::Request& req, httplib::Response& res) {
    auto body = ParseBody(req);
    if (!body.ok()) return Fail(res, body.status());
    const json& j = *body;
    if (!j.contains("text")) return Fail(res, 400, "missing 'text'");
    if (!j["text"].is_string()) return Fail(res, 400, "'text' must be a string");
    std::string text = j["text"].get<std::string>();
    auto title = OptString(j, "title", 1000);
    auto provider = OptString(j, "provider", 200);
    auto source = OptString(j, "source", 2000);
    auto doc_id = OptString(j, "id", 200);
    for (const auto* r : {&title, &provider, &source, &doc_id}) {
      if (!r->ok()) return Fail(res, r->status());
    }
    std::string p = provider->empty() ? c_.enabled_providers.front() : *provider;
    if (!c_.HasProvider(p)) {
      return Fail(res, 400, "unknown provider '" + p + "'; known: " + c_.KnownProviders());
    }
    if (!doc_id->empty()) {
      for (char ch : *doc_id) {
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) {
          return Fail(res, 400, "'id' may contain only A-Z a-z 0-9 . _ -");
        }
      }
    }
    std::string task_id = RandomId("t");
    TaskPlan plan = PlanTask(task_id, p, *doc_id, title->empty() ? "untitled" : *title, *source, text,
                             {c_.chunk_size, c_.chunk_overlap});
    if (plan.items.empty()) return Fail(res, 400, "'text' is empty or blank");
    // Chunks first: if we die before the task row exists, the chunks still reach the graph.
    Status s = d_.queue->Enqueue(plan.items);
    if (!s.ok()) return Fail(res, 503, "queue unavailable: " + s.message());
    TaskRecord t;
    t.id = task_id;
    t.title = title->empty() ? "untitled" : *title;
    t.provider = p;
    t.doc_id = plan.doc_id;
    t.source = *source;
    t.chunks_total = static_cast<int>(plan.items.size());
    s = d_.store->Create(t);
    if (!s.ok()) return Fail(res, 503, "task store unavailable: " + s.message());
    res.set_header("Location", "/api/v1/tasks/" + task_id);
    Reply(res, 202, {{"id", task_id}, {"status", "queued"}, {"chunks_total", t.chunks_total},
                     {"document", plan.doc_id}, {"provider", p}});
  }

  // Task with live counts from the queue (the stored row may lag a worker's update).
  Result<json> TaskView(const std::string& id) {
    auto t = d_.store->Get(id);
    if (!t.ok()) return t.status();
    auto counts = d_.queue->Counts(id);
    if (counts.ok() && counts->total > 0) {
      t->chunks_done = counts->done;
      t->chunks_failed = counts->dead;
      if (t->status != "cancelled") t->status = DeriveStatus(*counts);
    }
    json out = TaskJson(*t);
    if (counts.ok()) {
      out["chunks_queued"] = counts->ready;
      out["chunks_running"] = counts->leased;
    }
    if (counts.ok() && counts->dead > 0) {
      auto chunks = d_.queue->ListChunks(id);
      json dead = json::array();
      if (chunks.ok()) {
        for (const auto& c : *chunks) {
          if (c.state == ChunkState::kDead) dead.push_back({{"chunk", c.id}, {"attempts", c.attempts}, {"error", c.last_error}});
        }
      }
      out["dead_letters"] = dead;
      if (out["error"].is_null() && !dead.empty()) out["error"] = dead[0]["error"];
    }
    return out;
  }

  void GetTask(const httplib::Request& req, httplib::Response& res) {
    auto v = TaskView(req.matches[1]);
    if (!v.ok()) return Fail(res, v.status());
    Reply(res, 200, *v);
  }

  void ListTasks(const httplib::Request& req, httplib::Response& res) {
    std::string status = req.get_param_value("status");
    static const std::set<std::string> kStatuses = {"", "queued", "running", "done", "failed", "cancelled"};
    if (!kStatuses.count(status)) {
      return Fail(res, 400, "status must be one of queued, running, done, failed, cancelled");
    }
    int limit = 50;
    if (req.has_param("limit")) {
      auto l = ParseLimit(req.get_param_value("limit"));
      if (!l.ok()) return Fail(res, l.status());
      limit = *l;
    }
    auto list = d_.store->List(status, limit);
    if (!list.ok()) return Fail(res, list.status());
    json arr = json::array();
    for (const auto& t : *list) arr.push_back(TaskJson(t));
    Reply(res, 200, {{"tasks", arr}});
  }

  static Result<int> ParseLimit(const std::string& s) {
    if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), ::isdigit)) {
      return Status::Invalid("limit must be a whole number from 1 to 1000");
    }
    int n = std::stoi(s);
    if (n < 1 || n > 1000) return Status::Invalid("limit must be a whole number from 1 to 1000");
    return n;
  }

  void Cancel(const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    auto t = d_.store->Get(id);
    if (!t.ok()) return Fail(res, t.status());
    auto n = d_.queue->CancelTask(id);
    if (!n.ok()) return Fail(res, n.status());
    Status s = d_.store->MarkCancelled(id);
    if (!s.ok()) return Fail(res, s);
    auto v = TaskView(id);
    if (!v.ok()) return Fail(res, v.status());
    (*v)["chunks_cancelled"] = *n;
    Reply(res, 200, *v);
  }

  void Retry(const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    auto t = d_.store->Get(id);
    if (!t.ok()) return Fail(res, t.status());
    if (t->status != "failed" && t->status != "cancelled") {
      auto counts = d_.queue->Counts(id);
      if (!(counts.ok() && (counts->dead > 0 || counts->cancelled > 0))) {
        return Fail(res, 409, "task " + id + " is " + t->status + "; only failed or cancelled tasks can be retried");
      }
    }
    auto n = d_.queue->RetryTask(id);
    if (!n.ok()) return Fail(res, n.status());
    Status s = d_.store->Reopen(id);
    if (!s.ok()) return Fail(res, s);
    auto v = TaskView(id);
    if (!v.ok()) return Fail(res, v.status());
    (*v)["chunks_requeued"] = *n;
    Reply(res, 202, *v);
  }

  void Scale(const httplib::Request& req, httplib::Response& res) {
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
      std::string reason = capped == n ? ""
                           : n > c_.max_processes_per_provider
                               ? "KG_MAX_PROCESSES_PER_PROVIDER=" + std::to_string(c_.max_processes_per_provider)
                               : "KG_MAX_TOTAL_PROCESSES=" + std::to_string(c_.max_total_processes);
      Reply(res, 200, {{"provider", provider}, {"requested", n}, {"per_node", capped}, {"clamped", capped < n},
                       {"reason", reason}, {"configured", c_.workers_per_provider}, {"override", n},
                       {"applied", "stored; worker nodes apply it within 5 s"}});
      return;
    }
    if (!c_.HasProvider(provider)) return Fail(res, 409, "provider '" + provider + "' is not enabled on this node");
    auto r = d_.supervisor->Scale(provider, n);
    if (!r.ok()) return Fail(res, r.status());
    Reply(res, 200, {{"provider", r->provider}, {"requested", r->requested}, {"per_node", r->per_node},
                     {"clamped", r->clamped}, {"reason", r->reason}, {"configured", r->configured},
                     {"override", r->override_per_node ? json(*r->override_per_node) : json(nullptr)},
                     {"applied", "now"}});
  }

  // DELETE: drop the runtime override, back to KG_WORKERS_PER_PROVIDER.
  void ResetScale(const httplib::Request& req, httplib::Response& res) {
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
                       {"applied", "removed; worker nodes apply it within 5 s"}});
      return;
    }
    auto r = d_.supervisor->ResetScale(provider);
    if (!r.ok()) return Fail(res, r.status());
    Reply(res, 200, {{"provider", r->provider}, {"configured", r->configured}, {"override", nullptr},
                     {"per_node", r->per_node}, {"applied", "now"}});
  }

  void Providers(httplib::Response& res) {
    json arr = json::array();
    for (const auto& name : c_.enabled_providers) {
      const auto& p = c_.providers.at(name);
      arr.push_back({{"name", name}, {"kind", p.kind}, {"delay_ms", p.delay_ms}});
    }
    Reply(res, 200, {{"providers", arr}});
  }

  json NodesJson() {
    json nodes = json::array();
    auto list = d_.store->ListNodes(NowMs() - 30000);
    if (list.ok()) {
      for (const auto& n : *list) {
        json procs = json::parse(n.processes_json, nullptr, false);
        if (d_.supervisor && n.name == c_.node_name) procs = json::parse(d_.supervisor->SnapshotJson());
        if (procs.is_discarded()) procs = json::array();
        nodes.push_back({{"name", n.name}, {"role", n.role}, {"host", n.host}, {"pid", n.pid},
                         {"heartbeat_at", n.heartbeat_at_ms}, {"processes", procs}});
      }
    }
    return nodes;
  }

  // Per provider: the configuration, the runtime override in force (null: none) and, on a
  // node with a supervisor, what it runs after the caps.
  json ScalingJson() {
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

  void Workers(httplib::Response& res) { Reply(res, 200, {{"nodes", NodesJson()}, {"scaling", ScalingJson()}}); }

  void Ready(httplib::Response& res) {
    auto s = d_.graph->Stats();
    auto d = d_.queue->Depths();
    if (!s.ok()) return Fail(res, 503, "graph: " + s.status().message());
    if (!d.ok()) return Fail(res, 503, "queue: " + d.status().message());
    Reply(res, 200, {{"status", "ready"}});
  }

  void Metrics(httplib::Response& res) {
    std::string o;
    auto gauge = [&](const std::string& name, const std::string& help) {
      o += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n";
    };
    gauge("kg_process_cap_total", "KG_MAX_TOTAL_PROCESSES of this node");
    o += "kg_process_cap_total " + std::to_string(c_.max_total_processes) + "\n";
    gauge("kg_process_cap_per_provider", "KG_MAX_PROCESSES_PER_PROVIDER of this node");
    o += "kg_process_cap_per_provider " + std::to_string(c_.max_processes_per_provider) + "\n";
    if (d_.supervisor) {
      std::map<std::pair<std::string, std::string>, int> by;
      std::string rss;
      std::map<std::string, int64_t> restarts, spawns;
      for (const auto& p : d_.supervisor->Snapshot()) {
        if (p.pid) by[{p.provider, p.state}]++;
        restarts[p.provider] = p.restarts;
        spawns[p.provider] = p.spawns;
        if (p.pid) rss += fmt::format("kg_worker_rss_bytes{{provider=\"{}\",pid=\"{}\"}} {}\n", p.provider, p.pid, p.rss_bytes);
      }
      gauge("kg_worker_processes", "worker processes of this node by provider and state");
      for (const auto& [k, n] : by) {
        o += fmt::format("kg_worker_processes{{provider=\"{}\",state=\"{}\"}} {}\n", k.first, k.second, n);
      }
      gauge("kg_worker_rss_bytes", "resident memory of each worker process");
      o += rss;
      o += "# HELP kg_worker_restarts_total worker replacements per provider since start\n"
           "# TYPE kg_worker_restarts_total counter\n";
      for (const auto& [p, n] : restarts) o += fmt::format("kg_worker_restarts_total{{provider=\"{}\"}} {}\n", p, n);
      o += "# HELP kg_worker_spawns_total worker processes spawned per provider since start\n"
           "# TYPE kg_worker_spawns_total counter\n";
      for (const auto& [p, n] : spawns) o += fmt::format("kg_worker_spawns_total{{provider=\"{}\"}} {}\n", p, n);
    }
    auto depths = d_.queue->Depths();
    if (depths.ok()) {
      gauge("kg_queue_chunks", "chunks in the queue by provider and state");
      for (const auto& [p, d] : *depths) {
        o += fmt::format("kg_queue_chunks{{provider=\"{}\",state=\"ready\"}} {}\n", p, d.ready);
        o += fmt::format("kg_queue_chunks{{provider=\"{}\",state=\"leased\"}} {}\n", p, d.leased);
        o += fmt::format("kg_queue_chunks{{provider=\"{}\",state=\"done\"}} {}\n", p, d.done);
        o += fmt::format("kg_queue_chunks{{provider=\"{}\",state=\"dead\"}} {}\n", p, d.dead);
      }
    }
    if (!d_.health_only) {
      auto s = d_.graph->Stats();
      if (s.ok()) {
        gauge("kg_graph_nodes", "graph nodes by label");
        o += fmt::format("kg_graph_nodes{{label=\"Document\"}} {}\nkg_graph_nodes{{label=\"Chunk\"}} {}\n"
                         "kg_graph_nodes{{label=\"Entity\"}} {}\n",
                         s->documents, s->chunks, s->entities);
        gauge("kg_graph_relations", "RELATION edges between entities");
        o += fmt::format("kg_graph_relations {}\n", s->relations);
      }
    }
    res.set_content(o, "text/plain; version=0.0.4");
  }

  void Stats(httplib::Response& res) {
    auto s = d_.graph->Stats();
    if (!s.ok()) return Fail(res, s.status());
    Reply(res, 200, {{"documents", s->documents}, {"chunks", s->chunks}, {"entities", s->entities},
                     {"relations", s->relations}});
  }

  void Search(const httplib::Request& req, httplib::Response& res) {
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

  void Entity(const httplib::Request& req, httplib::Response& res) {
    auto d = d_.graph->GetEntity(req.matches[1]);
    if (!d.ok()) return Fail(res, d.status());
    json out = EntityJson(d->entity);
    json nb = json::array();
    for (const auto& n : d->neighbours) {
      nb.push_back({{"direction", n.direction}, {"type", n.relation.type}, {"weight", n.relation.weight},
                    {"evidence", n.relation.evidence}, {"entity", EntityJson(n.entity)}});
    }
    out["neighbours"] = nb;
    out["chunks"] = d->chunks;
    out["documents"] = d->documents;
    Reply(res, 200, out);
  }

  void Export(const httplib::Request& req, httplib::Response& res) {
    std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
    if (format != "json" && format != "graphml") return Fail(res, 400, "format must be json or graphml");
    auto snap = d_.graph->Export();
    if (!snap.ok()) return Fail(res, snap.status());
    if (format == "json") res.set_content(ExportJson(*snap), "application/json");
    else res.set_content(ExportGraphml(*snap), "application/graphml+xml");
  }

  ApiDeps d_;
  const Config& c_;
  httplib::Server svr_;
  std::map<std::string, std::set<std::string>> methods_;
};

ApiServer::ApiServer(ApiDeps deps) : impl_(std::make_unique<Impl>(deps)) {}
ApiServer::~ApiServer() = default;
Result<int> ApiServer::Bind(const std::string& host, int port) { return impl_->Bind(host, port); }
bool ApiServer::Serve() { return impl_->Serve(); }
void ApiServer::Stop() { impl_->Stop(); }

}  // namespace kg
