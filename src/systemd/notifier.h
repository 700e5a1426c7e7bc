#pragma once
// The node's side of a systemd Type=notify unit (deploy/systemd/, docs/deployment.md): READY=1
// once the node serves, STATUS= lines, STOPPING=1 when a stop begins, and WATCHDOG=1 pings while
// every liveness probe holds, so that a hung guard loop or HTTP event loop stops the pings and
// systemd restarts the node (WatchdogSec=, Restart=on-failure).
//
// Outside systemd (no NOTIFY_SOCKET in the environment) every call does nothing and no thread
// starts. Sending is best effort: a failed send is logged once and never fails the node.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace kg {

class SystemdNotifier {
 public:
  // A liveness probe: "" while the thing it watches is alive, else why not (logged when the
  // pings stop). Called on the notifier's thread, at most once per ping period. It should return
  // within half a period (a probe over the network times out by then: the pings wait for it), and
  // fail only when the thing has shown no life for about half the watchdog interval, not at the
  // first slow answer (a loaded host is not a hung one).
  struct Probe {
    std::string name;
    std::function<std::string()> check;
  };

  // Reads NOTIFY_SOCKET, and WATCHDOG_USEC for this pid (sd_watchdog_enabled). The environment
  // stays as it is: worker processes inherit it but never notify (NotifyAccess=main ignores them).
  SystemdNotifier();
  ~SystemdNotifier();  // stops the watchdog thread
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // True when systemd listens (NOTIFY_SOCKET set).
  bool enabled() const { return enabled_; }
  // The watchdog interval systemd asked for (WatchdogSec=), in ms; 0 when none.
  int64_t watchdog_ms() const { return watchdog_ms_; }

  void Ready(const std::string& status);
  void Status(const std::string& status);
  // A stop began: STOPPING=1. From then on the pings no longer depend on the probes (the stop is
  // bounded by TimeoutStopSec=, and a draining node must not be killed as hung).
  void Stopping(const std::string& status);

  // With a watchdog interval: starts a thread that sends WATCHDOG=1 every quarter of it while
  // every probe answers "". A probe that fails withholds the ping (logged once per outage, with
  // the probe's reason) until it answers again. A second call does nothing.
  void StartWatchdog(std::vector<Probe> probes);
  // Stops and joins the watchdog thread (no more pings, no more probe calls): call before
  // anything a probe uses goes away. Idempotent; the destructor calls it.
  void StopWatchdog();

 private:
  void Send(const std::string& state);
  void WatchdogLoop();

  bool enabled_ = false;
  int64_t watchdog_ms_ = 0;
  std::vector<Probe> probes_;  // set before the thread starts, then read by it only
  Mutex mu_;
  CondVar cv_;
  bool stop_ KG_GUARDED_BY(mu_) = false;
  bool stopping_ KG_GUARDED_BY(mu_) = false;     // STOPPING=1 sent
  bool send_failed_ KG_GUARDED_BY(mu_) = false;  // a failed send was logged
  std::thread thread_;
};

}  // namespace kg
