#include "platform/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace fleetga::platform {

spawn_attrs::spawn_attrs(short flags) {
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_init(&acts);
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &dflt);
  posix_spawnattr_setflags(&attr, static_cast<short>(flags | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
}

spawn_attrs::~spawn_attrs() {
  posix_spawn_file_actions_destroy(&acts);
  posix_spawnattr_destroy(&attr);
}
namespace {

struct fd_guard {
  int fd = -1;
  ~fd_guard() { reset(); }
  void reset() noexcept {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

void append_capped(helper_result& r, const char* p, std::size_t n) {
  std::size_t room = helper_output_max - r.output.size();
  if (n > room) {
    r.truncated = true;
    n = room;
  }
  r.output.append(p, n);
}

}  // namespace

// The helpers (the fsfreeze hook, shutdown, hwclock, chpasswd) keep the agent's OOM score
// adjustment, unlike guest-exec's children (platform/exec.cpp gives those 0): they are
// programs of the guest's own configuration that the agent needs to finish its command — a
// hook killed for memory while the filesystems are frozen, or a shutdown killed half-way, is
// what the protection exists to prevent — and they run for a moment, not for as long as a
// host likes.
helper_result run_helper(const std::vector<std::string>& argv, std::optional<std::string_view> input) {
  helper_result r;
  int out[2], in[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0) {
    r.how = helper_result::outcome::pipe_failed;
    r.err = errno;
    return r;
  }
  fd_guard out_r{out[0]}, out_w{out[1]}, in_r, in_w;
  if (input) {
    if (::pipe2(in, O_CLOEXEC) != 0) {
      r.how = helper_result::outcome::pipe_failed;
      r.err = errno;
      return r;
    }
    in_r.fd = in[0];
    in_w.fd = in[1];
    ::fcntl(in_w.fd, F_SETFL, ::fcntl(in_w.fd, F_GETFL) | O_NONBLOCK);
  }

  spawn_attrs sa(POSIX_SPAWN_SETSID);
  if (input)
    posix_spawn_file_actions_adddup2(&sa.acts, in_r.fd, 0);
  else
    posix_spawn_file_actions_addopen(&sa.acts, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&sa.acts, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&sa.acts, out_w.fd, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(&sa.acts, 3);
#endif

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &sa.acts, &sa.attr, args.data(), environ);
  if (rc != 0) {
    if (rc == EAGAIN || rc == ENOMEM) {
      r.how = helper_result::outcome::spawn_failed;
      r.err = rc;
      return r;
    }
    // glibc reports the exec failure here; qemu-ga's child perror()s it into the pipe and
    // exits 1, which is what the host sees.
    r.how = helper_result::outcome::exec_failed;
    r.status = 1;
    r.err = rc;
    r.output = "failed to exec '" + argv[0] + "': " + std::strerror(rc) + "\n";
    return r;
  }
  r.pid = pid;
  out_w.reset();
  in_r.reset();

  // Feed stdin and drain the output together: a helper that writes before reading its input
  // must not deadlock against us. A helper that exits without reading its input must not
  // kill us with SIGPIPE either (whether or not the process ignores it): blocked while
  // writing, a pending one is consumed.
  sigset_t pipe_set, old_mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  const bool masked = input && ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask) == 0;
  std::size_t fed = 0;
  if (input && input->empty()) in_w.reset();
  char buf[4096];
  while (out_r.fd >= 0) {
    pollfd p[2] = {{out_r.fd, POLLIN, 0}, {in_w.fd, POLLOUT, 0}};
    int n = ::poll(p, in_w.fd >= 0 ? 2 : 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (in_w.fd >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in_w.fd, input->data() + fed, input->size() - fed);
      if (w < 0 && errno != EINTR && errno != EAGAIN) {
        if (r.how == helper_result::outcome::exited && errno != EPIPE) {
          r.how = helper_result::outcome::input_failed;
          r.err = errno;
        }
        in_w.reset();
      } else if (w > 0) {
        fed += static_cast<std::size_t>(w);
        if (fed == input->size()) in_w.reset();
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = ::read(out_r.fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        out_r.reset();
        break;
      }
      append_capped(r, buf, static_cast<std::size_t>(got));
    }
  }
  in_w.reset();
  if (masked) {
    const timespec zero{0, 0};
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) && !sigismember(&old_mask, SIGPIPE)) ::sigtimedwait(&pipe_set, nullptr, &zero);
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  }

  int status = 0;
  pid_t w;
  do {
    w = ::waitpid(pid, &status, 0);
  } while (w == -1 && errno == EINTR);
  if (w == -1) {
    r.how = helper_result::outcome::wait_failed;
    r.err = errno;
    return r;
  }
  if (r.how == helper_result::outcome::input_failed) return r;
  if (WIFEXITED(status)) {
    r.how = helper_result::outcome::exited;
    r.status = WEXITSTATUS(status);
  } else {
    r.how = helper_result::outcome::signaled;
    r.status = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  return r;
}

std::optional<std::string> helper_error(const helper_result& r, std::string_view action) {
  using o = helper_result::outcome;
  std::string d;
  switch (r.how) {
    case o::pipe_failed:
      return std::string("cannot create pipe FDs");
    case o::spawn_failed:
      return std::string("failed to create child process: ") + std::strerror(r.err);
    case o::wait_failed:
      return "failed to wait for child (pid: " + std::to_string(r.pid) + "): " + std::strerror(r.err);
    case o::input_failed:
      d = action;
      d += ": cannot write to stdin pipe: ";
      d += std::strerror(r.err);
      return d;
    case o::signaled:
      d = "child process has terminated abnormally";
      if (!r.output.empty()) {
        d += ": ";
        d += r.output;
      }
      return d;
    case o::exited:
    case o::exec_failed:
      if (r.status == 0) return std::nullopt;
      d = "child process has failed to ";
      d += action;
      d += ": ";
      if (!r.output.empty()) d += r.output;
      else d += "exit status " + std::to_string(r.status);
      return d;
  }
  return std::nullopt;
}

}  // namespace fleetga::platform
