#include "llm/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "common/mutex.h"
#include "common/util.h"
#include "testing/testing.h"

namespace kg::llm {
namespace {

using namespace std::chrono_literals;

// A loopback httplib server with one thread per connection (up to 300), so that it can hold
// hundreds of requests at once.
class LocalServer {
 public:
  explicit LocalServer(std::function<void(httplib::Server&)> routes) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(300); };
    routes(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    if (!testing::WaitFor([this] { return server_.is_running(); }, 10s)) ADD_FAILURE() << "server not running";
  }
  ~LocalServer() {
    server_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// Collects callbacks' responses and the threads they ran on.
struct Collector {
  Mutex mu;
  CondVar cv;
  std::vector<HttpResponse> responses KG_GUARDED_BY(mu);
  std::set<std::thread::id> threads KG_GUARDED_BY(mu);

  HttpClient::Done Callback() {
    return [this](HttpResponse r) {
      MutexLock l(mu);
      responses.push_back(std::move(r));
      threads.insert(std::this_thread::get_id());
      cv.NotifyAll();
    };
  }
  // Waits up to 60 s for `n` responses; returns how many arrived.
  size_t WaitFor(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    MutexLock l(mu);
    while (responses.size() < n) {
      if (!cv.WaitUntil(l, deadline)) break;
    }
    return responses.size();
  }
};

HttpRequest Req(const std::string& url, int64_t total_ms = 10000) {
  HttpRequest r;
  r.url = url;
  r.body = R"({"hello":"world"})";
  r.headers = {"Authorization: Bearer test-key"};
  r.total_timeout_ms = total_ms;
  return r;
}

// Verifies that a POST carries its body and headers and that the retry headers of the answer
// are reported, with the status and body.
TEST(HttpClient, PostsAndReportsStatusBodyAndRetryHeaders) {
  LocalServer server([](httplib::Server& s) {
    s.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 429;
      res.set_header("Retry-After", "3");
      res.set_header("retry-after-ms", "2500");
      res.set_header("x-ratelimit-reset-requests", "6m0s");
      res.set_header("x-ratelimit-reset-tokens", "12ms");
      res.set_header("x-ratelimit-remaining-requests", "0");
      res.set_content(req.get_header_value("Authorization") + "|" + req.get_header_value("Content-Type") + "|" +
                          req.body,
                      "text/plain");
    });
  });
  HttpClient client({});
  Collector c;
  client.Post(Req(server.Url("/echo")), c.Callback());
  ASSERT_EQ(c.WaitFor(1), 1u);
  MutexLock l(c.mu);
  const HttpResponse& r = c.responses[0];
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.body, R"(Bearer test-key|application/json|{"hello":"world"})");
  EXPECT_EQ(r.retry_after, "3");
  EXPECT_EQ(r.retry_after_ms, "2500");
  EXPECT_EQ(r.ratelimit_reset_requests, "6m0s");
  EXPECT_EQ(r.ratelimit_reset_tokens, "12ms");
  EXPECT_EQ(r.ratelimit_remaining_requests, "0");
  EXPECT_EQ(r.ratelimit_remaining_tokens, "");
}

// A loopback HTTP/1.1 server that holds every request until `n` have arrived, then answers them
// all "all" (or "alone" after a 30 s deadline). One thread per connection and a listen backlog
// of 1024 (httplib's 5 drops SYNs under a burst, which only delays the test by retransmits).
class BarrierServer {
 public:
  explicit BarrierServer(int n) : n_(n) {
    fd_.Reset(::socket(AF_INET, SOCK_STREAM, 0));
    int one = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_.get(), 1024), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] {
      for (int i = 0; i < n_; ++i) {
        int c = ::accept(fd_.get(), nullptr, nullptr);
        if (c < 0) return;
        conns_.emplace_back([this, c] { Serve(UniqueFd(c)); });
      }
    });
  }
  ~BarrierServer() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    acceptor_.join();
    for (auto& t : conns_) t.join();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/wait"; }

 private:
  void Serve(UniqueFd c) {
    std::string in;
    char buf[4096];
    size_t body_at = std::string::npos;
    size_t want = 0;
    while (body_at == std::string::npos || in.size() < body_at + want) {
      ssize_t r = ::read(c.get(), buf, sizeof buf);
      if (r <= 0) return;
      in.append(buf, static_cast<size_t>(r));
      if (body_at == std::string::npos && (body_at = in.find("\r\n\r\n")) != std::string::npos) {
        body_at += 4;
        size_t cl = in.find("Content-Length: ");
        if (cl != std::string::npos) want = std::stoul(in.substr(cl + 16));
      }
    }
    bool all;
    {
      MutexLock l(mu_);
      if (++arrived_ == n_) cv_.NotifyAll();
      auto deadline = std::chrono::steady_clock::now() + 30s;
      while (arrived_ < n_) {
        if (!cv_.WaitUntil(l, deadline)) break;
      }
      all = arrived_ == n_;
    }
    std::string body = all ? "all" : "alone";
    std::string out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\nConnection: close\r\n\r\n" + body;
    (void)!::write(c.get(), out.data(), out.size());
  }

  const int n_;
  UniqueFd fd_;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> conns_;  // acceptor thread only, then the destructor
  Mutex mu_;
  CondVar cv_;
  int arrived_ KG_GUARDED_BY(mu_) = 0;
};

