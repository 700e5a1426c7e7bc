#pragma once
// Small helpers shared by every component: hashing, ids, time, descriptors.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"

namespace kg {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// SHA-256 of data that arrives in pieces: Update() each piece in order, then HexDigest() gives
// what Sha256Hex gives for their concatenation. Not thread-safe; movable, not copyable.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  // Ends the hash; the object may not be updated or digested again.
  std::string HexDigest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A random identifier: `prefix` followed by 16 hex digits from a CSPRNG.
std::string RandomId(std::string_view prefix);

// Milliseconds since the Unix epoch (wall clock; comparable across processes and hosts).
int64_t NowMs();
// Milliseconds of a monotonic clock (for timeouts inside one process).
int64_t MonoMs();

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = o.Release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Retries `op` while it fails with kUnavailable (a busy backend), up to 6 tries with a
// short exponential backoff (10 ms doubling, ~630 ms in all); any other outcome is
// returned at once. For calls whose failure would otherwise strand work until a lease expires.
template <typename F>
Status RetryTransient(F op) {
  Status s;
  for (int i = 0; i < 6; ++i) {
    s = op();
    if (s.code() != Code::kUnavailable) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(10 << i));
  }
  return s;
}

// Calls `open` until it returns anything but kUnavailable or `wait_ms` has passed, with a pause
// growing from 100 ms to 2 s; `on_wait` is called once, with the first failure, before waiting.
// For opening a backend that may be restarting (a node or worker starting during an outage).
template <typename R, typename F, typename W>
R RetryOpen(F open, int64_t wait_ms, W on_wait) {
  int64_t deadline = MonoMs() + wait_ms;
  int64_t pause = 100;
  for (bool first = true;; first = false) {
    R r = open();
    if (r.ok() || r.status().code() != Code::kUnavailable || MonoMs() + pause > deadline) return r;
    if (first) on_wait(r.status());
    std::this_thread::sleep_for(std::chrono::milliseconds(pause));
    pause = std::min<int64_t>(pause * 2, 2000);
  }
}

// Masks a secret for display: "" stays "", anything else becomes "****".
std::string MaskSecret(std::string_view secret);


}  // namespace kg
