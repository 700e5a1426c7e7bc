// The command line's HTTP client (http/client.h) against a real http::Server in this process and
// against raw loopback sockets scripted to misbehave: never answering, refusing, closing a kept
// connection as a request goes out.
#include "http/client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "common/util.h"
#include "http/parse.h"
#include "http/server.h"
#include "testing/testing.h"

namespace kg::http {
namespace {

using namespace std::chrono_literals;

std::string Base(int port) { return "http://127.0.0.1:" + std::to_string(port); }

// An http::Server on a free loopback port, serving on its own thread until destroyed.
class TestServer {
 public:
  explicit TestServer(Options o = {}) : server_(std::move(o)) {}
  ~TestServer() {
    server_.Stop();
    if (thread_.joinable()) thread_.join();
  }
  Server& server() { return server_; }
  // Binds and serves; the port.
  int Start() {
    auto port = server_.Bind("127.0.0.1", 0);
    EXPECT_TRUE(port.ok()) << port.status().message();
    thread_ = std::thread([this] { server_.Serve(); });
    return port.ok() ? *port : -1;
  }

 private:
  Server server_;
  std::thread thread_;
};

// A loopback socket listening on a free port (backlog `backlog`); `accept` is up to the test.
UniqueFd Listen(int backlog, int* port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  if (backlog >= 0) {
    EXPECT_EQ(::listen(fd.get(), backlog), 0);
  }
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// Reads one request head (up to the blank line) from `fd`; "" when the peer closed first.
std::string ReadHead(int fd) {
  std::string head;
  char c;
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (::read(fd, &c, 1) != 1) return "";
    head += c;
  }
  return head;
}

void WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// A raw server that runs `script(connection_index, fd)` on each connection it accepts, one at
// a time, on its own thread; the connection is closed when the script returns.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int, int)> script) : listen_(Listen(16, &port_)) {
    thread_ = std::thread([this, script = std::move(script)] {
      for (int i = 0;; ++i) {
        int c = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;  // shut down
        accepted_++;
        script(i, c);
        ::close(c);
      }
    });
  }
  ~ScriptedServer() {
    ::shutdown(listen_.get(), SHUT_RDWR);  // wakes accept()
    thread_.join();
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  int port_ = 0;
  UniqueFd listen_;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// Verifies a GET and a POST reach their routes with the bearer token, the content type and the
// body, and the answer's status, headers and body come back; an HTTP error status is an answer.
TEST(HttpClient, SendsTheRequestAndReadsTheAnswer) {
  TestServer ts;
  ts.server().Route("GET", "/echo", [](const Request& req, Response& res) {
    res.set_header("X-Auth", req.get_header_value("Authorization"));
    res.set_content("q=" + req.get_param_value("q"), "text/plain");
  });
  ts.server().Route("POST", "/echo", [](const Request& req, Response& res) {
    res.set_header("X-Type", req.get_header_value("Content-Type"));
    res.set_content(req.body, "application/json");
  });
  int port = ts.Start();
  Client c(Base(port), ClientOptions{2s, 5s, "s3cret token"});
  auto g = c.Send("GET", "/echo?q=" + PercentEncode("a b&c"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->status, 200);
  EXPECT_EQ(g->body, "q=a b&c");
  EXPECT_EQ(g->header("x-auth"), "Bearer s3cret token");
  auto p = c.Send("POST", "/echo", R"({"x":1})", "application/json");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->body, R"({"x":1})");
  EXPECT_EQ(p->header("X-Type"), "application/json");
  auto missing = c.Send("GET", "/nowhere");
  ASSERT_TRUE(missing.ok()) << missing.status().message();
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("no such endpoint"), std::string::npos) << missing->body;

  Client anonymous(Base(port), ClientOptions{2s, 5s, ""});
  auto a = anonymous.Send("GET", "/echo");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->header("X-Auth"), "") << "no token, no Authorization header";
}

