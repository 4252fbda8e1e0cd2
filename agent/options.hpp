#pragma once
// Command line and config file of qemu-ga 10.2 (wire spec §4.1, §4.2) plus fleetga's own
// options. The config file is read first, then the command line overrides scalars and
// appends to the lists, as qemu-ga's config_parse() does.
#include <optional>
#include <string>
#include <vector>

namespace fleetga::agent {

inline constexpr const char* default_virtio_path = "/dev/virtio-ports/org.qemu.guest_agent.0";
inline constexpr const char* default_serial_path = "/dev/ttyS0";
inline constexpr const char* default_statedir = "/var/run";
inline constexpr const char* default_pidfile = "/var/run/qemu-ga.pid";
inline constexpr const char* default_fsfreeze_hook = "/etc/qemu/fsfreeze-hook";
inline constexpr const char* default_config = "/etc/qemu/qemu-ga.conf";
// fleetga: seconds a freeze may last before the agent thaws by itself (0: never).
inline constexpr long default_fsfreeze_timeout = 600;
// systemd's SD_LISTEN_FDS_START.
inline constexpr int first_activation_fd = 3;

struct options {
  std::string method = "virtio-serial";
  std::optional<std::string> path;
  std::optional<std::string> logfile;
  std::string pidfile = default_pidfile;
  std::string statedir = default_statedir;
  bool daemonize = false;
  bool verbose = false;
  bool retry_path = false;
  bool dump_conf = false;
  // In qemu-ga's order: each source (the config file's value, then every -b/-a) is split on
  // ',' only, empty pieces kept, and its pieces are prepended (so come out reversed), sources
  // appended. Only --dump-conf shows the order; filtering ignores it (and unknown names).
  std::vector<std::string> block_rpcs;
  std::vector<std::string> allow_rpcs;
  std::optional<std::string> support_level;  // --support-level=MAJ.MIN[.MIC] / support-level=
  std::optional<std::string> fsfreeze_hook;  // -F[PATH] / fsfreeze-hook=
  long fsfreeze_timeout = default_fsfreeze_timeout;
  bool fsfreeze_timeout_given = false;  // dumped by -D only when set somewhere
  // systemd socket activation: the inherited listening socket (first_activation_fd), else -1.
  int listen_fd = -1;
};

// What main should do after parsing.
struct parse_result {
  enum class action { run, exit } act = action::run;
  int status = 0;  // exit status when act == exit
};

// Parses argv and the config file like qemu-ga's main() up to initialize_agent(): config
// file ($QGA_CONF, overridden by -c), command line, defaults, socket activation
// (LISTEN_PID/LISTEN_FDS), the default device path or "must specify a path for this
// channel", --dump-conf. Prints help, version, command lists, the dump and qemu-ga's error
// texts itself.
parse_result parse_options(int argc, char** argv, options& out);

}  // namespace fleetga::agent
