// HTTP load generator for the API server benchmarks (bench/http_bench.py): one thread, raw
// non-blocking sockets and epoll, so that it is not the bottleneck at ~20k requests/s on two
// cores. Every subcommand is bounded in time and in connections and prints one JSON object on
// stdout.
//
//   http_load rate --port P --clients N --seconds S [--method GET|POST] [--path /healthz]
//                  [--body-file F] [--content-type T] [--header 'Name: value']... [--timeout S]
//     N keep-alive clients, each connected once, send a request, read the whole response
//     (Content-Length, chunked or until close), and repeat. A client whose connection is closed
//     (by the server, or a request past --timeout) reconnects, counted.
//
//   http_load slow --port P --stall N --idle K --trickle J --probe-seconds S
//                  [--probe-path /healthz]... [--source-from 127.0.0.2] [--source-count 50]
//                  [--setup-seconds 3] [--no-reopen] [--header 'Name: value']...
//     Probes (a new connection from 127.0.0.1 every 100 ms per probe path, 10 s timeout) first
//     against the idle server, then while slow connections hold: N that sent half a request
//     header and stall, K that made one keep-alive GET /healthz and stay idle, J that POST a
//     1,000,000-byte text/plain body one byte a second. Slow connections bind to source addresses
//     rotated over --source-from .. +source-count-1 (all of 127/8 is loopback), so a cap per
//     client address does not refuse them. A slow connection the server closes is reopened (an
//     attacker would), unless --no-reopen. Reports probe latency and, per class of slow
//     connection, how many the server closed and how long after their last byte.
//
//   http_load idle --port P --connections N [--source-count 50] [--hold-seconds 3]
//                  [--setup-seconds 10]
//     N connections that each complete one keep-alive GET /healthz and then stay open. Once set
//     up, it writes "http_load: holding" to stderr (the harness then reads the server's RSS),
//     holds --hold-seconds and reports how many are still open.
//
// Exit codes: 0 done; 1 the server could not be reached at all; 2 usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr int kExitUnreachable = 1;
constexpr int kExitUsage = 2;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
int64_t Micros(Clock::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }

// An owned descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// p-th percentile (0 < p <= 1) of `v` by the nearest-rank method; `v` is sorted in place.
template <typename T>
T Percentile(std::vector<T>& v, double p) {
  if (v.empty()) return T{};
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// ---------------------------------------------------------------------------------------------
// Incremental HTTP/1.1 response parser: status line and headers, then a body framed by
// Content-Length, chunked transfer coding, or the end of the connection. 1xx responses are
// skipped. Feed() returns the bytes it consumed; it stops at the end of one response.
class ResponseParser {
 public:
  enum class State { kHead, kLength, kChunkSize, kChunkData, kChunkDataEnd, kTrailer, kUntilClose, kDone, kError };

  void Reset() { *this = ResponseParser(); }
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  bool started() const { return started_; }
  int status() const { return status_; }
  // The server said it closes the connection after this response.
  bool closing() const { return closing_; }
  // A body that ends with the connection: complete once the peer closes.
  bool until_close() const { return state_ == State::kUntilClose; }
  void FinishAtClose() {
    if (state_ == State::kUntilClose) state_ = State::kDone;
  }

  size_t Feed(const char* p, size_t n) {
    size_t used = 0;
    if (n > 0) started_ = true;
    while (used < n && state_ != State::kDone && state_ != State::kError) {
      switch (state_) {
        case State::kHead: {
          size_t before = line_.size();
          line_.append(p + used, n - used);
          size_t end = line_.find("\r\n\r\n");
          if (end == std::string::npos) {
            used = n;
            if (line_.size() > kMaxHead) state_ = State::kError;
            break;
          }
          used += end + 4 - before;
          ParseHead(line_.substr(0, end));
          line_.clear();
          break;
        }
        case State::kLength: {
          size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - used));
          used += take;
          remaining_ -= take;
          if (remaining_ == 0) state_ = State::kDone;
          break;
        }
        case State::kChunkSize:
        case State::kChunkDataEnd:
        case State::kTrailer: {
          const char* nl = static_cast<const char*>(std::memchr(p + used, '\n', n - used));
          size_t take = nl ? static_cast<size_t>(nl - (p + used)) + 1 : n - used;
          line_.append(p + used, take);
          used += take;
          if (!nl) {
            if (line_.size() > kMaxHead) state_ = State::kError;
            break;
          }
          std::string line = line_;
          line_.clear();
          if (!line.empty() && line.back() == '\n') line.pop_back();
          if (!line.empty() && line.back() == '\r') line.pop_back();
          if (state_ == State::kChunkDataEnd) {
            state_ = line.empty() ? State::kChunkSize : State::kError;
          } else if (state_ == State::kTrailer) {
            if (line.empty()) state_ = State::kDone;
          } else {
            char* endp = nullptr;
            errno = 0;
            uint64_t size = std::strtoull(line.c_str(), &endp, 16);
            if (endp == line.c_str() || errno != 0) {
              state_ = State::kError;
            } else if (size == 0) {
              state_ = State::kTrailer;
            } else {
              remaining_ = size;
              state_ = State::kChunkData;
            }
          }
          break;
        }
        case State::kChunkData: {
          size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - used));
          used += take;
          remaining_ -= take;
          if (remaining_ == 0) state_ = State::kChunkDataEnd;
          break;
        }
        case State::kUntilClose:
          used = n;
          break;
        case State::kDone:
        case State::kError:
          break;
      }
    }
    return used;
  }

 private:
  static constexpr size_t kMaxHead = 64 * 1024;

  static std::string Lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  }

  void ParseHead(const std::string& head) {
    // "HTTP/1.1 200 OK"
    if (head.compare(0, 5, "HTTP/") != 0 || head.size() < 12) {
      state_ = State::kError;
      return;
    }
    status_ = std::atoi(head.c_str() + 9);
    bool http10 = head.compare(0, 8, "HTTP/1.0") == 0;
    std::optional<uint64_t> length;
    bool chunked = false;
    closing_ = http10;
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      size_t start = pos + 2;
      size_t end = head.find("\r\n", start);
      std::string_view line(head.data() + start, (end == std::string::npos ? head.size() : end) - start);
      pos = end;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name = Lower(line.substr(0, colon));
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      if (name == "content-length") {
        length = std::strtoull(std::string(value).c_str(), nullptr, 10);
      } else if (name == "transfer-encoding") {
        chunked = Lower(value).find("chunked") != std::string::npos;
      } else if (name == "connection") {
        std::string v = Lower(value);
        if (v.find("close") != std::string::npos) closing_ = true;
        if (v.find("keep-alive") != std::string::npos) closing_ = false;
      }
    }
    if (status_ >= 100 && status_ < 200) {  // an interim answer: the real one follows
      status_ = 0;
      closing_ = false;
      state_ = State::kHead;
      return;
    }
    if (status_ == 204 || status_ == 304) {
      state_ = State::kDone;
    } else if (chunked) {
      state_ = State::kChunkSize;
    } else if (length) {
      remaining_ = *length;
      state_ = remaining_ == 0 ? State::kDone : State::kLength;
    } else {
      closing_ = true;
      state_ = State::kUntilClose;
    }
  }

  State state_ = State::kHead;
  std::string line_;
  uint64_t remaining_ = 0;
  int status_ = 0;
  bool closing_ = false;
  bool started_ = false;
};

