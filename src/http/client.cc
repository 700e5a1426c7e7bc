#include "http/client.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <limits>
#include <optional>

#include "http/message.h"

namespace kg::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kHeaderLimit = 64 * 1024;
constexpr size_t kJoinBodyBelow = 64 * 1024;  // a smaller body goes out in the header's write

std::string Duration(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s" : std::to_string(d.count()) + " ms";
}

// A readable reason for a transport error (the caller says what was attempted).
std::string Reason(const beast::error_code& ec) {
  if (ec == net::error::connection_refused) return "connection refused";
  if (ec == net::error::connection_reset) return "connection reset by the server";
  if (ec == net::error::broken_pipe) return "connection closed by the server";
  if (ec == net::error::eof || ec == bh::error::end_of_stream || ec == bh::error::partial_message) {
    return "connection closed by the server";
  }
  if (ec == net::error::host_not_found || ec == net::error::host_not_found_try_again) return "unknown host";
  if (ec == net::error::network_unreachable || ec == net::error::host_unreachable) return "no route to the host";
  return ec.message();
}

// A transport error that says the server closed the connection (not a timeout, not a bad answer).
bool ClosedByServer(const beast::error_code& ec) {
  return ec == net::error::connection_reset || ec == net::error::broken_pipe || ec == net::error::eof ||
         ec == bh::error::end_of_stream;
}

bool IsToken(std::string_view s) {  // RFC 9110 5.6.2, for the method
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos)) {
      return false;
    }
  }
  return true;
}

bool Visible(std::string_view s, bool spaces) {  // no control characters (CR, LF) that would split a header
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || (!spaces && c == ' ')) return false;
  }
  return true;
}

}  // namespace

std::string ClientResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 std::string_view("-_.!~*'()").find(static_cast<char>(c)) != std::string_view::npos;
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

class Client::Impl {
 public:
  Impl(std::string base_url, ClientOptions o) : opts_(std::move(o)) { url_status_ = ParseBase(base_url); }

  ~Impl() { Close(); }

  void set_read_timeout(std::chrono::milliseconds t) { opts_.read_timeout = t; }
  bool connected() const { return stream_.has_value(); }

  // One request; `next` null sends `body`, else `length` bytes from `next`.
  Result<ClientResponse> Request(const std::string& method, const std::string& target, std::string_view body,
                                 const std::string& content_type, size_t length, const PieceSource* next) {
    KG_RETURN_IF_ERROR(url_status_);
    const std::string what = method + " " + target;
    if (!IsToken(method)) return Status::Invalid("HTTP method '" + method + "' is not a token");
    if (target.empty() || target[0] != '/' || !Visible(target, false)) {
      return Status::Invalid(what + ": the target must be a path with its query, percent-encoded");
    }
    if (!Visible(content_type, true) || !Visible(opts_.bearer_token, true)) {
      return Status::Invalid(what + ": a control character in the content type or bearer token");
    }
    if (!next) length = body.size();
    bool with_length = next || !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
    std::string head = method + " " + target + " HTTP/1.1\r\nHost: " + authority_ + "\r\nUser-Agent: kgflow/" KG_VERSION
                       "\r\nAccept: */*\r\n";
    if (!opts_.bearer_token.empty()) head += "Authorization: Bearer " + opts_.bearer_token + "\r\n";
    if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
    if (with_length) head += "Content-Length: " + std::to_string(length) + "\r\n";
    head += "\r\n";
    if (!next && body.size() < kJoinBodyBelow) {
      head.append(body);
      body = {};
    }

    for (int attempt = 0;; ++attempt) {
      // A kept connection the server has closed since is replaced before the request, not after.
      bool reused = stream_.has_value() && KeptAlive();
      if (!reused) {
        Close();
        KG_RETURN_IF_ERROR(Connect());
      }
      Exchange x = Send(what, head, body, length, next, method == "HEAD");
      if (x.answer) return std::move(*x.answer);
      Close();  // whatever state the connection is in, it is not reused
      // The server closed a kept connection as the request went out. It may never have seen the
      // request, or it may have read it and stopped before answering: only a request that is
      // safe to repeat (RFC 9110 9.2.2) goes once more on a new connection, and only if it can be
      // sent again (no piece taken yet). A POST could otherwise create its task twice.
      bool idempotent = method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE";
      if (reused && attempt == 0 && idempotent && x.closed && !x.answer_started && !x.piece_taken) continue;
      return x.status;
    }
  }

