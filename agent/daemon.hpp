#pragma once
// qemu-ga's -d/-f: the pidfile (QEMU's qemu_write_pidfile(): an fcntl write lock held for
// the life of the process, texts "Could not create '<path>': <errno>", "Cannot lock pid
// file: <errno>") and become_daemon().
#include <optional>
#include <string>

namespace fleetga::agent {

// Creates, locks and writes `path` ("<pid>\n", mode 0600); the fd stays open (and locked)
// until exit. Returns qemu-ga's error text on failure.
std::optional<std::string> write_pidfile(const std::string& path);

// become_daemon(): fork (the parent exits 0 at once), in the child the pidfile when given
// (failure: critical + exit 1), umask 077, setsid, chdir "/", stdin/stdout/stderr onto
// /dev/null. Call with no other thread running. `before_fork`/`after_fork_child` let the
// caller prepare its event loop (io_context::notify_fork).
void become_daemon(const std::optional<std::string>& pidfile, void (*before_fork)(void*),
                   void (*after_fork_child)(void*), void* ctx);

}  // namespace fleetga::agent
