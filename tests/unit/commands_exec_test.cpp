// The exec family: real children (sh, echo, cat, head — harmless), watched by a poll() loop
// standing in for the agent's event loop, pumped until the child is done.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "commands/exec.hpp"
#include "commands/reactor.hpp"
#include "commands/state.hpp"
#include "commands/table.hpp"
#include "commands_harness.hpp"
#include "platform/exec.hpp"
#include "protocol/base64.hpp"

namespace fleetga::test {
namespace {

constexpr std::size_t block = commands::exec_block_size;

// One-shot, level-triggered watches served by poll(): what agent/reactor.cpp does on Asio.
class poll_reactor final : public commands::fd_reactor {
 public:
  struct watch {
    std::function<void()> rd, wr;
  };
  std::map<int, watch> fds;
  int cancels = 0;

  void wait_readable(int fd, std::function<void()> f) override { fds[fd].rd = std::move(f); }
  void wait_writable(int fd, std::function<void()> f) override { fds[fd].wr = std::move(f); }
  void cancel(int fd) noexcept override {
    ++cancels;
    fds.erase(fd);
  }

  // One round: waits up to `ms` for any watched fd, runs the callbacks that are due.
  // Returns false when nothing is watched.
  bool pump(int ms = 50) {
    std::vector<pollfd> p;
    for (auto& [fd, w] : fds) {
      short ev = 0;
      if (w.rd) ev |= POLLIN;
      if (w.wr) ev |= POLLOUT;
      if (ev) p.push_back({fd, ev, 0});
    }
    if (p.empty()) return false;
    if (::poll(p.data(), p.size(), ms) <= 0) return true;
    for (const auto& e : p) {
      if (!e.revents) continue;
      for (bool rd : {true, false}) {
        auto it = fds.find(e.fd);
        if (it == fds.end()) break;
        auto& slot = rd ? it->second.rd : it->second.wr;
        const short want = rd ? POLLIN : POLLOUT;
        if (!slot || !(e.revents & (want | POLLHUP | POLLERR))) continue;
        auto f = std::move(slot);
        slot = nullptr;
        f();
      }
    }
    return true;
  }
};

std::string b64(std::string_view s) {
  std::string o;
  protocol::base64_encode(s, o);
  return o;
}
std::string unb64(std::string_view s) { return protocol::base64_decode(s).value_or("<bad base64>"); }

std::string generic(std::string_view desc) { return "error: " + std::string(desc); }

// The handlers on an agent_state whose exec reactor is the poll loop (limits reachable).
struct direct {
  temp_dir dir;
  fake_system sys;
  commands::inline_offloader pool;
  poll_reactor reactor;
  commands::agent_state st{pool, sys, dir.path, commands::all_commands_mask, {1, 0, 0}};
  std::vector<std::string> audit;

  direct() {
    st.exec.reactor = &reactor;
    st.audit_sink = [this](std::string_view l) { audit.emplace_back(l); };
  }

  std::string run(commands::task<commands::handler_result> (*h)(commands::call&), std::string_view args) {
    std::string buf(args);
    buf.append(protocol::input_padding, '\0');
    std::string out;
    protocol::json_writer w(out);
    commands::call c{std::string_view(buf.data(), args.size()), w, st};
    auto t = h(c);
    EXPECT_TRUE(t.start());
    auto err = t.take();
    if (err) return "error: " + err->desc;
    return out;
  }
  std::string exec(std::string_view args) { return run(commands::handlers::guest_exec, args); }
  std::string status(std::int64_t pid) {
    return run(commands::handlers::guest_exec_status, "{\"pid\": " + std::to_string(pid) + "}");
  }
  // guest-exec, expecting {"pid": N}.
  std::int64_t start(std::string_view args) {
    std::string r = exec(args);
    const std::string pre = "{\"pid\": ";
    EXPECT_EQ(r.substr(0, pre.size()), pre) << r;
    if (r.substr(0, pre.size()) != pre) return -1;
    return std::stoll(r.substr(pre.size()));
  }
  // Polls guest-exec-status like a host, pumping the loop in between; the final reply.
  std::string finish(std::int64_t pid, std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      std::string r = status(pid);
      if (r != R"({"exited": false})") return r;
      if (std::chrono::steady_clock::now() > end) return "timeout";
      reactor.pump();
    }
  }
  std::string run_to_end(std::string_view args) { return finish(start(args)); }
  void pump_for(std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) reactor.pump(10);
  }
};

