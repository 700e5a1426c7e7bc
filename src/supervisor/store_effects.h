#pragma once
// The supervisor's database effects, on a thread of their own ("kg-guard-db"): giving
// back the chunks of reaped workers, persisting scale settings, and the periodic
// heartbeat (node record, expired leases, settings of other nodes). The guard's loop and
// Scale() only hand work over, so a slow or locked store delays these effects and
// nothing else: never reaping, spawning, or the API's view of the process table.
//
// Work handed over is done in order per kind: settings first, then releases, then the
// heartbeat when due. Thread-safe.

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace kg {

class Queue;
class TaskStore;

class StoreEffects {
 public:
  // The chunks a reaped worker held.
  struct Release {
    pid_t pid = 0;
    std::string provider;
    std::string owner;
    bool crashed = false;  // counts a crash against each chunk
    std::string how;       // "killed by SIGKILL"
  };

  // `heartbeat` runs on the thread every `heartbeat_ms` (first at once) and once more at
  // the end; `persisted(provider, seq)` after a scale setting handed over with `seq` is
  // stored. Queue and store are borrowed and must outlive this object.
  StoreEffects(Queue& queue, TaskStore& store, std::function<void()> heartbeat, int64_t heartbeat_ms,
               std::function<void(const std::string&, uint64_t)> persisted);
  // Finish() and Join().
  ~StoreEffects();
  StoreEffects(const StoreEffects&) = delete;
  StoreEffects& operator=(const StoreEffects&) = delete;

  // Starts the thread. Work handed over before is kept and done first. Call once.
  void Start();
  // Gives back what reaped workers held (ReleaseOwner, transient errors retried).
  void GiveBack(std::vector<Release> releases);
  // Stores `per_node` as the scale setting of `provider`; nullopt removes it. `seq` orders
  // the calls of one provider; a failed write is kept and tried again with each heartbeat
  // until it succeeds or a later call replaces it.
  void PersistScale(const std::string& provider, std::optional<int> per_node, uint64_t seq);
  // No more work will come: the thread does what is pending, beats once more and ends.
  void Finish();
  // Waits for the thread to end (after Finish()); returns at once if it never started.
  void Join();

 private:
  void Run();
  void Give(const Release& r);

  Queue& queue_;
  TaskStore& store_;
  const std::function<void()> heartbeat_;
  const std::function<void(const std::string&, uint64_t)> persisted_;
  const int64_t heartbeat_ms_;

  Mutex mu_;
  CondVar cv_;
  std::deque<Release> releases_ KG_GUARDED_BY(mu_);
  struct Setting {
    std::optional<int> per_node;  // nullopt: delete
    uint64_t seq = 0;
  };
  std::map<std::string, Setting> settings_ KG_GUARDED_BY(mu_);
  std::map<std::string, Setting> retry_ KG_GUARDED_BY(mu_);  // failed writes, for the next heartbeat
  bool finish_ KG_GUARDED_BY(mu_) = false;

  Mutex join_mu_;
  std::thread thread_ KG_GUARDED_BY(join_mu_);
};

}  // namespace kg
