#include "http/server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <nlohmann/json.hpp>
#include <regex>
#include <unordered_map>
#include <unordered_set>

#include "common/mutex.h"
#include "http/parse.h"
#include "http/pool.h"

namespace kg::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kHeaderLimit = 64 * 1024;
constexpr size_t kTargetLimit = 8 * 1024;  // longer request targets answer 414
constexpr size_t kPieceBytes = 64 * 1024;          // body pieces read, response pieces written
constexpr size_t kEventBacklogBytes = 1u << 20;     // an event stream further behind is closed
constexpr auto kLingerTime = std::chrono::seconds(2);  // reading what a client still sends before closing
constexpr auto kRefusalLogInterval = std::chrono::seconds(10);

std::string ErrorBody(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response ErrorResponse(int status, const std::string& message) {
  Response r;
  r.status = status;
  r.set_content(ErrorBody(message), "application/json");
  return r;
}

struct RouteEntry {
  std::string method;
  std::regex pattern;
  Handler handler;
  RouteOptions options;
};

// A streamed response's hand-off between the handler thread writing pieces and the loop
// sending them: one piece in flight at a time.
struct PieceHandoff {
  Mutex mu;
  CondVar cv;
  bool done KG_GUARDED_BY(mu) = false;
  bool ok KG_GUARDED_BY(mu) = false;
};

}  // namespace

class Session;
class Channel;

class Server::Impl {
 public:
  explicit Impl(Options o)
      : opts_(std::move(o)),
        acceptor_(ioc_),
        pool_(opts_.threads, static_cast<size_t>(opts_.max_queued_requests)),
        streams_(opts_.max_streams, 0) {}

  ~Impl() {
    destroying_ = true;  // sessions destroyed with the loop's leftovers must not call back
    pool_.Shutdown();
    streams_.Shutdown();
  }

  void Route(const std::string& method, const std::string& pattern, Handler h, RouteOptions o) {
    // libstdc++'s default executor recurses once per character of the path; the polynomial
    // (breadth-first) one does not, so no path can exhaust the loop thread's stack.
    routes_.push_back(
        {method, std::regex(pattern, std::regex::ECMAScript | std::regex_constants::__polynomial), std::move(h),
         std::move(o)});
  }

  Result<int> Bind(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string where = host + ":" + std::to_string(port);
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || res == nullptr) {
      return Status::Unavailable("cannot listen on " + where + ": unknown host");
    }
    std::string why = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      // Close-on-exec from creation (worker processes must not inherit the port), and
      // SO_REUSEADDR without SO_REUSEPORT: a restart rebinds at once, a second node on the
      // same port fails instead of silently sharing its traffic.
      int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) continue;
      int yes = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
        why = std::strerror(errno);
        ::close(fd);
        continue;
      }
      sockaddr_storage bound{};
      socklen_t len = sizeof bound;
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      int p = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                          : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
      beast::error_code ec;
      acceptor_.assign(ai->ai_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
      if (ec) {
        ::close(fd);
        why = ec.message();
        continue;
      }
      freeaddrinfo(res);
      return p;
    }
    freeaddrinfo(res);
    return Status::Unavailable("cannot listen on " + where + ": " + why);
  }

  bool Serve() {
    if (!acceptor_.is_open()) return false;
    if (stop_requested_.load()) return true;
    net::post(ioc_, [this] { Accept(); });
    ioc_.run();
    loop_done_.store(true);
    // Handlers still running finish; what they post to the loop is dropped with it.
    pool_.Shutdown();
    streams_.Shutdown();
    return true;
  }

  void Stop() {
    stop_requested_.store(true);
    net::post(ioc_, [this] { BeginStop(); });
  }

  Stats stats() const {
    Stats s;
    s.connections_open = connections_open_.load();
    s.event_streams_open = event_streams_open_.load();
    s.connections_accepted = accepted_.load();
    s.refused_total_cap = refused_total_.load();
    s.refused_client_cap = refused_client_.load();
    s.timeouts_header = timeouts_header_.load();
    s.timeouts_idle = timeouts_idle_.load();
    s.timeouts_body = timeouts_body_.load();
    s.requests = requests_.load();
    s.rejected_busy = rejected_busy_.load();
    return s;
  }

  // --- used by sessions, on the loop thread unless said otherwise ---
  const Options& opts() const { return opts_; }
  net::io_context& ioc() { return ioc_; }
  bool stopping() const { return stopping_; }
  bool loop_done() const { return loop_done_.load(); }  // any thread
  bool destroying() const { return destroying_; }
  bool Submit(std::function<void()> job) { return pool_.Submit(std::move(job)); }
  // Runs a streamed response's producer on a stream thread; false when none is free.
  bool SubmitStream(std::function<void()> job) { return streams_.SubmitIfIdle(std::move(job)); }

  // The route for `req`: the entry, or null with the error answer in `*error`.
  const RouteEntry* Match(Request& req, Response* error) const {
    std::string allow;
    const std::string& method = req.method == "HEAD" ? std::string("GET") : req.method;
    for (const auto& r : routes_) {
      std::smatch m;
      if (!std::regex_match(req.path, m, r.pattern)) continue;
      if (r.method == method) {
        req.matches.clear();
        for (const auto& g : m) req.matches.push_back(g.str());
        return &r;
      }
      if (allow.find(r.method) == std::string::npos) allow += (allow.empty() ? "" : ", ") + r.method;
    }
    if (allow.empty()) {
      *error = ErrorResponse(404, "no such endpoint");
    } else {
      *error = ErrorResponse(405, "method not allowed; allowed: " + allow);
      error->set_header("Allow", allow);
    }
    return nullptr;
  }

  void Opened(Session* s, const std::string& addr);
  void Closed(Session* s, const std::string& addr);
  void EventStreamOpened() { event_streams_open_++; }
  void EventStreamClosed() { event_streams_open_--; }
  void CountRequest() { requests_++; }
  void CountTimeout(int phase) { (phase == 0 ? timeouts_header_ : phase == 1 ? timeouts_idle_ : timeouts_body_)++; }
  void CountBusy() { rejected_busy_++; }

 private:
  void Accept();
  void OnAccepted(int fd, const std::string& addr);
  void Refuse(int fd, bool total_cap, const std::string& addr);
  void LogRefusals();
  void BeginStop();
  void FinishStopIfDrained();

  bool destroying_ = false;  // first: still readable while the members after it are destroyed
  Options opts_;
  net::io_context ioc_{1};
  tcp::acceptor acceptor_;
  std::vector<RouteEntry> routes_;
  Pool pool_;  // after ioc_: joined before the loop's leftovers are destroyed
  Pool streams_;  // producers of streamed responses, one thread each

  // Loop thread only.
  std::unordered_set<Session*> sessions_;
  std::unordered_map<std::string, int> per_client_;
  bool stopping_ = false;
  std::unique_ptr<net::steady_timer> drain_timer_;
  std::unique_ptr<net::steady_timer> accept_pause_;
  Clock::time_point last_refusal_log_{};
  Clock::time_point last_accept_error_log_{};
  std::string last_refusal_why_;
  std::unique_ptr<net::steady_timer> refusal_log_timer_;
  int64_t refusals_since_log_ = 0;

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> loop_done_{false};
  std::atomic<int64_t> connections_open_{0}, event_streams_open_{0}, accepted_{0}, refused_total_{0},
      refused_client_{0}, timeouts_header_{0}, timeouts_idle_{0}, timeouts_body_{0}, requests_{0}, rejected_busy_{0};
};