// ---------------------------------------------------------------------------------------------
// One client connection and the event loop that drives them.

struct Conn;

// What a mode does when a connection's events arrive. Each is called at most once per event.
class Handler {
 public:
  virtual ~Handler() = default;
  virtual void OnConnected(Conn& c) = 0;
  // A whole response arrived.
  virtual void OnResponse(Conn& c) = 0;
  // The connection is gone: the connect failed (`was_connected` false), the peer closed or
  // reset it, or a send failed. `error` is the errno, 0 for an orderly close by the peer. The
  // descriptor is already closed. Not called for Loop::Close().
  virtual void OnClosed(Conn& c, bool was_connected, int error) = 0;
};

struct Conn {
  Fd fd;
  int kind = 0;    // the mode's own class of connection
  size_t id = 0;   // the mode's own index
  bool registered = false;  // in the epoll set, counted by Loop::open()
  bool connected = false;
  bool want_write = false;
  bool in_flight = false;  // a request was sent and its answer has not arrived
  std::string out;  // bytes still to send from out_off
  size_t out_off = 0;
  ResponseParser parser;
  Clock::time_point opened{};     // connect() started
  Clock::time_point sent{};       // the request's first byte went out
  Clock::time_point last_sent{};  // the last byte that went out
  Clock::time_point answered{};   // the last whole response arrived
  Clock::time_point deadline = Clock::time_point::max();
  int status = 0;  // the last response's status, 0 for none
};

// A source address for connect(): 127.0.0.1 by default.
struct Source {
  in_addr addr{};
};

class Loop {
 public:
  explicit Loop(Handler& h) : h_(h), ep_(epoll_create1(EPOLL_CLOEXEC)) {
    if (ep_.get() < 0) {
      std::perror("epoll_create1");
      std::exit(kExitUnreachable);
    }
  }

  // Starts a non-blocking connect of `c` to 127.0.0.1:port from `src`. On failure the
  // connection is closed and the handler told at once.
  void Connect(Conn& c, int port, const Source* src) {
    c.fd.reset(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    c.connected = false;
    c.parser.Reset();
    c.opened = c.last_sent = Clock::now();
    c.in_flight = false;
    if (c.fd.get() < 0) return Fail(c, errno);
    int one = 1;
    setsockopt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src) {
      // Pick the port at connect(), by the whole 4-tuple: thousands of connections per source.
      setsockopt(c.fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr = src->addr;
      if (bind(c.fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Fail(c, errno);
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c.fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS) {
      return Fail(c, errno);
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.ptr = &c;
    c.want_write = true;
    if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) return Fail(c, errno);
    c.registered = true;
    ++open_;
  }

  // Queues `bytes` on `c` and sends what the socket takes now.
  void Send(Conn& c, std::string_view bytes) {
    if (c.out_off == c.out.size()) {
      c.out.assign(bytes);
      c.out_off = 0;
    } else {
      c.out.append(bytes);
    }
    if (c.connected) Flush(c);
  }

  // Closes `c` from this side (no handler call).
  void Close(Conn& c) { Drop(c); }

  size_t open() const { return open_; }

  // Waits up to `timeout` for events and dispatches them.
  void RunOnce(Clock::duration timeout) {
    int ms = static_cast<int>(std::clamp<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout + std::chrono::microseconds(999)).count(), 0,
        1000));
    int n = epoll_wait(ep_.get(), events_, kEvents, ms);
    for (int i = 0; i < n; ++i) {
      Conn& c = *static_cast<Conn*>(events_[i].data.ptr);
      if (c.fd.get() < 0) continue;
      uint32_t e = events_[i].events;
      if (!c.connected && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          Fail(c, err);
          continue;
        }
        c.connected = true;
        h_.OnConnected(c);
        if (c.fd.get() < 0) continue;
        Flush(c);
        if (c.fd.get() < 0) continue;
      } else if (c.connected && (e & EPOLLOUT)) {
        Flush(c);
        if (c.fd.get() < 0) continue;
      }
      if (c.connected && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) Read(c);
    }
  }

