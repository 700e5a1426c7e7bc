#pragma once
// The HTTP API of ARCHITECTURE.md ("External contract"): JSON in and out, errors as
// {"error": "..."} with a fitting status, a body limit (KG_MAX_BODY_MB), a bearer token
// on every /api/ route and every mutation when KG_API_TOKEN is set (/healthz, /readyz
// and /metrics stay open for probes and scrapers).
//
// Thread safety: handlers run on the HTTP server's threads; the backends they use are
// thread-safe. Bind, then Serve on one thread; Stop from any thread.

#include <memory>
#include <string>

#include "common/status.h"
#include "config/config.h"
#include "graph/graph_store.h"
#include "queue/queue.h"
#include "store/task_store.h"
#include "supervisor/supervisor.h"

namespace kg {

struct ApiDeps {
  const Config* config = nullptr;
  Queue* queue = nullptr;
  TaskStore* store = nullptr;
  GraphStore* graph = nullptr;
  Supervisor* supervisor = nullptr;  // null on a web-only node
  bool health_only = false;          // worker nodes: /healthz, /readyz, /metrics, GET /api/v1/workers
};

class ApiServer {
 public:
  explicit ApiServer(ApiDeps deps);
  ~ApiServer();
  // Binds host:port (port 0 picks a free port) and returns the port.
  Result<int> Bind(const std::string& host, int port);
  // Serves until Stop(); returns false if the listener failed.
  bool Serve();
  // The first step of a graceful stop: from now on /readyz answers 503 and POST
  // /api/v1/tasks answers 503 with Retry-After, while every other route keeps serving
  // (in-flight work drains meanwhile). Irreversible; callable from any thread.
  void StopTakingWork();
  void Stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kg