// One client connection, from accept to close. Everything here runs on the loop thread,
// except the jobs it hands to the pool (which touch only what they capture and post back).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl& srv, tcp::socket socket, std::string addr)
      : srv_(srv), stream_(std::move(socket)), addr_(std::move(addr)) {}
  // Normally Close() ran before (it unregisters the session); a session dropped with nothing
  // pending and never closed unregisters here, so the server never keeps a dangling pointer.
  ~Session() {
    if (!closed_ && !srv_.destroying()) srv_.Closed(this, addr_);
  }

  void Start() {
    srv_.Opened(this, addr_);
    ReadHeader(srv_.opts().header_timeout);
  }

  // The server is stopping: an idle connection closes now, an event stream ends, anything
  // else closes after its answer.
  void OnServerStop() {
    if (phase_ == Phase::kIdle || phase_ == Phase::kHeader) return Close();
    if (phase_ == Phase::kEvents) EndEvents();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    if (phase_ == Phase::kEvents) srv_.EventStreamClosed();
    if (channel_open_) channel_open_->store(false);
    // Timers hold this session until they fire: cancel them so it goes now.
    if (idle_timer_) idle_timer_->cancel();
    if (heartbeat_) heartbeat_->cancel();
    if (body_timer_) body_timer_->cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    srv_.Closed(this, addr_);
  }

  bool closed() const { return closed_; }

  // From an event channel, via the loop: the stream ends once what is queued is out.
  void FinishEvents();

  // From an event channel, via the loop.
  void QueueEvent(std::string text) {
    if (closed_ || phase_ != Phase::kEvents || ending_) return;
    if (backlog_bytes_ + text.size() > kEventBacklogBytes) {
      spdlog::warn("http: closing an event stream to {} that is over {} KiB behind", addr_, kEventBacklogBytes >> 10);
      return Close();
    }
    backlog_bytes_ += text.size();
    outq_.push_back(std::move(text));
    PumpEvents();
  }

 private:
  enum class Phase { kIdle, kHeader, kBody, kHandling, kWriting, kEvents };

  // --- reading a request ---

  void ReadHeader(std::chrono::milliseconds deadline) {
    phase_ = Phase::kHeader;
    head_.emplace();
    head_->header_limit(kHeaderLimit);
    head_->body_limit(srv_.opts().max_body_bytes);
    stream_.expires_after(deadline);
    bh::async_read_header(stream_, buffer_, *head_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // Between requests on a kept-alive connection: the idle timeout until a first byte comes,
  // then the header timeout. An idle connection holds no buffer and no parser: a socket, this
  // object and a timer.
  void WaitRequest() {
    if (closed_) return;
    if (srv_.stopping()) return Close();
    head_.reset();
    req_.reset();
    if (buffer_.size() > 0) return ReadHeader(srv_.opts().header_timeout);
    phase_ = Phase::kIdle;
    scratch_.reset();
    buffer_.shrink_to_fit();
    stream_.expires_never();
    if (!idle_timer_) idle_timer_ = std::make_unique<net::steady_timer>(srv_.ioc());
    uint64_t gen = ++idle_gen_;
    idle_timer_->expires_after(srv_.opts().idle_timeout);
    idle_timer_->async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (ec || self->closed_ || self->idle_gen_ != gen || self->phase_ != Phase::kIdle) return;
      self->srv_.CountTimeout(1);
      self->Close();
    });
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      if (self->closed_) return;
      ++self->idle_gen_;  // a timer handler already queued must not close the new request
      self->idle_timer_->cancel();
      if (ec) return self->Close();
      self->ReadHeader(self->srv_.opts().header_timeout);  // end of stream ends it there
    });
  }

  void OnHeader(beast::error_code ec) {
    if (closed_) return;
    if (ec == beast::error::timeout) {
      srv_.CountTimeout(0);
      return Close();
    }
    if (ec == bh::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
        ec == net::error::operation_aborted) {
      return Close();
    }
    keep_alive_ = false;
    if (ec == bh::error::header_limit) {
      return Answer(ErrorResponse(431, "request headers larger than 64 KiB"), true);
    }
    // Beast checks a declared Content-Length against the limit with the headers.
    if (ec == bh::error::body_limit) return TooLarge();
    if (ec) return Answer(ErrorResponse(400, "malformed HTTP request: " + ec.message()), true);
    srv_.CountRequest();
    const auto& h = head_->get();
    req_ = std::make_shared<Request>();
    req_->method = std::string(h.method_string());
    req_->remote_addr = addr_;
    for (const auto& f : h) req_->headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    keep_alive_ = h.keep_alive() && !srv_.stopping();
    head_only_ = req_->method == "HEAD";
    http10_ = h.version() < 11;
    has_body_ = !head_->is_done();
    // A Transfer-Encoding whose last coding is not chunked leaves the body's end unknown
    // (RFC 9112 6.3): refuse it, or the body would be read as the next request (smuggling).
    if (h.count(bh::field::transfer_encoding) > 0 && !h.chunked()) {
      return Answer(ErrorResponse(400, "Transfer-Encoding without chunked as its last coding is not accepted"), true);
    }
    // Long targets are refused before routing (a route's regular expression runs over the path).
    if (h.target().size() > kTargetLimit) {
      return Answer(ErrorResponse(414, "request target longer than " + std::to_string(kTargetLimit) + " bytes"),
                    has_body_);
    }
    if (Status t = ParseTarget(h.target(), req_.get()); !t.ok()) {
      return Answer(ErrorResponse(400, t.message()), has_body_);
    }
    // A declared length over the limit is refused before a byte of the body is read.
    if (auto len = head_->content_length(); len && *len > srv_.opts().max_body_bytes) return TooLarge();
    Response error;
    route_ = srv_.Match(*req_, &error);
    if (!route_) return has_body_ ? DrainThen(std::move(error)) : Answer(std::move(error));
    // A check that needs only the head (the bearer token) runs before any of the body is read.
    if (route_->options.before_body) {
      Response refused;
      if (!route_->options.before_body(*req_, refused)) return Answer(std::move(refused), has_body_);
    }
    if (!has_body_) {
      if (route_->options.inline_handler) {
        Response res;
        RunHandler(route_->handler, *req_, res);
        return Deliver(std::move(res));
      }
      return Dispatch();
    }
    if (route_->options.stream) return StartStreamRoute();
    ReadWholeBody();
  }

  std::chrono::milliseconds BodyDeadline() const {
    const Options& o = srv_.opts();
    auto len = head_ ? head_->content_length() : boost::optional<uint64_t>();
    uint64_t bytes = len ? *len : o.max_body_bytes;
    int64_t rate = std::max<int64_t>(1, o.min_body_rate);
    return o.body_timeout + std::chrono::milliseconds(static_cast<int64_t>(bytes * 1000 / static_cast<uint64_t>(rate)));
  }

  // "Expect: 100-continue": the client waits for a go-ahead before sending the body.
  bool ExpectsContinue() const {
    return !http10_ && EqualsIgnoreCase(req_->get_header_value("Expect"), "100-continue");
  }

  void MaybeContinue(std::function<void()> then) {
    if (!ExpectsContinue()) return then();
    auto msg = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
    stream_.expires_after(srv_.opts().idle_timeout);
    net::async_write(stream_, net::buffer(*msg),
                     [self = shared_from_this(), msg, then = std::move(then)](beast::error_code ec, size_t) {
                       if (self->closed_) return;
                       if (ec) return self->Close();
                       then();
                     });
  }

  void ReadWholeBody() {
    phase_ = Phase::kBody;
    body_deadline_ = BodyDeadline();
    MaybeContinue([this] {
      whole_.emplace(std::move(*head_));
      head_.reset();
      whole_->body_limit(srv_.opts().max_body_bytes);
      StartBodyTimer();
      bh::async_read(stream_, buffer_, *whole_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWholeBody(ec); });
    });
  }

  void OnWholeBody(beast::error_code ec) {
    if (closed_) return;
    if (ec) return BodyFailed(ec);
    StopBodyTimer();
    req_->body = whole_->release().body();
    whole_.reset();
    if (req_->is_multipart_form_data()) {
      std::string boundary = HeaderParam(req_->get_header_value("Content-Type"), "boundary");
      Status s = ParseMultipart(req_->body, boundary, &req_->files);
      if (!s.ok()) return Answer(ErrorResponse(400, "request body could not be read: " + s.message()));
      req_->body.clear();
      req_->body.shrink_to_fit();
    }
    Dispatch();
  }

  // The body deadline runs on a timer of its own, not as the stream's expiry: beast::tcp_stream
  // closes the socket when that passes, and the 408 must still be written to it. On expiry
  // the pending read is cancelled (or the next one not started) and BodyFailed answers 408.
  void StartBodyTimer() {
    stream_.expires_never();
    body_timed_out_ = false;
    if (!body_timer_) body_timer_ = std::make_unique<net::steady_timer>(srv_.ioc());
    body_timer_->expires_after(body_deadline_);
    body_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_ || self->phase_ != Phase::kBody) return;
      self->body_timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }

  void StopBodyTimer() {
    if (body_timer_) body_timer_->cancel();
  }

  void BodyFailed(beast::error_code ec) {
    StopBodyTimer();
    if (ec == beast::error::timeout || body_timed_out_) {
      srv_.CountTimeout(2);
      return Answer(ErrorResponse(408, "request body not received in time (" +
                                           std::to_string(body_deadline_.count() / 1000) + " s for its size)"),
                    false, true);
    }
    if (ec == bh::error::body_limit) return TooLarge();
    if (ec == bh::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset) return Close();
    Answer(ErrorResponse(400, "request body could not be read (broken chunked encoding)"), true);
  }

  void TooLarge() {
    Answer(ErrorResponse(413, "request body too large: over " + srv_.opts().limit_setting_hint + "=" +
                                  std::to_string(srv_.opts().max_body_bytes >> 20) + " MB"),
           true);
  }

  // Reads the rest of the body piece by piece into `sink` (null: dropped), then calls `done`.
  void ReadPieces(std::function<void(std::string_view, std::function<void(bool)>)> sink, std::function<void()> done) {
    phase_ = Phase::kBody;
    body_deadline_ = BodyDeadline();
    MaybeContinue([this, sink = std::move(sink), done = std::move(done)]() mutable {
      pieces_.emplace(std::move(*head_));
      head_.reset();
      pieces_->body_limit(srv_.opts().max_body_bytes);
      if (!scratch_) scratch_ = std::make_unique<char[]>(kPieceBytes);
      StartBodyTimer();
      NextPiece(std::make_shared<decltype(sink)>(std::move(sink)), std::make_shared<std::function<void()>>(std::move(done)));
    });
  }

  void NextPiece(std::shared_ptr<std::function<void(std::string_view, std::function<void(bool)>)>> sink,
                 std::shared_ptr<std::function<void()>> done) {
    if (pieces_->is_done()) {
      StopBodyTimer();
      pieces_.reset();
      return (*done)();
    }
    if (body_timed_out_) return BodyFailed(beast::error::timeout);  // expired while a consumer had the piece
    pieces_->get().body().data = scratch_.get();
    pieces_->get().body().size = kPieceBytes;
    bh::async_read_some(stream_, buffer_, *pieces_,
                        [self = shared_from_this(), sink, done](beast::error_code ec, size_t) {
                          if (self->closed_) return;
                          if (ec == bh::error::need_buffer) ec = {};
                          if (ec) return self->BodyFailed(ec);
                          size_t got = kPieceBytes - self->pieces_->get().body().size;
                          if (got == 0 || !*sink) return self->NextPiece(sink, done);
                          // Reading pauses until the piece is taken: a slow consumer slows the client.
                          (*sink)(std::string_view(self->scratch_.get(), got), [self, sink, done](bool go_on) {
                            if (self->closed_) return;
                            if (!go_on) {
                              *sink = nullptr;  // the rest is read and dropped
                            }
                            self->NextPiece(sink, done);
                          });
                        });
  }

  // Reads and drops the body (under the limit), then answers `res`. A client waiting for
  // "100 Continue" is never asked for a body that will be dropped: it gets the answer now and
  // the connection closes.
  void DrainThen(Response res) {
    if (ExpectsContinue()) return Answer(std::move(res), true);
    auto answer = std::make_shared<Response>(std::move(res));
    ReadPieces(nullptr, [this, answer] { Answer(std::move(*answer)); });
  }

  // A route with a streaming body: ask it (on a handler thread) how it wants the body.
  void StartStreamRoute() {
    HandOff(true, [self = shared_from_this(), req = req_, route = route_] {
      auto res = std::make_shared<Response>();
      std::shared_ptr<BodyConsumer> consumer;
      try {
        consumer = route->options.stream(*req, *res);
      } catch (const std::exception& e) {
        spdlog::error("http: {} {}: {}", req->method, req->path, e.what());
        *res = ErrorResponse(500, "internal error");
      }
      net::post(self->srv_.ioc(), [self, res, consumer] {
        if (self->closed_) return;
        if (consumer) return self->StreamBody(consumer);
        if (res->status == 200 && !res->producer && !res->event_stream) return self->ReadWholeBody();
        self->DrainThen(std::move(*res));
      });
    });
  }

  void StreamBody(std::shared_ptr<BodyConsumer> consumer) {
    auto res = std::make_shared<Response>();
    auto stopped = std::make_shared<bool>(false);
    auto self = shared_from_this();
    auto sink = [self, consumer, res, stopped](std::string_view piece, std::function<void(bool)> next) {
      auto copy = std::make_shared<std::string>(piece);
      bool queued = self->srv_.Submit([self, consumer, res, stopped, copy, next = std::move(next)] {
        bool go_on = true;
        try {
          go_on = consumer->Write(*copy, *res);
        } catch (const std::exception& e) {
          spdlog::error("http: body consumer: {}", e.what());
          *res = ErrorResponse(500, "internal error");
          go_on = false;
        }
        net::post(self->srv_.ioc(), [self, stopped, go_on, next] {
          if (!go_on) *stopped = true;
          next(go_on);
        });
      });
      if (!queued) {
        *res = ErrorResponse(503, "server busy: every request thread is taken; retry shortly");
        *stopped = true;
        next(false);
      }
    };
    ReadPieces(sink, [self, consumer, res, stopped] {
      if (*stopped) return self->Answer(std::move(*res));
      self->phase_ = Phase::kHandling;
      bool queued = self->srv_.Submit([self, consumer, res] {
        try {
          consumer->Finish(*res);
        } catch (const std::exception& e) {
          spdlog::error("http: body consumer: {}", e.what());
          *res = ErrorResponse(500, "internal error");
        }
        net::post(self->srv_.ioc(), [self, res] {
          if (!self->closed_) self->Deliver(std::move(*res));
        });
      });
      if (!queued) self->Busy(false);
    });
  }

  // --- handling ---

  static void RunHandler(const Handler& h, const Request& req, Response& res) {
    try {
      h(req, res);
    } catch (const std::exception& e) {
      spdlog::error("http: {} {}: {}", req.method, req.path, e.what());
      res = ErrorResponse(500, "internal error");
    } catch (...) {
      spdlog::error("http: {} {}: unknown exception", req.method, req.path);
      res = ErrorResponse(500, "internal error");
    }
  }

  void Dispatch() {
    HandOff(false, [self = shared_from_this(), req = req_, route = route_] {
      auto res = std::make_shared<Response>();
      RunHandler(route->handler, *req, *res);
      net::post(self->srv_.ioc(), [self, res] {
        if (!self->closed_) self->Deliver(std::move(*res));
      });
    });
  }

  // Gives the request to the handler pool (`job` posts its outcome back to the loop); nothing
  // is read from the connection meanwhile. A full pool answers 503.
  void HandOff(bool body_unread, std::function<void()> job) {
    phase_ = Phase::kHandling;
    stream_.expires_never();
    if (!srv_.Submit(std::move(job))) Busy(body_unread);
  }

  void Busy(bool body_unread) {
    srv_.CountBusy();
    Response r = ErrorResponse(503, "server busy: every request thread is taken; retry shortly");
    r.set_header("Retry-After", "1");
    Answer(std::move(r), body_unread);
  }

  void Deliver(Response res) {
    if (res.event_stream) return StartEvents(std::move(res));
    if (res.producer) return StartProduced(std::move(res));
    Answer(std::move(res));
  }

  // --- writing ---

  template <class Message>
  void SetHeaders(Message& msg, const Response& res) {
    // Beast throws on a name or value it cannot carry (over 64 KiB); on the loop that would end
    // the process, so such a header is dropped and logged instead.
    auto set = [&](auto name, const std::string& value) {
      try {
        msg.set(name, value);
      } catch (const std::exception& e) {
        spdlog::error("http: {} {}: response header dropped: {}", req_ ? req_->method : "", req_ ? req_->path : "",
                      e.what());
      }
    };
    for (const auto& [k, v] : res.headers) set(k, v);
    if (!res.content_type.empty()) set(bh::field::content_type, res.content_type);
    msg.keep_alive(keep_alive_);
  }

  // Writes a whole answer. `body_unread`: the request's body may still be on the wire, so
  // the connection closes after the answer (reading what still comes for a moment, so that
  // the client sees the answer and not a reset). `timed_out`: likewise, without lingering.
  void Answer(Response res, bool body_unread = false, bool timed_out = false) {
    if (closed_) return;
    phase_ = Phase::kWriting;
    if (body_unread || timed_out || res.close || srv_.stopping()) keep_alive_ = false;
    auto msg = std::make_shared<bh::response<bh::string_body>>(static_cast<bh::status>(res.status), 11);
    SetHeaders(*msg, res);
    if (head_only_) {
      msg->content_length(res.body.size());
    } else {
      msg->body() = std::move(res.body);
      msg->prepare_payload();
    }
    stream_.expires_after(srv_.opts().idle_timeout);
    bh::async_write(stream_, *msg, [self = shared_from_this(), msg, body_unread](beast::error_code ec, size_t) {
      if (self->closed_) return;
      if (ec) return self->Close();
      if (body_unread) return self->Linger();
      if (!self->keep_alive_) return self->Close();
      self->req_.reset();
      self->WaitRequest();
    });
  }

  // Half-closes, then reads and drops what the client still sends for a moment, then closes.
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (!scratch_) scratch_ = std::make_unique<char[]>(kPieceBytes);
    stream_.expires_after(kLingerTime);
    DrainUntilClosed();
  }

  void DrainUntilClosed() {
    stream_.async_read_some(net::buffer(scratch_.get(), kPieceBytes), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->closed_) return;
      if (ec) return self->Close();
      self->DrainUntilClosed();
    });
  }

  // A response written in pieces with chunked transfer encoding (HTTP/1.0: raw, ended by
  // closing). The producer runs on one of the stream threads (Options::max_streams, not the
  // handler pool: a client that reads slowly holds no handler thread), and each piece waits
  // until the loop has written it, so memory stays bounded by the client's pace. A client that
  // does not take a piece within stream_piece_timeout is disconnected. Past the stream threads,
  // 503 before any header.
  void StartProduced(Response res) {
    phase_ = Phase::kWriting;
    auto head = std::make_shared<bh::response<bh::empty_body>>(static_cast<bh::status>(res.status), http10_ ? 10 : 11);
    if (http10_) keep_alive_ = false;
    SetHeaders(*head, res);
    if (!http10_) head->chunked(true);
    auto sr = std::make_shared<bh::response_serializer<bh::empty_body>>(*head);
    if (head_only_) {  // HEAD: headers only, not even the final chunk
      stream_.expires_after(srv_.opts().idle_timeout);
      return bh::async_write_header(stream_, *sr, [self = shared_from_this(), head, sr](beast::error_code ec, size_t) {
        if (self->closed_) return;
        if (ec) return self->Close();
        self->AfterAnswer();
      });
    }
    auto producer = std::make_shared<StreamProducer>(std::move(res.producer));
    stream_.expires_never();
    bool started = srv_.SubmitStream([self = shared_from_this(), head, sr, producer] {
      bool ok = self->OnLoop([self, head, sr](std::function<void(bool)> done) {
        self->stream_.expires_after(self->srv_.opts().stream_piece_timeout);
        bh::async_write_header(self->stream_, *sr, [self, head, sr, done](beast::error_code ec, size_t) { done(!ec); });
      });
      std::string pending;
      auto flush = [&]() {
        if (pending.empty()) return true;
        bool written = self->WritePiece(std::move(pending));
        pending.clear();
        return written;
      };
      PieceWriter write = [&](std::string_view piece) {
        pending.append(piece);
        return pending.size() < kPieceBytes || flush();
      };
      try {
        ok = ok && (*producer)(write) && flush();
      } catch (const std::exception& e) {
        spdlog::error("http: streamed response: {}", e.what());
        ok = false;
      }
      net::post(self->srv_.ioc(), [self, ok] { self->FinishProduced(ok); });
    });
    if (!started) {
      srv_.CountBusy();
      Response busy = ErrorResponse(503, "too many streamed responses at once (" +
                                             std::to_string(srv_.opts().max_streams) + "); retry shortly");
      busy.set_header("Retry-After", "1");
      Answer(std::move(busy));
    }
  }

  // On a stream thread: runs `op` on the loop and waits for it to call its `done`. False when
  // it failed, or the loop is gone (the server stopped past its drain time).
  bool OnLoop(std::function<void(std::function<void(bool)>)> op) {
    auto handoff = std::make_shared<PieceHandoff>();
    net::post(srv_.ioc(), [self = shared_from_this(), handoff, op = std::move(op)] {
      auto done = [self, handoff](bool ok) {
        if (!ok) self->Close();
        MutexLock lock(handoff->mu);
        handoff->done = true;
        handoff->ok = ok;
        handoff->cv.NotifyAll();
      };
      if (self->closed_) return done(false);
      op(done);
    });
    MutexLock lock(handoff->mu);
    while (!handoff->done) {
      if (!handoff->cv.WaitUntil(lock, Clock::now() + std::chrono::milliseconds(200)) && srv_.loop_done()) return false;
    }
    return handoff->ok;
  }

  // On a stream thread: sends one piece (a chunk; raw for HTTP/1.0) and waits until it is written.
  bool WritePiece(std::string piece) {
    auto data = std::make_shared<std::string>(std::move(piece));
    return OnLoop([self = shared_from_this(), data](std::function<void(bool)> done) {
      self->stream_.expires_after(self->srv_.opts().stream_piece_timeout);
      auto written = [data, done](beast::error_code ec, size_t) { done(!ec); };
      if (self->http10_) return net::async_write(self->stream_, net::buffer(*data), written);
      net::async_write(self->stream_, bh::make_chunk(net::buffer(*data)), written);
    });
  }

  void FinishProduced(bool ok) {
    if (closed_) return;
    if (!ok) return Close();  // no final chunk: the client sees a truncated transfer
    if (http10_) return Close();  // the close ends an HTTP/1.0 body
    stream_.expires_after(srv_.opts().idle_timeout);
    net::async_write(stream_, bh::make_chunk_last(), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->closed_) return;
      if (ec) return self->Close();
      self->AfterAnswer();
    });
  }

  // An answer is out: the next request on a kept-alive connection, or close.
  void AfterAnswer() {
    if (!keep_alive_) return Close();
    req_.reset();
    WaitRequest();
  }

  // --- server-sent events ---

  void StartEvents(Response res);
  void PumpEvents();
  void EndEvents();
  void Heartbeat();
  void WatchPeer();

  Server::Impl& srv_;
  beast::tcp_stream stream_;
  const std::string addr_;
  beast::flat_buffer buffer_;
  std::optional<bh::request_parser<bh::empty_body>> head_;
  std::optional<bh::request_parser<bh::string_body>> whole_;
  std::optional<bh::request_parser<bh::buffer_body>> pieces_;
  std::unique_ptr<char[]> scratch_;
  std::unique_ptr<net::steady_timer> idle_timer_;
  uint64_t idle_gen_ = 0;
  std::shared_ptr<Request> req_;
  const RouteEntry* route_ = nullptr;
  std::chrono::milliseconds body_deadline_{0};
  std::unique_ptr<net::steady_timer> body_timer_;
  bool body_timed_out_ = false;
  Phase phase_ = Phase::kHeader;
  bool keep_alive_ = false, head_only_ = false, http10_ = false, has_body_ = false, closed_ = false;

  // Event stream state.
  std::deque<std::string> outq_;
  size_t backlog_bytes_ = 0;
  bool writing_ = false, ending_ = false;
  std::unique_ptr<net::steady_timer> heartbeat_;
  std::shared_ptr<std::atomic<bool>> channel_open_;
  char peek_[512];
};

