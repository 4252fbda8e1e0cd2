// fleetga-host: the host side of the QEMU guest agent protocol (tools/README.md).
#include <climits>
#include <csignal>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <unistd.h>

#include "tools/subcommands.hpp"

namespace fleetga::host {

namespace {

// `attach` is a program of its own, fleetga-host-attach beside this one: it links libvirt,
// whose 58 shared libraries (glib, gnutls, curl, krb5, ICU, ...) would otherwise be loaded
// by every `call`, `load` or `--help` (35 ms of CPU per start, measured).
int exec_attach(char** argv) {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string path = "fleetga-host-attach";
  if (n > 0) {
    std::string dir(self, static_cast<std::size_t>(n));
    path = dir.substr(0, dir.rfind('/') + 1) + path;
  }
  argv[1] = const_cast<char*>("fleetga-host attach");
  ::execv(path.c_str(), argv + 1);
  std::cerr << fmt::format("fleetga-host attach: cannot run {}: {}\n", path, std::strerror(errno));
  return 1;
}

}  // namespace

}  // namespace fleetga::host

namespace {

constexpr const char* usage =
    "usage: fleetga-host SUBCOMMAND ...\n"
    "  call SOCKET COMMAND [ARGS-JSON]        one command with the sync handshake\n"
    "  load --agent SOCKET... | --spawn CMD   drive agents with client styles and a command mix\n"
    "  record --listen SOCKET --agent SOCKET --out FILE   proxy that records a session\n"
    "  replay FILE --agent SOCKET             replay a session and check the replies\n"
    "  responder SOCKET                       trivial agent: {\"return\": {}} to everything\n"
    "  attach [--libvirt URI | --sockets DIR] set the support level on every agent attach\n"
    "fleetga-host SUBCOMMAND --help for the options. See tools/README.md.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace fleetga::host;
  std::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    std::cerr << usage;
    return 2;
  }
  std::string sub = argv[1];
  try {
    if (sub == "call") return cmd_call(argc - 2, argv + 2);
    if (sub == "load") return cmd_load(argc - 2, argv + 2);
    if (sub == "record") return cmd_record(argc - 2, argv + 2);
    if (sub == "replay") return cmd_replay(argc - 2, argv + 2);
    if (sub == "responder") return cmd_responder(argc - 2, argv + 2);
    if (sub == "attach") return exec_attach(argv);
    if (sub == "-h" || sub == "--help" || sub == "help") {
      std::cout << usage;
      return 0;
    }
    std::cerr << fmt::format("fleetga-host: unknown subcommand '{}'\n", sub) << usage;
    return 2;
  } catch (const usage_error& e) {
    std::cerr << fmt::format("fleetga-host {}: {}\n", sub, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::cerr << fmt::format("fleetga-host {}: {}\n", sub, e.what());
    return 1;
  }
}