 private:
  static constexpr int kEvents = 256;

  // Closes `c` and takes it out of the epoll set and the count.
  void Drop(Conn& c) {
    if (c.registered) {
      epoll_ctl(ep_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
      c.registered = false;
      --open_;
    }
    c.fd.reset();
    c.connected = false;
    c.want_write = false;
    c.out.clear();
    c.out_off = 0;
  }

  void Fail(Conn& c, int error) {
    bool was_connected = c.connected;
    Drop(c);
    h_.OnClosed(c, was_connected, error);
  }

  void Flush(Conn& c) {
    while (c.out_off < c.out.size()) {
      ssize_t n = send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (n > 0) {
        if (c.out_off == 0) c.sent = Clock::now();
        c.out_off += static_cast<size_t>(n);
        c.last_sent = Clock::now();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        SetWrite(c, true);
        return;
      }
      return Fail(c, errno);
    }
    c.out.clear();
    c.out_off = 0;
    SetWrite(c, false);
  }

  void SetWrite(Conn& c, bool on) {
    if (c.want_write == on) return;
    c.want_write = on;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
    ev.data.ptr = &c;
    epoll_ctl(ep_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
  }

  void Read(Conn& c) {
    while (c.fd.get() >= 0) {
      ssize_t n = recv(c.fd.get(), buf_, sizeof buf_, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {
        int err = n < 0 ? errno : 0;
        if (c.parser.until_close()) {
          c.parser.FinishAtClose();
          c.status = c.parser.status();
          c.in_flight = false;
          c.answered = Clock::now();
          h_.OnResponse(c);
          if (c.fd.get() < 0) return;
        }
        return Fail(c, err);
      }
      size_t off = 0;
      while (off < static_cast<size_t>(n) && c.fd.get() >= 0) {
        off += c.parser.Feed(buf_ + off, static_cast<size_t>(n) - off);
        if (c.parser.failed()) return Fail(c, EPROTO);
        if (!c.parser.done()) break;
        c.status = c.parser.status();
        c.in_flight = false;
        c.answered = Clock::now();
        bool closing = c.parser.closing();
        h_.OnResponse(c);  // may send the next request, reconnect or close
        if (c.fd.get() < 0) return;
        if (closing) {
          return Fail(c, 0);  // the server said it closes: treat it as closed now
        }
        // A response the handler did not reset the parser for (a stray answer): expect another.
        if (c.parser.done()) c.parser.Reset();
      }
    }
  }

  Handler& h_;
  Fd ep_;
  size_t open_ = 0;
  epoll_event events_[kEvents]{};
  char buf_[64 * 1024]{};
};

// ---------------------------------------------------------------------------------------------
// Arguments.

struct Args {
  std::string mode;
  std::map<std::string, std::vector<std::string>> values;

  bool Has(const std::string& k) const { return values.count(k) > 0; }
  std::string Get(const std::string& k, const std::string& def) const {
    auto it = values.find(k);
    return it == values.end() ? def : it->second.back();
  }
  std::vector<std::string> All(const std::string& k) const {
    auto it = values.find(k);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
};

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "http_load: %s\n"
               "usage: http_load rate --port P --clients N --seconds S [--method M] [--path P] [--body-file F]\n"
               "                      [--content-type T] [--header 'N: v']... [--timeout S]\n"
               "       http_load slow --port P --stall N --idle K --trickle J --probe-seconds S\n"
               "                      [--probe-path P]... [--source-from A] [--source-count C]\n"
               "                      [--setup-seconds S] [--no-reopen] [--header 'N: v']...\n"
               "       http_load idle --port P --connections N [--source-count C] [--source-from A]\n"
               "                      [--hold-seconds S] [--setup-seconds S]\n",
               why.c_str());
  std::exit(kExitUsage);
}

Args Parse(int argc, char** argv) {
  static const std::map<std::string, bool> kTakesValue = {
      {"--port", true},          {"--clients", true},      {"--seconds", true},      {"--method", true},
      {"--path", true},          {"--body-file", true},    {"--content-type", true}, {"--header", true},
      {"--timeout", true},       {"--stall", true},        {"--idle", true},         {"--trickle", true},
      {"--probe-seconds", true}, {"--probe-path", true},   {"--source-from", true},  {"--source-count", true},
      {"--setup-seconds", true}, {"--no-reopen", false},   {"--connections", true},  {"--hold-seconds", true},
  };
  if (argc < 2) Usage("a subcommand is needed: rate, slow or idle");
  Args a;
  a.mode = argv[1];
  if (a.mode != "rate" && a.mode != "slow" && a.mode != "idle") Usage("unknown subcommand '" + a.mode + "'");
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    auto it = kTakesValue.find(k);
    if (it == kTakesValue.end()) Usage("unknown option '" + k + "'");
    if (!it->second) {
      a.values[k].push_back("1");
      continue;
    }
    if (i + 1 >= argc) Usage(k + " needs a value");
    a.values[k].push_back(argv[++i]);
  }
  return a;
}

// A whole number in [lo, hi] for option `k`, or a usage error naming it.
long Number(const Args& a, const std::string& k, long def, long lo, long hi) {
  if (!a.Has(k)) {
    if (def < lo) Usage(k + " is required");
    return def;
  }
  std::string v = a.Get(k, "");
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || n < lo || n > hi) {
    Usage(k + " '" + v + "' is not a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return n;
}

std::vector<std::string> Headers(const Args& a) {
  std::vector<std::string> out;
  for (const auto& h : a.All("--header")) {
    if (h.find(':') == std::string::npos || h.find('\r') != std::string::npos || h.find('\n') != std::string::npos) {
      Usage("--header '" + h + "' is not 'Name: value'");
    }
    out.push_back(h);
  }
  return out;
}

// Source addresses `from`, from+1, ... (`count` of them), all in 127/8.
std::vector<Source> Sources(const Args& a) {
  std::string from = a.Get("--source-from", "127.0.0.2");
  long count = Number(a, "--source-count", 50, 1, 65536);
  in_addr base{};
  if (inet_pton(AF_INET, from.c_str(), &base) != 1 || (ntohl(base.s_addr) >> 24) != 127) {
    Usage("--source-from '" + from + "' is not an address in 127.0.0.0/8");
  }
  uint32_t first = ntohl(base.s_addr);
  if (first + static_cast<uint32_t>(count) - 1 > 0x7fffffffu) Usage("--source-count runs past 127.255.255.255");
  std::vector<Source> out(static_cast<size_t>(count));
  for (size_t i = 0; i < out.size(); ++i) out[i].addr.s_addr = htonl(first + static_cast<uint32_t>(i));
  return out;
}

std::string Request(const std::string& method, const std::string& path, int port,
                    const std::vector<std::string>& headers, const std::string& content_type,
                    const std::string* body, bool close) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  if (body) {
    if (!content_type.empty()) r += "Content-Type: " + content_type + "\r\n";
    r += "Content-Length: " + std::to_string(body->size()) + "\r\n";
  }
  if (close) r += "Connection: close\r\n";
  r += "\r\n";
  if (body) r += *body;
  return r;
}

void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) std::perror("setrlimit RLIMIT_NOFILE");
  }
}

