#pragma once
// An event-driven HTTP/1.1 server on Boost.Beast and Asio (docs/architecture.md, "HTTP
// server"). One event-loop thread owns every connection: reading headers and bodies, the
// timeouts and the connection caps, writing answers. Handlers run on a bounded pool of
// threads (they may block on a database) and never see a connection that is still sending
// its headers or body, so a slow or idle client costs memory, never a thread.
//
// Limits (Options): a client must finish its headers within header_timeout of connecting (or
// of its first byte on a kept-alive connection), an idle kept-alive connection is closed after
// idle_timeout, a body must arrive within body_timeout + length / min_body_rate, and bodies
// over max_body_bytes answer 413 while being read. Past max_connections, or
// max_connections_per_client from one address, a new connection gets 503 and is closed;
// refusals are logged at most once per 10 s and counted (Stats).
//
// Thread safety: Route() before Serve(); Serve() on one thread; Stop(), stats() from any.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "http/message.h"

namespace kg::http {

struct Options {
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds body_timeout{30000};  // plus length / min_body_rate
  int64_t min_body_rate = 16 * 1024;              // bytes per second a body must keep up
  size_t max_body_bytes = 10u << 20;
  int max_connections = 10000;
  int max_connections_per_client = 256;
  int threads = 8;               // handler pool
  int max_queued_requests = 4096;  // waiting for a handler thread; past it 503
  int max_streams = 4;  // streamed responses (exports) produced at once; past it 503
  std::chrono::milliseconds stream_piece_timeout{30000};  // a client must take each streamed piece within this
  std::chrono::milliseconds event_heartbeat{15000};
  std::chrono::milliseconds drain_timeout{10000};  // Stop(): how long in-flight requests may finish
  std::string limit_setting_hint = "KG_MAX_BODY_MB";  // named in the 413 answer
};

using Handler = std::function<void(const Request&, Response&)>;
// For a route with a streaming body: called on a handler thread once the headers are in.
// Return a consumer to get the body piece by piece; nullptr with res.status left at 200 to
// have the body read whole and `handler` called as usual; nullptr with another status to
// answer that at once (the body is read and dropped first).
using StreamStart = std::function<std::unique_ptr<BodyConsumer>(const Request& head, Response& res)>;

struct RouteOptions {
  // Runs on the event loop itself: only for handlers that never block (/healthz), so they
  // answer even when every handler thread is busy.
  bool inline_handler = false;
  StreamStart stream;  // see StreamStart
  // Runs on the event loop once the head is in, before any of the body is read (keep it
  // cheap: no blocking). False answers `res` at once; a body is then dropped unread (a
  // client waiting for 100 Continue never sends it).
  std::function<bool(const Request& head, Response& res)> before_body;
};

// Counters for /metrics; all monotonic except the gauges marked.
struct Stats {
  int64_t connections_open = 0;  // gauge
  int64_t event_streams_open = 0;  // gauge
  int64_t connections_accepted = 0;
  int64_t refused_total_cap = 0;
  int64_t refused_client_cap = 0;
  int64_t timeouts_header = 0;
  int64_t timeouts_idle = 0;
  int64_t timeouts_body = 0;
  int64_t requests = 0;
  int64_t rejected_busy = 0;  // 503: every handler thread busy and the queue full
};

class Server {
 public:
  explicit Server(Options options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // `pattern` is a regular expression matched against the whole decoded path; its groups
  // land in Request::matches. A path that matches some route but not its method answers 405
  // with Allow; none, 404. First registered match wins.
  void Route(const std::string& method, const std::string& pattern, Handler handler, RouteOptions options = {});

  // Binds host:port (port 0 picks a free port); the socket is close-on-exec and not
  // SO_REUSEPORT. kUnavailable when it cannot be bound.
  Result<int> Bind(const std::string& host, int port);
  // Serves until Stop() has drained; false if the server never bound.
  bool Serve();
  // Stops accepting, ends event streams (a final "end" event), closes idle connections, lets
  // requests in flight finish within drain_timeout, then returns from Serve(). Any thread.
  void Stop();
  Stats stats() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kg::http
