// fleetga-host-attach: `fleetga-host attach` (fleetga-host execs this program, which alone
// links libvirt). Same error handling and exit statuses as fleetga-host's subcommands.
#include <csignal>
#include <iostream>

#include <fmt/format.h>

#include "tools/subcommands.hpp"

int main(int argc, char** argv) {
  using namespace fleetga::host;
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return cmd_attach(argc - 1, argv + 1);
  } catch (const usage_error& e) {
    std::cerr << fmt::format("fleetga-host attach: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::cerr << fmt::format("fleetga-host attach: {}\n", e.what());
    return 1;
  }
}
