// End to end, the node's HTTP server under hostile and heavy use (issue 8): slow and idle
// clients, the per-client connection cap, the live event stream, and a large streamed export,
// each against a real `kgflow start` process, spoken to over raw sockets so that the test
// controls every byte and every pause.
#include <arpa/inet.h>
#include <expat.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "testing/testing.h"

namespace kg {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Node;

// Under AddressSanitizer the node is several times slower and bigger: smaller loads, the same
// assertions.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 3;
#else
constexpr int kScale = 1;
#endif

// Connections from these source addresses (all of 127/8 is loopback) stay under the default
// per-address cap; probes come from 127.0.0.1.
constexpr int kLoadAddresses = 50;
std::string LoadAddress(int i) { return "127.0.0." + std::to_string(2 + i % kLoadAddresses); }

void RaiseDescriptorLimit() {
  rlimit r{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &r), 0);
  r.rlim_cur = r.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &r), 0);
  ASSERT_GE(r.rlim_cur, 4096u) << "the test needs a few thousand descriptors";
}

// An owned socket.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// A blocking connection to 127.0.0.1:port from `from` (any port), or an invalid Fd with the
// reason in `*why`. `rcvbuf` > 0 shrinks the receive buffer (and so the window) before connecting.
Fd Connect(const std::string& from, int port, std::string* why, int rcvbuf = 0) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *why = std::string("socket: ") + std::strerror(errno);
    return Fd();
  }
  int one = 1;
  // The port is picked at connect time, by the whole 4-tuple: thousands of connections from a
  // few addresses never run out of ports to bind.
  setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  if (rcvbuf > 0) setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  timeval tv{10, 0};  // connect, send and blocking reads give up after 10 s
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, from.c_str(), &src.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    *why = "bind " + from + ": " + std::strerror(errno);
    return Fd();
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    *why = "connect from " + from + ": " + std::strerror(errno);
    return Fd();
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// What a read on a connection the peer should have closed shows: "closed" (EOF or reset),
// "data" (it answered something instead), or "open" (nothing to read yet).
std::string PeerState(int fd) {
  char c[256];
  ssize_t n = ::recv(fd, c, sizeof c, MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno == ECONNRESET)) return "closed";
  if (n > 0) return "data";
  return "open";
}

// Reads an HTTP/1.1 response off a socket, bounded by a deadline; optionally slowly.
class Reader {
 public:
  Reader(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}

  // A slow client: the first `bytes` are read `piece` bytes at a time with `pause` after each.
  void SlowStart(size_t bytes, size_t piece, std::chrono::microseconds pause) {
    slow_bytes_ = bytes;
    slow_piece_ = std::min(piece, sizeof buf_);
    pause_ = pause;
  }
  const std::string& error() const { return error_; }
  bool eof() const { return eof_; }
  size_t bytes_read() const { return total_; }

