#pragma once
#include "agent/options.hpp"

namespace fleetga::agent {
// Runs the agent until SIGTERM/SIGINT (ignored while frozen). Returns the exit status.
int run(const options& opts);
}  // namespace fleetga::agent
