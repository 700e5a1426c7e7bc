#include "systemd/notifier.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace kg {

namespace {

// A STATUS= value is one line of the notify message: no newline may end it early.
std::string OneLine(std::string s) {
  for (char& ch : s) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return s;
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  if (!enabled_) return;
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) watchdog_ms_ = static_cast<int64_t>(usec / 1000);
}

SystemdNotifier::~SystemdNotifier() { StopWatchdog(); }

void SystemdNotifier::StopWatchdog() {
  {
    MutexLock l(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void SystemdNotifier::Send(const std::string& state) {
  if (!enabled_) return;
  int r = sd_notify(0, state.c_str());
  if (r > 0) return;
  MutexLock l(mu_);
  if (send_failed_) return;
  send_failed_ = true;
  spdlog::warn("systemd: could not notify NOTIFY_SOCKET ({}); later failures are not logged",
               r < 0 ? std::strerror(-r) : "socket unset");
}

void SystemdNotifier::Ready(const std::string& status) { Send("READY=1\nSTATUS=" + OneLine(status)); }

void SystemdNotifier::Status(const std::string& status) { Send("STATUS=" + OneLine(status)); }

void SystemdNotifier::Stopping(const std::string& status) {
  {
    MutexLock l(mu_);
    stopping_ = true;
  }
  Send("STOPPING=1\nSTATUS=" + OneLine(status));
}

void SystemdNotifier::StartWatchdog(std::vector<Probe> probes) {
  if (!enabled_ || watchdog_ms_ <= 0 || thread_.joinable()) return;
  probes_ = std::move(probes);
  spdlog::info("systemd: watchdog every {} ms; pinging every {} ms while {} probe(s) hold", watchdog_ms_,
               std::max<int64_t>(1, watchdog_ms_ / 4), probes_.size());
  thread_ = std::thread([this] { WatchdogLoop(); });
}

void SystemdNotifier::WatchdogLoop() {
  const auto period = std::chrono::milliseconds(std::max<int64_t>(1, watchdog_ms_ / 4));
  std::string withheld;  // the failing probe's reason while pings are withheld
  while (true) {
    bool stopping = false;
    {
      MutexLock l(mu_);
      if (stop_) return;
      stopping = stopping_;
    }
    std::string why;
    if (!stopping) {
      for (const auto& p : probes_) {
        std::string r = p.check();
        if (!r.empty()) {
          why = p.name + ": " + r;
          break;
        }
      }
    }
    if (why.empty()) {
      if (!withheld.empty()) spdlog::warn("systemd: watchdog pings resume (was: {})", withheld);
      withheld.clear();
      Send("WATCHDOG=1");
    } else if (withheld.empty()) {
      withheld = why;
      spdlog::error("systemd: withholding watchdog pings: {}; systemd restarts the node after WatchdogSec", why);
      Send("STATUS=watchdog pings withheld: " + OneLine(why));
    }
    MutexLock l(mu_);
    const auto deadline = std::chrono::steady_clock::now() + period;
    while (!stop_ && std::chrono::steady_clock::now() < deadline) cv_.WaitUntil(l, deadline);
    if (stop_) return;
  }
}

}  // namespace kg
