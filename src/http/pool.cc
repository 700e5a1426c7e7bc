#include "http/pool.h"

namespace kg::http {

Pool::Pool(int threads, size_t max_queued) : max_queued_(max_queued), thread_count_(static_cast<size_t>(threads)) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

Pool::~Pool() { Shutdown(); }

bool Pool::Submit(std::function<void()> job) {
  {
    MutexLock lock(mu_);
    if (stopping_ || jobs_.size() >= max_queued_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.NotifyOne();
  return true;
}

bool Pool::SubmitIfIdle(std::function<void()> job) {
  {
    MutexLock lock(mu_);
    if (stopping_ || jobs_.size() + running_ >= thread_count_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.NotifyOne();
  return true;
}

void Pool::Shutdown() {
  {
    MutexLock lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.NotifyAll();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void Pool::Run() {
  while (true) {
    std::function<void()> job;
    {
      MutexLock lock(mu_);
      while (jobs_.empty() && !stopping_) cv_.Wait(lock);
      if (jobs_.empty()) return;  // stopping, and nothing left to run
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    job();
    job = nullptr;  // what it captured goes before the thread counts as free
    MutexLock lock(mu_);
    --running_;
  }
}

}  // namespace kg::http
