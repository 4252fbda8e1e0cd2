#include "agent/daemon.hpp"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

namespace fleetga::agent {
namespace {

void reopen_fd_to_null(int fd) {
  int nullfd = ::open("/dev/null", O_RDWR);
  if (nullfd < 0) return;
  ::dup2(nullfd, fd);
  if (nullfd != fd) ::close(nullfd);
}

std::string errno_text(const std::string& what, int e) { return what + ": " + std::strerror(e); }

// The start-up handlers' state: plain words and a path copied before it can be read.
// `start_pidfile` is filled before `start_pidfile_set` is raised, with the quit signals
// blocked, so the handler never unlinks a pidfile this process did not write (a second
// instance's failed lock must leave the first one's file alone).
char start_pidfile[PATH_MAX];
volatile std::sig_atomic_t start_pidfile_set = 0;
volatile std::sig_atomic_t quit_ignored = 0;
volatile std::sig_atomic_t pending_hup = 0;
volatile std::sig_atomic_t pending_usr1 = 0;

extern "C" void start_signal(int sig) {
  const int saved = errno;
  if (sig == SIGHUP) {
    pending_hup = 1;
  } else if (sig == SIGUSR1) {
    pending_usr1 = 1;
  } else if (!quit_ignored) {
    // Only async-signal-safe calls: unlink(2) and _exit(2). Nothing else was set up that a
    // clean exit must undo (the workers don't exist yet, the event loop never ran).
    if (start_pidfile_set) ::unlink(start_pidfile);
    ::_exit(EXIT_SUCCESS);
  }
  errno = saved;
}

void quit_signal_set(sigset_t& set) {
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
}

}  // namespace

void install_start_signals() {
  struct sigaction sa {};
  sa.sa_handler = start_signal;
  sigfillset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) ::sigaction(sig, &sa, nullptr);
  // A parent that held them blocked (a supervisor, a shell's job control) passes the mask on.
  sigset_t set;
  quit_signal_set(set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

void ignore_quit_at_start(bool ignore) { quit_ignored = ignore ? 1 : 0; }

bool take_start_signal(int sig) {
  volatile std::sig_atomic_t* flag = sig == SIGHUP ? &pending_hup : sig == SIGUSR1 ? &pending_usr1 : nullptr;
  if (!flag || !*flag) return false;
  *flag = 0;
  return true;
}

std::optional<std::string> write_pidfile(const std::string& path) {
  int fd;
  for (;;) {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, S_IRUSR | S_IWUSR);
    if (fd < 0) return errno_text("Could not create '" + path + "'", errno);
    struct stat b {};
    if (::fstat(fd, &b) < 0) {
      int e = errno;
      ::close(fd);
      return errno_text("Cannot stat file", e);
    }
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_len = 0;
    if (::fcntl(fd, F_SETLK, &lock) != 0) {
      int e = errno;
      ::close(fd);
      return errno_text("Cannot lock pid file", e);
    }
    // The path we locked must still be the file on disk: another instance may have
    // removed or replaced it in between (QEMU retries then).
    struct stat a {};
    if (::stat(path.c_str(), &a) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) break;
    ::close(fd);
  }
  if (::ftruncate(fd, 0) < 0) {
    int e = errno;
    ::unlink(path.c_str());
    ::close(fd);
    return errno_text("Failed to truncate pid file", e);
  }
  char buf[32];
  int len = std::snprintf(buf, sizeof buf, "%d\n", static_cast<int>(::getpid()));
  if (::write(fd, buf, static_cast<std::size_t>(len)) != len) {
    ::unlink(path.c_str());
    ::close(fd);
    return std::string("Failed to write pid file");
  }
  return std::nullopt;  // fd intentionally kept: the lock lives as long as the process
}

int become_daemon(const std::optional<std::string>& pidfile, void (*before_fork)(void*),
                  void (*after_fork_child)(void*), void* ctx) {
  // The child reports on this pipe (one byte: ready; end of file: it died first).
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) < 0) {
    spdlog::critical("{}", errno_text("failed to daemonize", errno));
    std::exit(EXIT_FAILURE);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  if (before_fork) before_fork(ctx);
  pid_t pid = ::fork();
  if (pid < 0) {
    spdlog::critical("{}", errno_text("failed to daemonize", errno));
    std::exit(EXIT_FAILURE);
  }
  if (pid > 0) {
    ::close(ready[1]);
    // A quit signal ends the waiting parent by the default action (a non-zero status for
    // whoever started it); the daemon goes on.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGTERM, &dfl, nullptr);
    ::sigaction(SIGINT, &dfl, nullptr);
    char byte = 0;
    ssize_t n;
    do n = ::read(ready[0], &byte, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1) ::_exit(EXIT_SUCCESS);
    int st = 0;
    pid_t w;
    do w = ::waitpid(pid, &st, 0);
    while (w < 0 && errno == EINTR);
    int code = EXIT_FAILURE;
    if (w == pid && WIFEXITED(st)) {
      if (WEXITSTATUS(st) != 0) code = WEXITSTATUS(st);
      spdlog::critical("daemon process {} exited with status {} before it was ready", pid, WEXITSTATUS(st));
    } else if (w == pid && WIFSIGNALED(st)) {
      spdlog::critical("daemon process {} was killed by signal {} ({}) before it was ready", pid, WTERMSIG(st),
                       ::strsignal(WTERMSIG(st)));
    } else {
      spdlog::critical("daemon process {} ended before it was ready", pid);
    }
    ::_exit(code);
  }
  ::close(ready[0]);
  if (after_fork_child) after_fork_child(ctx);

  if (pidfile) {
    const bool recorded = pidfile->size() < sizeof start_pidfile;
    if (recorded) std::memcpy(start_pidfile, pidfile->c_str(), pidfile->size() + 1);
    sigset_t quit, old;
    quit_signal_set(quit);
    ::pthread_sigmask(SIG_BLOCK, &quit, &old);
    if (auto err = write_pidfile(*pidfile)) {
      spdlog::critical("{}", *err);
      ::_exit(EXIT_FAILURE);
    }
    if (recorded) start_pidfile_set = 1;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);  // a SIGTERM held meanwhile removes it now
  }
  ::umask(S_IRWXG | S_IRWXO);
  if (::setsid() < 0 || ::chdir("/") < 0) {
    if (pidfile) ::unlink(pidfile->c_str());
    spdlog::critical("failed to daemonize");
    ::_exit(EXIT_FAILURE);
  }
  reopen_fd_to_null(STDIN_FILENO);
  reopen_fd_to_null(STDOUT_FILENO);
  reopen_fd_to_null(STDERR_FILENO);
  return ready[1];
}

void daemon_ready(int& ready_fd) {
  if (ready_fd < 0) return;
  const char byte = 1;
  ssize_t n;
  do n = ::write(ready_fd, &byte, 1);
  while (n < 0 && errno == EINTR);
  ::close(ready_fd);
  ready_fd = -1;
}

}  // namespace fleetga::agent
