#pragma once
// Reaping the supervisor's children, and only them: each child it spawned is tracked by
// a pidfd and reaped with waitid(P_PIDFD, ...), never with waitpid(-1), so children that
// other parts of the process started (a test, a library) are left to their owners.
//
// Not thread-safe: owned by the supervisor's loop thread.

#include <sys/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/util.h"

namespace kg {

// How a process ended.
struct ExitStatus {
  bool exited = false;  // exit(code); otherwise killed by `signal`
  int code = 0;
  int signal = 0;
  // "exit code 3", "killed by SIGKILL".
  std::string Describe() const;
};

class Reaper {
 public:
  // Starts tracking `pid`, a child of this process not yet reaped (so its pid cannot have
  // been reused). Opens a pidfd for it; without one (kernel < 5.3) the child is still
  // reaped, by waitid(P_PID), but only when the caller polls (see NeedsPolling).
  void Track(pid_t pid);
  // Reaps, without blocking, the tracked children that have exited; they are no longer
  // tracked afterwards. Never touches a child it does not track.
  std::vector<std::pair<pid_t, ExitStatus>> ReapExited();
  // Descriptors that turn readable (POLLIN) when a tracked child exits.
  std::vector<int> PollFds() const;
  // True when some tracked child has no pidfd: the caller must call ReapExited on a timer.
  bool NeedsPolling() const;
  size_t tracked() const { return children_.size(); }

 private:
  std::map<pid_t, UniqueFd> children_;  // pid -> pidfd (may be invalid)
};

}  // namespace kg