bool zombie_or_alive(std::int64_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

TEST(CommandsExec, EchoLikeUpstreamAndQemuGaByteForByte) {
  direct d;
  // test-qga.c /qga/guest-exec; the reply is what qemu-ga 7.2 printed for it on this machine.
  std::int64_t pid = d.start(R"({"path": "echo", "arg": ["-n", "\" test_str \""], "capture-output": true})");
  ASSERT_GT(pid, 0);
  EXPECT_EQ(d.finish(pid), R"({"exitcode": 0, "out-data": "IiB0ZXN0X3N0ciAi", "out-truncated": false, "exited": true})");
  EXPECT_EQ(unb64("IiB0ZXN0X3N0ciAi"), "\" test_str \"");
  EXPECT_EQ(d.audit, (std::vector<std::string>{R"(guest-exec called: "echo -n " test_str "")"}));
  // The record is gone once read, and the child was reaped.
  EXPECT_EQ(d.status(pid), generic("PID ld does not exist"));
  EXPECT_FALSE(zombie_or_alive(pid));
  EXPECT_EQ(d.st.exec.size(), 0u);
  EXPECT_EQ(d.st.exec.retained(), 0u);
  EXPECT_TRUE(d.reactor.fds.empty());
}

TEST(CommandsExec, ExitCodeWithBothStreamsLikeQemuGa) {
  direct d;
  EXPECT_EQ(d.run_to_end(R"({"path": "sh", "arg": ["-c", "echo out; echo err >&2; exit 3"], "capture-output": true})"),
            R"({"exitcode": 3, "err-data": "ZXJyCg==", "out-data": "b3V0Cg==", "err-truncated": false, )"
            R"("out-truncated": false, "exited": true})");
}

TEST(CommandsExec, KilledBySignal) {
  direct d;
  EXPECT_EQ(d.run_to_end(R"({"path": "sh", "arg": ["-c", "kill -9 $$"], "capture-output": true})"),
            R"({"signal": 9, "exited": true})");
}

constexpr const char* four_lines =
    R"(["-c", "for i in 1 2 3 4; do if [ $((i % 2)) = 1 ]; then echo stdout; else echo stderr >&2; fi; done"])";

TEST(CommandsExec, CaptureModes) {
  direct d;
  auto with = [&](std::string_view mode) {
    return d.run_to_end(std::string(R"({"path": "sh", "arg": )") + four_lines + R"(, "capture-output": )" +
                        std::string(mode) + "}");
  };
  const std::string out2 = b64("stdout\nstdout\n"), err2 = b64("stderr\nstderr\n");
  // test-qga.c /qga/guest-exec-separated and -merged.
  EXPECT_EQ(with(R"("separated")"), R"({"exitcode": 0, "err-data": ")" + err2 + R"(", "out-data": ")" + out2 +
                                        R"(", "err-truncated": false, "out-truncated": false, "exited": true})");
  EXPECT_EQ(with("true"), with(R"("separated")"));
  EXPECT_EQ(with(R"("merged")"), R"({"exitcode": 0, "out-data": ")" + b64("stdout\nstderr\nstdout\nstderr\n") +
                                     R"(", "out-truncated": false, "exited": true})");
  EXPECT_EQ(with(R"("stdout")"), R"({"exitcode": 0, "out-data": ")" + out2 + R"(", "out-truncated": false, "exited": true})");
  EXPECT_EQ(with(R"("stderr")"), R"({"exitcode": 0, "err-data": ")" + err2 + R"(", "err-truncated": false, "exited": true})");
  EXPECT_EQ(with(R"("none")"), R"({"exitcode": 0, "exited": true})");
  EXPECT_EQ(with("false"), R"({"exitcode": 0, "exited": true})");
  EXPECT_EQ(d.run_to_end(std::string(R"({"path": "sh", "arg": )") + four_lines + "}"), R"({"exitcode": 0, "exited": true})");
  EXPECT_EQ(d.st.exec.retained(), 0u);
}

