#pragma once
// An asynchronous HTTP client on the libcurl multi interface, for LLM APIs.
//
// - One event-loop thread per client runs every transfer on one multi handle: a request in
//   flight costs a socket and a buffer, not a thread. The loop sleeps in curl_multi_poll until
//   a socket is ready, the next timer is due or another thread hands it work (curl_multi_wakeup);
//   it never spins.
// - Post and RunAfter are thread-safe (a mutex-guarded hand-over queue) and may be called from
//   callbacks on the loop thread itself. Completion callbacks and timers run on the loop thread,
//   one at a time, so whoever drives the client from them needs no lock; they must not block.
// - Connections are reused (keep-alive, one connection cache per client); at most
//   `max_host_connections` to one host at once (transfers above it wait inside libcurl, and that
//   wait counts toward their total timeout, so size it to the caller's in-flight cap).
//   TLS peers are always verified. No signals (CURLOPT_NOSIGNAL).
// - A transfer fails (status 0, `error` set) on a transport error, its connect or total timeout,
//   or a body larger than `max_response_bytes`. Any HTTP status is a completed transfer.
// - Destroying the client stops the loop and abandons every transfer and timer without calling
//   its callback. Do not destroy it from one of its own callbacks.
//
// libcurl is initialised once per process (curl_global_init is thread-safe on libcurl >= 7.84
// built "threadsafe", as Debian 12's is).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kg::llm {

struct HttpRequest {
  std::string url;
  std::string body;                  // POSTed as is
  std::vector<std::string> headers;  // "Name: value"; carry secrets here only (never logged)
  int64_t connect_timeout_ms = 10000;
  int64_t total_timeout_ms = 60000;  // the whole transfer, connect included; > 0
};

struct HttpResponse {
  int status = 0;          // the HTTP status; 0 when the transfer failed
  std::string error;       // why it failed ("Timeout was reached: ..."); empty when status > 0
  bool timed_out = false;  // it failed on its connect or total timeout
  std::string body;        // empty when it failed
  // The response headers that steer retries, empty when absent: retry-after (seconds or an
  // HTTP date), retry-after-ms, x-ratelimit-{remaining,reset}-{requests,tokens}.
  std::string retry_after, retry_after_ms;
  std::string ratelimit_remaining_requests, ratelimit_remaining_tokens;
  std::string ratelimit_reset_requests, ratelimit_reset_tokens;
};

class HttpClient {
 public:
  struct Options {
    int max_host_connections = 4;
    size_t max_response_bytes = size_t{8} << 20;
  };
  using Done = std::function<void(HttpResponse)>;

  // Starts the loop thread. Aborts if libcurl cannot be initialised (no memory): an invariant,
  // not a recoverable error.
  explicit HttpClient(Options options);
  // Stop(), then frees what is left.
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts a POST of `request`; `done` runs once on the loop thread with the outcome (unless the
  // client is destroyed first).
  void Post(HttpRequest request, Done done);
  // Runs `fn` on the loop thread once `delay_ms` (>= 0) have passed (unless the client is
  // destroyed first). Timers with equal due times run in the order they were set.
  void RunAfter(int64_t delay_ms, std::function<void()> fn);
  // Stops the loop and waits for its thread: the callback running now (if any) returns first, and
  // none runs after. Pending transfers and timers are abandoned without a call. Idempotent; not
  // from the loop thread. The owner calls it while the members its callbacks use are still there
  // (an owner that resets its unique_ptr<HttpClient> sees it null inside a callback still running).
  void Stop();
  // True on the loop thread (for assertions).
  bool InLoopThread() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kg::llm
