#pragma once
// Readiness of file descriptors for commands/ (which has no Asio): guest-exec's output pipes,
// its stdin pipe and the child's pidfd are watched by the agent's event loop, never by a
// blocking read or a thread per child. The agent implements it on its io_context
// (agent/reactor.hpp); unit tests use a small poll() loop.
#include <functional>

namespace fleetga::commands {

class fd_reactor {
 public:
  virtual ~fd_reactor() = default;
  // One-shot, level-triggered: `ready` runs once on the I/O thread when `fd` is readable
  // (resp. writable) — already now or later — including hang-up and error conditions (the
  // callback's read/write then reports EOF/EPIPE). Never runs inside the call itself. At most
  // one read wait and one write wait per fd; a new one replaces the old.
  virtual void wait_readable(int fd, std::function<void()> ready) = 0;
  virtual void wait_writable(int fd, std::function<void()> ready) = 0;
  // Forgets `fd`: pending waits are dropped without running (also ones already due). Call it
  // before closing the fd; the reactor never closes it.
  virtual void cancel(int fd) noexcept = 0;
};

}  // namespace fleetga::commands
