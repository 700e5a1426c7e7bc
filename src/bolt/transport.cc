#include "bolt/transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/util.h"

namespace kg::bolt {

namespace {

constexpr size_t kMaxChunk = 0xFFFF;
// The largest message ReadMessage accepts (its chunks joined).
constexpr size_t kMaxMessage = size_t{256} << 20;

std::string Errno(int e) { return std::strerror(e); }

// Waits until `fd` is ready for `events` or `deadline_ms` (MonoMs) passes.
Status WaitFd(int fd, short events, int64_t deadline_ms, const char* what, int timeout_ms) {
  for (;;) {
    int64_t left = deadline_ms - MonoMs();
    if (left <= 0) return Status::Unavailable(std::string(what) + ": timed out after " + std::to_string(timeout_ms) + " ms");
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return Status::Ok();
    if (r < 0 && errno != EINTR) return Status::Unavailable(std::string(what) + ": poll: " + Errno(errno));
  }
}

}  // namespace

Transport::~Transport() { Close(); }

void Transport::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  out_.clear();
  in_.clear();
  in_pos_ = 0;
}

Status Transport::Connect(const std::string& host, int port, int connect_timeout_ms, int io_timeout_ms) {
  Close();
  io_timeout_ms_ = io_timeout_ms;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int gai = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (gai != 0) return Status::Unavailable("connect: resolve " + host + ": " + ::gai_strerror(gai));
  int64_t deadline = MonoMs() + connect_timeout_ms;
  Status last = Status::Unavailable("connect: no address for " + host);
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last = Status::Unavailable("connect: socket: " + Errno(errno));
      continue;
    }
    int r = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (r != 0 && errno != EINPROGRESS) {
      last = Status::Unavailable("connect: " + Errno(errno));
      ::close(fd);
      continue;
    }
    if (r != 0) {
      Status w = WaitFd(fd, POLLOUT, deadline, "connect", connect_timeout_ms);
      int err = 0;
      socklen_t len = sizeof err;
      if (w.ok() && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (!w.ok() || err != 0) {
        last = w.ok() ? Status::Unavailable("connect: " + Errno(err)) : w;
        ::close(fd);
        continue;
      }
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fd_ = fd;
    ::freeaddrinfo(res);
    return Status::Ok();
  }
  ::freeaddrinfo(res);
  return last;
}

Status Transport::WriteRaw(std::string_view bytes) {
  if (fd_ < 0) return Status::Unavailable("write: connection closed");
  int64_t deadline = MonoMs() + io_timeout_ms_;
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      Status w = WaitFd(fd_, POLLOUT, deadline, "write", io_timeout_ms_);
      if (!w.ok()) {
        timed_out_ = MonoMs() >= deadline;
        return w;
      }
      continue;
    }
    return Status::Unavailable("write: " + Errno(errno));
  }
  return Status::Ok();
}

Status Transport::Fill() {
  if (fd_ < 0) return Status::Unavailable("read: connection closed");
  if (in_pos_ > 0 && (in_pos_ == in_.size() || in_pos_ > (1u << 20))) {
    in_.erase(0, in_pos_);  // drop what was consumed: the buffer stays the size of one read
    in_pos_ = 0;
  }
  int64_t deadline = MonoMs() + io_timeout_ms_;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      return Status::Ok();
    }
    if (n == 0) return Status::Unavailable("read: connection closed by the server");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      Status w = WaitFd(fd_, POLLIN, deadline, "read", io_timeout_ms_);
      if (!w.ok()) {
        timed_out_ = MonoMs() >= deadline;
        return w;
      }
      continue;
    }
    return Status::Unavailable("read: " + Errno(errno));
  }
}

bool Transport::Readable() const {
  if (in_pos_ < in_.size()) return true;
  if (fd_ < 0) return true;
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

Status Transport::Need(size_t n) {
  while (in_.size() - in_pos_ < n) KG_RETURN_IF_ERROR(Fill());
  return Status::Ok();
}

Status Transport::ReadRaw(size_t n, std::string& out) {
  KG_RETURN_IF_ERROR(Need(n));
  out.assign(in_, in_pos_, n);
  in_pos_ += n;
  return Status::Ok();
}

void Transport::QueueMessage(std::string_view message) {
  size_t done = 0;
  while (done < message.size()) {
    size_t n = std::min(kMaxChunk, message.size() - done);
    out_.push_back(static_cast<char>(n >> 8));
    out_.push_back(static_cast<char>(n & 0xFF));
    out_.append(message.substr(done, n));
    done += n;
  }
  out_.append("\0\0", 2);
}

Status Transport::Flush() {
  Status s = WriteRaw(out_);
  out_.clear();
  return s;
}

Status Transport::ReadMessage(std::string& message) {
  message.clear();
  for (;;) {
    KG_RETURN_IF_ERROR(Need(2));
    size_t n = (static_cast<size_t>(static_cast<uint8_t>(in_[in_pos_])) << 8) | static_cast<uint8_t>(in_[in_pos_ + 1]);
    in_pos_ += 2;
    if (n == 0) {
      if (message.empty()) continue;  // a NOOP between messages
      return Status::Ok();            // the end of this message
    }
    if (message.size() + n > kMaxMessage) {
      // A hostile or broken server: refuse before buffering more (the caller breaks the connection).
      return Status::Internal("message too large (over " + std::to_string(kMaxMessage >> 20) + " MiB)");
    }
    KG_RETURN_IF_ERROR(Need(n));
    message.append(in_, in_pos_, n);
    in_pos_ += n;
  }
}

}  // namespace kg::bolt
