#pragma once
// Run a helper program (fsfreeze hook, and later shutdown, hwclock, chpasswd) the way
// qemu-ga >= 9.1's ga_run_command() does: own session (setsid), stdin /dev/null or the given
// text, stdout and stderr captured together through one pipe, PATH search, wait for it.
// Blocking: commands/ calls it on the worker pool.
#include <spawn.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::platform {

// Captured output kept per run (qemu-ga: unbounded); the rest is read and dropped.
inline constexpr std::size_t helper_output_max = std::size_t{64} << 10;

struct helper_result {
  enum class outcome : unsigned char {
    exited,        // `status` = exit code
    signaled,      // killed by signal `status`
    exec_failed,   // program not run; `output` holds "failed to exec '<argv0>': <strerror>\n"
    pipe_failed,   // no pipe (`err`)
    spawn_failed,  // no process (`err`, e.g. EAGAIN)
    wait_failed,   // waitpid failed (`err`), `pid` set
    input_failed,  // writing stdin failed (`err`)
  };
  outcome how = outcome::exited;
  int status = 0;
  int err = 0;
  int pid = 0;
  std::string output;      // stdout + stderr, at most helper_output_max bytes
  bool truncated = false;  // more output was produced and dropped
};

// argv[0] is searched in PATH when it has no '/'. `input`: written to the child's stdin
// (then closed); nullopt: stdin is /dev/null. Signals are reset to default and unblocked in
// the child, file descriptors other than 0-2 closed.
helper_result run_helper(const std::vector<std::string>& argv, std::optional<std::string_view> input = std::nullopt);

// ga_run_command()'s error text for `action` ("execute fsfreeze hook"), nullopt when the
// helper exited with status 0:
//   child process has failed to <action>: <output>       (non-zero exit, output captured)
//   child process has failed to <action>: exit status N  (non-zero exit, no output)
//   child process has terminated abnormally[: <output>]
//   cannot create pipe FDs / failed to create child process: <strerror> /
//   failed to wait for child (pid: N): <strerror> / <action>: cannot write to stdin pipe: <strerror>
std::optional<std::string> helper_error(const helper_result& r, std::string_view action);

// posix_spawn attributes and file actions, destroyed with the object (helpers and guest-exec).
// The child gets an empty signal mask and SIGPIPE at its default (the agent ignores SIGPIPE
// and its threads block SIGTERM/SIGINT until the quit handler is armed); `flags` adds e.g.
// POSIX_SPAWN_SETSID.
struct spawn_attrs {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t acts;
  explicit spawn_attrs(short flags = 0);
  ~spawn_attrs();
  spawn_attrs(const spawn_attrs&) = delete;
  spawn_attrs& operator=(const spawn_attrs&) = delete;
};

}  // namespace fleetga::platform
