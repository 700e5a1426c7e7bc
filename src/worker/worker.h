#pragma once
// A worker process: leases chunks of one provider, extracts, merges into the graph and
// acks, KG_CONCURRENCY_PER_PROCESS chunks at a time. Started only by the supervisor
// (`kgflow __worker ...` after exec), so it opens every connection itself.
//
// Leases are renewed by a thread of their own, so a busy provider call never lets
// them lapse; a chunk whose renewal fails is fenced: its result is not written.
// SIGTERM: stop leasing, finish in-flight chunks up to KG_STOP_TIMEOUT_SECONDS, give
// back the rest, exit 0. A second SIGTERM/SIGINT gives everything back at once.

#include <sys/types.h>

#include <string>

#include "config/config.h"
#include "worker/exit_codes.h"  // kWorkerExit*

namespace kg {

struct WorkerOptions {
  std::string provider;
  std::string owner;     // lease owner id, "<node>/<pid>/<seq>"
  int status_fd = -1;    // pipe to the supervisor: "ready", "busy N", "idle", "done N" lines
  pid_t parent_pid = 0;  // the supervisor; the worker exits if it is gone
};

// Runs the worker; returns the process exit code.
int RunWorker(const Config& config, const WorkerOptions& options);

}  // namespace kg
