// fleetga: a QEMU guest agent. See README.md.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <exception>

#include <spdlog/spdlog.h>

#include "agent/daemon.hpp"
#include "agent/options.hpp"
#include "agent/run.hpp"

int main(int argc, char** argv) {
  // First: a start-up blocked anywhere (a FIFO as the config file, a hung filesystem) must still
  // end on SIGTERM, and SIGHUP/SIGUSR1 must not kill it (issue 16, defect 9).
  fleetga::agent::install_start_signals();
  // SIGCHLD stays pending for the exec family's signalfd (kernels without pidfd_open reap
  // children on it): blocked here, before any thread exists, so every thread inherits it.
  // Spawned programs start with an empty mask.
  {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::pthread_sigmask(SIG_BLOCK, &chld, nullptr);
  }
  // One malloc arena for the I/O thread and the two workers. glibc would otherwise give each
  // worker its own arena on its first allocation: the first offloaded command of an agent
  // paid for creating it (fsinfo's first call took ~600 us instead of ~300 us here), and
  // every arena keeps memory of its own. The threads allocate little and rarely at the same
  // time, so the shared lock costs nothing measurable. Programs started by guest-exec are new
  // process images and keep glibc's defaults.
  ::mallopt(M_ARENA_MAX, 1);
  // Large blocks go back to the system when they are freed (issue 16, defect 3). glibc raises
  // its mmap threshold each time a large mmap()ed block is freed (up to 32 MiB), so after one
  // big reply every later buffer below that size comes from the heap, which shrinks only from
  // its top: an agent that handed out 20 x 20 MB of guest-exec output stayed at 157-172 MiB
  // (qemu-ga: 6-22 MiB). A fixed threshold (which also fixes the trim threshold at its
  // 128 KiB default) keeps every block of 256 KiB or more in its own mapping, unmapped by
  // free(); smaller blocks are untouched, so the hot path is the same.
  ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  fleetga::agent::options opts;
  auto parsed = fleetga::agent::parse_options(argc, argv, opts);
  if (parsed.act == fleetga::agent::parse_result::action::exit) return parsed.status;
  try {
    return fleetga::agent::run(opts);
  } catch (const std::exception& e) {
    // A bug or exhausted memory: run()'s destructors have removed the pidfile on the way.
    spdlog::critical("{}", e.what());
    return 1;
  }
}