// The handle a handler keeps to send events; posts to the loop, never blocks.
class Channel : public EventChannel {
 public:
  Channel(Server::Impl& srv, std::weak_ptr<Session> session, std::shared_ptr<std::atomic<bool>> open)
      : srv_(srv), session_(std::move(session)), open_(std::move(open)) {}

  bool Send(std::string_view event, std::string_view data) override {
    if (!open_->load() || srv_.loop_done()) return false;
    std::string text = "event: " + std::string(event) + "\n";
    size_t start = 0;
    while (true) {
      size_t nl = data.find('\n', start);
      text += "data: " + std::string(data.substr(start, nl == std::string_view::npos ? nl : nl - start)) + "\n";
      if (nl == std::string_view::npos) break;
      start = nl + 1;
    }
    text += "\n";
    net::post(srv_.ioc(), [s = session_, text = std::move(text)]() mutable {
      if (auto session = s.lock()) session->QueueEvent(std::move(text));
    });
    return true;
  }
  bool open() const override { return open_->load() && !srv_.loop_done(); }
  void Close() override {
    if (!open_->exchange(false) || srv_.loop_done()) return;
    net::post(srv_.ioc(), [s = session_] {
      if (auto session = s.lock()) session->FinishEvents();
    });
  }

 private:
  Server::Impl& srv_;
  std::weak_ptr<Session> session_;
  std::shared_ptr<std::atomic<bool>> open_;
};

