#pragma once
// Logging with qemu-ga's line format "<unix-seconds>.<micros>: <level>: <message>" on
// stderr or the -l file; default level error+critical, -v everything.
#include <functional>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

namespace fleetga::agent {

// Owned by main's run(): while `muted` is set and returns true nothing is written (qemu-ga:
// no disk writes while filesystems are frozen, its log file may be on one of them). Set it
// before the I/O loop starts; it is consulted on every log line.
struct log_control {
  std::function<bool()> muted;
};

// Installs the default logger. Returns an error text when the log file can't be opened.
std::optional<std::string> init_logging(const std::optional<std::string>& logfile, bool verbose,
                                        const log_control& control);

}  // namespace fleetga::agent