TEST(CommandsExec, ArgumentErrorsAreQemuTexts) {
  direct d;
  EXPECT_EQ(d.exec(R"({"path": "true", "capture-output": "bogus"})"),
            generic("Parameter 'capture-output' does not accept value 'bogus'"));
  EXPECT_EQ(d.exec(R"({"path": "true", "capture-output": null})"),
            generic("Invalid parameter type for 'capture-output', expected: GuestExecCaptureOutput"));
  EXPECT_EQ(d.exec(R"({"path": "true", "capture-output": 1})"),
            generic("Invalid parameter type for 'capture-output', expected: GuestExecCaptureOutput"));
  EXPECT_EQ(d.exec(R"({"path": "true", "arg": [1]})"), generic("Invalid parameter type for 'arg[0]', expected: string"));
  EXPECT_EQ(d.exec("{}"), generic("Parameter 'path' is missing"));
  EXPECT_EQ(d.exec(R"({"path": "true", "input-data": "@@"})"), generic("Base64 data contains invalid characters"));
  EXPECT_EQ(d.exec(R"({"path": "true", "bogus": 1})"), generic("Parameter 'bogus' is unexpected"));
  EXPECT_EQ(d.run(commands::handlers::guest_exec_status, "{}"), generic("Parameter 'pid' is missing"));
  EXPECT_TRUE(d.audit.empty());  // nothing was run
}

TEST(CommandsExec, UnknownPidIsUpstreamText) {
  direct d;
  // Upstream >= 8.2 (format-string bug included); 7.2 said "Invalid parameter 'pid'".
  EXPECT_EQ(d.status(0), generic("PID ld does not exist"));
  EXPECT_EQ(d.status(-1), generic("PID ld does not exist"));
  EXPECT_EQ(d.status(::getpid()), generic("PID ld does not exist"));
}

TEST(CommandsExec, SpawnFailuresAreGlibTexts) {
  direct d;
  EXPECT_EQ(d.exec(R"({"path": "/nonexistent"})"),
            generic("Failed to execute child process \xE2\x80\x9C/nonexistent\xE2\x80\x9D (No such file or directory)"));
  EXPECT_EQ(d.exec(R"({"path": "/bin/invalid-cmd42"})"),
            generic("Failed to execute child process \xE2\x80\x9C/bin/invalid-cmd42\xE2\x80\x9D (No such file or directory)"));
  EXPECT_EQ(d.exec(R"({"path": "invalid-cmd42"})"),
            generic("Failed to execute child process \xE2\x80\x9Cinvalid-cmd42\xE2\x80\x9D (No such file or directory)"));
  EXPECT_EQ(d.exec(R"({"path": "/etc/passwd"})"),
            generic("Failed to execute child process \xE2\x80\x9C/etc/passwd\xE2\x80\x9D (Permission denied)"));
  EXPECT_EQ(d.exec(R"({"path": "true", "env": ["PATH=/nonexistent"]})"),
            generic("Failed to execute child process \xE2\x80\x9Ctrue\xE2\x80\x9D (No such file or directory)"));
  // qemu-ga logs the attempt before spawning.
  EXPECT_EQ(d.audit.size(), 5u);
  EXPECT_EQ(d.audit[0], R"(guest-exec called: "/nonexistent")");
  EXPECT_EQ(d.st.exec.size(), 0u);
}

TEST(CommandsExec, InputDataRoundTripThroughCat) {
  direct d;
  EXPECT_EQ(d.run_to_end(R"({"path": "cat", "input-data": "aGVsbG8=", "capture-output": true})"),
            R"({"exitcode": 0, "out-data": "aGVsbG8=", "out-truncated": false, "exited": true})");
  // Larger than any pipe: written as the child reads while its output is read (a blocking
  // write here would deadlock against cat's full stdout).
  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  std::string r = d.run_to_end(R"({"path": "cat", "input-data": ")" + b64(big) + R"(", "capture-output": "stdout"})");
  const std::string pre = R"({"exitcode": 0, "out-data": ")";
  ASSERT_EQ(r.substr(0, pre.size()), pre);
  const auto q = r.find('"', pre.size());
  EXPECT_TRUE(unb64(r.substr(pre.size(), q - pre.size())) == big);
  EXPECT_EQ(r.substr(q), R"(", "out-truncated": false, "exited": true})");
  // Empty input: stdin is a pipe closed at once.
  EXPECT_EQ(d.run_to_end(R"({"path": "cat", "input-data": "", "capture-output": true})"), R"({"exitcode": 0, "exited": true})");
  // A child that never reads its stdin: the rest is dropped, nothing hangs or dies of SIGPIPE.
  EXPECT_EQ(d.run_to_end(R"({"path": "true", "input-data": ")" + b64(std::string(1 << 20, 'x')) + R"("})"),
            R"({"exitcode": 0, "exited": true})");
  EXPECT_EQ(d.st.exec.retained(), 0u);
}

