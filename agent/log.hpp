#pragma once
// Logging with qemu-ga's line format "<unix-seconds>.<micros>: <level>: <message>" on
// stderr or the -l file; default level error+critical, -v everything.
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

namespace fleetga::agent {

// Installs the default logger. Returns an error text when the log file can't be opened.
std::optional<std::string> init_logging(const std::optional<std::string>& logfile, bool verbose);

}  // namespace fleetga::agent
