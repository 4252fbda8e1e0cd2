#pragma once
// guest-exec's process primitives (qemu-ga: g_spawn_async_with_pipes with
// G_SPAWN_SEARCH_PATH | G_SPAWN_SEARCH_PATH_FROM_ENVP | G_SPAWN_DO_NOT_REAP_CHILD, then a
// child watch): start a child with pipes and return at once; reap it later without
// blocking. Unlike platform/spawn (helpers that are waited for), nothing here waits.
//
// The child: argv[0] searched like glib does (PATH of the given environment when it has one,
// else the agent's PATH, else "/bin:/usr/bin:."; a file without #! runs under /bin/sh), the
// given environment replaces the agent's, cwd = the agent's, stdin /dev/null or a pipe,
// stdout/stderr a pipe or /dev/null ("merged": stderr is the stdout pipe), SIGPIPE back to
// default and no blocked signals, no fds but 0-2, same session as the agent, and the default
// OOM score when the agent's is negative (see exec_request::oom_score_adj).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::platform {

enum class exec_capture : unsigned char { none, out, err, separated, merged };

struct exec_request {
  std::vector<std::string> argv;                  // argv[0] = path as the host gave it
  std::optional<std::vector<std::string>> env;    // NAME=value list; nullopt: the agent's
  bool with_input = false;                        // stdin is a pipe (else /dev/null)
  exec_capture capture = exec_capture::none;
  // Written to the child's /proc/self/oom_score_adj before exec (best effort). nullopt:
  // child_oom_score_adj(the agent's own score) - 0 when the agent runs protected (fleetga.service
  // sets OOMScoreAdjust=-500; qemu-ga's unit doesn't, so its children run at 0), else the
  // agent's score is inherited as it is.
  std::optional<int> oom_score_adj = std::nullopt;
};

// The agent's /proc/self/oom_score_adj (0 when unreadable).
int own_oom_score_adj() noexcept;
// What a child of an agent with this score gets: 0 for a negative score, else nullopt (inherit).
std::optional<int> child_oom_score_adj(int agent_score) noexcept;

// The parent's ends, all O_CLOEXEC | O_NONBLOCK; -1 when absent. `pidfd` is -1 when the
// kernel has no pidfd_open (< 5.3): reap by pid then.
struct exec_child {
  int pid = -1;
  int pidfd = -1;
  int in = -1;
  int out = -1;
  int err = -1;
};

struct exec_spawn_result {
  exec_child child;
  // 0 on success; else the glib text of the failure in `error` (e.g.
  // `Failed to execute child process “/nonexistent” (No such file or directory)`).
  int errnum = 0;
  std::string error;
};

// Blocking only briefly (PATH lookup, clone(CLONE_VM | CLONE_VFORK) + exec); run it on the
// worker pool.
exec_spawn_result spawn_child(const exec_request& req);

// glib's search: argv0 with a '/' is used as is; otherwise each element of `path_list`
// (empty = current directory) is tried in order; the first regular file with execute
// permission wins. nullopt with `err` = ENOENT (nothing found) or EACCES (found but not
// executable), as execvp reports it.
std::optional<std::string> find_program(std::string_view argv0, std::string_view path_list, int& err);
// The PATH that search uses for `env`: its PATH= entry, else the agent's $PATH, else glib's
// default "/bin:/usr/bin:.".
std::string search_path(const std::optional<std::vector<std::string>>& env);

// glib's G_SPAWN_ERROR texts.
std::string exec_failed_text(std::string_view argv0, int err);  // Failed to execute child process “x” (strerror)

struct exec_wait {
  enum class state : unsigned char { running, exited, signaled, lost };  // lost: ECHILD
  state how = state::running;
  int value = 0;  // exit code or signal number
};
// Never blocks: waitid(P_PIDFD, pidfd, WEXITED|WNOHANG) when pidfd >= 0, else
// waitpid(pid, WNOHANG). A finished child is reaped by this call (no zombie remains).
exec_wait reap_child(int pid, int pidfd);

// write(2) that never raises SIGPIPE in this process (the agent ignores it; a test binary or
// library user may not): SIGPIPE is blocked on this thread around the write and a pending
// one consumed. Returns write's result (errno set on -1, EPIPE for a closed reader).
long write_no_sigpipe(int fd, const char* data, unsigned long n);

void close_fd(int& fd) noexcept;  // close, set -1; no-op for -1

// Child exits without pidfds (kernels before 5.3): a signalfd for SIGCHLD (non-blocking,
// close-on-exec), readable when a child has changed state, or -1. It only ever becomes readable
// where SIGCHLD is blocked in every thread of the process (the agent blocks it in main(),
// before any thread exists); elsewhere children are reaped when the host asks, as before.
int open_child_exit_fd() noexcept;
// Reads every pending notification off that fd (they coalesce: the caller reaps them all).
void drain_child_exit_fd(int fd) noexcept;

}  // namespace fleetga::platform
