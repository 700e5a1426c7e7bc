#pragma once
// A std::mutex that clang's thread-safety analysis understands, its scoped lock, and a
// condition variable that waits on it. Use these wherever a field is KG_GUARDED_BY a lock.
//
// Waiting: write the loop out (`while (!ready_) cv_.Wait(lock);`) so that the condition is
// read where the analysis can see the lock held; predicate lambdas are opaque to it.

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/thread_annotations.h"

namespace kg {

class KG_CAPABILITY("mutex") Mutex {
 public:
  void lock() KG_ACQUIRE() { mu_.lock(); }
  void unlock() KG_RELEASE() { mu_.unlock(); }
  bool try_lock() KG_TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class KG_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) KG_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() KG_RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  friend class CondVar;
  Mutex& mu_;
};

// Waits release the lock and hold it again on return; spurious wake-ups happen, so callers
// loop on their condition.
class CondVar {
 public:
  void Wait(MutexLock& lock) {
    std::unique_lock<std::mutex> native(lock.mu_.mu_, std::adopt_lock);
    cv_.wait(native);
    native.release();
  }
  // Returns false when `deadline` passed without a notification.
  template <typename Clock, typename Duration>
  bool WaitUntil(MutexLock& lock, std::chrono::time_point<Clock, Duration> deadline) {
    std::unique_lock<std::mutex> native(lock.mu_.mu_, std::adopt_lock);
    bool notified = cv_.wait_until(native, deadline) == std::cv_status::no_timeout;
    native.release();
    return notified;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace kg