// Verifies requests in a row share one kept-alive connection.
TEST(HttpClient, KeepAliveReusesOneConnection) {
  TestServer ts;
  ts.server().Route("GET", "/n", [](const Request&, Response& res) { res.set_content("n", "text/plain"); });
  ts.server().Route("POST", "/n", [](const Request& req, Response& res) { res.set_content(req.body, "text/plain"); });
  int port = ts.Start();
  Client c(Base(port), ClientOptions{});
  for (int i = 0; i < 5; ++i) {
    auto r = i % 2 ? c.Send("GET", "/n") : c.Send("POST", "/n", std::string(100000, 'x'), "text/plain");
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_TRUE(c.connected());
  EXPECT_EQ(ts.server().stats().connections_accepted, 1);
  EXPECT_EQ(ts.server().stats().requests, 5);
}

// Verifies that after the server closed the kept connection (its idle timeout), the next request
// goes out on a new connection and succeeds: a plain one, and a streamed upload, which cannot be
// sent again once a piece went, so the closed connection must be noticed before it starts.
TEST(HttpClient, ReconnectsAfterTheServerClosedAnIdleConnection) {
  Options o;
  o.idle_timeout = 200ms;
  TestServer ts(o);
  ts.server().Route("GET", "/n", [](const Request&, Response& res) { res.set_content("n", "text/plain"); });
  ts.server().Route("POST", "/n", [](const Request& req, Response& res) { res.set_content(req.body, "text/plain"); });
  int port = ts.Start();
  Client c(Base(port), ClientOptions{});
  auto idle_close = [&](int64_t times) {
    return testing::WaitFor([&] { return ts.server().stats().timeouts_idle == times; }, 10s) &&
           testing::WaitFor([&] { return ts.server().stats().connections_open == 0; }, 10s);
  };
  ASSERT_TRUE(c.Send("GET", "/n").ok());
  ASSERT_TRUE(idle_close(1)) << "the server closes the idle connection";
  auto r = c.Send("GET", "/n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->body, "n");
  EXPECT_EQ(ts.server().stats().connections_accepted, 2);

  ASSERT_TRUE(idle_close(2));
  const std::string text(300'000, 'u');
  size_t given = 0;
  auto up = c.SendStream("POST", "/n", text.size(), "text/plain", [&](std::string* piece) {
    *piece = text.substr(given, 65536);
    given += piece->size();
    return true;
  });
  ASSERT_TRUE(up.ok()) << up.status().message();
  EXPECT_EQ(up->body.size(), text.size());
  EXPECT_EQ(ts.server().stats().connections_accepted, 3);
}

// Verifies a request on a kept connection that the server closes as the request arrives (it read
// it, then closed without a byte of answer: an idle timeout racing the request) is sent once more
// on a new connection; and that on a fresh connection the same is an error, not retried.
TEST(HttpClient, RetriesOnceWhenAKeptConnectionClosesUnderTheRequest) {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  ScriptedServer s([&](int i, int fd) {
    if (i == 0) {
      ASSERT_NE(ReadHead(fd), "");
      WriteAll(fd, ok + "first");
      ASSERT_NE(ReadHead(fd), "");  // the second request: closed unanswered
      return;
    }
    ASSERT_NE(ReadHead(fd), "");
    WriteAll(fd, ok + "again");
  });
  Client c(Base(s.port()), ClientOptions{2s, 5s, ""});
  auto first = c.Send("GET", "/a");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->body, "first");
  auto second = c.Send("GET", "/b");
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->body, "again");
  EXPECT_EQ(s.accepted(), 2);

  ScriptedServer fresh([](int, int fd) { ReadHead(fd); });
  Client f(Base(fresh.port()), ClientOptions{2s, 5s, ""});
  auto r = f.Send("GET", "/a");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().message(), "GET /a: connection closed by the server before answering");
  ASSERT_TRUE(testing::WaitFor([&] { return fresh.accepted() >= 1; }, 5s));
  EXPECT_EQ(fresh.accepted(), 1) << "a new connection's failure is not retried";
}

