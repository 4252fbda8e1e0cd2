#pragma once
// qemu-ga's -d/-f: the pidfile (QEMU's qemu_write_pidfile(): an fcntl write lock held for
// the life of the process, texts "Could not create '<path>': <errno>", "Cannot lock pid
// file: <errno>") and become_daemon(); and the signals of the start-up phase, before the
// event loop's handlers are armed.
#include <optional>
#include <string>

namespace fleetga::agent {

// Creates, locks and writes `path` ("<pid>\n", mode 0600); the fd stays open (and locked)
// until exit. Returns qemu-ga's error text on failure.
std::optional<std::string> write_pidfile(const std::string& path);

// Start-up signal handling, installed first thing in main() (issue 16, defect 9): until
// run() arms its asio::signal_set, which replaces these handlers,
// - SIGTERM/SIGINT end the agent at once, whatever start-up is blocked in (a FIFO at
//   qga.state, a hung config file): the pidfile is removed if this process wrote it, then
//   _exit(0), the status of a SIGTERMed agent. While `ignore_quit_at_start(true)` (a start
//   with qga.state.isfrozen: frozen agents ignore quit signals, as qemu-ga) they are ignored.
// - SIGHUP/SIGUSR1 are remembered (`take_start_signal`) instead of killing the agent.
// All with SA_RESTART: a remembered or ignored signal doesn't fail a start-up step (EINTR).
void install_start_signals();
void ignore_quit_at_start(bool ignore);
// True (once) when `sig` (SIGHUP or SIGUSR1) arrived during start-up.
bool take_start_signal(int sig);

// become_daemon(): fork; in the child the pidfile when given (failure: critical + exit 1),
// umask 077, setsid, chdir "/", stdin/stdout/stderr onto /dev/null, and returns the write
// end of a readiness pipe. The parent waits on that pipe: it exits 0 once the child calls
// daemon_ready(), otherwise (the child exited or was killed first) it logs why and exits
// with the child's non-zero status, or 1 — so `fleetga -d` succeeds only with a running
// daemon (qemu-ga's parent exits 0 at once, whatever becomes of the child). Call with no
// other thread running. `before_fork`/`after_fork_child` let the caller prepare its event
// loop (io_context::notify_fork).
int become_daemon(const std::optional<std::string>& pidfile, void (*before_fork)(void*),
                  void (*after_fork_child)(void*), void* ctx);

// The child is up (pidfile written, channel open, handlers armed): releases the parent with
// status 0 and closes `ready_fd` (sets it to -1). No-op for -1.
void daemon_ready(int& ready_fd);

}  // namespace fleetga::agent
