#include "api/server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "api/listener.h"
#include "api/reply.h"
#include "api/routes.h"

namespace kg {

// Owns the HTTP server; the routes live in api/routes.cc, the /metrics page in
// api/metrics.cc and the socket fix-ups in api/listener.cc.
class ApiServer::Impl {
 public:
  explicit Impl(ApiDeps d) : routes_(d, svr_) {
    svr_.set_payload_max_length(static_cast<size_t>(d.config->max_body_mb) * 1024 * 1024);
    api::ConfigureListener(svr_);
    svr_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg = res.status == 404   ? "no such endpoint"
                        : res.status == 413 ? "request body too large (KG_MAX_BODY_MB)"
                        : res.status == 405 ? "method not allowed"
                                            : "request failed with status " + std::to_string(res.status);
      api::Fail(res, res.status, msg);
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
      api::Fail(res, 500, "internal error");
    });
    routes_.Register();
  }

  Result<int> Bind(const std::string& host, int port) { return api::BindListener(svr_, host, port); }
  bool Serve() { return svr_.listen_after_bind(); }
  void StopTakingWork() { routes_.StopTakingWork(); }
  void Stop() { svr_.stop(); }

 private:
  httplib::Server svr_;
  api::Routes routes_;  // after svr_, which it borrows
};

ApiServer::ApiServer(ApiDeps deps) : impl_(std::make_unique<Impl>(deps)) {}
ApiServer::~ApiServer() = default;
Result<int> ApiServer::Bind(const std::string& host, int port) { return impl_->Bind(host, port); }
bool ApiServer::Serve() { return impl_->Serve(); }
void ApiServer::StopTakingWork() { impl_->StopTakingWork(); }
void ApiServer::Stop() { impl_->Stop(); }

}  // namespace kg
