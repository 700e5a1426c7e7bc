#pragma once
// A fixed set of threads running jobs from a bounded queue: where the HTTP server runs
// handlers that may block, off its event loop.
//
// Thread safety: every method may be called from any thread.

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace kg::http {

class Pool {
 public:
  Pool(int threads, size_t max_queued);
  ~Pool();  // Shutdown()
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Queues `job`; false (and `job` dropped) when max_queued jobs already wait or the pool is shut down.
  bool Submit(std::function<void()> job);
  // Queues `job` only if a thread is free to take it at once (fewer jobs queued or running
  // than threads); false otherwise.
  bool SubmitIfIdle(std::function<void()> job);
  // Runs what is queued, then joins the threads. Idempotent.
  void Shutdown();

 private:
  void Run();

  const size_t max_queued_;
  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ KG_GUARDED_BY(mu_);
  bool stopping_ KG_GUARDED_BY(mu_) = false;
  size_t running_ KG_GUARDED_BY(mu_) = 0;  // jobs taken and not yet finished
  const size_t thread_count_;
  std::vector<std::thread> threads_;
};

}  // namespace kg::http