// Verifies a server that accepts and never answers gives a timeout error after read_timeout, not
// a wait without end; the message says it timed out.
TEST(HttpClient, ServerThatNeverAnswersTimesOut) {
  int port = 0;
  UniqueFd listener = Listen(16, &port);  // the kernel accepts; nobody reads or answers
  Client c(Base(port), ClientOptions{2s, 300ms, ""});
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.Send("GET", "/api/v1/tasks/x");
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().message(), "GET /api/v1/tasks/x: timed out after 300 ms waiting for the answer");
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s) << "bounded by read_timeout, not the default";
  EXPECT_FALSE(c.connected()) << "a connection in an unknown state is not reused";
}

// Verifies read_timeout bounds the wait for progress, not the whole answer: a chunked answer whose
// pieces come every 200 ms is read whole with a 1 s read_timeout though it takes 1.6 s.
TEST(HttpClient, SlowButSteadyAnswerIsReadWhole) {
  TestServer ts;
  ts.server().Route("GET", "/slow", [](const Request&, Response& res) {
    res.set_chunked_content_provider("text/plain", [](const PieceWriter& write) {
      for (int i = 0; i < 8; ++i) {
        std::this_thread::sleep_for(200ms);  // a slow producer, the thing under test
        // 64 KiB each: the server sends a piece that size at once (smaller ones it gathers).
        if (!write(std::string(64 * 1024, static_cast<char>('a' + i)))) return false;
      }
      return true;
    });
  });
  int port = ts.Start();
  Client c(Base(port), ClientOptions{2s, 1s, ""});
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.Send("GET", "/slow");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_GT(std::chrono::steady_clock::now() - t0, 1s) << "precondition: longer than read_timeout in all";
  std::string expected;
  for (int i = 0; i < 8; ++i) expected += std::string(64 * 1024, static_cast<char>('a' + i));
  EXPECT_TRUE(r->body == expected) << r->body.size() << " bytes";
}

// Verifies a port nobody listens on is "connection refused", kUnavailable, at once.
TEST(HttpClient, RefusedPortIsAnError) {
  int port = 0;
  UniqueFd bound = Listen(-1, &port);  // bound, not listening: the port stays ours and refuses
  Client c(Base(port), ClientOptions{2s, 5s, ""});
  auto r = c.Send("GET", "/healthz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_EQ(r.status().message(), "connect 127.0.0.1:" + std::to_string(port) + ": connection refused");
}

// Verifies a connect that does not complete (a listener whose backlog is full drops the SYN) gives
// a timeout error after connect_timeout.
TEST(HttpClient, ConnectThatHangsTimesOut) {
  int port = 0;
  UniqueFd listener = Listen(0, &port);
  // Fill the accept queue (nobody accepts) until a connect no longer completes at once.
  std::vector<UniqueFd> fillers;
  bool full = false;
  for (int i = 0; i < 8 && !full; ++i) {
    UniqueFd f(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    int rc = ::connect(f.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{f.get(), POLLOUT, 0};
      full = ::poll(&p, 1, 200) == 0;  // no answer to its SYN: the queue is full
    }
    fillers.push_back(std::move(f));
  }
  if (!full) GTEST_SKIP() << "this kernel completes connects past a full backlog";
  Client c(Base(port), ClientOptions{300ms, 5s, ""});
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.Send("GET", "/healthz");
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "connect 127.0.0.1:" + std::to_string(port) + ": timed out after 300 ms");
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s);
}

// Verifies a streamed upload of several MB, given in pieces of uneven size, is what the server
// received, byte for byte, and that the source is asked only for what was announced.
TEST(HttpClient, StreamedUploadIsWhatTheServerReceived) {
  TestServer ts;
  std::mutex mu;
  std::string received, type;
  ts.server().Route("POST", "/upload", [&](const Request& req, Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    received = req.body;
    type = req.get_header_value("Content-Type");
    res.set_content(R"({"ok":true})", "application/json");
  });
  int port = ts.Start();
  std::mt19937 rng(7);
  std::string sent(3'000'017, '\0');
  for (auto& ch : sent) ch = static_cast<char>(rng());
  size_t offset = 0, calls = 0;
  PieceSource next = [&](std::string* piece) {
    size_t n = std::min<size_t>(1 + rng() % 100'000, sent.size() - offset);
    *piece = sent.substr(offset, n);
    offset += n;
    ++calls;
    return true;
  };
  Client c(Base(port), ClientOptions{2s, 10s, "tok"});
  auto r = c.SendStream("POST", "/upload", sent.size(), "application/octet-stream", next);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200) << r->body;
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent) << "the body differs";
  EXPECT_EQ(type, "application/octet-stream");
  EXPECT_EQ(offset, sent.size());
  EXPECT_GT(calls, 10u) << "sent in pieces";
}

