#pragma once
// `kgflow start` and `kgflow worker`: run a node of the configured role until SIGTERM/SIGINT.
#include "config/config.h"

namespace kg {

// The exit code of a node whose name was taken over by another node while it ran (its
// heartbeat was late): it stopped its workers gracefully and exits with this code, never
// claiming the name back. The same code as a name refused at start (a live holder).
constexpr int kExitNameTakenOver = 2;

// Returns the process exit code: 0 after a stop, 1 when a backend, the listener or the
// node lock fails, 2 when the name is held by a live node at start or was taken over
// while running (kExitNameTakenOver). Precondition: BlockSupervisorSignals() ran before any thread.
int RunNode(const Config& config);

// Logs the start-up banner (version, node, role, providers and caps, backends with
// secrets masked).
void LogBanner(const Config& config, const std::string& what);

}  // namespace kg
