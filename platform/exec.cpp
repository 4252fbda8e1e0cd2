#include "platform/exec.hpp"
#include "platform/spawn.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

extern char** environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434  // same number on every architecture
#endif
#ifndef SYS_close_range
#define SYS_close_range 436  // same number on every architecture
#endif

namespace fleetga::platform {
namespace {

// glib's fallback when no PATH is set anywhere (gspawn.c).
constexpr std::string_view glib_default_path = "/bin:/usr/bin:.";
// waitid()'s idtype for a pidfd (Linux >= 5.4); glibc < 2.36 headers don't name it.
constexpr int p_pidfd = 3;

// Both ends O_CLOEXEC (no other child inherits them); the parent's end non-blocking.
bool make_pipe(int& parent, int& child, bool parent_reads) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  parent = parent_reads ? p[0] : p[1];
  child = parent_reads ? p[1] : p[0];
  ::fcntl(parent, F_SETFL, ::fcntl(parent, F_GETFL) | O_NONBLOCK);
  return true;
}

// One of the child's standard descriptors (posix_spawn_file_actions' adddup2 / addopen).
struct fd_action {
  int fd = -1;              // 0, 1 or 2; -1: nothing to do
  int from = -1;            // dup2 source; -1: open `path`
  const char* path = nullptr;
  int flags = 0;
};

// Everything the child needs, prepared by the parent. The child shares the parent's memory
// until it execs (CLONE_VM | CLONE_VFORK, like glibc's posix_spawn), so it only makes system
// calls: no allocation, no locks, nothing a sanitizer intercepts but sigaction.
struct child_plan {
  fd_action fds[3];
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  char* const* sh_argv = nullptr;  // on ENOEXEC: /bin/sh PATH ARGS... (glib's script_execute)
  const char* oom = nullptr;       // text for /proc/self/oom_score_adj, or nullptr
  std::size_t oom_len = 0;
  int max_fd = 0;                  // close_range() fallback
  sigset_t empty{};
  int err = 0;                     // the child's errno when it failed before or at exec
};

[[noreturn]] void child_fail(child_plan* p) {
  p->err = errno != 0 ? errno : EINVAL;
  ::syscall(SYS_exit_group, 127);  // not _exit(): a sanitizer's hook would run in our memory
  __builtin_unreachable();
}

// The child, on a stack of its own: signals, descriptors, OOM score, exec.
__attribute__((no_sanitize("address", "undefined"))) int child_main(void* arg) {
  auto* p = static_cast<child_plan*>(arg);
  // Every signal the agent handles back to its default (the handlers are the agent's code, in
  // memory the child shares until exec), and SIGPIPE too (qemu-ga's guest_exec_task_setup():
  // the agent ignores it, its children must not). Signals stay blocked (the parent's mask at
  // clone) until just before exec. glibc's internal signals refuse sigaction: exec resets them.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction cur;
    if (::sigaction(sig, nullptr, &cur) != 0) continue;
    if (sig != SIGPIPE && (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN)) continue;
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, &dfl, nullptr);
  }
  // The agent's OOM protection (its unit's OOMScoreAdjust) is not for what the host runs:
  // best effort (without /proc the child keeps the agent's score, as before).
  if (p->oom) {
    const long fd = ::syscall(SYS_openat, AT_FDCWD, "/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::syscall(SYS_write, fd, p->oom, p->oom_len);
      ::syscall(SYS_close, fd);
    }
  }
  for (const fd_action& a : p->fds) {
    if (a.fd < 0) continue;
    if (a.from == a.fd) {  // posix_spawn's adddup2 of a descriptor onto itself: keep it open
      const long fl = ::syscall(SYS_fcntl, a.fd, F_GETFD);
      if (fl < 0 || ::syscall(SYS_fcntl, a.fd, F_SETFD, fl & ~FD_CLOEXEC) < 0) child_fail(p);
    } else if (a.from >= 0) {
      if (::syscall(SYS_dup3, a.from, a.fd, 0) < 0) child_fail(p);
    } else {
      const long fd = ::syscall(SYS_openat, AT_FDCWD, a.path, a.flags, 0);
      if (fd < 0) child_fail(p);
      if (fd != a.fd) {
        if (::syscall(SYS_dup3, fd, a.fd, 0) < 0) child_fail(p);
        ::syscall(SYS_close, fd);
      }
    }
  }
  // Nothing but 0-2 (every descriptor of the agent is O_CLOEXEC as well).
  if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
    for (int fd = 3; fd < p->max_fd; ++fd) ::syscall(SYS_close, fd);
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &p->empty, nullptr, _NSIG / 8);
  ::syscall(SYS_execve, p->path, p->argv, p->envp);
  if (errno == ENOEXEC && p->sh_argv) ::syscall(SYS_execve, "/bin/sh", p->sh_argv, p->envp);
  child_fail(p);
}