// Verifies a source that aborts (or gives the wrong length) cuts the request short: an error, the
// server's handler never runs, and the next request works on a new connection.
TEST(HttpClient, AbortedUploadNeverReachesTheHandler) {
  TestServer ts;
  std::atomic<int> handled{0};
  ts.server().Route("POST", "/upload", [&](const Request&, Response& res) {
    handled++;
    res.set_content("{}", "application/json");
  });
  ts.server().Route("GET", "/n", [](const Request&, Response& res) { res.set_content("n", "text/plain"); });
  int port = ts.Start();
  Client c(Base(port), ClientOptions{2s, 5s, ""});
  int pieces = 0;
  auto r = c.SendStream("POST", "/upload", 200'000, "text/plain", [&](std::string* piece) {
    if (pieces++ == 1) return false;
    *piece = std::string(65536, 'a');
    return true;
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "POST /upload: upload aborted by its source after 65536 of 200000 bytes");
  EXPECT_FALSE(c.connected());

  auto short_source = c.SendStream("POST", "/upload", 10, "text/plain", [](std::string* piece) {
    piece->clear();
    return true;
  });
  ASSERT_FALSE(short_source.ok());
  EXPECT_NE(short_source.status().message().find("nothing more after 0 bytes of the 10 announced"), std::string::npos)
      << short_source.status().message();
  auto long_source = c.SendStream("POST", "/upload", 10, "text/plain", [](std::string* piece) {
    *piece = "more than ten bytes";
    return true;
  });
  ASSERT_FALSE(long_source.ok());
  EXPECT_NE(long_source.status().message().find("more than 10 bytes"), std::string::npos)
      << long_source.status().message();

  auto after = c.Send("GET", "/n");
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ(after->body, "n");
  ASSERT_TRUE(testing::WaitFor([&] { return ts.server().stats().connections_open == 1; }, 5s))
      << "the cut connections are gone";
  EXPECT_EQ(handled.load(), 0);
}