long FileLimit() {
  rlimit rl{};
  return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? static_cast<long>(rl.rlim_cur) : 1024;
}

Json LatencyUs(std::vector<int64_t> v) {
  if (v.empty()) return Json{{"p50", nullptr}, {"p90", nullptr}, {"p99", nullptr}, {"max", nullptr}};
  return Json{{"p50", Percentile(v, 0.50)},
              {"p90", Percentile(v, 0.90)},
              {"p99", Percentile(v, 0.99)},
              {"max", v.back()}};
}

std::string ErrName(int err) { return err == 0 ? "closed" : std::string(strerrordesc_np(err)); }

// ---------------------------------------------------------------------------------------------
// rate

class RateMode : public Handler {
 public:
  RateMode(int port, std::string request, size_t clients, Clock::duration timeout)
      : port_(port), request_(std::move(request)), timeout_(timeout), loop_(*this), conns_(clients) {
    for (size_t i = 0; i < conns_.size(); ++i) conns_[i].id = i;
  }

  int Run(Clock::duration length) {
    start_ = Clock::now();
    for (auto& c : conns_) Open(c);
    end_ = start_ + length;
    auto next_check = start_ + std::chrono::milliseconds(100);
    while (true) {
      auto now = Clock::now();
      if (now >= end_) break;
      if (now >= next_check) {
        for (auto& c : conns_) {
          if (c.fd.get() >= 0 && now > c.deadline) {
            ++timeouts_;
            loop_.Close(c);
            Reopen(c);
          }
        }
        next_check = now + std::chrono::milliseconds(100);
      }
      auto wake = std::min(end_, next_check);
      if (!retry_.empty()) wake = std::min(wake, retry_.begin()->first);
      loop_.RunOnce(wake - now);
      // Reconnects happen here, outside the loop's dispatch; one after a failed connect waits
      // kConnectRetry, so a refusing server does not turn this into a busy loop.
      now = Clock::now();
      while (!retry_.empty() && retry_.begin()->first <= now) {
        Reopen(conns_[retry_.begin()->second]);
        retry_.erase(retry_.begin());
      }
    }
    double secs = Seconds(Clock::now() - start_);
    Json status = Json::object();
    for (const auto& [code, n] : statuses_) status[std::to_string(code)] = n;
    Json errors = Json::object();
    for (const auto& [name, n] : errors_) errors[name] = n;
    long long error_total = timeouts_;
    for (const auto& [name, n] : errors_) error_total += n;
    Json out{{"mode", "rate"},
             {"clients", conns_.size()},
             {"seconds", secs},
             {"requests", latencies_.size()},
             {"rps", static_cast<double>(latencies_.size()) / secs},
             {"errors", error_total},
             {"error_kinds", errors},
             {"timeouts", timeouts_},
             {"connects", connects_},
             {"reconnects", connects_ - static_cast<long long>(conns_.size())},
             {"connected_ever", connected_ever_},
             {"status", status},
             {"latency_us", LatencyUs(std::move(latencies_))}};
    std::printf("%s\n", out.dump().c_str());
    for (auto& c : conns_) loop_.Close(c);
    return connected_ever_ == 0 ? kExitUnreachable : 0;
  }