// Starts the child described by `plan`; 0 and the pid, or the errno of clone() or of the
// child's set-up or exec (a child that failed is reaped here).
int clone_and_exec(child_plan& plan, pid_t& pid) {
  constexpr std::size_t stack_size = std::size_t{64} << 10;
  void* stack = ::mmap(nullptr, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED) return errno;
  rlimit nofile{};
  plan.max_fd = ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
                        nofile.rlim_cur < 65536
                    ? static_cast<int>(nofile.rlim_cur)
                    : 65536;
  sigemptyset(&plan.empty);
  plan.err = 0;
  // No signal handler may run in the child while it shares our memory.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const int rc = ::clone(child_main, static_cast<char*>(stack) + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD,
                         &plan);
  const int clone_err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, stack_size);
  if (rc < 0) return clone_err;
  if (plan.err != 0) {  // it has exited already (CLONE_VFORK): reap it
    while (::waitpid(rc, nullptr, 0) < 0 && errno == EINTR) {
    }
    return plan.err;
  }
  pid = rc;
  return 0;
}

std::string glib_text(const char* what, int err) {
  std::string s = what;
  s += " (";
  s += std::strerror(err);
  s += ')';
  return s;
}

}  // namespace

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int own_oom_score_adj() noexcept {
  const int fd = ::open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[16];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  int v = 0;
  if (n > 0) std::from_chars(buf, buf + n, v);
  return v;
}

std::optional<int> child_oom_score_adj(int agent_score) noexcept {
  if (agent_score < 0) return 0;
  return std::nullopt;
}

std::string exec_failed_text(std::string_view argv0, int err) {
  std::string s = "Failed to execute child process \xE2\x80\x9C";  // “
  s += argv0;
  s += "\xE2\x80\x9D (";  // ”
  s += std::strerror(err);
  s += ')';
  return s;
}

std::string search_path(const std::optional<std::vector<std::string>>& env) {
  if (env) {
    // g_environ_getenv(): the first PATH= entry.
    for (const auto& e : *env)
      if (e.size() >= 5 && e.compare(0, 5, "PATH=") == 0) return e.substr(5);
  }
  if (const char* p = std::getenv("PATH")) return p;
  return std::string(glib_default_path);
}

std::optional<std::string> find_program(std::string_view argv0, std::string_view path_list, int& err) {
  err = ENOENT;
  if (argv0.empty()) return std::nullopt;
  if (argv0.find('/') != std::string_view::npos) return std::string(argv0);
  bool eacces = false;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t colon = path_list.find(':', pos);
    std::string_view dir = path_list.substr(pos, colon == std::string_view::npos ? std::string_view::npos : colon - pos);
    std::string cand = dir.empty() ? std::string(".") : std::string(dir);
    cand += '/';
    cand += argv0;
    struct stat st {};
    if (::stat(cand.c_str(), &st) == 0) {
      // execve's verdicts: a directory or a file without an execute bit is EACCES, and
      // execvp goes on looking (remembering it).
      if (S_ISREG(st.st_mode) && ::access(cand.c_str(), X_OK) == 0) return cand;
      eacces = true;
    } else if (errno == EACCES) {
      eacces = true;
    }
    if (colon == std::string_view::npos) break;
    pos = colon + 1;
  }
  err = eacces ? EACCES : ENOENT;
  return std::nullopt;
}