  // The status line and headers (names lower-cased); false on error.
  bool Head(int* status, std::map<std::string, std::string>* headers) {
    std::string line;
    if (!Line(&line)) return false;
    if (line.rfind("HTTP/1.1 ", 0) != 0 || line.size() < 12) return Fail("bad status line: " + line);
    *status = std::atoi(line.c_str() + 9);
    while (true) {
      if (!Line(&line)) return false;
      if (line.empty()) return true;
      auto colon = line.find(':');
      if (colon == std::string::npos) return Fail("bad header line: " + line);
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      (*headers)[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }

  // A chunked body's next chunk into `*out` (appended); false at the final chunk (`*last` set)
  // or on error.
  bool Chunk(std::string* out, bool* last) {
    std::string line;
    if (!Line(&line)) return false;
    size_t size = 0;
    try {
      size = std::stoul(line, nullptr, 16);
    } catch (const std::exception&) {
      return Fail("bad chunk size line: " + line);
    }
    if (size == 0) {
      // No trailers are sent: the blank line ends the body.
      if (!Line(&line)) return false;
      if (!line.empty()) return Fail("trailer after the final chunk: " + line);
      *last = true;
      return false;
    }
    if (!Bytes(size, out)) return false;
    if (!Line(&line)) return false;
    if (!line.empty()) return Fail("chunk not followed by CRLF");
    return true;
  }

  // The body as the headers describe it: Content-Length, chunked (true only with its final
  // chunk), or until the connection closes.
  bool Body(const std::map<std::string, std::string>& headers, std::string* body) {
    auto te = headers.find("transfer-encoding");
    if (te != headers.end() && te->second == "chunked") {
      bool last = false;
      while (Chunk(body, &last)) {
      }
      return last;
    }
    auto cl = headers.find("content-length");
    if (cl != headers.end()) return Bytes(std::stoul(cl->second), body);
    while (Fill()) {
    }
    body->append(buf_str_);
    buf_str_.clear();
    return eof_;
  }

  // Waits for the peer to close: true on EOF or reset with nothing more sent.
  bool Closed() {
    while (buf_str_.empty() && Fill()) {
    }
    return eof_ && buf_str_.empty();
  }

 private:
  bool Fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  // Reads more into the buffer; false at EOF, on error or past the deadline.
  bool Fill() {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
      if (left <= 0) return Fail("no answer before the deadline");
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;
      bool slow = total_ < slow_bytes_;
      ssize_t n = ::recv(fd_, buf_, slow ? slow_piece_ : sizeof buf_, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        eof_ = true;
        return false;
      }
      if (n < 0) return Fail(std::string("recv: ") + std::strerror(errno));
      buf_str_.append(buf_, static_cast<size_t>(n));
      total_ += static_cast<size_t>(n);
      if (slow) std::this_thread::sleep_for(pause_);  // the slow client's pace
      return true;
    }
  }
  bool Line(std::string* line) {
    size_t nl;
    while ((nl = buf_str_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return Fail(eof_ ? "connection closed mid-message" : error_);
    }
    *line = buf_str_.substr(0, nl);
    buf_str_.erase(0, nl + 2);
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    while (buf_str_.size() < n) {
      if (!Fill()) return Fail(eof_ ? "connection closed mid-body" : error_);
    }
    out->append(buf_str_, 0, n);
    buf_str_.erase(0, n);
    return true;
  }

  int fd_;
  Clock::time_point deadline_;
  char buf_[64 * 1024];
  size_t slow_bytes_ = 0, slow_piece_ = 0;
  std::chrono::microseconds pause_{0};
  std::string buf_str_;
  std::string error_;
  bool eof_ = false;
  size_t total_ = 0;
};

struct Answer {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  std::string error;  // empty when a whole answer came
};

// Reads one whole response from `fd` within `timeout`.
Answer ReadAnswer(int fd, std::chrono::milliseconds timeout) {
  Answer a;
  Reader r(fd, Clock::now() + timeout);
  if (!r.Head(&a.status, &a.headers) || !r.Body(a.headers, &a.body)) a.error = r.error().empty() ? "incomplete" : r.error();
  return a;
}

// One request on a fresh connection from `from`, answered within `timeout` (10 s: a probe
// that takes longer has failed; nothing here measures how fast it was).
Answer Request(int port, const std::string& from, const std::string& method, const std::string& target,
               std::chrono::milliseconds timeout = 10s) {
  std::string why;
  Fd fd = Connect(from, port, &why);
  if (!fd.valid()) return {0, {}, "", why};
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (!SendAll(fd.get(), req)) return {0, {}, "", "send failed"};
  return ReadAnswer(fd.get(), timeout);
}

// A counter or gauge from /metrics, e.g. `kg_http_timeouts_total{phase="header"}`; -1 if absent.
int64_t Metric(int port, const std::string& series) {
  Answer a = Request(port, "127.0.0.1", "GET", "/metrics");
  if (a.status != 200) return -1;
  size_t at = a.body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::atoll(a.body.c_str() + at + series.size() + 2);
}

// ---------------------------------------------------------------------------------------------
// Slow clients.

// The load of SlowClientsDoNotStopTheApi, driven by one thread polling every socket:
// connections that sent half a request header and stall (each one the server closes is
// replaced while `renew` holds), kept-alive connections idle after one request, and uploads
// trickling a byte at a time.
class SlowLoad {
 public:
  static constexpr const char* kHalfHeader = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow";
  static constexpr size_t kTrickleLength = 1000;

  SlowLoad(int port, int stalled, int idle, int trickling) : port_(port) {
    if (Open(stalled, idle, trickling)) thread_ = std::thread([this] { Run(); });
  }

  ~SlowLoad() { Stop(); }

  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  // Closed stalled connections are no longer replaced.
  void StopRenewing() { renew_.store(false); }

  struct Counts {
    int64_t stalled_opened = 0, stalled_closed = 0, stalled_open = 0, trickled_bytes = 0, idle_lost = 0;
    int64_t shortest_stall_ms = 1 << 30;
    std::string error;
  };
  Counts counts() {
    MutexLock lock(mu_);
    return c_;
  }

  // After Stop(): the trickling uploads send the rest of their bodies; the number answered 202.
  int FinishUploads(std::string* why) {
    int accepted = 0;
    for (auto& t : trickle_) {
      if (!SendAll(t.fd.get(), std::string_view(body_).substr(t.sent))) {
        *why = "upload: the rest of the body could not be sent";
        continue;
      }
      Answer a = ReadAnswer(t.fd.get(), 20s);
      if (a.status == 202 && json::parse(a.body, nullptr, false).contains("id")) {
        ++accepted;
      } else {
        *why = "upload answered " + std::to_string(a.status) + " " + a.body + a.error;
      }
    }
    return accepted;
  }

  // After Stop(): each idle connection asks again on the same connection; the number answered 200.
  int AskIdleAgain(std::string* why) {
    int served = 0;
    for (auto& fd : idle_) {
      Answer a;
      if (SendAll(fd.get(), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) a = ReadAnswer(fd.get(), 10s);
      if (a.status == 200) {
        ++served;
      } else {
        *why = "idle connection: " + a.error;
      }
    }
    return served;
  }

 private:
  struct Stalled {
    Fd fd;
    Clock::time_point opened;
    int slot;
  };
  struct Trickle {
    Fd fd;
    size_t sent;
    Clock::time_point next;
  };

  bool Open(int stalled, int idle, int trickling) {
    for (int i = 0; i < stalled; ++i) {
      if (!OpenStalled(i)) return false;
    }
    for (int i = 0; i < idle; ++i) {
      std::string why;
      Fd fd = Connect(LoadAddress(i), port_, &why);
      if (!fd.valid() || !SendAll(fd.get(), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) {
        return Fail("idle: " + why);
      }
      Answer a = ReadAnswer(fd.get(), 10s);
      if (a.status != 200 || a.headers["connection"] == "close") return Fail("idle: first request: " + a.error);
      idle_.push_back(std::move(fd));
      idle_lost_.push_back(false);
    }
    std::string body;
    while (body.size() < kTrickleLength) body += "Mara Voss works for Helix Dynamics. ";
    body_ = body.substr(0, kTrickleLength);
    for (int i = 0; i < trickling; ++i) {
      std::string why;
      Fd fd = Connect(LoadAddress(i), port_, &why);
      if (!fd.valid()) return Fail(why);
      std::string head = "POST /api/v1/tasks?title=trickle" + std::to_string(i) +
                         " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: " +
                         std::to_string(kTrickleLength) + "\r\n\r\n";
      if (!SendAll(fd.get(), head)) return Fail("trickle: send failed");
      // Staggered: one byte from one of them every 200 ms / trickling.
      trickle_.push_back({std::move(fd), 0, Clock::now() + 200ms * i / trickling});
    }
    return true;
  }

  bool Fail(const std::string& why) {
    MutexLock lock(mu_);
    if (c_.error.empty()) c_.error = why;
    return false;
  }

  bool OpenStalled(int slot) {
    std::string why;
    auto opened = Clock::now();
    Fd fd = Connect(LoadAddress(slot), port_, &why);
    if (!fd.valid() || !SendAll(fd.get(), kHalfHeader)) {
      Fail("stalled: " + (why.empty() ? std::string("send failed") : why));
      return false;
    }
    stalled_.push_back({std::move(fd), opened, slot});
    MutexLock lock(mu_);
    c_.stalled_opened++;
    c_.stalled_open++;
    return true;
  }

  void Run() {
    while (!stop_.load()) {
      std::vector<pollfd> fds;
      for (const auto& s : stalled_) fds.push_back({s.fd.get(), POLLIN, 0});
      for (const auto& fd : idle_) fds.push_back({fd.get(), POLLIN, 0});
      for (const auto& t : trickle_) fds.push_back({t.fd.get(), POLLIN, 0});
      ::poll(fds.data(), fds.size(), 20);
      auto now = Clock::now();
      size_t i = 0;
      std::vector<int> renew;
      for (auto it = stalled_.begin(); it != stalled_.end(); ++i) {
        if (!fds[i].revents) {
          ++it;
          continue;
        }
        std::string state = PeerState(it->fd.get());
        if (state == "data") Fail("a stalled connection was answered instead of closed");
        if (state == "open") {
          ++it;
          continue;
        }
        {
          MutexLock lock(mu_);
          c_.stalled_closed++;
          c_.stalled_open--;
          c_.shortest_stall_ms = std::min<int64_t>(
              c_.shortest_stall_ms, std::chrono::duration_cast<std::chrono::milliseconds>(now - it->opened).count());
        }
        renew.push_back(it->slot);
        it = stalled_.erase(it);
      }
      for (size_t k = 0; k < idle_.size(); ++k) {
        if (fds[i++].revents && !idle_lost_[k]) {
          idle_lost_[k] = true;
          Fail("an idle kept-alive connection was closed or answered unasked: " + PeerState(idle_[k].get()));
          MutexLock lock(mu_);
          c_.idle_lost++;
        }
      }
      for (auto& t : trickle_) {
        if (fds[i++].revents) Fail("a trickling upload was answered or closed early: " + PeerState(t.fd.get()));
        // One byte at a time, never the last: the bodies stay incomplete while the load holds.
        if (now >= t.next && t.sent + 1 < body_.size()) {
          t.next = now + 200ms;
          if (!SendAll(t.fd.get(), std::string_view(body_).substr(t.sent, 1))) continue;
          t.sent++;
          MutexLock lock(mu_);
          c_.trickled_bytes++;
        }
      }
      if (renew_.load()) {
        for (int slot : renew) OpenStalled(slot);
      }
    }
  }

  const int port_;
  std::vector<Stalled> stalled_;  // the loop thread's once started
  std::vector<Fd> idle_;
  std::vector<Trickle> trickle_;
  std::string body_;
  std::vector<bool> idle_lost_;
  std::atomic<bool> stop_{false}, renew_{true};
  std::thread thread_;
  Mutex mu_;
  Counts c_ KG_GUARDED_BY(mu_);
};

// Verifies that 1000 connections stalled mid-header (renewed as the server closes them), 100
// idle kept-alive connections and 20 uploads trickling a byte every 200 ms do not stop the API:
// over several header-timeout periods /healthz and GET /api/v1/tasks answer 200 on fresh
// connections; every stalled connection is closed by the header timeout (not sooner, and
// counted in /metrics); the idle connections are still served and the uploads still complete.
TEST(HttpLoad, SlowClientsDoNotStopTheApi) {
  RaiseDescriptorLimit();
  testing::TempDir dir;
  constexpr int kHeaderTimeoutS = 2;
  Node n(dir, {{"KG_HTTP_HEADER_TIMEOUT_SECONDS", std::to_string(kHeaderTimeoutS)},
               {"KG_HTTP_IDLE_TIMEOUT_SECONDS", "600"},
               {"KG_HTTP_BODY_TIMEOUT_SECONDS", "600"},
               {"KG_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  const int kStalled = 1000 / kScale, kIdle = 100 / kScale, kTrickling = 20 / kScale;

  SlowLoad load(n.port(), kStalled, kIdle, kTrickling);
  ASSERT_EQ(load.counts().error, "");
  ASSERT_EQ(load.counts().stalled_open, kStalled);

  // Rounds of probes, each after another generation of stalled connections was timed out
  // and replaced: the API answers throughout.
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    for (const char* path : {"/healthz", "/api/v1/tasks"}) {
      Answer a = Request(n.port(), "127.0.0.1", "GET", path);
      ASSERT_EQ(a.status, 200) << "round " << round << " " << path << ": " << a.error << a.body;
      ASSERT_TRUE(json::parse(a.body, nullptr, false).is_object()) << a.body;
    }
    ASSERT_TRUE(testing::WaitFor([&] { return load.counts().stalled_closed >= int64_t{kStalled} * (round + 1); },
                                 std::chrono::seconds(kHeaderTimeoutS * 10)))
        << "stalled connections are not being closed; closed " << load.counts().stalled_closed;
    ASSERT_EQ(load.counts().error, "");
  }

  // The load ends: the last generation is closed too, each by the header timeout.
  load.StopRenewing();
  ASSERT_TRUE(testing::WaitFor([&] { return load.counts().stalled_open == 0; }, std::chrono::seconds(kHeaderTimeoutS * 10)))
      << load.counts().stalled_open << " stalled connection(s) still open";
  load.Stop();
  SlowLoad::Counts c = load.counts();
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.idle_lost, 0);
  EXPECT_EQ(c.stalled_closed, c.stalled_opened);
  // Every round waited for another kStalled closures; a closure's replacement is opened after
  // it, so one still being opened when renewing stopped is not counted: kRounds generations are
  // what the rounds prove (kRounds + 1 flaked by a few under ASan on a loaded machine).
  EXPECT_GE(c.stalled_opened, int64_t{kStalled} * kRounds);
  EXPECT_GE(c.shortest_stall_ms, kHeaderTimeoutS * 1000 - 100)
      << "a stalled connection was closed before its header timeout";
  EXPECT_GT(c.trickled_bytes, kTrickling * 10) << "the uploads trickled throughout";
  EXPECT_GE(Metric(n.port(), "kg_http_timeouts_total{phase=\"header\"}"), c.stalled_opened);

  std::string why;
  EXPECT_EQ(load.AskIdleAgain(&why), kIdle) << why;
  EXPECT_EQ(load.FinishUploads(&why), kTrickling) << why;
  std::cout << "stalled connections opened and closed by the header timeout: " << c.stalled_opened
            << "; bytes trickled: " << c.trickled_bytes << "\n";
}

// ---------------------------------------------------------------------------------------------
// Connection caps.

// Verifies the per-client cap: with KG_HTTP_MAX_CONNECTIONS_PER_CLIENT=20 and 20 connections
// open from 127.0.0.2, a 21st from there gets 503 with a JSON reason naming the setting (unasked:
// the server refuses at accept), while 127.0.0.3 and 127.0.0.1 are served; the refusal is
// counted in /metrics, and once the 20 close 127.0.0.2 is served again.
TEST(HttpLoad, PerClientCapAnswers503) {
  testing::TempDir dir;
  constexpr int kCap = 20;
  Node n(dir, {{"KG_HTTP_MAX_CONNECTIONS_PER_CLIENT", std::to_string(kCap)}, {"KG_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::vector<Fd> held;
  for (int i = 0; i < kCap; ++i) {
    // One request each, kept alive: the server has surely counted the connection.
    std::string why;
    Fd fd = Connect("127.0.0.2", n.port(), &why);
    ASSERT_TRUE(fd.valid()) << why;
    ASSERT_TRUE(SendAll(fd.get(), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    Answer a = ReadAnswer(fd.get(), 10s);
    ASSERT_EQ(a.status, 200) << "connection " << i << ": " << a.error;
    held.push_back(std::move(fd));
  }

  std::string why;
  Fd over = Connect("127.0.0.2", n.port(), &why);
  ASSERT_TRUE(over.valid()) << why;
  Answer refused = ReadAnswer(over.get(), 10s);
  ASSERT_EQ(refused.status, 503) << refused.error << refused.body;
  EXPECT_EQ(refused.error, "");
  json reason = json::parse(refused.body, nullptr, false);
  ASSERT_TRUE(reason.is_object()) << refused.body;
  EXPECT_NE(reason.value("error", "").find("KG_HTTP_MAX_CONNECTIONS_PER_CLIENT=20"), std::string::npos) << refused.body;
  EXPECT_TRUE(Reader(over.get(), Clock::now() + 10s).Closed()) << "the refused connection is closed";

  for (const char* from : {"127.0.0.3", "127.0.0.1"}) {
    for (const char* path : {"/healthz", "/api/v1/tasks"}) {
      Answer a = Request(n.port(), from, "GET", path);
      EXPECT_EQ(a.status, 200) << from << " " << path << ": " << a.error << a.body;
    }
  }
  EXPECT_GE(Metric(n.port(), "kg_http_connections_refused_total{cap=\"client\"}"), 1);
  EXPECT_EQ(Metric(n.port(), "kg_http_connections_refused_total{cap=\"total\"}"), 0);
  // The held connections were never disturbed.
  for (const auto& fd : held) EXPECT_EQ(PeerState(fd.get()), "open");

  held.clear();
  EXPECT_TRUE(testing::WaitFor([&] { return Request(n.port(), "127.0.0.2", "GET", "/healthz").status == 200; }, 10s))
      << "127.0.0.2 is served again once its connections closed";
}

// Verifies HEAD of the streamed responses sends headers only (RFC 9110: no body, not even the
// final chunk): after HEAD /api/v1/graph/export the kept-alive connection's next answer starts
// with its status line, and HEAD /api/v1/events closes after its headers without an event.
TEST(HttpLoad, HeadOfAStreamedResponseHasNoBody) {
  testing::TempDir dir;
  Node n(dir, {{"KG_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string why;
  Fd fd = Connect("127.0.0.1", n.port(), &why);
  ASSERT_TRUE(fd.valid()) << why;
  ASSERT_TRUE(SendAll(fd.get(), "HEAD /api/v1/graph/export?format=json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  Reader head(fd.get(), Clock::now() + 10s);
  int status = 0;
  std::map<std::string, std::string> headers;
  ASSERT_TRUE(head.Head(&status, &headers)) << head.error();
  EXPECT_EQ(status, 200);
  // The same reader goes on: whatever the server sent after the headers is what it reads next.
  ASSERT_TRUE(SendAll(fd.get(), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  std::map<std::string, std::string> next_headers;
  std::string body;
  ASSERT_TRUE(head.Head(&status, &next_headers)) << "the next answer is not an answer: " << head.error();
  ASSERT_TRUE(head.Body(next_headers, &body)) << head.error();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body, R"({"status":"ok"})");

  Fd events = Connect("127.0.0.1", n.port(), &why);
  ASSERT_TRUE(events.valid()) << why;
  ASSERT_TRUE(SendAll(events.get(), "HEAD /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  Reader er(events.get(), Clock::now() + 10s);
  headers.clear();
  ASSERT_TRUE(er.Head(&status, &headers)) << er.error();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(headers["content-type"].rfind("text/event-stream", 0), 0u);
  EXPECT_TRUE(er.Closed()) << "HEAD of an event stream sent a body";
}

// ---------------------------------------------------------------------------------------------
// The event stream.

struct SseEvent {
  std::string event, data;
};

// A GET /api/v1/events stream read on its own thread: the chunked framing decoded, then the
// server-sent events parsed ("event: X\ndata: Y\n\n"; lines starting with ':' are comments).
class EventStream {
 public:
  EventStream(int port, const std::string& target) {
    std::string why;
    fd_ = Connect("127.0.0.1", port, &why);
    if (!fd_.valid()) {
      error_ = why;
      return;
    }
    if (!SendAll(fd_.get(), "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")) {
      error_ = "send failed";
      return;
    }
    // The stream lasts the whole test; a reader without a practical deadline.
    reader_ = std::make_unique<Reader>(fd_.get(), Clock::now() + 1h);
    if (!reader_->Head(&status_, &headers_)) {
      error_ = reader_->error();
      return;
    }
    if (status_ != 200) {
      reader_->Body(headers_, &body_);
      return;
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~EventStream() {
    if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
  }

  int status() const { return status_; }
  const std::string& error() const { return error_; }
  std::string header(const std::string& name) const {
    auto it = headers_.find(name);
    return it == headers_.end() ? "" : it->second;
  }

  struct Log {
    std::vector<SseEvent> events;
    int comments = 0;
    bool final_chunk = false;  // the body ended properly
    bool closed = false;       // and then the connection
    bool ended = false;        // the reader has stopped (any of the above, or an error)
    std::string error;
  };
  Log log() {
    MutexLock lock(mu_);
    return log_;
  }
  // Waits until `cond` holds for the log, up to `timeout`.
  bool WaitFor(const std::function<bool(const Log&)>& cond, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    MutexLock lock(mu_);
    while (!cond(log_)) {
      if (!cv_.WaitUntil(lock, deadline) && !cond(log_)) return false;
    }
    return true;
  }

 private:
  void Run() {
    std::string text, event, data;
    bool has_data = false;
    while (true) {
      std::string piece;
      bool last = false;
      if (!reader_->Chunk(&piece, &last)) {
        bool closed = last && reader_->Closed();
        MutexLock lock(mu_);
        log_.final_chunk = last;
        log_.closed = closed;
        log_.ended = true;
        if (!last) log_.error = reader_->error();
        cv_.NotifyAll();
        return;
      }
      text += piece;
      size_t nl;
      while ((nl = text.find('\n')) != std::string::npos) {
        std::string line = text.substr(0, nl);
        text.erase(0, nl + 1);
        MutexLock lock(mu_);
        if (line.empty()) {
          if (!event.empty() || has_data) log_.events.push_back({event.empty() ? "message" : event, data});
          event.clear();
          data.clear();
          has_data = false;
        } else if (line[0] == ':') {
          log_.comments++;
        } else if (line.rfind("event: ", 0) == 0) {
          event = line.substr(7);
        } else if (line.rfind("data: ", 0) == 0) {
          data += (has_data ? "\n" : "") + line.substr(6);
          has_data = true;
        } else {
          log_.error = "unexpected line in the event stream: " + line;
        }
        cv_.NotifyAll();
      }
    }
  }

  Fd fd_;
  std::unique_ptr<Reader> reader_;
  int status_ = 0;
  std::map<std::string, std::string> headers_;
  std::string body_;
  std::string error_;
  std::thread thread_;
  Mutex mu_;
  CondVar cv_;
  Log log_ KG_GUARDED_BY(mu_);
};

// The tasks the `task` events of `log` last showed, by id.
std::map<std::string, json> LatestTasks(const EventStream::Log& log) {
  std::map<std::string, json> out;
  for (const auto& e : log.events) {
    if (e.event != "task") continue;
    json t = json::parse(e.data, nullptr, false);
    if (t.is_object() && t.contains("id")) out[t["id"].get<std::string>()] = t;
  }
  return out;
}

std::string Submit(Node& n, const std::string& text) {
  auto r = n.http().Post("/api/v1/tasks", json{{"text", text}}.dump(), "application/json");
  if (!r || r->status != 202) return "";
  return json::parse(r->body)["id"].get<std::string>();
}

// Verifies GET /api/v1/events: `hello` first, a heartbeat comment while nothing changes,
// then a `task` event for each of 20 tasks submitted while it is open, each followed to
// "done" through the stream alone, and `workers` events; ?task=ID carries that task's events
// only and ?task=unknown is a 404 with a JSON reason; SIGTERM ends each stream with an `end`
// event, the final chunk and a close, and the node exits 0 within its stop bound.
TEST(HttpLoad, EventStreamFollowsTasksAndEndsOnSigterm) {
  testing::TempDir dir;
  constexpr int kStopTimeoutS = 10;
  Node n(dir, {{"KG_HTTP_EVENT_HEARTBEAT_SECONDS", "1"},
               {"KG_STOP_TIMEOUT_SECONDS", std::to_string(kStopTimeoutS)},
               {"KG_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();

  EventStream all(n.port(), "/api/v1/events");
  ASSERT_EQ(all.status(), 200) << all.error();
  EXPECT_EQ(all.header("content-type").rfind("text/event-stream", 0), 0u) << all.header("content-type");
  ASSERT_TRUE(all.WaitFor([](const auto& l) { return !l.events.empty(); }, 10s));
  EventStream::Log first = all.log();
  ASSERT_EQ(first.events[0].event, "hello");
  json hello = json::parse(first.events[0].data, nullptr, false);
  ASSERT_TRUE(hello.is_object()) << first.events[0].data;
  EXPECT_TRUE(hello["task"].is_null());
  EXPECT_TRUE(hello["node"].is_string());
  // No task exists yet: what keeps the stream alive is the heartbeat.
  EXPECT_TRUE(all.WaitFor([](const auto& l) { return l.comments >= 1; }, 10s)) << "no heartbeat comment";
  EXPECT_TRUE(all.WaitFor([](const auto& l) {
    return std::any_of(l.events.begin(), l.events.end(), [](const SseEvent& e) { return e.event == "workers"; });
  }, 10s)) << "no workers event";

  constexpr int kTasks = 20;
  std::vector<std::string> ids;
  ids.push_back(Submit(n, "Person0 Voss works for Helix0 Dynamics. Person0 Voss founded Helix0 Dynamics."));
  ASSERT_NE(ids[0], "");
  EventStream one(n.port(), "/api/v1/events?task=" + ids[0]);
  ASSERT_EQ(one.status(), 200) << one.error();
  ASSERT_TRUE(one.WaitFor([](const auto& l) { return !l.events.empty(); }, 10s));
  ASSERT_EQ(one.log().events[0].event, "hello");
  EXPECT_EQ(json::parse(one.log().events[0].data, nullptr, false)["task"], ids[0]);
  for (int i = 1; i < kTasks; ++i) {
    std::string s = std::to_string(i);
    ids.push_back(Submit(n, "Person" + s + " Voss works for Helix" + s + " Dynamics. Person" + s + " Voss founded Helix" +
                                s + " Dynamics in 2014."));
    ASSERT_NE(ids.back(), "") << "submit " << i;
  }

  auto all_done = [&](const EventStream::Log& l) {
    auto latest = LatestTasks(l);
    for (const auto& id : ids) {
      if (!latest.count(id) || latest[id]["status"] != "done") return false;
    }
    return true;
  };
  ASSERT_TRUE(all.WaitFor(all_done, 60s)) << [&] {
    std::string s;
    for (const auto& [id, t] : LatestTasks(all.log())) s += id + " " + t.value("status", "?") + "\n";
    return s + n.proc().Stderr();
  }();
  EXPECT_TRUE(one.WaitFor([&](const auto& l) {
    auto latest = LatestTasks(l);
    return latest.count(ids[0]) && latest[ids[0]]["status"] == "done";
  }, 10s));

  // What the followed stream carried: that task's events only, though 19 others changed
  // meanwhile; once the task finished, an `end` saying so, and the stream ended by itself.
  ASSERT_TRUE(one.WaitFor([](const auto& l) { return l.ended; }, 10s)) << "a followed task's stream ends when it is done";
  EventStream::Log followed = one.log();
  EXPECT_EQ(followed.error, "");
  ASSERT_GE(followed.events.size(), 3u);
  for (size_t i = 1; i + 1 < followed.events.size(); ++i) {
    EXPECT_EQ(followed.events[i].event, "task") << followed.events[i].data;
    EXPECT_EQ(json::parse(followed.events[i].data, nullptr, false).value("id", ""), ids[0]) << followed.events[i].data;
  }
  EXPECT_EQ(followed.events.back().event, "end");
  json finished = json::parse(followed.events.back().data, nullptr, false);
  EXPECT_EQ(finished.value("reason", ""), "task finished") << followed.events.back().data;
  EXPECT_EQ(finished.value("status", ""), "done") << followed.events.back().data;
  EXPECT_TRUE(followed.final_chunk && followed.closed);
  // Every task event is the task as GET /api/v1/tasks/{id} gives it, the finished one included,
  // but for the LLM ledger (`usage`: a query per task per tick; the task's own page has it).
  json last_task = json::parse(followed.events[followed.events.size() - 2].data, nullptr, false);
  json got = n.Get("/api/v1/tasks/" + ids[0]);
  EXPECT_TRUE(got.contains("usage"));
  EXPECT_FALSE(last_task.contains("usage"));
  for (const auto& [key, value] : got.items()) {
    if (key == "updated_at_ms" || key == "usage") continue;
    EXPECT_EQ(last_task[key], value) << key;
  }
  EXPECT_EQ(all.log().error, "");

  auto unknown = n.http().Get("/api/v1/events?task=unknown");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  json why = json::parse(unknown->body, nullptr, false);
  EXPECT_TRUE(why.is_object() && why["error"].is_string()) << unknown->body;

  ASSERT_TRUE(n.proc().Signal(SIGTERM));
  for (EventStream* s : {&all}) {
    ASSERT_TRUE(s->WaitFor([](const auto& l) { return l.ended; }, std::chrono::seconds(kStopTimeoutS + 10)))
        << "the stream did not end";
    EventStream::Log l = s->log();
    ASSERT_FALSE(l.events.empty());
    EXPECT_EQ(l.events.back().event, "end") << l.events.back().data;
    EXPECT_TRUE(l.final_chunk) << "the body ends with its final chunk: " << l.error;
    EXPECT_TRUE(l.closed) << "then the connection closes";
  }
  int st = n.proc().Wait(std::chrono::seconds(kStopTimeoutS + 10));
  ASSERT_NE(st, -1) << "did not stop within its bound";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << n.proc().Stderr();
}

// ---------------------------------------------------------------------------------------------
// A large export.

// One ~600-byte paragraph with names unique to `i` (as bench/large_doc_bench.cc).
std::string Paragraph(int i) {
  static const char* kFirst[] = {"Mara", "Tomas", "Ingrid", "Amara", "Lena", "Oskar", "Ravi", "Nadia"};
  static const char* kOrg[] = {"Dynamics", "Robotics", "Capital", "Labs", "Industries", "Group", "Bank", "Institute"};
  std::string n = std::to_string(i);
  std::string person = std::string(kFirst[i % 8]) + " Voss" + n;
  std::string org = "Helix" + n + " " + kOrg[i % 8];
  return person + " founded " + org + " in 2014. " + org + " is headquartered in Port Avalon" + n + " City. " +
         person + " works for " + org + " and is its chief executive. The contract was small, but it made the "
         "company known to every logistics buyer on the coast. Engineers from both firms met every week to "
         "review gripper designs, sensor layouts and the safety cases for each new site.\n\n";
}

// Samples a process's VmRSS every few milliseconds on its own thread.
class RssSampler {
 public:
  explicit RssSampler(pid_t pid) : pid_(pid), thread_([this] { Run(); }) {}
  ~RssSampler() { Stop(); }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  long peak_kb() const { return peak_.load(); }
  long low_kb() const { return low_.load(); }
  int samples() const { return samples_.load(); }

 private:
  void Run() {
    while (!stop_.load()) {
      long kb = testing::StatusKb(pid_, "VmRSS");
      if (kb > 0) {
        peak_.store(std::max(peak_.load(), kb));
        low_.store(std::min(low_.load(), kb));
        samples_++;
      }
      std::this_thread::sleep_for(2ms);  // the sampling period
    }
  }
  pid_t pid_;
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_{0}, low_{1L << 40};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

struct Export {
  std::string body;
  std::string content_type;
  std::string error;
  long baseline_kb = 0, noise_kb = 0, peak_kb = 0;
};

// GET /api/v1/graph/export?format=`format` by a client that reads the first `slow_bytes` in
// 4 KiB pieces with a pause after each (so the server must wait for it), then at full speed,
// while the node's RSS is sampled; the baseline is sampled for a second just before.
Export SlowExport(Node& n, const std::string& format, size_t slow_bytes) {
  Export out;
  {
    RssSampler idle(n.proc().pid());
    std::this_thread::sleep_for(1s);  // the baseline's sampling window
    idle.Stop();
    out.baseline_kb = idle.peak_kb();
    out.noise_kb = idle.peak_kb() - idle.low_kb();
  }
  RssSampler during(n.proc().pid());
  std::string why;
  Fd fd = Connect("127.0.0.1", n.port(), &why, 16 * 1024);
  if (!fd.valid()) {
    out.error = why;
    return out;
  }
  SendAll(fd.get(), "GET /api/v1/graph/export?format=" + format +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  Reader r(fd.get(), Clock::now() + 120s);
  r.SlowStart(slow_bytes, 4096, 1ms);
  int status = 0;
  std::map<std::string, std::string> headers;
  if (!r.Head(&status, &headers) || status != 200 || !r.Body(headers, &out.body)) {
    out.error = "status " + std::to_string(status) + ": " + r.error();
  }
  out.content_type = headers["content-type"];
  if (headers["transfer-encoding"] != "chunked") out.error += " (not streamed: no chunked transfer encoding)";
  during.Stop();
  out.peak_kb = during.peak_kb();
  return out;
}

// Verifies the graph export streams in bounded memory: a node whose graph came from a large
// document (text/plain upload) serves GET /api/v1/graph/export in JSON and GraphML to a client
// that reads slowly at first, each complete and valid (every chunk, entity and relation the
// stats count; GraphML well-formed for libexpat), while the node's RSS grows by less than a
// quarter of the export's size.
// A server that buffered the export would grow by at least the export's size; one that streams
// grows by its one-time costs only (about 4 MB in release; under ASan its allocator and shadow
// memory add some 3 MB more, so the bound there is half the export instead of a quarter).
constexpr long kExportGrowthDivisor = kScale == 1 ? 4 : 2;

TEST(HttpLoad, LargeExportStreamsWithFlatMemory) {
  testing::TempDir dir;
  // Big enough that the export (about 4x the document) dwarfs the node's one-time costs of
  // serving one (SQLite's page cache, a thread's arena: about 4 MB).
  const size_t kDocBytes = kScale == 1 ? 8'000'000 : 6'000'000;
  std::map<std::string, std::string> env = {
      {"KG_MAX_BODY_MB", "16"}, {"KG_WORKERS_PER_PROVIDER", "2"}, {"KG_LOG_LEVEL", "warn"}};
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine keeps every freed block (256 MB by default): RSS would measure it, not the server.
  const char* asan = std::getenv("ASAN_OPTIONS");
  env["ASAN_OPTIONS"] = std::string(asan ? asan : "") + ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64";
#endif
  Node n(dir, env);
  ASSERT_TRUE(n.ready()) << n.proc().Stderr();
  std::string doc;
  for (int i = 0; doc.size() < kDocBytes; ++i) doc += Paragraph(i);
  n.http().set_read_timeout(120);
  n.http().set_write_timeout(120);
  auto sub = n.http().Post("/api/v1/tasks?title=large", doc, "text/plain");
  ASSERT_TRUE(sub);
  ASSERT_EQ(sub->status, 202) << sub->body;
  std::string id = json::parse(sub->body)["id"];
  doc.clear();
  doc.shrink_to_fit();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        json t = n.Get("/api/v1/tasks/" + id);
        return t.is_object() && t["status"] == "done";
      },
      240s))
      << n.Get("/api/v1/tasks/" + id).dump() << n.proc().Stderr();
  json stats = n.Get("/api/v1/graph/stats");
  ASSERT_TRUE(stats.is_object());
  ASSERT_GE(stats["relations"].get<int64_t>(), 10000 / kScale) << stats.dump();

  Export js = SlowExport(n, "json", 2u << 20);
  ASSERT_EQ(js.error, "");
  EXPECT_EQ(js.content_type.rfind("application/json", 0), 0u) << js.content_type;
  json graph = json::parse(js.body, nullptr, false);
  ASSERT_FALSE(graph.is_discarded()) << "the JSON export does not parse (" << js.body.size() << " bytes)";
  EXPECT_EQ(graph["documents"].size(), stats["documents"].get<size_t>());
  EXPECT_EQ(graph["chunks"].size(), stats["chunks"].get<size_t>());
  EXPECT_EQ(graph["entities"].size(), stats["entities"].get<size_t>());
  EXPECT_EQ(graph["relations"].size(), stats["relations"].get<size_t>());
  const size_t mentions = graph["mentions"].size();
  graph = json();
  const long json_kb = static_cast<long>(js.body.size() / 1024);
  js.body = std::string();
  EXPECT_LT(js.peak_kb - js.baseline_kb, json_kb / kExportGrowthDivisor)
      << "RSS grew by " << js.peak_kb - js.baseline_kb << " kB serving an export of " << json_kb << " kB";

  Export gml = SlowExport(n, "graphml", 2u << 20);
  ASSERT_EQ(gml.error, "");
  EXPECT_EQ(gml.content_type.rfind("application/graphml+xml", 0), 0u) << gml.content_type;
  struct Counts {
    size_t nodes = 0, edges = 0;
  } counted;
  XML_Parser p = XML_ParserCreate("UTF-8");
  XML_SetUserData(p, &counted);
  XML_SetStartElementHandler(p, [](void* ud, const XML_Char* name, const XML_Char**) {
    auto* c = static_cast<Counts*>(ud);
    if (std::strcmp(name, "node") == 0) c->nodes++;
    if (std::strcmp(name, "edge") == 0) c->edges++;
  });
  bool parsed = XML_Parse(p, gml.body.data(), static_cast<int>(gml.body.size()), 1) != XML_STATUS_ERROR;
  std::string xml_error = parsed ? "" : XML_ErrorString(XML_GetErrorCode(p));
  XML_ParserFree(p);
  ASSERT_TRUE(parsed) << xml_error;
  const size_t chunks = stats["chunks"].get<size_t>();
  EXPECT_EQ(counted.nodes, stats["documents"].get<size_t>() + chunks + stats["entities"].get<size_t>());
  EXPECT_EQ(counted.edges, chunks + mentions + stats["relations"].get<size_t>());
  const long gml_kb = static_cast<long>(gml.body.size() / 1024);
  EXPECT_LT(gml.peak_kb - gml.baseline_kb, gml_kb / kExportGrowthDivisor)
      << "RSS grew by " << gml.peak_kb - gml.baseline_kb << " kB serving an export of " << gml_kb << " kB";

  std::cout << "graph: " << stats.dump() << "\n"
            << "json export " << json_kb << " kB: node RSS " << js.baseline_kb << " kB before (noise " << js.noise_kb
            << " kB), peak " << js.peak_kb << " kB during (+" << js.peak_kb - js.baseline_kb << " kB)\n"
            << "graphml export " << gml_kb << " kB: node RSS " << gml.baseline_kb << " kB before (noise "
            << gml.noise_kb << " kB), peak " << gml.peak_kb << " kB during (+" << gml.peak_kb - gml.baseline_kb
            << " kB)\n";
}

}  // namespace
}  // namespace kg