  void OnConnected(Conn& c) override {
    if (c.kind == 0) {
      c.kind = 1;  // this client connected at least once
      ++connected_ever_;
    }
    SendRequest(c);
  }

  void OnResponse(Conn& c) override {
    auto now = Clock::now();
    if (now <= end_) {
      latencies_.push_back(Micros(now - c.sent));
      ++statuses_[c.status];
    }
    bool closing = c.parser.closing();
    c.parser.Reset();
    if (!closing && now < end_) SendRequest(c);  // nothing is sent that the window cannot count
    // else: the loop sees the close and OnClosed reconnects.
  }

  void OnClosed(Conn& c, bool was_connected, int error) override {
    // A close between requests (after an answer that announced it, or a keep-alive timeout)
    // is the server's connection policy, not an error; one that loses a request or a connect
    // that fails is.
    if (!was_connected) ++errors_["connect: " + ErrName(error)];
    else if (c.in_flight) ++errors_[ErrName(error)];
    auto now = Clock::now();
    if (now < end_) retry_.emplace(was_connected ? now : now + kConnectRetry, c.id);
  }

 private:
  void Open(Conn& c) {
    ++connects_;
    c.deadline = Clock::now() + timeout_;
    loop_.Connect(c, port_, nullptr);
  }
  void Reopen(Conn& c) {
    if (c.fd.get() >= 0 || Clock::now() >= end_) return;
    Open(c);
  }
  void SendRequest(Conn& c) {
    c.parser.Reset();
    c.deadline = Clock::now() + timeout_;
    c.sent = Clock::now();
    c.in_flight = true;
    loop_.Send(c, request_);
  }

  int port_;
  std::string request_;
  Clock::duration timeout_;
  Loop loop_;
  std::vector<Conn> conns_;
  static constexpr auto kConnectRetry = std::chrono::milliseconds(10);
  std::multimap<Clock::time_point, size_t> retry_;  // when -> client to reconnect
  Clock::time_point start_{}, end_{};
  std::vector<int64_t> latencies_;
  std::map<int, long long> statuses_;
  std::map<std::string, long long> errors_;
  long long timeouts_ = 0, connects_ = 0, connected_ever_ = 0;
};

// ---------------------------------------------------------------------------------------------
// slow

enum SlowKind { kProbe = 0, kStall = 1, kIdle = 2, kTrickle = 3 };
const char* const kKindName[] = {"probe", "stall", "idle", "trickle"};

constexpr auto kProbeEvery = std::chrono::milliseconds(100);
constexpr auto kProbeTimeout = std::chrono::seconds(10);
constexpr size_t kTrickleLength = 1000000;

struct ProbeStats {
  long long count = 0, failures = 0, timeouts = 0;
  std::map<int, long long> status;
  std::map<std::string, long long> failure_kinds;
  std::vector<int64_t> latency_us;  // answered probes; a timed-out one counts as the timeout

  Json ToJson() const {
    std::vector<int64_t> v = latency_us;
    Json st = Json::object();
    for (const auto& [code, n] : status) st[std::to_string(code)] = n;
    Json fk = Json::object();
    for (const auto& [k, n] : failure_kinds) fk[k] = n;
    Json out{{"count", count}, {"failures", failures}, {"timeouts", timeouts}, {"status", st}, {"failure_kinds", fk}};
    if (v.empty()) {
      out["p50_ms"] = out["p99_ms"] = out["max_ms"] = nullptr;
    } else {
      out["p50_ms"] = static_cast<double>(Percentile(v, 0.50)) / 1000.0;
      out["p99_ms"] = static_cast<double>(Percentile(v, 0.99)) / 1000.0;
      out["max_ms"] = static_cast<double>(v.back()) / 1000.0;
    }
    return out;
  }
};

struct ClassStats {
  long long target = 0, connects = 0, connected = 0, connect_failed = 0, answered = 0;
  long long closed_by_server = 0;
  std::vector<double> closed_after_s;  // from the connection's last byte to the server's close
  std::map<int, long long> status;     // answers the server sent on such connections
  std::map<std::string, long long> close_kinds;

