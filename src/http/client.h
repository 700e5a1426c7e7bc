#pragma once
// A small synchronous HTTP/1.1 client on Boost.Beast, for the command line's calls to a node's
// API (cli/client.cc). It speaks plain http:// only: no TLS, so a process that uses it loads no
// TLS library (docs/architecture.md, "HTTP server notes"). Put a TLS-terminating proxy in front
// of a node to reach it over https.
//
// One connection, kept alive between requests. Before a request reuses it, the client checks the
// server has not closed it; if the server closes it anyway while the request is sent (its idle
// timeout raced the request), the request is sent once more on a new connection, but only when
// no byte of an answer had arrived and, for a streamed upload, before the first piece was taken.
//
// Timeouts: connecting must finish within connect_timeout; while a request is written or its
// answer read, read_timeout is the longest the client waits for progress (a byte accepted by
// the server, a byte of the answer), so a server that accepts and never answers gives
// "timed out" after read_timeout, while a long answer that keeps coming is read to its end.
// Name resolution (getaddrinfo) is not bounded by connect_timeout; numeric addresses need none.
//
// Errors are values: kUnavailable for what a retry may mend (the connection refused, reset or
// closed, a timeout, an unknown host), kInvalidArgument for a bad base URL, method or body
// length, each message saying what was attempted ("connect 127.0.0.1:8080: connection refused").
// An HTTP error status (4xx, 5xx) is an answer, not an error.
//
// Thread safety: none; one Client per thread. Not copyable.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace kg::http {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds read_timeout{120000};
  std::string bearer_token;  // sent as "Authorization: Bearer TOKEN" when not empty
};

struct ClientResponse {
  int status = 0;
  std::string body;  // the whole body, chunked transfer decoded
  std::vector<std::pair<std::string, std::string>> headers;
  // The first header of that name (case-insensitive); "" when absent.
  std::string header(std::string_view name) const;
};

// Gives the next piece of a streamed upload in `*piece` (not empty) and returns true, or returns
// false to abort it: the connection is then closed with the body cut short, so the server drops
// the request.
using PieceSource = std::function<bool(std::string* piece)>;

class Client {
 public:
  // `base_url` is http://HOST[:PORT] (port 80 when absent; HOST may be [IPv6]); a path after it
  // is ignored. A URL that is not one makes every request fail with kInvalidArgument.
  Client(std::string base_url, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `method` (GET, POST, PUT, DELETE, ...) to `target` (a path with its query, already
  // percent-encoded) with `body` as `content_type` ("" sends no Content-Type; a POST or PUT
  // always sends its Content-Length, 0 included), and reads the whole answer.
  Result<ClientResponse> Send(const std::string& method, const std::string& target, std::string_view body = {},
                              const std::string& content_type = "");

  // Like Send, with a body of exactly `length` bytes taken from `next` piece by piece as it is
  // written (never held whole). kInvalidArgument when `next` aborts (the server sees the body cut
  // short) or gives more or fewer than `length` bytes. If the server answers before the body is
  // all sent (413, 401) and closes, that answer is returned.
  Result<ClientResponse> SendStream(const std::string& method, const std::string& target, size_t length,
                                    const std::string& content_type, const PieceSource& next);

  // Changes read_timeout for the requests that follow.
  void set_read_timeout(std::chrono::milliseconds timeout);
  // True while a connection is kept open for the next request.
  bool connected() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Percent-encodes `s` for a query value or one path segment: every byte but the letters, digits
// and -_.!~*'() becomes %XX, so '/', '?', '&', '=', '+', ':' and spaces survive the trip.
std::string PercentEncode(std::string_view s);

}  // namespace kg::http