// Verifies that 200 requests are in flight at once on the one loop thread: the server answers
// none until all 200 have arrived, and every callback runs on the same thread, not the caller's.
TEST(HttpClient, TwoHundredRequestsInFlightOnOneLoopThread) {
  constexpr int kN = 200;
  BarrierServer server(kN);
  HttpClient client({.max_host_connections = kN});
  Collector c;
  for (int i = 0; i < kN; ++i) client.Post(Req(server.Url(), 40000), c.Callback());
  ASSERT_EQ(c.WaitFor(kN), static_cast<size_t>(kN));
  MutexLock l(c.mu);
  for (const HttpResponse& r : c.responses) {
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "all");
  }
  EXPECT_EQ(c.threads.size(), 1u);
  EXPECT_EQ(c.threads.count(std::this_thread::get_id()), 0u);
}

// Verifies the total timeout: a server that does not answer fails the transfer as timed out,
// and the other requests on the loop are not held up by it.
TEST(HttpClient, TotalTimeoutFailsTheTransfer) {
  std::atomic<bool> release{false};
  LocalServer server([&](httplib::Server& s) {
    s.Post("/hang", [&](const httplib::Request&, httplib::Response& res) {
      (void)testing::WaitFor([&] { return release.load(); }, 20s);
      res.set_content("late", "text/plain");
    });
    s.Post("/fast", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
  });
  {
    HttpClient client({});
    Collector hang, fast;
    client.Post(Req(server.Url("/hang"), 300), hang.Callback());
    client.Post(Req(server.Url("/fast")), fast.Callback());
    ASSERT_EQ(fast.WaitFor(1), 1u);
    {
      MutexLock l(fast.mu);
      EXPECT_EQ(fast.responses[0].status, 200);
    }
    ASSERT_EQ(hang.WaitFor(1), 1u);
    MutexLock l(hang.mu);
    EXPECT_EQ(hang.responses[0].status, 0);
    EXPECT_TRUE(hang.responses[0].timed_out);
    EXPECT_NE(hang.responses[0].error.find("Timeout"), std::string::npos) << hang.responses[0].error;
  }
  release = true;
}

// Verifies that a refused connection is a failed transfer with the reason, not a timeout.
TEST(HttpClient, RefusedPortFailsAtOnce) {
  HttpClient client({});
  Collector c;
  client.Post(Req("http://127.0.0.1:" + std::to_string(testing::FreePort()) + "/x"), c.Callback());
  ASSERT_EQ(c.WaitFor(1), 1u);
  MutexLock l(c.mu);
  EXPECT_EQ(c.responses[0].status, 0);
  EXPECT_FALSE(c.responses[0].timed_out);
  EXPECT_NE(c.responses[0].error.find("onnect"), std::string::npos) << c.responses[0].error;
}

// Verifies the response-size cap: a body of exactly the cap is delivered, one byte more fails
// that transfer and says why.
TEST(HttpClient, ResponseSizeCap) {
  constexpr size_t kCap = 100000;
  LocalServer server([&](httplib::Server& s) {
    s.Post("/at", [&](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(kCap, 'a'), "text/plain");
    });
    s.Post("/over", [&](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(kCap + 1, 'a'), "text/plain");
    });
  });
  HttpClient client({.max_host_connections = 2, .max_response_bytes = kCap});
  Collector at, over;
  client.Post(Req(server.Url("/at")), at.Callback());
  client.Post(Req(server.Url("/over")), over.Callback());
  ASSERT_EQ(at.WaitFor(1), 1u);
  ASSERT_EQ(over.WaitFor(1), 1u);
  MutexLock l1(at.mu), l2(over.mu);
  EXPECT_EQ(at.responses[0].status, 200);
  EXPECT_EQ(at.responses[0].body.size(), kCap);
  EXPECT_EQ(over.responses[0].status, 0);
  EXPECT_EQ(over.responses[0].body, "");
  EXPECT_NE(over.responses[0].error.find("larger than 100000 bytes"), std::string::npos) << over.responses[0].error;
}

// Verifies that timers run on the loop thread, in due order, and not before they are due.
TEST(HttpClient, TimersRunOnTheLoopInDueOrder) {
  HttpClient client({});
  Mutex mu;
  CondVar cv;
  std::vector<int> order;
  std::vector<int64_t> ran_at;
  bool on_loop = true;
  int64_t start = MonoMs();
  for (auto [id, delay] : std::vector<std::pair<int, int64_t>>{{3, 300}, {1, 0}, {2, 100}}) {
    client.RunAfter(delay, [&, id = id] {
      MutexLock l(mu);
      order.push_back(id);
      ran_at.push_back(MonoMs() - start);
      on_loop = on_loop && client.InLoopThread();
      cv.NotifyAll();
    });
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  MutexLock l(mu);
  while (order.size() < 3) {
    if (!cv.WaitUntil(l, deadline)) break;
  }
  ASSERT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_GE(ran_at[1], 100);
  EXPECT_GE(ran_at[2], 300);
  EXPECT_TRUE(on_loop);
  EXPECT_FALSE(client.InLoopThread());
}

// Verifies that destroying the client abandons transfers and timers in flight without calling
// their callbacks, and does not wait for the server.
TEST(HttpClient, DestructionCancelsWithoutCallbacks) {
  std::atomic<bool> release{false};
  std::atomic<int> arrived{0};
  LocalServer server([&](httplib::Server& s) {
    s.Post("/hang", [&](const httplib::Request&, httplib::Response& res) {
      ++arrived;
      (void)testing::WaitFor([&] { return release.load(); }, 20s);
      res.set_content("late", "text/plain");
    });
  });
  std::atomic<int> called{0};
  {
    HttpClient client({.max_host_connections = 8});
    for (int i = 0; i < 5; ++i) client.Post(Req(server.Url("/hang"), 30000), [&](HttpResponse) { ++called; });
    client.RunAfter(60000, [&] { ++called; });
    ASSERT_TRUE(testing::WaitFor([&] { return arrived.load() == 5; }, 10s));
  }
  EXPECT_EQ(called.load(), 0);
  release = true;
}

}  // namespace
}  // namespace kg::llm
