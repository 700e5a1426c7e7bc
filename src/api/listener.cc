#include "api/listener.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>

namespace kg::api {
namespace {

// Debian's cpp-httplib 0.11 is compiled with a listen backlog of 5, so a burst of new
// connections overflows the accept queue and clients see resets. listen() on a listening
// socket updates its backlog, so find ours and raise it.
void TuneListener(int port) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = 0;
    try {
      fd = std::stoi(e.path().filename().string());
    } catch (...) {
      continue;
    }
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = addr.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)
            : addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                         : -1;
    if (p != port) continue;
    ::listen(fd, SOMAXCONN);
  }
}

}  // namespace

void ConfigureListener(httplib::Server& svr) {
  // Debian's cpp-httplib sets SO_REUSEPORT by default, so a second node on the same
  // port would silently share its traffic. SO_REUSEADDR only (restarts still rebind at
  // once), and the listener is close-on-exec from its creation.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    fcntl(sock, F_SETFD, fcntl(sock, F_GETFD) | FD_CLOEXEC);
  });
  // A request with neither Content-Length nor Transfer-Encoding has an empty body (RFC 9112
  // 6.3), as `curl -X POST URL` sends it. Debian's cpp-httplib instead reads such a POST
  // until the peer closes, times out and answers 400 before any route runs. Say the length
  // is zero before it reads. The pre-routing hook only gets a const view of the request;
  // the object itself is the server's own non-const local, so writing through it is sound.
  svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
}

Result<int> BindListener(httplib::Server& svr, const std::string& host, int port) {
  int bound = port == 0 ? svr.bind_to_any_port(host) : (svr.bind_to_port(host, port) ? port : -1);
  if (bound < 0) return Status::Unavailable("cannot listen on " + host + ":" + std::to_string(port));
  TuneListener(bound);
  return bound;
}

}  // namespace kg::api