  Json ToJson(size_t open_now) const {
    std::vector<double> v = closed_after_s;
    Json st = Json::object();
    for (const auto& [code, n] : status) st[std::to_string(code)] = n;
    Json ck = Json::object();
    for (const auto& [k, n] : close_kinds) ck[k] = n;
    return Json{{"target", target},
                {"connects", connects},
                {"connected", connected},
                {"connect_failed", connect_failed},
                {"answered", answered},
                {"status", st},
                {"closed_by_server", closed_by_server},
                {"close_kinds", ck},
                {"closed_after_s_median", v.empty() ? Json(nullptr) : Json(Percentile(v, 0.5))},
                {"closed_after_s_max", v.empty() ? Json(nullptr) : Json(v.back())},
                {"open_at_end", open_now}};
  }
};

class SlowMode : public Handler {
 public:
  SlowMode(int port, std::vector<std::string> probe_paths, std::vector<std::string> headers,
           std::vector<Source> sources, bool reopen)
      : port_(port),
        paths_(std::move(probe_paths)),
        headers_(std::move(headers)),
        sources_(std::move(sources)),
        reopen_(reopen),
        loop_(*this) {}

  int Run(size_t stall, size_t idle, size_t trickle, Clock::duration probe_len, Clock::duration setup_len) {
    // 1. The idle server.
    std::vector<ProbeStats> baseline = Probe(probe_len);
    // 2. The slow load: connect everything, then give it `setup_len` to be in place.
    load_.reserve(stall + idle + trickle);
    auto add = [&](SlowKind k, size_t n) {
      classes_[k].target = static_cast<long long>(n);
      for (size_t i = 0; i < n; ++i) {
        auto c = std::make_unique<Conn>();
        c->kind = k;
        c->id = load_.size();
        load_.push_back(std::move(c));
      }
    };
    add(kStall, stall);
    add(kIdle, idle);
    add(kTrickle, trickle);
    loading_ = true;
    auto setup_start = Clock::now();
    for (auto& c : load_) OpenSlow(*c);
    auto setup_end = setup_start + setup_len;
    while (Clock::now() < setup_end && !LoadInPlace()) Pump(setup_end);
    double setup_secs = Seconds(Clock::now() - setup_start);
    Json in_place{{"seconds", setup_secs}, {"complete", LoadInPlace()}};
    for (int k = kStall; k <= kTrickle; ++k) {
      in_place[kKindName[k]] = Json{{"connected", classes_[k].connected}, {"answered", classes_[k].answered}};
    }
    // 3. Probes while the load holds.
    std::vector<ProbeStats> loaded = Probe(probe_len);
    loading_ = false;
    std::vector<size_t> open_now(4, 0);
    for (auto& c : load_) {
      if (c->fd.get() >= 0) ++open_now[static_cast<size_t>(c->kind)];
      loop_.Close(*c);
    }

    Json out{{"mode", "slow"},
             {"probe_seconds", Seconds(probe_len)},
             {"probe_every_ms", 100},
             {"probe_timeout_s", 10},
             {"reopen", reopen_},
             {"source_addresses", sources_.size()},
             {"load_in_place", in_place}};
    Json base = Json::object(), load = Json::object(), classes = Json::object();
    for (size_t i = 0; i < paths_.size(); ++i) {
      base[paths_[i]] = baseline[i].ToJson();
      load[paths_[i]] = loaded[i].ToJson();
    }
    for (int k = kStall; k <= kTrickle; ++k) classes[kKindName[k]] = classes_[k].ToJson(open_now[k]);
    out["idle_server"] = base;
    out["under_load"] = load;
    out["slow_connections"] = classes;
    std::printf("%s\n", out.dump().c_str());
    long long answered = 0;
    for (const auto& p : baseline) answered += static_cast<long long>(p.latency_us.size()) - p.timeouts;
    return answered == 0 ? kExitUnreachable : 0;
  }

