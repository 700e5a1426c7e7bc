#pragma once
// Starting a worker process: exec only, never a bare fork of the threaded supervisor.
//
// posix_spawn (vfork + exec) of `exe` with an empty signal mask, default dispositions for
// the signals the supervisor blocks or ignores, its own process group, and exactly four
// descriptors: 0-2 as the parent has them and fd 3, the write end of a status pipe.
// Every other descriptor of the parent is closed in the child before exec, whether it
// was opened O_CLOEXEC or not (files, flock'ed lock files, pipes, eventfds, sockets).

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "common/util.h"

namespace kg {

struct SpawnedProcess {
  pid_t pid = 0;
  UniqueFd status;  // read end of the child's status pipe (fd 3 in the child), O_NONBLOCK
};

// Spawns `exe` with `args` (args[0] is the program name). The child's fd 3 is its status
// pipe. Thread-safe. Failure (pipe or posix_spawn) is kUnavailable naming the cause.
// The caller owns the child: it must reap it.
Result<SpawnedProcess> SpawnWithStatusPipe(const std::string& exe, const std::vector<std::string>& args);

}  // namespace kg
