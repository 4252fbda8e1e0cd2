// platform/exec: glib's PATH search and texts, spawning with pipes, reaping without blocking.
// Runs harmless programs only (sh, cat, true).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>
#include <thread>

#include "commands_harness.hpp"
#include "in_child.hpp"
#include "platform/exec.hpp"

namespace fleetga::test {
namespace {

using platform::exec_capture;
using platform::exec_request;
using platform::exec_wait;

void make_exec(const std::string& path, std::string_view text, mode_t mode = 0755) {
  spit(path, text);
  ::chmod(path.c_str(), mode);
}

// Reads `fd` (blocking poll) until EOF.
std::string drain(int fd) {
  std::string s;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 10000);
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) s.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EAGAIN) break;
  }
  return s;
}

exec_wait wait_for(const platform::exec_child& c) {
  for (int i = 0; i < 1000; ++i) {
    if (c.pidfd >= 0) {
      pollfd p{c.pidfd, POLLIN, 0};
      ::poll(&p, 1, 10);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    exec_wait w = platform::reap_child(c.pid, c.pidfd);
    if (w.how != exec_wait::state::running) return w;
  }
  return {};
}

void close_child(platform::exec_child& c) {
  platform::close_fd(c.pidfd);
  platform::close_fd(c.in);
  platform::close_fd(c.out);
  platform::close_fd(c.err);
}

TEST(PlatformExec, TextsAreGlibs) {
  EXPECT_EQ(platform::exec_failed_text("/nonexistent", ENOENT),
            "Failed to execute child process \xE2\x80\x9C/nonexistent\xE2\x80\x9D (No such file or directory)");
  EXPECT_EQ(platform::exec_failed_text("x", EACCES), "Failed to execute child process \xE2\x80\x9Cx\xE2\x80\x9D (Permission denied)");
}

TEST(PlatformExec, SearchPathComesFromTheGivenEnvironmentFirst) {
  EXPECT_EQ(platform::search_path(std::vector<std::string>{"A=1", "PATH=/x:/y", "PATH=/z"}), "/x:/y");
  const char* mine = std::getenv("PATH");
  ASSERT_NE(mine, nullptr);
  EXPECT_EQ(platform::search_path(std::vector<std::string>{"A=1", "XPATH=/q"}), mine);
  EXPECT_EQ(platform::search_path(std::nullopt), mine);
}

TEST(PlatformExec, FindProgramLikeExecvp) {
  temp_dir d;
  std::filesystem::create_directories(d / "a");
  std::filesystem::create_directories(d / "b");
  std::filesystem::create_directories(d / "c/tool");  // a directory of that name: EACCES, go on
  make_exec(d / "a/plain", "x", 0644);                 // not executable: EACCES, go on
  make_exec(d / "b/plain", "#!/bin/sh\n");
  make_exec(d / "b/tool", "#!/bin/sh\n");
  int err = 0;
  EXPECT_EQ(platform::find_program("plain", d / "a:" + d / "b", err), d / "b/plain");
  EXPECT_EQ(platform::find_program("tool", d / "c:" + d / "b", err), d / "b/tool");
  EXPECT_EQ(platform::find_program("plain", d / "a", err), std::nullopt);
  EXPECT_EQ(err, EACCES);
  EXPECT_EQ(platform::find_program("missing", d / "a:" + d / "b", err), std::nullopt);
  EXPECT_EQ(err, ENOENT);
  // A name with a slash is not searched; an empty PATH element is the current directory.
  EXPECT_EQ(platform::find_program("./x/y", "/nowhere", err), "./x/y");
  EXPECT_EQ(platform::find_program("/nonexistent", "/nowhere", err), "/nonexistent");
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(d / "b");
  EXPECT_EQ(platform::find_program("tool", "/nowhere::", err), "./tool");
  std::filesystem::current_path(cwd);
  EXPECT_EQ(platform::find_program("", "/bin", err), std::nullopt);
}

TEST(PlatformExec, ExitCodeAndPidfdReap) {
  exec_request req{{"sh", "-c", "exit 7"}, std::nullopt, false, exec_capture::none};
  auto r = platform::spawn_child(req);
  ASSERT_EQ(r.errnum, 0) << r.error;
  EXPECT_GT(r.child.pid, 0);
  EXPECT_GE(r.child.pidfd, 0);  // this kernel has pidfd_open
  EXPECT_EQ(r.child.in, -1);
  EXPECT_EQ(r.child.out, -1);
  EXPECT_EQ(r.child.err, -1);
  exec_wait w = wait_for(r.child);
  EXPECT_EQ(w.how, exec_wait::state::exited);
  EXPECT_EQ(w.value, 7);
  // Reaped: no zombie left behind.
  EXPECT_EQ(::waitpid(r.child.pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  close_child(r.child);
}

TEST(PlatformExec, SignalAndReapByPid) {
  exec_request req{{"sh", "-c", "kill -9 $$"}, std::nullopt, false, exec_capture::none};
  auto r = platform::spawn_child(req);
  ASSERT_EQ(r.errnum, 0) << r.error;
  platform::close_fd(r.child.pidfd);  // the old-kernel path: waitpid(WNOHANG)
  exec_wait w = wait_for(r.child);
  EXPECT_EQ(w.how, exec_wait::state::signaled);
  EXPECT_EQ(w.value, 9);
  EXPECT_EQ(platform::reap_child(r.child.pid, -1).how, exec_wait::state::lost);  // ECHILD now
}

TEST(PlatformExec, PipesSeparatedMergedAndInput) {
  const char* script = "cat; echo out; echo err >&2";
  {
    exec_request req{{"sh", "-c", script}, std::nullopt, true, exec_capture::separated};
    auto r = platform::spawn_child(req);
    ASSERT_EQ(r.errnum, 0) << r.error;
    ASSERT_GE(r.child.in, 0);
    EXPECT_EQ(platform::write_no_sigpipe(r.child.in, "in\n", 3), 3);
    platform::close_fd(r.child.in);
    EXPECT_EQ(drain(r.child.out), "in\nout\n");
    EXPECT_EQ(drain(r.child.err), "err\n");
    EXPECT_EQ(wait_for(r.child).how, exec_wait::state::exited);
    close_child(r.child);
  }
  {
    exec_request req{{"sh", "-c", script}, std::nullopt, false, exec_capture::merged};
    auto r = platform::spawn_child(req);
    ASSERT_EQ(r.errnum, 0) << r.error;
    EXPECT_EQ(r.child.in, -1);  // stdin is /dev/null: cat ends at once
    EXPECT_EQ(r.child.err, -1);
    EXPECT_EQ(drain(r.child.out), "out\nerr\n");
    EXPECT_EQ(wait_for(r.child).value, 0);
    close_child(r.child);
  }
  {
    exec_request req{{"sh", "-c", script}, std::nullopt, false, exec_capture::err};
    auto r = platform::spawn_child(req);
    ASSERT_EQ(r.errnum, 0) << r.error;
    EXPECT_EQ(r.child.out, -1);
    EXPECT_EQ(drain(r.child.err), "err\n");
    wait_for(r.child);
    close_child(r.child);
  }
}

TEST(PlatformExec, EnvironmentIsReplacedAndSearchedFirst) {
  temp_dir d;
  make_exec(d / "mytool", "#!/bin/sh\necho \"found $A\"\n");
  exec_request req{{"mytool"}, std::vector<std::string>{"A=1", "PATH=" + d.path}, false, exec_capture::out};
  auto r = platform::spawn_child(req);
  ASSERT_EQ(r.errnum, 0) << r.error;
  EXPECT_EQ(drain(r.child.out), "found 1\n");
  wait_for(r.child);
  close_child(r.child);

  exec_request bad{{"true"}, std::vector<std::string>{"PATH=/nonexistent"}, false, exec_capture::none};
  auto e = platform::spawn_child(bad);
  EXPECT_EQ(e.errnum, ENOENT);
  EXPECT_EQ(e.error, "Failed to execute child process \xE2\x80\x9Ctrue\xE2\x80\x9D (No such file or directory)");
  EXPECT_EQ(e.child.pid, -1);
}

TEST(PlatformExec, ScriptWithoutShebangRunsUnderSh) {
  temp_dir d;
  make_exec(d / "noshebang", "echo via-sh \"$1\"\n");
  exec_request req{{d / "noshebang", "arg"}, std::nullopt, false, exec_capture::out};
  auto r = platform::spawn_child(req);
  ASSERT_EQ(r.errnum, 0) << r.error;
  EXPECT_EQ(drain(r.child.out), "via-sh arg\n");
  wait_for(r.child);
  close_child(r.child);
}

TEST(PlatformExec, SpawnFailures) {
  auto r = platform::spawn_child({{"/nonexistent"}, std::nullopt, true, exec_capture::separated});
  EXPECT_EQ(r.errnum, ENOENT);
  EXPECT_EQ(r.error, "Failed to execute child process \xE2\x80\x9C/nonexistent\xE2\x80\x9D (No such file or directory)");
  EXPECT_EQ(r.child.in, -1);  // nothing leaks
  EXPECT_EQ(r.child.out, -1);
  EXPECT_EQ(r.child.err, -1);
  r = platform::spawn_child({{"/etc/passwd"}, std::nullopt, false, exec_capture::none});
  EXPECT_EQ(r.errnum, EACCES);
  EXPECT_EQ(r.error, "Failed to execute child process \xE2\x80\x9C/etc/passwd\xE2\x80\x9D (Permission denied)");
}

TEST(PlatformExec, ChildGetsDefaultSigpipeEvenWhenTheAgentIgnoresIt) {
  struct sigaction old {}, ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old);
  auto r = platform::spawn_child({{"grep", "^SigIgn", "/proc/self/status"}, std::nullopt, false, exec_capture::out});
  ::sigaction(SIGPIPE, &old, nullptr);
  ASSERT_EQ(r.errnum, 0) << r.error;
  const std::string line = drain(r.child.out);
  ASSERT_EQ(line.substr(0, 8), "SigIgn:\t");
  const unsigned long long ignored = std::stoull(line.substr(8), nullptr, 16);
  // (The sanitizer runtime may leave glibc's internal real-time signals ignored; not ours.)
  EXPECT_EQ(ignored & (1ull << (SIGPIPE - 1)), 0u) << line;
  wait_for(r.child);
  close_child(r.child);
}

// Issue 16, defect 7: packaging/fleetga.service protects the agent (OOMScoreAdjust=-500);
// guest-exec's children get the default score back (qemu-ga's unit has no such line, so its
// children run at 0). Runs in a forked child: the score is lowered there only.
std::string read_oom_score_adj() {
  std::string s;
  int fd = ::open("/proc/self/oom_score_adj", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return s;
  char buf[32];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n > 0) s.assign(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return s;
}
bool write_oom_score_adj(std::string_view v) {
  int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size());
  ::close(fd);
  return ok;
}
// The score a child of this process starts with, as the child itself reads it.
std::string child_oom_score_adj(exec_capture how = exec_capture::out, std::optional<int> set = std::nullopt,
                                std::vector<std::string> argv = {"cat", "/proc/self/oom_score_adj"}) {
  exec_request req{std::move(argv), std::nullopt, false, how};
  req.oom_score_adj = set;
  auto r = platform::spawn_child(req);
  if (r.errnum != 0) return r.error;
  std::string out = drain(r.child.out);
  wait_for(r.child);
  close_child(r.child);
  return out;
}

TEST(PlatformExec, ChildGetsTheDefaultOomScoreWhenTheAgentIsProtected) {
  const int status = in_child([] {
    if (!write_oom_score_adj("-500")) return child_cannot;  // needs CAP_SYS_RESOURCE
    if (read_oom_score_adj() != "-500\n") return 2;
    std::string seen = child_oom_score_adj();
    if (seen != "0\n") {
      std::fprintf(stderr, "child of a -500 agent runs at %s\n", seen.c_str());
      return 3;
    }
    if (read_oom_score_adj() != "-500\n") return 4;  // the agent keeps its protection
    // The same with merged output, and through the shell fallback (a script without #!).
    seen = child_oom_score_adj(exec_capture::merged);
    if (seen != "0\n") return 5;
    temp_dir d;
    make_exec(d / "noshebang", "cat /proc/self/oom_score_adj\n");
    seen = child_oom_score_adj(exec_capture::out, std::nullopt, {d / "noshebang"});
    if (seen != "0\n") return 8;
    // A score the agent raised (positive) is inherited as it is: only protection is undone.
    if (!write_oom_score_adj("300")) return 6;
    seen = child_oom_score_adj();
    if (seen != "300\n") {
      std::fprintf(stderr, "child of a +300 agent runs at %s\n", seen.c_str());
      return 7;
    }
    return 0;
  });
  if (status == child_cannot) GTEST_SKIP() << "can't lower oom_score_adj here (no CAP_SYS_RESOURCE)";
  EXPECT_EQ(status, 0);
}

// Who gets what: only a negative (protected) agent score is undone.
TEST(PlatformExec, OomScoreOfAChild) {
  EXPECT_EQ(platform::child_oom_score_adj(-500), 0);
  EXPECT_EQ(platform::child_oom_score_adj(-1000), 0);
  EXPECT_EQ(platform::child_oom_score_adj(-1), 0);
  EXPECT_EQ(platform::child_oom_score_adj(0), std::nullopt);
  EXPECT_EQ(platform::child_oom_score_adj(300), std::nullopt);
  EXPECT_EQ(platform::own_oom_score_adj(), std::stoi(read_oom_score_adj()));
}

// The write itself, in the child before exec, where no privilege is needed: raising a score
// (lowering one below the process's floor takes CAP_SYS_RESOURCE, which a container may lack;
// the test above does it where it can).
TEST(PlatformExec, ChildWritesItsOomScoreBeforeExec) {
  const int status = in_child([] {
    if (!write_oom_score_adj("100")) return 2;
    std::string seen = child_oom_score_adj(exec_capture::out, 700);
    if (seen != "700\n") {
      std::fprintf(stderr, "asked for 700, child runs at %s\n", seen.c_str());
      return 3;
    }
    if (read_oom_score_adj() != "100\n") return 4;   // not the agent's
    if (child_oom_score_adj() != "100\n") return 5;  // default: a positive score is inherited
    temp_dir d;
    make_exec(d / "noshebang", "cat /proc/self/oom_score_adj\n");
    if (child_oom_score_adj(exec_capture::merged, 900, {d / "noshebang"}) != "900\n") return 6;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

TEST(PlatformExec, WriteToAClosedPipeIsEpipeNotADeadProcess) {
  // SIGPIPE's default action is active in this test binary: a plain write would kill it.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[0]);
  errno = 0;
  EXPECT_EQ(platform::write_no_sigpipe(p[1], "x", 1), -1);
  EXPECT_EQ(errno, EPIPE);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE));
  ::close(p[1]);
}

}  // namespace
}  // namespace fleetga::test
