#pragma once
// The API's routes and their handlers (docs/architecture.md, "External contract").
//
// Thread safety: handlers run on the HTTP server's threads; the backends in ApiDeps are
// thread-safe, and the routes keep no other mutable state.

#include <httplib.h>

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <string>

#include "api/server.h"

namespace kg::api {

class Routes {
 public:
  // `deps` and `svr` are borrowed and must outlive the Routes.
  Routes(ApiDeps deps, httplib::Server& svr);
  // Registers every route on the server; call once, before serving.
  void Register();
  // See ApiServer::StopTakingWork.
  void StopTakingWork() { stopping_ = true; }

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  void Route(const std::string& method, const std::string& pattern, Handler h);
  httplib::Server::HandlerWithContentReader WithBody(Handler h) const;
  void FinishRoutes();
  bool Authorized(const httplib::Request& req) const;

  void Submit(const httplib::Request& req, httplib::Response& res);
  void GetTask(const httplib::Request& req, httplib::Response& res);
  void ListTasks(const httplib::Request& req, httplib::Response& res);
  void Cancel(const httplib::Request& req, httplib::Response& res);
  void Retry(const httplib::Request& req, httplib::Response& res);
  void Scale(const httplib::Request& req, httplib::Response& res);
  void ResetScale(const httplib::Request& req, httplib::Response& res);
  void Providers(httplib::Response& res);
  void Workers(httplib::Response& res);
  void Ready(httplib::Response& res);
  void Metrics(httplib::Response& res);
  void Stats(httplib::Response& res);
  void Search(const httplib::Request& req, httplib::Response& res);
  void Entity(const httplib::Request& req, httplib::Response& res);
  void Export(const httplib::Request& req, httplib::Response& res);
  Result<nlohmann::json> TaskView(const std::string& id);
  // Nodes of the registry with their heartbeat age and `stale` marker; a stale node's
  // processes are shown as unknown (pid 0, last_pid the one it reported).
  nlohmann::json NodesJson();
  // Providers with a live process (starting, idle or busy) on a node that is not stale.
  std::set<std::string> ServedProviders();
  // "no worker is serving provider P" while a task of `provider` in `status` waits for one; null otherwise.
  static nlohmann::json ServingWarning(const std::set<std::string>& served, const std::string& provider,
                                       const std::string& status);
  nlohmann::json ScalingJson();

  ApiDeps d_;
  const Config& c_;
  httplib::Server& svr_;
  std::map<std::string, std::set<std::string>> methods_;
  std::atomic<bool> stopping_{false};
};

}  // namespace kg::api
