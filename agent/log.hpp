#pragma once
// Logging with qemu-ga's line format "<unix-seconds>.<micros>: <level>: <message>" on
// stderr or the -l file; default level error+critical, -v everything. Audit lines of
// privileged commands go to syslog like qemu-ga's slog().
#include <functional>
#include <optional>
#include <string>
#include <string_view>

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

// Switches logging to the -l file (append). On failure returns qemu-ga's
// "unable to open specified log file: <errno>" and logging stays where it was (stderr; for
// the file deferred by a frozen start that is what qemu-ga does too).
std::optional<std::string> open_logfile(const std::string& path);

// One line at `level` whatever -v says (the SIGUSR1 stats line: asked for, so always
// written); still dropped while muted.
void log_always(spdlog::level::level_enum level, std::string_view line);

// slog(): one audit line to syslog (LOG_INFO, "info: <line>", ident "qemu-ga" so existing
// log filters keep matching) and, at level info, to the log file. Dropped while muted.
void audit(std::string_view line, const log_control& control);

// What GLib's default log handler prints for g_critical() before qemu-ga has installed its
// own (config file errors, socket activation, a missing path):
// "\n** (process:<pid>): CRITICAL **: <HH:MM:SS.mmm>: <message>\n" on stderr, non-ASCII
// characters as '?' (qemu-ga never sets a locale, so GLib converts to ASCII).
void glib_critical(std::string_view message);
// The same for g_warning() ("** (process:<pid>): WARNING **: ...").
void glib_warning(std::string_view message);

}  // namespace fleetga::agent