void Session::StartEvents(Response res) {
  phase_ = Phase::kEvents;
  srv_.EventStreamOpened();
  channel_open_ = std::make_shared<std::atomic<bool>>(true);
  auto head = std::make_shared<bh::response<bh::empty_body>>(static_cast<bh::status>(res.status), http10_ ? 10 : 11);
  SetHeaders(*head, res);
  head->set(bh::field::content_type, "text/event-stream; charset=utf-8");
  head->set(bh::field::cache_control, "no-cache");
  head->set("X-Accel-Buffering", "no");
  head->keep_alive(false);
  if (!http10_) head->chunked(true);  // HTTP/1.0: raw, ended by closing
  auto sr = std::make_shared<bh::response_serializer<bh::empty_body>>(*head);
  writing_ = true;
  stream_.expires_after(srv_.opts().idle_timeout);
  auto start = std::make_shared<EventStreamStart>(std::move(res.event_stream));
  bh::async_write_header(stream_, *sr, [self = shared_from_this(), head, sr, start](beast::error_code ec, size_t) {
    if (self->closed_) return;
    self->writing_ = false;
    if (ec || self->head_only_) return self->Close();  // HEAD: the headers say what GET would stream
    auto channel = std::make_shared<Channel>(self->srv_, self->weak_from_this(), self->channel_open_);
    if (!self->srv_.Submit([start, channel] { (*start)(channel); })) return self->Close();
    self->heartbeat_ = std::make_unique<net::steady_timer>(self->srv_.ioc());
    self->Heartbeat();
    self->WatchPeer();
    if (self->srv_.stopping()) self->EndEvents();  // queues `end`; pumped below
    self->PumpEvents();
  });
}