TEST(CommandsExec, OutputCappedAt16MiBWithTruncatedFlag) {
  direct d;
  auto data_of = [](const std::string& r, std::string_view member) {
    const std::string key = "\"" + std::string(member) + "\": \"";
    auto p = r.find(key);
    if (p == std::string::npos) return std::string("<absent>");
    p += key.size();
    return unb64(r.substr(p, r.find('"', p) - p));
  };
  // 17,000,000 bytes written: exactly 16,777,216 kept, the rest read and dropped.
  std::string r = d.run_to_end(R"({"path": "head", "arg": ["-c", "17000000", "/dev/zero"], "capture-output": true})");
  EXPECT_EQ(data_of(r, "out-data").size(), 16777216u);
  EXPECT_NE(r.find(R"("out-truncated": true, "exited": true})"), std::string::npos);
  EXPECT_EQ(r.substr(0, 14), R"({"exitcode": 0)");
  // Exactly the cap is not truncated.
  r = d.run_to_end(R"({"path": "head", "arg": ["-c", "16777216", "/dev/zero"], "capture-output": "stdout"})");
  EXPECT_EQ(data_of(r, "out-data").size(), 16777216u);
  EXPECT_NE(r.find(R"("out-truncated": false, "exited": true})"), std::string::npos);
  // stderr has its own cap.
  r = d.run_to_end(R"({"path": "sh", "arg": ["-c", "head -c 16777300 /dev/zero >&2; echo x"], "capture-output": true})");
  EXPECT_EQ(data_of(r, "err-data").size(), 16777216u);
  EXPECT_EQ(data_of(r, "out-data"), "x\n");
  EXPECT_NE(r.find(R"("err-truncated": true, "out-truncated": false, "exited": true})"), std::string::npos);
  EXPECT_EQ(d.st.exec.retained(), 0u);
}

TEST(CommandsExec, EnvironmentReplacedAndPathSearchedInIt) {
  direct d;
  // qemu-ga 7.2 printed the same for this request.
  EXPECT_EQ(d.run_to_end(R"({"path": "env", "env": ["A=1", "B=2"], "capture-output": true})"),
            R"({"exitcode": 0, "out-data": "QT0xCkI9Mgo=", "out-truncated": false, "exited": true})");
  temp_dir bin;
  spit(bin / "mytool", "#!/bin/sh\necho \"found $X\"\n");
  ::chmod((bin / "mytool").c_str(), 0755);
  EXPECT_EQ(d.run_to_end(R"({"path": "mytool", "env": ["X=y", "PATH=)" + bin.path + R"("], "capture-output": true})"),
            R"({"exitcode": 0, "out-data": ")" + b64("found y\n") + R"(", "out-truncated": false, "exited": true})");
}

TEST(CommandsExec, RunningChildReportsNotExitedThenItsStatus) {
  direct d;
  std::int64_t pid = d.start(R"({"path": "sh", "arg": ["-c", "read x; echo got $x"], "input-data": "", "capture-output": true})");
  // stdin closed at once: `read` fails, echo prints "got".
  EXPECT_EQ(d.finish(pid), R"({"exitcode": 0, "out-data": ")" + b64("got\n") + R"(", "out-truncated": false, "exited": true})");
  pid = d.start(R"({"path": "sleep", "arg": ["0.3"]})");
  EXPECT_EQ(d.status(pid), R"({"exited": false})");
  EXPECT_EQ(d.status(pid), R"({"exited": false})");
  EXPECT_EQ(d.finish(pid), R"({"exitcode": 0, "exited": true})");
  EXPECT_EQ(d.status(pid), generic("PID ld does not exist"));
}

