// fleetga: a QEMU guest agent. See README.md.
#include <malloc.h>

#include "agent/options.hpp"
#include "agent/run.hpp"

int main(int argc, char** argv) {
  // One malloc arena for the I/O thread and the two workers. glibc would otherwise give each
  // worker its own arena on its first allocation: the first offloaded command of an agent
  // paid for creating it (fsinfo's first call took ~600 us instead of ~300 us here), and
  // every arena keeps memory of its own. The threads allocate little and rarely at the same
  // time, so the shared lock costs nothing measurable. Programs started by guest-exec are new
  // process images and keep glibc's defaults.
  ::mallopt(M_ARENA_MAX, 1);
  fleetga::agent::options opts;
  auto parsed = fleetga::agent::parse_options(argc, argv, opts);
  if (parsed.act == fleetga::agent::parse_result::action::exit) return parsed.status;
  return fleetga::agent::run(opts);
}
