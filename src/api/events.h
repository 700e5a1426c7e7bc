#pragma once
// Live updates over server-sent events (GET /api/v1/events): a publisher thread looks at the
// node's state every `interval` while anyone listens and sends what changed since its last
// look: one `task` event per task whose row changed (status, counts), one `workers` event
// when the cluster's nodes or processes changed. A new listener first gets everything
// current. A listener that asked for one task (?task=ID) gets only that task's events.
//
// Thread safety: every method may be called from any thread.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "http/message.h"

namespace kg::api {

// What can be sent, by key ("task:<id>", "workers"): the event name and its data (JSON text).
struct LiveItem {
  std::string event, data;
};
// Looks at the current state; `tasks` are ids listeners follow by name (beyond the recent ones).
using Snapshot = std::function<std::map<std::string, LiveItem>(const std::vector<std::string>& tasks)>;

class EventHub {
 public:
  EventHub(Snapshot snapshot, std::chrono::milliseconds interval);
  ~EventHub();  // Stop()
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Adds a listener; `task` "" for every task.
  void Add(std::shared_ptr<http::EventChannel> channel, std::string task);
  // Ends the publisher thread and drops every listener (their streams end with the server).
  void Stop();

 private:
  struct Listener {
    std::shared_ptr<http::EventChannel> channel;
    std::string task;
    bool fresh = true;  // has not had the current state yet
  };
  void Run();

  const Snapshot snapshot_;
  const std::chrono::milliseconds interval_;
  Mutex mu_;
  CondVar cv_;
  std::vector<Listener> listeners_ KG_GUARDED_BY(mu_);
  bool stopping_ KG_GUARDED_BY(mu_) = false;
  std::thread thread_ KG_GUARDED_BY(mu_);  // started by the first listener
};

}  // namespace kg::api