TEST(CommandsExec, TableFullIsAClearError) {
  direct d;
  d.st.exec.children_max = 2;
  std::int64_t a = d.start(R"({"path": "sleep", "arg": ["0.2"]})");
  std::int64_t b = d.start(R"({"path": "true"})");
  EXPECT_EQ(d.exec(R"({"path": "true"})"),
            generic("guest-exec: too many processes (2 started and not yet collected with guest-exec-status)"));
  EXPECT_EQ(commands::exec_detail::table_full_text(commands::exec_children_max),
            "guest-exec: too many processes (1024 started and not yet collected with guest-exec-status)");
  // A finished but unread record still counts; reading it frees the slot.
  EXPECT_EQ(d.finish(b), R"({"exitcode": 0, "exited": true})");
  std::int64_t c = d.start(R"({"path": "true"})");
  EXPECT_GT(c, 0);
  EXPECT_EQ(d.finish(a), R"({"exitcode": 0, "exited": true})");
  EXPECT_EQ(d.finish(c), R"({"exitcode": 0, "exited": true})");
}

TEST(CommandsExec, BudgetExhaustedMeansBackpressureNotLoss) {
  direct d;
  d.st.exec.retained_max = 4 * block;
  // B finishes holding two blocks and is not collected yet.
  std::int64_t b = d.start(R"({"path": "head", "arg": ["-c", "70000", "/dev/zero"], "capture-output": true})");
  for (int i = 0; i < 200 && !(d.st.exec.find(b)->finished()); ++i) d.reactor.pump();
  ASSERT_TRUE(d.st.exec.find(b)->finished());
  EXPECT_EQ(d.st.exec.retained(), 2 * block);
  // A writes 200 KiB: two blocks fit, the pipe takes 64 KiB more, and then head blocks.
  std::int64_t a = d.start(R"({"path": "head", "arg": ["-c", "204800", "/dev/zero"], "capture-output": true})");
  d.pump_for(std::chrono::milliseconds(500));
  EXPECT_EQ(d.status(a), R"({"exited": false})");
  const commands::exec_record* ra = d.st.exec.find(a);
  ASSERT_NE(ra, nullptr);
  EXPECT_TRUE(ra->out.paused);
  EXPECT_EQ(ra->out.size, 2 * block);
  EXPECT_FALSE(ra->reaped);  // blocked in write(2), not dead and not dropped
  EXPECT_EQ(d.st.exec.retained(), 4 * block);
  // Over budget input is refused up front.
  EXPECT_EQ(d.exec(R"({"path": "cat", "input-data": "aGVsbG8="})"),
            generic("guest-exec: input-data does not fit in the memory left for processes (262144 bytes of output "
                    "and input at most; collect finished ones with guest-exec-status)"));
  // Reading B gives its blocks back; A goes on and finishes with every byte.
  std::string rb = d.status(b);
  EXPECT_NE(rb.find(R"("out-truncated": false, "exited": true})"), std::string::npos);
  std::string r = d.finish(a);
  const std::string pre = R"({"exitcode": 0, "out-data": ")";
  ASSERT_EQ(r.substr(0, pre.size()), pre);
  EXPECT_EQ(unb64(r.substr(pre.size(), r.find('"', pre.size()) - pre.size())), std::string(204800, '\0'));
  EXPECT_EQ(d.st.exec.retained(), 0u);
}