 private:
  struct Exchange {
    std::optional<ClientResponse> answer;
    Status status;
    bool closed = false;          // the server closed or reset the connection
    bool answer_started = false;  // a byte of an answer had arrived
    bool piece_taken = false;     // `next` was called
  };

  Status ParseBase(const std::string& u) {
    const std::string expected = "; expected http://HOST[:PORT]";
    if (u.rfind("https://", 0) == 0) {
      return Status::Invalid("base URL '" + u + "': https is not supported (this client speaks plain HTTP, no TLS)");
    }
    if (u.rfind("http://", 0) != 0) return Status::Invalid("base URL '" + u + "': not http://" + expected);
    std::string rest = u.substr(7);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    authority_ = rest;
    std::string port = "80";
    if (!rest.empty() && rest[0] == '[') {
      auto close = rest.find(']');
      if (close == std::string::npos) return Status::Invalid("base URL '" + u + "': unclosed '['" + expected);
      host_ = rest.substr(1, close - 1);
      if (close + 1 < rest.size()) {
        if (rest[close + 1] != ':') return Status::Invalid("base URL '" + u + "': junk after the host" + expected);
        port = rest.substr(close + 2);
      }
    } else if (auto colon = rest.find(':'); colon != std::string::npos) {
      host_ = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    } else {
      host_ = rest;
    }
    if (host_.empty()) return Status::Invalid("base URL '" + u + "': no host" + expected);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return Status::Invalid("base URL '" + u + "': bad port '" + port + "'" + expected);
    }
    port_ = port;
    return Status::Ok();
  }

  // Runs what was started on the private loop to its end (the operation and its timer).
  void RunLoop() {
    ioc_.restart();
    ioc_.run();
  }

  void Close() {
    if (!stream_) return;
    beast::error_code ignored;
    stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_->socket().close(ignored);
    stream_.reset();
    buffer_.clear();
  }

  // True when the kept connection is still open at the server's end: nothing to read (an answer
  // to nothing, or the end of the stream, means it is not).
  bool KeptAlive() {
    if (buffer_.size() != 0) return false;
    char c;
    ssize_t n = ::recv(stream_->socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  Status Connect() {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto endpoints = resolver.resolve(host_, port_, tcp::resolver::numeric_service, ec);
    if (ec) return Status::Unavailable("resolve " + host_ + ": " + Reason(ec));
    stream_.emplace(ioc_);
    stream_->expires_after(opts_.connect_timeout);
    stream_->async_connect(endpoints, [&ec](const beast::error_code& e, const tcp::endpoint&) { ec = e; });
    RunLoop();
    if (ec) {
      stream_.reset();
      if (ec == beast::error::timeout) {
        return Status::Unavailable("connect " + authority_ + ": timed out after " + Duration(opts_.connect_timeout));
      }
      return Status::Unavailable("connect " + authority_ + ": " + Reason(ec));
    }
    // The command line runs no child, but a descriptor should not outlive an exec anyway.
    ::fcntl(stream_->socket().native_handle(), F_SETFD, FD_CLOEXEC);
    beast::error_code ignored;
    stream_->socket().set_option(tcp::no_delay(true), ignored);
    buffer_.clear();
    return Status::Ok();
  }

  // Writes all of `data`, waiting at most read_timeout for each part the server accepts.
  beast::error_code Write(std::string_view data) {
    size_t off = 0;
    while (off < data.size()) {
      beast::error_code ec;
      size_t n = 0;
      stream_->expires_after(opts_.read_timeout);
      stream_->async_write_some(net::buffer(data.data() + off, data.size() - off),
                                [&](const beast::error_code& e, size_t k) {
                                  ec = e;
                                  n = k;
                                });
      RunLoop();
      if (ec) return ec;
      off += n;
    }
    return {};
  }

  // Sends the request and reads its answer.
  Exchange Send(const std::string& what, const std::string& head, std::string_view body, size_t length,
                const PieceSource* next, bool head_request) {
    Exchange x;
    beast::error_code ec = Write(head);
    if (!ec && !body.empty()) ec = Write(body);
    size_t sent = next ? 0 : length;
    while (!ec && sent < length) {
      std::string piece;
      x.piece_taken = true;
      if (!(*next)(&piece)) {
        x.status = Status::Invalid(what + ": upload aborted by its source after " + std::to_string(sent) + " of " +
                                   std::to_string(length) + " bytes");
        return x;
      }
      if (piece.empty() || piece.size() > length - sent) {
        x.status = Status::Invalid(what + ": the upload's source gave " +
                                   (piece.empty() ? "nothing more after " + std::to_string(sent) + " bytes"
                                                  : "more than " + std::to_string(length) + " bytes") +
                                   " of the " + std::to_string(length) + " announced");
        return x;
      }
      ec = Write(piece);
      sent += piece.size();
    }
    if (ec && ec == beast::error::timeout) {
      x.status = Status::Unavailable(what + ": timed out after " + Duration(opts_.read_timeout) + " sending the request");
      return x;
    }
    // After a write error the server may still have answered first (413, 401) before closing.
    beast::error_code write_error = ec;
    ec = Read(head_request, &x);
    if (!ec) return x;
    if (write_error) {
      x.closed = ClosedByServer(write_error);
      x.status = Status::Unavailable(what + ": " + Reason(write_error) + " while sending the request");
    } else if (ec == beast::error::timeout) {
      x.status = Status::Unavailable(what + ": timed out after " + Duration(opts_.read_timeout) +
                                     (x.answer_started ? " reading the answer" : " waiting for the answer"));
    } else {
      x.closed = ClosedByServer(ec);
      x.status = Status::Unavailable(what + ": " + Reason(ec) +
                                     (x.answer_started ? " in the middle of the answer" : " before answering"));
    }
    return x;
  }

  // Reads one answer into x->answer; each read waits at most read_timeout for more bytes.
  beast::error_code Read(bool head_request, Exchange* x) {
    bh::response_parser<bh::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (head_request) parser.skip(true);
    while (!parser.is_done()) {
      beast::error_code ec;
      stream_->expires_after(opts_.read_timeout);
      bh::async_read_some(*stream_, buffer_, parser, [&ec](const beast::error_code& e, size_t) { ec = e; });
      RunLoop();
      x->answer_started = x->answer_started || parser.got_some() || buffer_.size() > 0;
      if (ec) return ec;
    }
    bh::response<bh::string_body> res = parser.release();
    ClientResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    out.body = std::move(res.body());
    if (!res.keep_alive()) Close();
    x->answer = std::move(out);
    return {};
  }

  ClientOptions opts_;
  Status url_status_;
  std::string host_, port_, authority_;  // authority_: HOST[:PORT] as given, for the Host header
  net::io_context ioc_{1};
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

Client::Client(std::string base_url, ClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(base_url), std::move(options))) {}

Client::~Client() = default;

Result<ClientResponse> Client::Send(const std::string& method, const std::string& target, std::string_view body,
                                    const std::string& content_type) {
  return impl_->Request(method, target, body, content_type, 0, nullptr);
}

Result<ClientResponse> Client::SendStream(const std::string& method, const std::string& target, size_t length,
                                          const std::string& content_type, const PieceSource& next) {
  return impl_->Request(method, target, {}, content_type, length, &next);
}

void Client::set_read_timeout(std::chrono::milliseconds timeout) { impl_->set_read_timeout(timeout); }

bool Client::connected() const { return impl_->connected(); }

}  // namespace kg::http