// Verifies an upload over the server's body limit gets the server's 413 answer back, not a
// transport error, even though the server answers before the body is all sent.
TEST(HttpClient, EarlyAnswerToAnUploadIsReturned) {
  Options o;
  o.max_body_bytes = 64 * 1024;
  TestServer ts(o);
  ts.server().Route("POST", "/upload", [](const Request&, Response& res) { res.set_content("{}", "application/json"); });
  int port = ts.Start();
  Client c(Base(port), ClientOptions{2s, 5s, ""});
  const size_t length = 4u << 20;
  size_t given = 0;
  auto r = c.SendStream("POST", "/upload", length, "text/plain", [&](std::string* piece) {
    *piece = std::string(std::min<size_t>(65536, length - given), 'b');
    given += piece->size();
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 413) << r->body;
  EXPECT_NE(r->body.find("KG_MAX_BODY_MB"), std::string::npos) << r->body;
}

// Verifies that when a server answers an upload early and closes at once (the rest of the body
// unread: the client's writes then fail with a reset), the answer is what the client returns.
TEST(HttpClient, AnswerBeforeACloseMidUploadIsReturned) {
  const std::string body = R"({"error":"too large"})";
  ScriptedServer s([&](int, int fd) {
    ReadHead(fd);
    WriteAll(fd, "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body);
    // Closed with the body unread: the kernel resets the connection.
  });
  Client c(Base(s.port()), ClientOptions{2s, 5s, ""});
  const size_t length = 16u << 20;
  size_t given = 0;
  auto r = c.SendStream("POST", "/upload", length, "text/plain", [&](std::string* piece) {
    *piece = std::string(std::min<size_t>(65536, length - given), 'b');
    given += piece->size();
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->body, body);
  EXPECT_LT(given, length) << "precondition: the server closed before the body was all sent";
  EXPECT_FALSE(c.connected());
}

// Verifies the base URL is checked: only http://HOST[:PORT]; https is refused by name.
TEST(HttpClient, BadBaseUrlIsAnInvalidArgument) {
  for (const std::string url : {"https://127.0.0.1:8443", "ftp://x", "127.0.0.1:80", "http://", "http://h:0",
                                "http://h:99999", "http://[::1"}) {
    Client c(url, ClientOptions{});
    auto r = c.Send("GET", "/healthz");
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << url << ": " << r.status().message();
  }
  Client tls("https://127.0.0.1:8443", ClientOptions{});
  EXPECT_NE(tls.Send("GET", "/").status().message().find("https is not supported"), std::string::npos);
  Client c(Base(1), ClientOptions{});
  auto r = c.Send("GET", "/a b");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << "a target with a space would split the request line";
}

// Verifies PercentEncode leaves only the unreserved characters and the server's decoding gives
// every byte back.
TEST(HttpClient, PercentEncodeRoundTrips) {
  EXPECT_EQ(PercentEncode("organization:helix dynamics"), "organization%3Ahelix%20dynamics");
  EXPECT_EQ(PercentEncode("a/b?c=d&e+f#g"), "a%2Fb%3Fc%3Dd%26e%2Bf%23g");
  EXPECT_EQ(PercentEncode("Az09-_.!~*'()"), "Az09-_.!~*'()");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  auto back = PercentDecode(PercentEncode(all), true);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, all);
}


// Reads one request (head, then a Content-Length body) from `fd`; "" when the peer closed first.
std::string ReadRequest(int fd) {
  std::string head = ReadHead(fd);
  if (head.empty()) return "";
  std::string lower = head;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  size_t length = 0;
  if (size_t cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) length = std::stoul(head.substr(cl + 17));
  std::string body(length, '\0');
  for (size_t got = 0; got < length;) {
    ssize_t n = ::read(fd, body.data() + got, length - got);
    if (n <= 0) return "";
    got += static_cast<size_t>(n);
  }
  return head + body;
}

// Review of issue 8, finding 9: a request on a kept connection that the server read whole and
// then closed without answering may have been acted on. A POST is not sent again (the caller
// gets an error); a GET, safe to repeat, is sent once more on a new connection.
TEST(HttpClient, UnansweredPostOnAKeptConnectionIsNotResent) {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  for (const char* m : {"POST", "GET"}) {
    const std::string method = m;
    SCOPED_TRACE(method);
    std::mutex mu;
    std::vector<std::string> seen;  // every request the server read, in order
    ScriptedServer s([&](int, int fd) {
      for (int n = 0;; ++n) {
        std::string req = ReadRequest(fd);
        if (req.empty()) return;
        {
          std::lock_guard<std::mutex> lock(mu);
          seen.push_back(req.substr(0, req.find("\r\n")));
        }
        if (n == 1) return;  // the second request on a connection: read, then closed unanswered
        WriteAll(fd, ok + "first");
      }
    });
    Client c(Base(s.port()), ClientOptions{2s, 5s, ""});
    auto first = c.Send(method, "/a", method == "POST" ? "one" : "", method == "POST" ? "text/plain" : "");
    ASSERT_TRUE(first.ok()) << first.status().message();
    EXPECT_EQ(first->body, "first");
    auto second = c.Send(method, "/b", method == "POST" ? "two" : "", method == "POST" ? "text/plain" : "");
    if (method == "POST") {
      EXPECT_FALSE(second.ok()) << "a POST the server may have acted on was sent again and answered";
      EXPECT_EQ(s.accepted(), 1);
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_EQ(seen, (std::vector<std::string>{"POST /a HTTP/1.1", "POST /b HTTP/1.1"}));
    } else {
      ASSERT_TRUE(second.ok()) << second.status().message();
      EXPECT_EQ(second->body, "first");
      EXPECT_EQ(s.accepted(), 2);
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_EQ(seen, (std::vector<std::string>{"GET /a HTTP/1.1", "GET /b HTTP/1.1", "GET /b HTTP/1.1"}));
    }
  }
}

}  // namespace
}  // namespace kg::http
