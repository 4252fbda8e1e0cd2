#include "agent/daemon.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

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

void become_daemon(const std::optional<std::string>& pidfile, void (*before_fork)(void*),
                   void (*after_fork_child)(void*), void* ctx) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (before_fork) before_fork(ctx);
  pid_t pid = ::fork();
  if (pid < 0) std::exit(EXIT_FAILURE);
  if (pid > 0) ::_exit(EXIT_SUCCESS);
  if (after_fork_child) after_fork_child(ctx);

  if (pidfile) {
    if (auto err = write_pidfile(*pidfile)) {
      spdlog::critical("{}", *err);
      ::_exit(EXIT_FAILURE);
    }
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
}

}  // namespace fleetga::agent
