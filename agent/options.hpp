#pragma once
// Command line of qemu-ga (wire spec §4.1) plus fleetga's own long options.
#include <optional>
#include <string>
#include <vector>

namespace fleetga::agent {

inline constexpr const char* default_virtio_path = "/dev/virtio-ports/org.qemu.guest_agent.0";
inline constexpr const char* default_serial_path = "/dev/ttyS0";
inline constexpr const char* default_statedir = "/var/run";
inline constexpr const char* default_pidfile = "/var/run/qemu-ga.pid";
inline constexpr const char* default_fsfreeze_hook = "/etc/qemu/fsfreeze-hook";
// fleetga: seconds a freeze may last before the agent thaws by itself (0: never).
inline constexpr long default_fsfreeze_timeout = 600;

struct options {
  std::string method = "virtio-serial";
  std::optional<std::string> path;
  std::optional<std::string> logfile;
  std::string pidfile = default_pidfile;
  std::string statedir = default_statedir;
  bool verbose = false;
  bool retry_path = false;
  std::vector<std::string> block_rpcs;
  std::vector<std::string> allow_rpcs;
  std::optional<std::string> support_level;  // --support-level=MAJ.MIN[.MIC]
  std::optional<std::string> fsfreeze_hook;  // -F[PATH]
  long fsfreeze_timeout = default_fsfreeze_timeout;
};

// What main should do after parsing.
struct parse_result {
  enum class action { run, exit } act = action::run;
  int status = 0;  // exit status when act == exit
};

// Parses argv like qemu-ga (getopt_long, same texts and exit codes). Prints help/version/
// command lists itself.
parse_result parse_options(int argc, char** argv, options& out);

}  // namespace fleetga::agent
