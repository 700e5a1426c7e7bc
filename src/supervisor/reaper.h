#pragma once
// Reaping the supervisor's children: collects the exit status of the processes it was
// told to track, so that none lingers as a zombie.
//
// Not thread-safe: owned by the supervisor's loop thread.

#include <sys/types.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

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
  // Starts tracking `pid`, a child of this process.
  void Track(pid_t pid);
  // Reaps, without blocking, the tracked children that have exited; they are no longer
  // tracked afterwards.
  std::vector<std::pair<pid_t, ExitStatus>> ReapExited();
  size_t tracked() const { return pids_.size(); }

 private:
  std::set<pid_t> pids_;
};

}  // namespace kg
