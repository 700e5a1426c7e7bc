#include "supervisor/proc_stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/util.h"

namespace kg {

namespace {

// Reads a small /proc file with one read(2): cheaper than streams on the guard's cadence.
bool ReadSmall(const std::string& path, std::string* out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  char buf[1024];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  out->assign(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace

bool ReadProcStats(pid_t pid, bool with_pss, ProcStats* out) {
  std::string base = "/proc/" + std::to_string(pid);
  std::string text;
  if (!ReadSmall(base + "/statm", &text)) return false;
  long long size = 0, resident = 0;
  if (std::sscanf(text.c_str(), "%lld %lld", &size, &resident) != 2) return false;
  out->rss_bytes = resident * sysconf(_SC_PAGESIZE);
  if (!ReadSmall(base + "/stat", &text)) return false;
  auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  // Fields after the command: state(3) ... utime(14) stime(15).
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(text.c_str() + close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                  &stime) != 2) {
    return false;
  }
  out->cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  if (with_pss) {
    std::ifstream smaps(base + "/smaps_rollup");
    std::string key;
    int64_t kb = 0;
    std::string unit;
    while (smaps >> key) {
      if (key == "Pss:") {
        smaps >> kb >> unit;
        out->pss_bytes = kb * 1024;
        break;
      }
      smaps.ignore(4096, '\n');
    }
  }
  return true;
}

}  // namespace kg
