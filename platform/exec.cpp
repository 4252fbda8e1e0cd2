#include "platform/exec.hpp"
#include "platform/spawn.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434  // same number on every architecture
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

  // qemu-ga's guest_exec_task_setup(): the agent ignores SIGPIPE, its children must not.
  spawn_attrs sa;
  if (req.with_input)
    posix_spawn_file_actions_adddup2(&sa.acts, in_child, 0);
  else
    posix_spawn_file_actions_addopen(&sa.acts, 0, "/dev/null", O_RDONLY, 0);
  if (cap_out)
    posix_spawn_file_actions_adddup2(&sa.acts, out_child, 1);
  else
    posix_spawn_file_actions_addopen(&sa.acts, 1, "/dev/null", O_WRONLY, 0);
  if (cap_err)
    posix_spawn_file_actions_adddup2(&sa.acts, err_child, 2);
  else if (req.capture == exec_capture::merged)
    posix_spawn_file_actions_adddup2(&sa.acts, out_child, 2);  // dup2(STDOUT, STDERR) like qemu-ga
  else
    posix_spawn_file_actions_addopen(&sa.acts, 2, "/dev/null", O_WRONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&sa.acts, 3);
#endif

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

  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, prog->c_str(), &sa.acts, &sa.attr, args.data(), envv);
  if (rc == ENOEXEC) {
    // glib's script_execute(): a file the kernel can't run is handed to /bin/sh.
    std::vector<char*> sh;
    sh.reserve(args.size() + 1);
    sh.push_back(const_cast<char*>("/bin/sh"));
    sh.push_back(const_cast<char*>(prog->c_str()));
    for (std::size_t i = 1; i < args.size(); ++i) sh.push_back(args[i]);
    rc = ::posix_spawn(&pid, "/bin/sh", &sa.acts, &sa.attr, sh.data(), envv);
  }
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

}  // namespace fleetga::platform
