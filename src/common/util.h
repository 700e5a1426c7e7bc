#pragma once
// Small helpers shared by every component: hashing, ids, time, descriptors.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"

namespace kg {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

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

// Masks a secret for display: "" stays "", anything else becomes "****".
std::string MaskSecret(std::string_view secret);


}  // namespace kg