exec_spawn_result spawn_child(const exec_request& req) {
  exec_spawn_result r;
  exec_child& c = r.child;
  int in_child = -1, out_child = -1, err_child = -1;
  auto fail = [&](const char* what, int e) {
    close_fd(in_child);
    close_fd(out_child);
    close_fd(err_child);
    close_fd(c.in);
    close_fd(c.out);
    close_fd(c.err);
    r.errnum = e;
    r.error = glib_text(what, e);
    return r;
  };
  const bool cap_out = req.capture == exec_capture::out || req.capture == exec_capture::separated ||
                       req.capture == exec_capture::merged;
  const bool cap_err = req.capture == exec_capture::err || req.capture == exec_capture::separated;
  constexpr const char* pipe_text = "Failed to create pipe for communicating with child process";
  if (req.with_input && !make_pipe(c.in, in_child, false)) return fail(pipe_text, errno);
  if (cap_out && !make_pipe(c.out, out_child, true)) return fail(pipe_text, errno);
  if (cap_err && !make_pipe(c.err, err_child, true)) return fail(pipe_text, errno);

  child_plan plan;
  plan.fds[0] = req.with_input ? fd_action{0, in_child, nullptr, 0} : fd_action{0, -1, "/dev/null", O_RDONLY};
  if (cap_out)
    plan.fds[1] = {1, out_child, nullptr, 0};
  else
    plan.fds[1] = {1, -1, "/dev/null", O_WRONLY};
  if (cap_err)
    plan.fds[2] = {2, err_child, nullptr, 0};
  else if (req.capture == exec_capture::merged)
    plan.fds[2] = {2, out_child, nullptr, 0};  // dup2(STDOUT, STDERR) like qemu-ga
  else
    plan.fds[2] = {2, -1, "/dev/null", O_WRONLY};
  const std::optional<int> oom =
      req.oom_score_adj ? req.oom_score_adj : child_oom_score_adj(own_oom_score_adj());
  char oom_text[16];
  if (oom) {
    plan.oom = oom_text;
    const char* oom_end = std::to_chars(oom_text, oom_text + sizeof oom_text, *oom).ptr;
    plan.oom_len = static_cast<std::size_t>(oom_end - oom_text);
  }

  const std::string& argv0 = req.argv.at(0);
  int serr = 0;
  auto prog = find_program(argv0, search_path(req.env), serr);
  if (!prog) {
    fail("", serr);
    r.error = exec_failed_text(argv0, serr);
    return r;
  }

  std::vector<char*> args;
  args.reserve(req.argv.size() + 2);
  for (const auto& a : req.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  char** envv = environ;
  if (req.env) {
    envp.reserve(req.env->size() + 1);
    for (const auto& e : *req.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    envv = envp.data();
  }

  // glib's script_execute(): a file the kernel can't run (ENOEXEC) is handed to /bin/sh.
  std::vector<char*> sh;
  sh.reserve(args.size() + 1);
  sh.push_back(const_cast<char*>("/bin/sh"));
  sh.push_back(const_cast<char*>(prog->c_str()));
  for (std::size_t i = 1; i < args.size(); ++i) sh.push_back(args[i]);
  plan.path = prog->c_str();
  plan.argv = args.data();
  plan.envp = envv;
  plan.sh_argv = sh.data();

  pid_t pid = 0;
  const int rc = clone_and_exec(plan, pid);
  if (rc != 0) {
    if (rc == EAGAIN) return fail("Failed to fork", rc);
    fail("", rc);
    r.error = exec_failed_text(argv0, rc);
    return r;
  }
  close_fd(in_child);
  close_fd(out_child);
  close_fd(err_child);
  c.pid = pid;
  // A child that already exited is a zombie: pidfd_open() still works (only we reap).
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  c.pidfd = fd >= 0 ? static_cast<int>(fd) : -1;  // ENOSYS (< 5.3) or EMFILE: reap by pid
  if (c.pidfd >= 0) ::fcntl(c.pidfd, F_SETFD, FD_CLOEXEC);
  return r;
}

exec_wait reap_child(int pid, int pidfd) {
  exec_wait w;
  if (pidfd >= 0) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    int rc;
    do {
      rc = ::waitid(static_cast<idtype_t>(p_pidfd), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG);
    } while (rc == -1 && errno == EINTR);
    if (rc == 0) {
      if (info.si_pid == 0) return w;  // still running
      if (info.si_code == CLD_EXITED) {
        w.how = exec_wait::state::exited;
      } else {
        w.how = exec_wait::state::signaled;  // CLD_KILLED, CLD_DUMPED
      }
      w.value = info.si_status;
      return w;
    }
    if (errno != EINVAL) {  // EINVAL: kernel 5.3 has pidfd_open but not P_PIDFD
      w.how = exec_wait::state::lost;
      return w;
    }
  }
  int status = 0;
  pid_t rc;
  do {
    rc = ::waitpid(pid, &status, WNOHANG);
  } while (rc == -1 && errno == EINTR);
  if (rc == 0) return w;
  if (rc < 0) {
    w.how = exec_wait::state::lost;
    return w;
  }
  if (WIFEXITED(status)) {
    w.how = exec_wait::state::exited;
    w.value = WEXITSTATUS(status);
  } else {
    w.how = exec_wait::state::signaled;
    w.value = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  return w;
}

long write_no_sigpipe(int fd, const char* data, unsigned long n) {
  sigset_t pipe_set, old_mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  const bool masked = ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask) == 0;
  ssize_t w;
  do {
    w = ::write(fd, data, n);
  } while (w < 0 && errno == EINTR);
  const int saved = errno;
  if (masked) {
    if (w < 0 && saved == EPIPE && !sigismember(&old_mask, SIGPIPE)) {
      const timespec zero{0, 0};
      ::sigtimedwait(&pipe_set, nullptr, &zero);  // the SIGPIPE this write raised
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  }
  errno = saved;
  return static_cast<long>(w);
}

int open_child_exit_fd() noexcept {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  return ::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
}

void drain_child_exit_fd(int fd) noexcept {
  signalfd_siginfo info[8];
  while (::read(fd, info, sizeof info) > 0) {
  }
}

}  // namespace fleetga::platform
