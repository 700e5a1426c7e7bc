#pragma once
// Exit codes a worker process reports to its supervisor: the whole contract between the
// two besides the status pipe, so the supervisor includes this, not the worker library.

namespace kg {

inline constexpr int kWorkerExitStopped = 0;    // asked to stop
inline constexpr int kWorkerExitRecycled = 10;  // served KG_MAX_TASKS_PER_PROCESS chunks
inline constexpr int kWorkerExitFault = 3;      // fault injection "exit_on_start"
inline constexpr int kWorkerExitSetup = 4;      // could not open a backend or provider

}  // namespace kg
