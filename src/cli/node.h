#pragma once
// `kgflow start` and `kgflow worker`: run a node of the configured role until SIGTERM/SIGINT.
#include "config/config.h"

namespace kg {

// Returns the process exit code: 0 after a stop, 1 when a backend, the listener or the
// node lock fails. Precondition: BlockSupervisorSignals() ran before any thread.
int RunNode(const Config& config);

// Logs the start-up banner (version, node, role, providers and caps, backends with
// secrets masked).
void LogBanner(const Config& config, const std::string& what);

}  // namespace kg
