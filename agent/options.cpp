#include "agent/options.hpp"

#include <fcntl.h>
#include <getopt.h>
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "agent/config.hpp"
#include "agent/log.hpp"
#include "commands/service.hpp"
#include "fleetga/version.hpp"

namespace fleetga::agent {
namespace {

void usage(const char* cmd) {
  std::printf(
      "Usage: %s [-m <method> -p <path>] [<options>]\n"
      "QEMU Guest Agent " FLEETGA_QEMU_VERSION " (fleetga " FLEETGA_VERSION ")\n"
      "\n"
      "  -c, --config=PATH configuration file path (default is\n"
      "                    %s\n"
      "                    unless overridden by the QGA_CONF environment variable)\n"
      "  -m, --method      transport method: one of unix-listen, virtio-serial,\n"
      "                    isa-serial, or vsock-listen (virtio-serial is the default)\n"
      "  -p, --path        device/socket path (the default for virtio-serial is:\n"
      "                    %s,\n"
      "                    the default for isa-serial is:\n"
      "                    %s).\n"
      "                    Socket addresses for vsock-listen are written as\n"
      "                    <cid>:<port>.\n"
      "  -l, --logfile     set logfile path, logs to stderr by default\n"
      "  -f, --pidfile     specify pidfile (default is %s)\n"
      "  -F, --fsfreeze-hook\n"
      "                    enable fsfreeze hook. Accepts an optional argument that\n"
      "                    specifies script to run on freeze/thaw. Script will be\n"
      "                    called with 'freeze'/'thaw' arguments accordingly.\n"
      "                    (default is %s)\n"
      "                    If using -F with an argument, do not follow -F with a\n"
      "                    space.\n"
      "                    (for example: -F/var/run/fsfreezehook.sh)\n"
      "  -t, --statedir    specify dir to store state information (absolute paths\n"
      "                    only, default is %s)\n"
      "  -v, --verbose     log extra debugging information\n"
      "  -V, --version     print version information and exit\n"
      "  -d, --daemonize   become a daemon\n"
      "  -b, --block-rpcs  comma-separated list of RPCs to disable (no spaces,\n"
      "                    use \"--block-rpcs=help\" to list available RPCs)\n"
      "  -a, --allow-rpcs  comma-separated list of RPCs to enable (no spaces,\n"
      "                    use \"--allow-rpcs=help\" to list available RPCs)\n"
      "  -D, --dump-conf   dump a qemu-ga config file based on current config\n"
      "                    options / command-line parameters to stdout\n"
      "  -r, --retry-path  attempt re-opening path if it's unavailable or closed\n"
      "                    due to an error which may be recoverable in the future\n"
      "                    (virtio-serial driver re-install, serial device hot\n"
      "                    plug/unplug, etc.)\n"
      "  -h, --help        display this help and exit\n"
      "\n"
      "fleetga options:\n"
      "      --support-level=MAJ.MIN[.MIC]\n"
      "                    host support level to assume until a host sets one\n"
      "                    with guest-set-support-level (default 1.0.0; a level\n"
      "                    stored in <statedir>/qga.state takes precedence).\n"
      "                    Below 1.1.0, guest-suspend-ram and guest-suspend-hybrid\n"
      "                    are disabled (CommandNotFound); every other command\n"
      "                    behaves as in qemu-ga. Hosts set the level on attach\n"
      "                    with fleetga-host attach (package fleetga-host)\n"
      "      --fsfreeze-timeout=SECONDS\n"
      "                    thaw by itself when a freeze lasts longer than this, so a\n"
      "                    lost host cannot leave the guest frozen (default %ld;\n"
      "                    0 disables)\n"
      "  (config file keys support-level= and fsfreeze-timeout= in [general])\n"
      "\n",
      cmd, default_config, default_virtio_path, default_serial_path, default_pidfile,
      default_fsfreeze_hook, default_statedir, default_fsfreeze_timeout);
}

// qemu-ga's is_help_option(): "help" or "?".
bool is_help(std::string_view s) { return s == "help" || s == "?"; }

void list_commands() {
  for (auto name : commands::service::command_names())
    std::printf("%.*s\n", static_cast<int>(name.size()), name.data());
}

enum long_only : int { opt_support_level = 0x100, opt_fsfreeze_timeout };

constexpr char short_opts[] = "hVvdc:m:p:l:f:F::b:a:t:Dr";
constexpr struct option long_opts[] = {
    {"help", no_argument, nullptr, 'h'},
    {"version", no_argument, nullptr, 'V'},
    {"config", required_argument, nullptr, 'c'},
    {"dump-conf", no_argument, nullptr, 'D'},
    {"logfile", required_argument, nullptr, 'l'},
    {"pidfile", required_argument, nullptr, 'f'},
    {"fsfreeze-hook", optional_argument, nullptr, 'F'},
    {"verbose", no_argument, nullptr, 'v'},
    {"method", required_argument, nullptr, 'm'},
    {"path", required_argument, nullptr, 'p'},
    {"daemonize", no_argument, nullptr, 'd'},
    {"block-rpcs", required_argument, nullptr, 'b'},
    {"allow-rpcs", required_argument, nullptr, 'a'},
    {"statedir", required_argument, nullptr, 't'},
    {"retry-path", no_argument, nullptr, 'r'},
    {"support-level", required_argument, nullptr, opt_support_level},
    {"fsfreeze-timeout", required_argument, nullptr, opt_fsfreeze_timeout},
    {nullptr, 0, nullptr, 0},
};

// util/systemd.c check_socket_activation(): the number of inherited sockets, or 0.
unsigned socket_activation() {
  const char* s = std::getenv("LISTEN_PID");
  if (!s) return 0;
  char* end = nullptr;
  errno = 0;
  unsigned long pid = std::strtoul(s, &end, 10);
  if (errno || end == s || *end || pid != static_cast<unsigned long>(::getpid())) return 0;
  s = std::getenv("LISTEN_FDS");
  if (!s) return 0;
  errno = 0;
  unsigned long n = std::strtoul(s, &end, 10);
  if (errno || end == s || *end || n > 64) return 0;
  // So that they don't leak into children (guest-exec).
  for (unsigned long i = 0; i < n; ++i) {
    int fd = first_activation_fd + static_cast<int>(i);
    int f = ::fcntl(fd, F_GETFD);
    if (f == -1 || ::fcntl(fd, F_SETFD, f | FD_CLOEXEC) == -1) return 0;
  }
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_PID");
  return static_cast<unsigned>(n);
}

}  // namespace

parse_result parse_options(int argc, char** argv, options& out) {
  // First pass: only -c. qemu-ga reads the config file before it looks at anything else, so
  // even -V and -h fail on a broken one. (qemu-ga's first pass also prints getopt's
  // complaints, so they appear twice there; once is enough.)
  std::string confpath = std::getenv("QGA_CONF") ? std::getenv("QGA_CONF") : default_config;
  bool confrequired = false;
  optind = 0;
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, short_opts, long_opts, nullptr)) != -1) {
    if (ch == 'c') {
      confpath = optarg;
      confrequired = true;
    }
  }
  if (auto err = load_config(confpath, confrequired, out)) {
    glib_critical("error loading configuration from path: " + confpath + ", " + *err);
    return {parse_result::action::exit, 1};
  }

  optind = 0;
  opterr = 1;
  while ((ch = getopt_long(argc, argv, short_opts, long_opts, nullptr)) != -1) {
    switch (ch) {
      case 'c': break;
      case 'm': out.method = optarg; break;
      case 'p': out.path = optarg; break;
      case 'l': out.logfile = optarg; break;
      case 'f': out.pidfile = optarg; break;
      case 'F': out.fsfreeze_hook = optarg ? optarg : default_fsfreeze_hook; break;
      case 't': out.statedir = optarg; break;
      case 'v': out.verbose = true; break;
      case 'd': out.daemonize = true; break;
      case 'D': out.dump_conf = true; break;
      case 'r': out.retry_path = true; break;
      case 'V':
        std::printf("QEMU Guest Agent %s\nfleetga %s\n", FLEETGA_QEMU_VERSION, FLEETGA_VERSION);
        return {parse_result::action::exit, 0};
      case 'b':
        if (is_help(optarg)) { list_commands(); return {parse_result::action::exit, 0}; }
        append_rpc_list(out.block_rpcs, optarg);
        break;
      case 'a':
        if (is_help(optarg)) { list_commands(); return {parse_result::action::exit, 0}; }
        append_rpc_list(out.allow_rpcs, optarg);
        break;
      case opt_support_level: out.support_level = optarg; break;
      case opt_fsfreeze_timeout: {
        char* end = nullptr;
        errno = 0;
        long v = std::strtol(optarg, &end, 10);
        if (errno || end == optarg || *end || v < 0 || v > INT_MAX) {
          std::printf("invalid fsfreeze timeout '%s' (seconds, 0 disables)\n", optarg);
          return {parse_result::action::exit, 1};
        }
        out.fsfreeze_timeout = v;
        out.fsfreeze_timeout_given = true;
        break;
      }
      case 'h': usage(argv[0]); return {parse_result::action::exit, 0};
      case '?':
      default:
        std::printf("Unknown option, try '%s --help' for more information.\n", argv[0]);
        return {parse_result::action::exit, 1};
    }
  }

  // main(): socket activation overrides -m/-p; otherwise only the two device methods have a
  // default path (checked before the method itself is).
  unsigned activated = socket_activation();
  if (activated > 1) {
    glib_critical("qemu-ga only supports listening on one socket");
    return {parse_result::action::exit, 1};
  }
  if (activated == 1) {
    out.path.reset();
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    int family = ::getsockname(first_activation_fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0
                     ? sa.ss_family
                     : AF_UNSPEC;
    if (family == AF_UNIX) {
      out.method = "unix-listen";
    } else if (family == AF_VSOCK) {
      out.method = "vsock-listen";
    } else {
      glib_critical("unsupported listen fd type");
      return {parse_result::action::exit, 1};
    }
    out.listen_fd = first_activation_fd;
  } else if (!out.path) {
    if (out.method == "virtio-serial") {
      out.path = default_virtio_path;
    } else if (out.method == "isa-serial") {
      out.path = default_serial_path;
    } else {
      glib_critical("must specify a path for this channel");
      return {parse_result::action::exit, 1};
    }
  }

  if (out.dump_conf) {
    auto text = dump_config(out);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return {parse_result::action::exit, 0};
  }
  return {};
}

}  // namespace fleetga::agent