void Session::PumpEvents() {
  if (closed_ || writing_) return;
  if (outq_.empty()) {
    if (!ending_) return;
    // Everything queued is out: the end of the body (HTTP/1.0: the close), then the close.
    if (http10_) return Close();
    writing_ = true;
    return net::async_write(stream_, bh::make_chunk_last(),
                            [self = shared_from_this()](beast::error_code, size_t) { self->Close(); });
  }
  writing_ = true;
  auto text = std::make_shared<std::string>(std::move(outq_.front()));
  outq_.pop_front();
  backlog_bytes_ -= text->size();
  stream_.expires_after(srv_.opts().idle_timeout);
  auto written = [self = shared_from_this(), text](beast::error_code ec, size_t) {
    if (self->closed_) return;
    self->writing_ = false;
    if (ec) return self->Close();
    self->PumpEvents();
  };
  if (http10_) return net::async_write(stream_, net::buffer(*text), written);
  net::async_write(stream_, bh::make_chunk(net::buffer(*text)), written);
}

// The handler ended the stream (EventChannel::Close): what is queued, the final chunk, the close.
void Session::FinishEvents() {
  if (closed_ || ending_ || phase_ != Phase::kEvents) return;
  ending_ = true;
  if (heartbeat_) heartbeat_->cancel();
  PumpEvents();
}