  void OnConnected(Conn& c) override {
    if (c.kind == kProbe) {
      loop_.Send(c, Request("GET", paths_[c.id], port_, headers_, "", nullptr, true));
      return;
    }
    ClassStats& s = classes_[c.kind];
    ++s.connected;
    if (c.kind == kStall) {
      loop_.Send(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Sl");
    } else if (c.kind == kIdle) {
      loop_.Send(c, Request("GET", "/healthz", port_, headers_, "", nullptr, false));
    } else {
      std::string head = "POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) + "\r\n";
      for (const auto& h : headers_) head += h + "\r\n";
      head += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(kTrickleLength) + "\r\n\r\n";
      loop_.Send(c, head);
      trickled_[c.id] = 0;
    }
  }

  void OnResponse(Conn& c) override {
    if (c.kind == kProbe) {
      ProbeStats& p = (*stats_)[c.id];
      p.latency_us.push_back(Micros(Clock::now() - c.opened));
      ++p.status[c.status];
      c.deadline = Clock::time_point::max();
      c.kind = -1;  // settled: its close is not a failure
      loop_.Close(c);
      return;
    }
    ClassStats& s = classes_[c.kind];
    ++s.status[c.status];
    if (c.kind == kIdle) ++s.answered;
    c.parser.Reset();
  }

  void OnClosed(Conn& c, bool was_connected, int error) override {
    if (c.kind == kProbe) {
      ProbeStats& p = (*stats_)[c.id];
      ++p.failures;
      ++p.failure_kinds[(was_connected ? "" : "connect: ") + ErrName(error)];
      c.kind = -1;
      return;
    }
    if (c.kind < 0) return;
    ClassStats& s = classes_[c.kind];
    if (!was_connected) {
      ++s.connect_failed;
      ++s.close_kinds["connect: " + ErrName(error)];
    } else {
      // Since the connection's last byte: for an idle one its answer, else what we sent.
      auto last = c.kind == kIdle && c.answered > c.last_sent ? c.answered : c.last_sent;
      ++s.closed_by_server;
      s.closed_after_s.push_back(Seconds(Clock::now() - last));
      ++s.close_kinds[ErrName(error)];
    }
    trickled_.erase(c.id);
    if (loading_ && reopen_) reopen_queue_.push_back(c.id);
  }

 private:
  void OpenSlow(Conn& c) {
    ++classes_[c.kind].connects;
    const Source& src = sources_[next_source_++ % sources_.size()];
    loop_.Connect(c, port_, &src);
  }

  bool LoadInPlace() const {
    for (const auto& c : load_) {
      if (c->fd.get() < 0 || !c->connected || !c->out.empty()) return false;
      if (c->kind == kIdle && c->status == 0) return false;
    }
    return true;
  }

  // One round of the loop until `until` at the latest, with the timers: a byte a second to each
  // trickling connection, reopening closed slow connections.
  void Pump(Clock::time_point until) {
    auto now = Clock::now();
    if (now >= next_trickle_) {
      for (auto it = trickled_.begin(); it != trickled_.end();) {
        Conn& c = *load_[it->first];
        if (c.fd.get() < 0 || !c.connected || !c.out.empty()) {
          ++it;
          continue;
        }
        ++it->second;
        bool last = it->second >= kTrickleLength;
        if (last) it = trickled_.erase(it);
        else ++it;
        loop_.Send(c, "x");  // may close c and erase from trickled_: the iterator moved first
      }
      next_trickle_ = now + std::chrono::seconds(1);
    }
    loop_.RunOnce(std::min(until, next_trickle_) - now);
    std::vector<size_t> again;
    again.swap(reopen_queue_);
    for (size_t id : again) {
      if (loading_ && load_[id]->fd.get() < 0) OpenSlow(*load_[id]);
    }
  }

  // Opens a probe per path every 100 ms for `len`, then waits for the last ones (each up to
  // its 10 s timeout). Returns one ProbeStats per probe path.
  std::vector<ProbeStats> Probe(Clock::duration len) {
    std::vector<ProbeStats> stats(paths_.size());
    stats_ = &stats;
    std::vector<std::unique_ptr<Conn>> probes;
    auto start = Clock::now();
    auto end = start + len;
    auto next = start;
    while (true) {
      auto now = Clock::now();
      if (now < end && now >= next) {
        for (size_t i = 0; i < paths_.size(); ++i) {
          auto c = std::make_unique<Conn>();
          c->kind = kProbe;
          c->id = i;
          c->deadline = now + kProbeTimeout;
          ++stats[i].count;
          Conn& ref = *c;
          probes.push_back(std::move(c));
          loop_.Connect(ref, port_, nullptr);
        }
        next += kProbeEvery;
      }
      bool pending = false;
      for (auto& c : probes) {
        if (c->kind != kProbe) continue;
        if (now >= c->deadline) {
          ProbeStats& p = stats[c->id];
          ++p.timeouts;
          p.latency_us.push_back(Micros(kProbeTimeout));
          c->kind = -1;
          loop_.Close(*c);
          continue;
        }
        pending = true;
      }
      if (now >= end && !pending) break;
      Pump(now < end ? std::min(next, end) : now + std::chrono::milliseconds(100));
    }
    stats_ = nullptr;
    return stats;
  }

  int port_;
  std::vector<std::string> paths_;
  std::vector<std::string> headers_;
  std::vector<Source> sources_;
  bool reopen_;
  Loop loop_;
  std::vector<std::unique_ptr<Conn>> load_;
  std::map<size_t, size_t> trickled_;  // connection id -> body bytes sent
  std::vector<size_t> reopen_queue_;
  ClassStats classes_[4];
  std::vector<ProbeStats>* stats_ = nullptr;
  size_t next_source_ = 0;
  bool loading_ = false;
  Clock::time_point next_trickle_{};
};

// ---------------------------------------------------------------------------------------------
// idle

class IdleMode : public Handler {
 public:
  IdleMode(int port, std::vector<Source> sources, size_t n) : port_(port), sources_(std::move(sources)), loop_(*this),
                                                             conns_(n) {}

