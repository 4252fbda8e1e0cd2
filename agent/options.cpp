#include "agent/options.hpp"

#include <getopt.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "commands/service.hpp"

namespace fleetga::agent {
namespace {

void usage(const char* cmd) {
  std::printf(
      "Usage: %s [-m <method> -p <path>] [<options>]\n"
      "QEMU Guest Agent " FLEETGA_QEMU_VERSION " (fleetga " FLEETGA_VERSION ")\n"
      "\n"
      "  -m, --method      transport method: one of unix-listen, virtio-serial,\n"
      "                    isa-serial, or vsock-listen (virtio-serial is the default)\n"
      "  -p, --path        device/socket path (the default for virtio-serial is:\n"
      "                    %s,\n"
      "                    the default for isa-serial is:\n"
      "                    %s).\n"
      "                    Socket addresses for vsock-listen are written as\n"
      "                    <cid>:<port>.\n"
      "  -l, --logfile     set logfile path, logs to stderr by default\n"
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
      "  -b, --block-rpcs  comma-separated list of RPCs to disable (no spaces,\n"
      "                    use \"help\" to list available RPCs)\n"
      "  -a, --allow-rpcs  comma-separated list of RPCs to enable (no spaces,\n"
      "                    use \"help\" to list available RPCs)\n"
      "  -h, --help        display this help and exit\n"
      "\n"
      "fleetga options:\n"
      "      --support-level=MAJ.MIN[.MIC]\n"
      "                    host support level to assume until the host sets one\n"
      "                    with guest-set-support-level (default 1.0.0; a level\n"
      "                    stored in <statedir>/qga.state takes precedence)\n"
      "      --fsfreeze-timeout=SECONDS\n"
      "                    thaw by itself when a freeze lasts longer than this, so a\n"
      "                    lost host cannot leave the guest frozen (default %ld;\n"
      "                    0 disables)\n"
      "\n",
      cmd, default_virtio_path, default_serial_path, default_fsfreeze_hook, default_statedir,
      default_fsfreeze_timeout);
}

// qemu-ga's is_help_option(): "help" or "?".
bool is_help(std::string_view s) { return s == "help" || s == "?"; }

void list_commands() {
  for (auto name : commands::service::command_names())
    std::printf("%.*s\n", static_cast<int>(name.size()), name.data());
}

void split_append(std::vector<std::string>& list, std::string_view arg) {
  // qemu-ga splits on ',' only (g_strsplit(optarg, ",", -1)), keeping empty pieces out.
  while (!arg.empty()) {
    auto comma = arg.find(',');
    auto piece = arg.substr(0, comma);
    if (!piece.empty()) list.emplace_back(piece);
    if (comma == std::string_view::npos) break;
    arg.remove_prefix(comma + 1);
  }
}

enum long_only : int { opt_support_level = 0x100, opt_fsfreeze_timeout };

}  // namespace

parse_result parse_options(int argc, char** argv, options& out) {
  static const char short_opts[] = "hVvm:p:l:F::t:b:a:";
  static const struct option long_opts[] = {
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {"verbose", no_argument, nullptr, 'v'},
      {"method", required_argument, nullptr, 'm'},
      {"path", required_argument, nullptr, 'p'},
      {"logfile", required_argument, nullptr, 'l'},
      {"fsfreeze-hook", optional_argument, nullptr, 'F'},
      {"statedir", required_argument, nullptr, 't'},
      {"block-rpcs", required_argument, nullptr, 'b'},
      {"allow-rpcs", required_argument, nullptr, 'a'},
      {"support-level", required_argument, nullptr, opt_support_level},
      {"fsfreeze-timeout", required_argument, nullptr, opt_fsfreeze_timeout},
      {nullptr, 0, nullptr, 0},
  };
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, short_opts, long_opts, nullptr)) != -1) {
    switch (ch) {
      case 'm': out.method = optarg; break;
      case 'p': out.path = optarg; break;
      case 'l': out.logfile = optarg; break;
      case 'F': out.fsfreeze_hook = optarg ? optarg : default_fsfreeze_hook; break;
      case 't': out.statedir = optarg; break;
      case 'v': out.verbose = true; break;
      case 'V':
        std::printf("QEMU Guest Agent %s\nfleetga %s\n", FLEETGA_QEMU_VERSION, FLEETGA_VERSION);
        return {parse_result::action::exit, 0};
      case 'b':
        if (is_help(optarg)) { list_commands(); return {parse_result::action::exit, 0}; }
        split_append(out.block_rpcs, optarg);
        break;
      case 'a':
        if (is_help(optarg)) { list_commands(); return {parse_result::action::exit, 0}; }
        split_append(out.allow_rpcs, optarg);
        break;
      case opt_support_level: out.support_level = optarg; break;
      case opt_fsfreeze_timeout: {
        char* end = nullptr;
        errno = 0;
        long v = std::strtol(optarg, &end, 10);
        if (errno || end == optarg || *end || v < 0) {
          std::printf("invalid fsfreeze timeout '%s' (seconds, 0 disables)\n", optarg);
          return {parse_result::action::exit, 1};
        }
        out.fsfreeze_timeout = v;
        break;
      }
      case 'h': usage(argv[0]); return {parse_result::action::exit, 0};
      case '?':
      default:
        std::printf("Unknown option, try '%s --help' for more information.\n", argv[0]);
        return {parse_result::action::exit, 1};
    }
  }
  return {};
}

}  // namespace fleetga::agent