// The server is stopping: a last "end" event, the final chunk, then close.
void Session::EndEvents() {
  if (closed_ || ending_) return;
  std::string end = "event: end\ndata: {\"reason\":\"shutdown\"}\n\n";
  backlog_bytes_ += end.size();
  outq_.push_back(std::move(end));
  ending_ = true;
  if (channel_open_) channel_open_->store(false);
  if (heartbeat_) heartbeat_->cancel();
  PumpEvents();
}

void Session::Heartbeat() {
  heartbeat_->expires_after(srv_.opts().event_heartbeat);
  heartbeat_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->closed_ || self->ending_) return;
    self->QueueEvent(": heartbeat\n\n");
    self->Heartbeat();
  });
}

// An event stream's client sends nothing more; a read ends when it goes away.
void Session::WatchPeer() {
  stream_.socket().async_read_some(net::buffer(peek_), [self = shared_from_this()](beast::error_code ec, size_t) {
    if (self->closed_) return;
    if (ec) return self->Close();
    self->WatchPeer();
  });
}

// --- the server ---

void Server::Impl::Opened(Session* s, const std::string& addr) {
  sessions_.insert(s);
  per_client_[addr]++;
  connections_open_++;
}

void Server::Impl::Closed(Session* s, const std::string& addr) {
  sessions_.erase(s);
  auto it = per_client_.find(addr);
  if (it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
  connections_open_--;
  if (stopping_) FinishStopIfDrained();
}

void Server::Impl::Accept() {
  if (stopping_ || !acceptor_.is_open()) return;
  acceptor_.async_wait(tcp::acceptor::wait_read, [this](beast::error_code ec) {
    if (ec || stopping_) return;
    for (int i = 0; i < 256; ++i) {
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      // accept4 with SOCK_CLOEXEC: a worker spawned meanwhile never inherits a client's socket.
      int fd = ::accept4(acceptor_.native_handle(), reinterpret_cast<sockaddr*>(&peer), &len,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: pause accepting instead of spinning on a readable listener.
          if (Clock::now() - last_accept_error_log_ >= kRefusalLogInterval) {
            spdlog::warn("http: cannot accept a connection: {}; pausing accepts for 100 ms at a time "
                         "(raise `ulimit -n` or lower KG_HTTP_MAX_CONNECTIONS)",
                         std::strerror(errno));
            last_accept_error_log_ = Clock::now();
          }
          accept_pause_ = std::make_unique<net::steady_timer>(ioc_, std::chrono::milliseconds(100));
          accept_pause_->async_wait([this](beast::error_code) { Accept(); });
          return;
        }
        break;  // EAGAIN: drained; ECONNABORTED and the like: the next wait
      }
      char host[INET6_ADDRSTRLEN] = "";
      if (peer.ss_family == AF_INET6) {
        auto* a6 = reinterpret_cast<sockaddr_in6*>(&peer);
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
          inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], host, sizeof host);
        } else {
          inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
        }
      } else {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, host, sizeof host);
      }
      OnAccepted(fd, host);
    }
    Accept();
  });
}