  int Run(Clock::duration setup_len, Clock::duration hold_len) {
    auto start = Clock::now();
    for (size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].id = i;
      loop_.Connect(conns_[i], port_, &sources_[i % sources_.size()]);
    }
    auto setup_end = start + setup_len;
    while (Clock::now() < setup_end && answered_ + failed_ + closed_ < static_cast<long long>(conns_.size())) {
      loop_.RunOnce(setup_end - Clock::now());
    }
    double setup_secs = Seconds(Clock::now() - start);
    long long open_at_hold = static_cast<long long>(loop_.open());
    long long closed_in_setup = closed_;
    std::fprintf(stderr, "http_load: holding %lld open\n", open_at_hold);
    std::fflush(stderr);
    auto hold_end = Clock::now() + hold_len;
    while (Clock::now() < hold_end) loop_.RunOnce(hold_end - Clock::now());
    Json status = Json::object();
    for (const auto& [code, n] : statuses_) status[std::to_string(code)] = n;
    Json kinds = Json::object();
    for (const auto& [k, n] : close_kinds_) kinds[k] = n;
    Json out{{"mode", "idle"},
             {"connections", conns_.size()},
             {"source_addresses", sources_.size()},
             {"connected", connected_},
             {"connect_failed", failed_},
             {"answered", answered_},
             {"status", status},
             {"setup_seconds", setup_secs},
             {"closed_during_setup", closed_in_setup},
             {"open_at_hold", open_at_hold},
             {"hold_seconds", Seconds(hold_len)},
             {"closed_during_hold", closed_ - closed_in_setup},
             {"close_kinds", kinds},
             {"still_open", loop_.open()}};
    std::printf("%s\n", out.dump().c_str());
    for (auto& c : conns_) loop_.Close(c);
    return connected_ == 0 ? kExitUnreachable : 0;
  }

  void OnConnected(Conn& c) override {
    ++connected_;
    loop_.Send(c, Request("GET", "/healthz", port_, {}, "", nullptr, false));
  }
  void OnResponse(Conn& c) override {
    ++answered_;
    ++statuses_[c.status];
    c.parser.Reset();
  }
  void OnClosed(Conn&, bool was_connected, int error) override {
    if (!was_connected) {
      ++failed_;
      ++close_kinds_["connect: " + ErrName(error)];
    } else {
      ++closed_;
      ++close_kinds_[ErrName(error)];
    }
  }

 private:
  int port_;
  std::vector<Source> sources_;
  Loop loop_;
  std::vector<Conn> conns_;
  std::map<int, long long> statuses_;
  std::map<std::string, long long> close_kinds_;
  long long connected_ = 0, failed_ = 0, answered_ = 0, closed_ = 0;
};

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) Usage("--body-file '" + path + "' cannot be read");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  RaiseFileLimit();
  Args a = Parse(argc, argv);
  int port = static_cast<int>(Number(a, "--port", -1, 1, 65535));
  std::vector<std::string> headers = Headers(a);
  long limit = FileLimit() - 64;
  if (a.mode == "rate") {
    long clients = Number(a, "--clients", -1, 1, std::max(1L, limit));
    long seconds = Number(a, "--seconds", -1, 1, 3600);
    long timeout = Number(a, "--timeout", 10, 1, 3600);
    std::string method = a.Get("--method", "GET");
    if (method != "GET" && method != "POST") Usage("--method '" + method + "' is not GET or POST");
    std::string path = a.Get("--path", "/healthz");
    if (path.empty() || path[0] != '/') Usage("--path '" + path + "' does not start with /");
    std::optional<std::string> body;
    if (a.Has("--body-file")) body = ReadAll(a.Get("--body-file", ""));
    if (method == "POST" && !body) body = std::string();
    std::string req = Request(method, path, port, headers, a.Get("--content-type", "application/json"),
                              body ? &*body : nullptr, false);
    RateMode m(port, req, static_cast<size_t>(clients), std::chrono::seconds(timeout));
    return m.Run(std::chrono::seconds(seconds));
  }
  std::vector<Source> sources = Sources(a);
  if (a.mode == "slow") {
    long stall = Number(a, "--stall", 0, 0, limit);
    long idle = Number(a, "--idle", 0, 0, limit);
    long trickle = Number(a, "--trickle", 0, 0, limit);
    // Probes in flight: at most 10 s / 100 ms per path.
    std::vector<std::string> paths = a.All("--probe-path");
    if (paths.empty()) paths = {"/healthz"};
    for (const auto& p : paths) {
      if (p.empty() || p[0] != '/') Usage("--probe-path '" + p + "' does not start with /");
    }
    if (stall + idle + trickle + static_cast<long>(paths.size()) * 101 > limit) {
      Usage("that many connections need more descriptors than RLIMIT_NOFILE (" + std::to_string(limit + 64) + ")");
    }
    long probe_seconds = Number(a, "--probe-seconds", -1, 1, 600);
    long setup = Number(a, "--setup-seconds", 3, 0, 600);
    SlowMode m(port, paths, headers, sources, !a.Has("--no-reopen"));
    return m.Run(static_cast<size_t>(stall), static_cast<size_t>(idle), static_cast<size_t>(trickle),
                 std::chrono::seconds(probe_seconds), std::chrono::seconds(setup));
  }
  long n = Number(a, "--connections", -1, 1, std::max(1L, limit));
  long hold = Number(a, "--hold-seconds", 3, 0, 600);
  long setup = Number(a, "--setup-seconds", 10, 0, 600);
  IdleMode m(port, sources, static_cast<size_t>(n));
  return m.Run(std::chrono::seconds(setup), std::chrono::seconds(hold));
}
