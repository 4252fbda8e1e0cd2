// fleetga-host: the host side of the QEMU guest agent protocol (tools/README.md).
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

#include <fmt/format.h>

#include "tools/subcommands.hpp"

namespace fleetga::host {

double parse_seconds(const std::string& v, const std::string& opt) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(d >= 0) || d > 1e7) throw usage_error(opt + ": expected seconds, got '" + v + "'");
  return d;
}

long long parse_count(const std::string& v, const std::string& opt) {
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < 0) throw usage_error(opt + ": expected a count, got '" + v + "'");
  return n;
}

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
    if (sub == "attach") return cmd_attach(argc - 2, argv + 2);
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
