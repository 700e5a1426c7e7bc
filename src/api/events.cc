#include "api/events.h"

#include <nlohmann/json.hpp>
#include <set>

namespace kg::api {

EventHub::EventHub(Snapshot snapshot, std::chrono::milliseconds interval)
    : snapshot_(std::move(snapshot)), interval_(interval) {}

EventHub::~EventHub() { Stop(); }

void EventHub::Add(std::shared_ptr<http::EventChannel> channel, std::string task) {
  MutexLock lock(mu_);
  if (stopping_) return;
  listeners_.push_back({std::move(channel), std::move(task), true});
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  cv_.NotifyAll();  // the newcomer gets the current state now, not at the next tick
}

void EventHub::Stop() {
  std::thread t;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    listeners_.clear();
    t = std::move(thread_);
  }
  cv_.NotifyAll();
  if (t.joinable()) t.join();
}

void EventHub::Run() {
  std::map<std::string, LiveItem> last;  // what listeners have been sent
  while (true) {
    std::vector<Listener> listeners;
    {
      MutexLock lock(mu_);
      // Sleep a tick, or until a newcomer wants the current state.
      auto until = std::chrono::steady_clock::now() + interval_;
      while (!stopping_) {
        bool fresh = false;
        for (const auto& l : listeners_) fresh = fresh || l.fresh;
        if (fresh || !cv_.WaitUntil(lock, until)) break;
      }
      if (stopping_) return;
      // Listeners whose client went away are dropped here.
      std::erase_if(listeners_, [](const Listener& l) { return !l.channel->open(); });
      listeners = listeners_;
      for (auto& l : listeners_) l.fresh = false;
    }
    if (listeners.empty()) continue;
    std::set<std::string> followed;
    for (const auto& l : listeners) {
      if (!l.task.empty()) followed.insert(l.task);
    }
    std::map<std::string, LiveItem> now = snapshot_(std::vector<std::string>(followed.begin(), followed.end()));
    for (const auto& [key, item] : now) {
      auto it = last.find(key);
      bool changed = it == last.end() || it->second.data != item.data;
      for (const auto& l : listeners) {
        if (!l.task.empty() && key != "task:" + l.task) continue;
        if (!changed && !l.fresh) continue;
        l.channel->Send(item.event, item.data);
        // A listener that follows one task is done once it has finished: an `end` event, and
        // the stream ends (a retry reopens the task; follow it again then).
        if (!l.task.empty() && item.event == "task") {
          nlohmann::json t = nlohmann::json::parse(item.data, nullptr, false);
          std::string status = t.is_object() ? t.value("status", "") : "";
          if (status == "done" || status == "failed" || status == "cancelled") {
            l.channel->Send("end", nlohmann::json{{"reason", "task finished"}, {"status", status}}.dump());
            l.channel->Close();
          }
        }
      }
    }
    // Keys out of the snapshot are forgotten: a task that comes back is sent again.
    last = std::move(now);
  }
}

}  // namespace kg::api