TEST(CommandsExec, OldKernelPathReapsByPid) {
  direct d;
  // What spawn_child returns without pidfd_open: the record is reaped by waitpid(WNOHANG) when
  // the host asks (or the next guest-exec starts).
  auto sp = platform::spawn_child({{"sh", "-c", "echo hi; exit 5"}, std::nullopt, false, platform::exec_capture::out});
  ASSERT_EQ(sp.errnum, 0);
  platform::close_fd(sp.child.pidfd);
  auto rec = std::make_unique<commands::exec_record>();
  rec->pid = sp.child.pid;
  rec->out.fd = sp.child.out;
  rec->out.captured = true;
  rec->out.eof = false;
  d.st.exec.add(std::move(rec));
  EXPECT_EQ(d.finish(sp.child.pid), R"({"exitcode": 5, "out-data": ")" + b64("hi\n") + R"(", "out-truncated": false, "exited": true})");
  EXPECT_FALSE(zombie_or_alive(sp.child.pid));
  // And a sweep at guest-exec time.
  sp = platform::spawn_child({{"true"}, std::nullopt, false, platform::exec_capture::none});
  platform::close_fd(sp.child.pidfd);
  rec = std::make_unique<commands::exec_record>();
  rec->pid = sp.child.pid;
  d.st.exec.add(std::move(rec));
  ::usleep(200000);
  std::int64_t other = d.start(R"({"path": "true"})");
  EXPECT_TRUE(d.st.exec.find(sp.child.pid)->reaped);
  EXPECT_FALSE(zombie_or_alive(sp.child.pid));
  d.finish(other);
  d.finish(sp.child.pid);
}

TEST(CommandsExec, ContextTeardownLeavesChildrenRunning) {
  std::int64_t pid;
  {
    direct d;
    pid = d.start(R"({"path": "sleep", "arg": ["0.3"], "capture-output": true})");
    ASSERT_GT(pid, 0);
  }  // agent_state gone: watches cancelled, fds closed, nobody killed the child
  EXPECT_EQ(::kill(static_cast<pid_t>(pid), 0), 0);
  int status = 0;
  EXPECT_EQ(::waitpid(static_cast<pid_t>(pid), &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
}

TEST(CommandsExec, ManyConcurrentChildren) {
  direct d;
  std::vector<std::int64_t> pids;
  for (int i = 0; i < 100; ++i)
    pids.push_back(d.start(R"({"path": "sh", "arg": ["-c", "echo )" + std::to_string(i) + R"("], "capture-output": "merged"})"));
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(d.finish(pids[i]), R"({"exitcode": 0, "out-data": ")" + b64(std::to_string(i) + "\n") +
                                      R"(", "out-truncated": false, "exited": true})");
  EXPECT_EQ(d.st.exec.size(), 0u);
  EXPECT_TRUE(d.reactor.fds.empty());
}

// Through service::handle: options::reactor wiring, the table rows, and no reactor.
TEST(CommandsExec, ServiceWithAndWithoutReactor) {
  poll_reactor reactor;
  commands::options o;
  o.reactor = &reactor;
  service_fixture f(o);
  std::string r = f(R"({"execute": "guest-exec", "arguments": {"path": "true"}, "id": 7})");
  ASSERT_EQ(r.substr(0, 19), R"({"return": {"pid": )") << r;
  const std::string pid = r.substr(19, r.find('}') - 19);
  for (int i = 0; i < 200; ++i) {
    r = f(R"({"execute": "guest-exec-status", "arguments": {"pid": )" + pid + "}}");
    if (r != "{\"return\": {\"exited\": false}}\n") break;
    reactor.pump();
  }
  EXPECT_EQ(r, "{\"return\": {\"exitcode\": 0, \"exited\": true}}\n");

  service_fixture none;
  EXPECT_EQ(none(R"({"execute": "guest-exec", "arguments": {"path": "true"}})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + std::string(commands::exec_detail::no_reactor_text) +
                "\"}}\n");
  EXPECT_EQ(none(R"({"execute": "guest-exec-status", "arguments": {"pid": 1}})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"PID ld does not exist\"}}\n");
}

TEST(CommandsExec, TableRowsInUpstreamOrder) {
  auto i = commands::find_command("guest-get-memory-block-info");
  auto s = commands::find_command("guest-exec-status");
  auto e = commands::find_command("guest-exec");
  ASSERT_TRUE(i && s && e);
  EXPECT_EQ(*s, *i + 1);
  EXPECT_EQ(*e, *s + 1);
  EXPECT_EQ(commands::command_table[*e].since, "2.5");
  EXPECT_EQ(commands::command_table[*s].since, "2.5");
  EXPECT_EQ(commands::command_table[*e].name, "guest-exec");
}

}  // namespace
}  // namespace fleetga::test