void Server::Impl::OnAccepted(int fd, const std::string& addr) {
  accepted_++;
  if (connections_open_.load() >= opts_.max_connections) return Refuse(fd, true, addr);
  auto it = per_client_.find(addr);
  if (it != per_client_.end() && it->second >= opts_.max_connections_per_client) return Refuse(fd, false, addr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  tcp::socket sock(ioc_);
  beast::error_code ec;
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  sock.assign(local.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    return;
  }
  std::make_shared<Session>(*this, std::move(sock), addr)->Start();
}

// Over a connection cap: a 503 and close, at once, without reading the request (it may not
// be complete; whatever the client sent is dropped with the socket).
void Server::Impl::Refuse(int fd, bool total_cap, const std::string& addr) {
  (total_cap ? refused_total_ : refused_client_)++;
  std::string why = total_cap ? "too many connections: KG_HTTP_MAX_CONNECTIONS=" + std::to_string(opts_.max_connections)
                              : "too many connections from " + addr + ": KG_HTTP_MAX_CONNECTIONS_PER_CLIENT=" +
                                    std::to_string(opts_.max_connections_per_client);
  std::string body = ErrorBody(why + "; retry later");
  std::string msg = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                    "Connection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
  refusals_since_log_++;
  last_refusal_why_ = why;
  auto now = Clock::now();
  if (now - last_refusal_log_ >= kRefusalLogInterval) return LogRefusals();
  // Within the interval: reported when it ends, even if no refusal follows.
  if (refusal_log_timer_) return;
  refusal_log_timer_ = std::make_unique<net::steady_timer>(ioc_, last_refusal_log_ + kRefusalLogInterval);
  refusal_log_timer_->async_wait([this](beast::error_code ec) {
    refusal_log_timer_.reset();
    if (!ec && refusals_since_log_ > 0) LogRefusals();
  });
}

void Server::Impl::LogRefusals() {
  spdlog::warn("http: refused {} connection(s) since the last report; latest: {}", refusals_since_log_,
               last_refusal_why_);
  refusals_since_log_ = 0;
  last_refusal_log_ = Clock::now();
}

void Server::Impl::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  beast::error_code ec;
  acceptor_.close(ec);
  if (accept_pause_) accept_pause_->cancel();
  if (refusal_log_timer_) refusal_log_timer_->cancel();
  std::vector<Session*> now(sessions_.begin(), sessions_.end());
  for (Session* s : now) {
    if (sessions_.count(s)) s->OnServerStop();
  }
  drain_timer_ = std::make_unique<net::steady_timer>(ioc_, opts_.drain_timeout);
  drain_timer_->async_wait([this](beast::error_code e) {
    if (e) return;
    if (!sessions_.empty()) {
      spdlog::warn("http: {} connection(s) still busy after {} ms; closing them", sessions_.size(),
                   opts_.drain_timeout.count());
    }
    std::vector<Session*> left(sessions_.begin(), sessions_.end());
    for (Session* s : left) {
      if (sessions_.count(s)) s->Close();
    }
    ioc_.stop();
  });
  FinishStopIfDrained();
}

void Server::Impl::FinishStopIfDrained() {
  if (sessions_.empty() && drain_timer_) {
    drain_timer_->cancel();
    ioc_.stop();
  }
}

Server::Server(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Server::~Server() = default;
void Server::Route(const std::string& method, const std::string& pattern, Handler handler, RouteOptions options) {
  impl_->Route(method, pattern, std::move(handler), std::move(options));
}
Result<int> Server::Bind(const std::string& host, int port) { return impl_->Bind(host, port); }
bool Server::Serve() { return impl_->Serve(); }
void Server::Stop() { impl_->Stop(); }
Stats Server::stats() const { return impl_->stats(); }

}  // namespace kg::http
