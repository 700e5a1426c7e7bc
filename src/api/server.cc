#include "api/server.h"

#include "api/routes.h"
#include "http/server.h"

namespace kg {

namespace {

http::Options HttpOptions(const Config& c) {
  http::Options o;
  o.header_timeout = std::chrono::seconds(c.http_header_timeout_seconds);
  o.idle_timeout = std::chrono::seconds(c.http_idle_timeout_seconds);
  o.body_timeout = std::chrono::seconds(c.http_body_timeout_seconds);
  o.min_body_rate = static_cast<int64_t>(c.http_min_body_kbps) * 1024;
  o.max_body_bytes = static_cast<size_t>(c.max_body_mb) * 1024 * 1024;
  o.max_connections = c.http_max_connections;
  o.max_connections_per_client = c.http_max_connections_per_client;
  o.threads = c.http_threads;
  o.event_heartbeat = std::chrono::seconds(c.http_event_heartbeat_seconds);
  o.stream_piece_timeout = std::chrono::seconds(c.http_body_timeout_seconds);
  o.drain_timeout = std::chrono::seconds(std::max(1, std::min(c.stop_timeout_seconds, 30)));
  return o;
}

}  // namespace

// Owns the HTTP server (src/http) and the routes (api/routes.cc) it serves.
class ApiServer::Impl {
 public:
  explicit Impl(ApiDeps d) : svr_(HttpOptions(*d.config)), routes_(d, svr_) { routes_.Register(); }
  ~Impl() { routes_.StopEvents(); }

  Result<int> Bind(const std::string& host, int port) { return svr_.Bind(host, port); }
  bool Serve() { return svr_.Serve(); }
  void StopTakingWork() { routes_.StopTakingWork(); }
  void Stop() {
    routes_.StopEvents();
    svr_.Stop();
  }

 private:
  http::Server svr_;
  api::Routes routes_;  // after svr_, which it borrows
};

ApiServer::ApiServer(ApiDeps deps) : impl_(std::make_unique<Impl>(deps)) {}
ApiServer::~ApiServer() = default;
Result<int> ApiServer::Bind(const std::string& host, int port) { return impl_->Bind(host, port); }
bool ApiServer::Serve() { return impl_->Serve(); }
void ApiServer::StopTakingWork() { impl_->StopTakingWork(); }
void ApiServer::Stop() { impl_->Stop(); }

}  // namespace kg
