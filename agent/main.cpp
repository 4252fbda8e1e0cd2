// fleetga: a QEMU guest agent. See README.md.
#include "agent/options.hpp"
#include "agent/run.hpp"

int main(int argc, char** argv) {
  fleetga::agent::options opts;
  auto parsed = fleetga::agent::parse_options(argc, argv, opts);
  if (parsed.act == fleetga::agent::parse_result::action::exit) return parsed.status;
  return fleetga::agent::run(opts);
}
