#pragma once
// Process state read from /proc, for the supervisor's sampling and for benchmarks.
// Reads only; thread-safe; a process that is gone (or not readable) is a false return.

#include <sys/types.h>

#include <cstdint>

namespace kg {

struct ProcStats {
  int64_t rss_bytes = 0;
  int64_t pss_bytes = 0;  // only when with_pss (smaps_rollup is costly: benchmarks only)
  double cpu_seconds = 0;  // user + system
};

// Fills `out` from /proc/<pid>/{statm,stat} (and smaps_rollup when with_pss). False when
// the process does not exist or a file could not be parsed; `out` is then partly set.
bool ReadProcStats(pid_t pid, bool with_pss, ProcStats* out);

}  // namespace kg
