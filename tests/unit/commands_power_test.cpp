// The power family through service::handle with a fake runner: nothing here shuts down,
// suspends or writes outside a temporary fixture root.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands/power.hpp"
#include "commands/state.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

using commands::power_detail::suspend_mode;
using platform::helper_result;
using argv_t = std::vector<std::string>;

std::string fixture(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/power/" + std::string(rel); }

std::string generic(std::string_view desc) {
  return "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + std::string(desc) + "\"}}\n";
}

// Records every argv; answers from `answers` (by argv joined with ' '), else "not found".
struct fake_runner : commands::power_runner {
  std::vector<argv_t> calls;
  std::map<std::string, helper_result> answers;

  helper_result run(const argv_t& argv) override {
    calls.push_back(argv);
    std::string key;
    for (const auto& a : argv) key += (key.empty() ? "" : " ") + a;
    if (auto it = answers.find(key); it != answers.end()) return it->second;
    helper_result r;
    r.how = helper_result::outcome::exec_failed;
    r.status = 1;
    r.err = ENOENT;
    r.output = "failed to exec '" + argv[0] + "': No such file or directory\n";
    return r;
  }
  void exits(const std::string& key, int status, std::string output = {}) {
    helper_result r;
    r.status = status;
    r.output = std::move(output);
    answers[key] = r;
  }
};

// A temporary root: sbin/<names> executables, sys/power/state with `state` (nullopt: absent).
struct power_root {
  temp_dir dir;
  explicit power_root(std::optional<std::string_view> state, std::vector<std::string> sbin = {}) {
    std::filesystem::create_directories(dir.path + "/sbin");
    std::filesystem::create_directories(dir.path + "/sys/power");
    if (state) spit(dir / "sys/power/state", *state);
    for (const auto& n : sbin) {
      spit(dir / ("sbin/" + n), "#!/bin/false\n");
      ::chmod((dir / ("sbin/" + n)).c_str(), 0755);
    }
  }
  std::string state() const { return slurp(dir / "sys/power/state"); }
};

// fake_system that also runs the power helpers: agent_state picks it up as its runner.
struct power_system final : fake_system, fake_runner {
  using fake_system::fake_system;
};

// service::handle on a fixture root whose helpers are faked.
struct power_fixture {
  temp_dir statedir;
  power_system sys;
  commands::inline_offloader pool;
  std::unique_ptr<commands::service> svc;
  fake_runner& runner;

  explicit power_fixture(const std::string& root, std::optional<std::string> level = std::nullopt)
      : sys(root), runner(sys) {
    commands::options o;
    o.statedir = statedir.path;
    o.support_level = std::move(level);
    svc = std::make_unique<commands::service>(std::move(o), pool, sys);
    auto err = svc->init();
    EXPECT_FALSE(err) << *err;
  }
  std::string operator()(std::string_view json) { return run(*svc, json); }
};

// ---- pure parts ------------------------------------------------------------------------

TEST(PowerDetail, SysStateSupports) {
  using commands::power_detail::sys_state_supports;
  EXPECT_TRUE(sys_state_supports("freeze mem disk\n", suspend_mode::disk));
  EXPECT_TRUE(sys_state_supports("freeze mem disk\n", suspend_mode::ram));
  EXPECT_FALSE(sys_state_supports("freeze mem disk\n", suspend_mode::hybrid));  // no sysfs hybrid
  EXPECT_FALSE(sys_state_supports("freeze mem\n", suspend_mode::disk));
  EXPECT_FALSE(sys_state_supports("", suspend_mode::ram));
  EXPECT_TRUE(sys_state_supports("standby freeze", suspend_mode::ram) == false);
  // qemu-ga reads 31 bytes at most: a word beyond them is not seen.
  EXPECT_FALSE(sys_state_supports(std::string(31, ' ') + "mem", suspend_mode::ram));
  EXPECT_TRUE(sys_state_supports(std::string(28, ' ') + "mem", suspend_mode::ram));
}

TEST(PowerDetail, ShutdownArgvFallsBackToShutdown) {
  power_root r(std::nullopt);
  using commands::power_detail::shutdown_argv;
  const std::string msg = "hypervisor initiated shutdown";
  EXPECT_EQ(shutdown_argv(std::nullopt, r.dir.path), (argv_t{"/sbin/shutdown", "-h", "-P", "+0", msg}));
  EXPECT_EQ(shutdown_argv("powerdown", r.dir.path), (argv_t{"/sbin/shutdown", "-h", "-P", "+0", msg}));
  EXPECT_EQ(shutdown_argv("halt", r.dir.path), (argv_t{"/sbin/shutdown", "-h", "-H", "+0", msg}));
  EXPECT_EQ(shutdown_argv("reboot", r.dir.path), (argv_t{"/sbin/shutdown", "-h", "-r", "+0", msg}));
  EXPECT_FALSE(shutdown_argv("Reboot", r.dir.path));
  EXPECT_FALSE(shutdown_argv("", r.dir.path));
}

TEST(PowerDetail, ShutdownArgvPrefersDedicatedPrograms) {
  power_root r(std::nullopt, {"poweroff", "halt", "reboot"});
  using commands::power_detail::shutdown_argv;
  EXPECT_EQ(shutdown_argv(std::nullopt, r.dir.path), (argv_t{"/sbin/poweroff"}));
  EXPECT_EQ(shutdown_argv("halt", r.dir.path), (argv_t{"/sbin/halt"}));
  EXPECT_EQ(shutdown_argv("reboot", r.dir.path), (argv_t{"/sbin/reboot"}));
}

TEST(PowerDetail, NonExecutableOrDirectoryIsNotUsed) {
  power_root r(std::nullopt);
  spit(r.dir / "sbin/poweroff", "x");
  ::chmod((r.dir / "sbin/poweroff").c_str(), 0644);
  std::filesystem::create_directories(r.dir.path + "/sbin/reboot");
  using commands::power_detail::shutdown_argv;
  EXPECT_EQ(shutdown_argv("powerdown", r.dir.path)->front(), "/sbin/shutdown");
  EXPECT_EQ(shutdown_argv("reboot", r.dir.path)->front(), "/sbin/shutdown");
}

TEST(PowerDetail, RunChildStatuses) {
  fake_runner f;
  std::optional<std::string> err;
  using commands::power_detail::run_child;
  EXPECT_EQ(run_child(f, {"nothere"}, err), -1);
  EXPECT_FALSE(err);
  f.exits("x", 3);
  EXPECT_EQ(run_child(f, {"x"}, err), 3);
  helper_result sig;
  sig.how = helper_result::outcome::signaled;
  sig.status = 9;
  f.answers["s"] = sig;
  EXPECT_EQ(run_child(f, {"s"}, err), 0);  // WEXITSTATUS of a signalled status
  EXPECT_FALSE(err);
  helper_result denied;
  denied.how = helper_result::outcome::exec_failed;
  denied.err = EACCES;
  f.answers["d"] = denied;
  EXPECT_EQ(run_child(f, {"d"}, err), -1);
  EXPECT_EQ(err, "failed to create child process, error 'Failed to execute child process \xE2\x80\x9C"
                 "d\xE2\x80\x9D (Permission denied)'");
}

// ---- guest-shutdown --------------------------------------------------------------------

TEST(PowerShutdown, BadModeFailsBeforeAnythingRuns) {
  power_root r(std::nullopt);
  power_fixture t(r.dir.path);
  // Byte-identical to Debian's qemu-ga 7.2 (checked on this machine).
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"mode":"sleep"}})"),
            generic("mode is invalid (valid values are: halt|powerdown|reboot"));
  EXPECT_TRUE(t.runner.calls.empty());
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"mode":1}})"),
            generic("Invalid parameter type for 'mode', expected: string"));
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"force":true}})"),
            generic("Parameter 'force' is unexpected"));
  EXPECT_TRUE(t.runner.calls.empty());
}

TEST(PowerShutdown, SuccessSendsNothing) {
  power_root r(std::nullopt);
  power_fixture t(r.dir.path);
  const std::string key = "/sbin/shutdown -h -P +0 hypervisor initiated shutdown";
  t.runner.exits(key, 0);
  bool replied = true;
  EXPECT_EQ(run(*t.svc, R"({"execute":"guest-shutdown","id":7})", &replied), "");
  EXPECT_FALSE(replied);
  ASSERT_EQ(t.runner.calls.size(), 1u);
  EXPECT_EQ(t.runner.calls[0], (argv_t{"/sbin/shutdown", "-h", "-P", "+0", "hypervisor initiated shutdown"}));
  t.runner.exits("/sbin/shutdown -h -r +0 hypervisor initiated shutdown", 0);
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"mode":"reboot"}})"), "");
}

TEST(PowerShutdown, DedicatedProgramUnderRoot) {
  power_root r(std::nullopt, {"halt"});
  power_fixture t(r.dir.path);
  t.runner.exits("/sbin/halt", 0);
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"mode":"halt"}})"), "");
  ASSERT_EQ(t.runner.calls.size(), 1u);
  EXPECT_EQ(t.runner.calls[0], (argv_t{"/sbin/halt"}));
}

TEST(PowerShutdown, HelperFailureTexts) {
  power_root r(std::nullopt);
  power_fixture t(r.dir.path);
  const std::string key = "/sbin/shutdown -h -H +0 hypervisor initiated shutdown";
  t.runner.exits(key, 1, "Failed to talk to init daemon.\n");
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"mode":"halt"}})"),
            generic("child process has failed to shutdown: Failed to talk to init daemon.\\n"));
  t.runner.exits(key, 2);
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"mode":"halt"}})"),
            generic("child process has failed to shutdown: exit status 2"));
  t.runner.answers.clear();  // not there at all
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"mode":"halt"}})"),
            generic("child process has failed to shutdown: failed to exec '/sbin/shutdown': No such file or "
                    "directory\\n"));
  helper_result sig;
  sig.how = helper_result::outcome::signaled;
  sig.status = 15;
  t.runner.answers[key] = sig;
  EXPECT_EQ(t(R"({"execute":"guest-shutdown","arguments":{"mode":"halt"}})"),
            generic("child process has terminated abnormally"));
}

// ---- guest-suspend-* -------------------------------------------------------------------

TEST(PowerSuspend, SystemdFirst) {
  power_root r("freeze mem disk\n");
  power_fixture t(r.dir.path);
  t.runner.exits("systemctl status systemd-hibernate", 3);
  t.runner.exits("systemctl hibernate", 0);
  bool replied = true;
  EXPECT_EQ(run(*t.svc, R"({"execute":"guest-suspend-disk"})", &replied), "");
  EXPECT_FALSE(replied);
  EXPECT_EQ(t.runner.calls, (std::vector<argv_t>{{"systemctl", "status", "systemd-hibernate"}, {"systemctl", "hibernate"}}));
  EXPECT_EQ(r.state(), "freeze mem disk\n");  // sysfs untouched
}

TEST(PowerSuspend, SystemdStatusOutsideOneToThreeIsUnsupported) {
  for (int status : {0, 4, 5}) {
    power_root r(std::nullopt);
    power_fixture t(r.dir.path);
    t.runner.exits("systemctl status systemd-hibernate", status);
    EXPECT_EQ(t(R"({"execute":"guest-suspend-disk"})"), generic("the requested suspend mode is not supported by the guest"))
        << status;
    EXPECT_EQ(t.runner.calls, (std::vector<argv_t>{{"systemctl", "status", "systemd-hibernate"},
                                                   {"pm-is-supported", "--hibernate"}}));
  }
}

TEST(PowerSuspend, SystemdFailureFallsThroughToPmUtils) {
  power_root r(std::nullopt);
  power_fixture t(r.dir.path, "1.1");
  t.runner.exits("systemctl status systemd-suspend", 3);
  t.runner.exits("systemctl suspend", 1);
  t.runner.exits("pm-is-supported --suspend", 0);
  t.runner.exits("pm-suspend", 0);
  EXPECT_EQ(t(R"({"execute":"guest-suspend-ram"})"), "");
  EXPECT_EQ(t.runner.calls.size(), 4u);
  EXPECT_EQ(t.runner.calls.back(), (argv_t{"pm-suspend"}));
}

TEST(PowerSuspend, PmUtilsHybridErrors) {
  power_root r("freeze mem disk\n");
  power_fixture t(r.dir.path, "1.1.0");
  t.runner.exits("systemctl status systemd-hybrid-sleep", 4);
  t.runner.exits("pm-is-supported --suspend-hybrid", 0);
  t.runner.exits("pm-suspend-hybrid", 2);
  // Supported by pm-utils but failed; no sysfs path for hybrid: pm-utils' error is dropped
  // like qemu-ga does, and the last mechanism (sysfs) had none -> success-less silence.
  EXPECT_EQ(t(R"({"execute":"guest-suspend-hybrid"})"), "");
  EXPECT_EQ(r.state(), "freeze mem disk\n");
}

TEST(PowerSuspend, SysfsWritesTheWord) {
  power_root r("freeze mem disk\n");
  power_fixture t(r.dir.path);
  EXPECT_EQ(t(R"({"execute":"guest-suspend-disk"})"), "");
  // Written at offset 0 without truncation, as qemu-ga does (sysfs takes the whole write; a
  // regular fixture file keeps its tail).
  EXPECT_EQ(r.state(), "diskze mem disk\n");
  EXPECT_EQ(t.runner.calls, (std::vector<argv_t>{{"systemctl", "status", "systemd-hibernate"},
                                                 {"pm-is-supported", "--hibernate"}}));
}

TEST(PowerSuspend, SysfsWriteFailure) {
  power_root r("freeze mem disk\n");
  power_fixture t(r.dir.path);
  ::chmod((r.dir / "sys/power/state").c_str(), 0444);
  if (::access((r.dir / "sys/power/state").c_str(), W_OK) == 0) GTEST_SKIP() << "running as root";
  EXPECT_EQ(t(R"({"execute":"guest-suspend-disk"})"),
            generic("suspend: cannot write to '/sys/power/state': Permission denied"));
}

// The same failure path, root-proof (CI runs as root, where the test above is skipped): a
// file size limit of 0 makes every write fail with EFBIG, for root too (SIGXFSZ ignored).
TEST(PowerSuspend, SysfsWriteFailureEvenForRoot) {
  power_root r("freeze mem disk\n");
  power_fixture t(r.dir.path);
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit zero = old;
  zero.rlim_cur = 0;
  struct sigaction ign {}, prev {};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ign, &prev), 0);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &zero), 0);
  const std::string got = t(R"({"execute":"guest-suspend-disk"})");
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::sigaction(SIGXFSZ, &prev, nullptr);
  EXPECT_EQ(got, generic("suspend: cannot write to '/sys/power/state': File too large"));
  EXPECT_EQ(r.state(), "freeze mem disk\n");  // nothing was written
}

TEST(PowerSuspend, ThisMachineSupportsNothing) {
  // /sys/power/state captured from this machine is empty (a container): nothing supported.
  EXPECT_EQ(slurp(fixture("this-machine/sys/power/state")), "");
  power_fixture t(fixture("this-machine"));
  EXPECT_EQ(t(R"({"execute":"guest-suspend-disk"})"), generic("the requested suspend mode is not supported by the guest"));
  EXPECT_EQ(t(R"({"execute":"guest-suspend-disk","arguments":{"x":1}})"), generic("Parameter 'x' is unexpected"));
}

TEST(PowerSuspend, TypicalFixtureIsDetectedWithoutWriting) {
  using commands::power_detail::sys_state_supports;
  const std::string s = slurp(fixture("typical/sys/power/state"));
  EXPECT_TRUE(sys_state_supports(s, suspend_mode::ram));
  EXPECT_TRUE(sys_state_supports(s, suspend_mode::disk));
}

// ---- safety: a service over the real root never runs anything ---------------------------

TEST(PowerSafety, UnarmedServiceOnRealRootRunsNothing) {
  service_fixture t;  // fake_system on root "", the real spawn runner, not the agent
  const std::string r = t(R"({"execute":"guest-shutdown","arguments":{"mode":"reboot"}})");
  EXPECT_TRUE(r.starts_with("{\"error\": {\"class\": \"GenericError\", \"desc\": \"child process has failed to "
                            "shutdown: failed to exec '/sbin/"))
      << r;
  EXPECT_NE(r.find("': Operation not permitted\\n\"}}"), std::string::npos) << r;
  const std::string s = t(R"({"execute":"guest-suspend-disk"})");
  // No helper runs (EPERM); the real /sys/power/state is read but never written.
  EXPECT_TRUE(s == generic("the requested suspend mode is not supported by the guest") ||
              s == generic("suspend: cannot write to '/sys/power/state': Operation not permitted"))
      << s;
}

// ---- host support level gate -----------------------------------------------------------

TEST(PowerSupportLevel, RamAndHybridNeed11) {
  power_root r("freeze mem disk\n");
  power_fixture t(r.dir.path);
  for (std::string_view name : {"guest-suspend-ram", "guest-suspend-hybrid"}) {
    EXPECT_EQ(t("{\"execute\":\"" + std::string(name) + "\"}"),
              "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command " + std::string(name) +
                  " has been disabled: host support level 1.0.0 is below 1.1.0\"}}\n");
  }
  EXPECT_TRUE(t.runner.calls.empty());
  EXPECT_EQ(r.state(), "freeze mem disk\n");
  std::string info = t(R"({"execute":"guest-info"})");
  EXPECT_NE(info.find("{\"enabled\": false, \"name\": \"guest-suspend-ram\", \"success-response\": false}"),
            std::string::npos);
  EXPECT_NE(info.find("{\"enabled\": false, \"name\": \"guest-suspend-hybrid\", \"success-response\": false}"),
            std::string::npos);
  EXPECT_NE(info.find("{\"enabled\": true, \"name\": \"guest-suspend-disk\", \"success-response\": false}"),
            std::string::npos);
  EXPECT_NE(info.find("{\"enabled\": true, \"name\": \"guest-shutdown\", \"success-response\": false}"),
            std::string::npos);

  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":1}})"), "{\"return\": {}}\n");
  info = t(R"({"execute":"guest-info"})");
  EXPECT_NE(info.find("{\"enabled\": true, \"name\": \"guest-suspend-ram\", \"success-response\": false}"),
            std::string::npos);
  bool replied = true;
  EXPECT_EQ(run(*t.svc, R"({"execute":"guest-suspend-ram"})", &replied), "");
  EXPECT_FALSE(replied);
  EXPECT_EQ(r.state(), "memeze mem disk\n");

  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":0}})"), "{\"return\": {}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-suspend-ram"})"),
            "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command guest-suspend-ram has been disabled: "
            "host support level 1.0.0 is below 1.1.0\"}}\n");
}

// A host that sends guest-sync-delimited and guest-shutdown in one write (Proxmox) must get the
// sync reply before the helper runs: the service drains the output buffer first, and only for
// commands that answer nothing on success.
struct recording_drain final : commands::output_drain {
  std::string& out;
  const fake_runner& runner;
  std::vector<std::string> seen;       // `out` at each drain
  std::vector<std::size_t> calls_then; // helper calls made before each drain
  recording_drain(std::string& o, const fake_runner& r) : out(o), runner(r) {}
  void drain(std::coroutine_handle<> h) override {
    seen.push_back(out);
    calls_then.push_back(runner.calls.size());
    out.clear();  // "written"
    h.resume();
  }
};

std::string run_with_drain(commands::service& svc, std::string_view json, std::string& out,
                           commands::output_drain& d) {
  std::string buf(json);
  buf.append(protocol::input_padding, '\0');
  protocol::frame f;
  f.type = protocol::frame::kind::message;
  f.text = protocol::padded_view::for_tests(buf);
  auto t = svc.handle(f, out, &d);
  EXPECT_TRUE(t.start());
  t.take();
  return out;
}

TEST(PowerShutdown, PendingRepliesAreDrainedBeforeTheHelperRuns) {
  power_root root(std::nullopt);
  power_fixture fx(root.dir.path);
  fx.runner.exits("/sbin/shutdown -h -P +0 hypervisor initiated shutdown", 0);
  std::string out;
  recording_drain d(out, fx.runner);
  run_with_drain(*fx.svc, R"({"execute":"guest-sync-delimited","arguments":{"id":7}})", out, d);
  EXPECT_TRUE(d.seen.empty()) << "a command with a reply never drains";
  EXPECT_EQ(out, "\xff{\"return\": 7}\n");
  run_with_drain(*fx.svc, R"({"execute":"guest-shutdown"})", out, d);
  ASSERT_EQ(d.seen.size(), 1u);
  EXPECT_EQ(d.seen[0], "\xff{\"return\": 7}\n");
  EXPECT_EQ(d.calls_then[0], 0u) << "the sync reply must leave before poweroff runs";
  ASSERT_EQ(fx.runner.calls.size(), 1u);
  EXPECT_EQ(fx.runner.calls[0][0], "/sbin/shutdown");
  EXPECT_EQ(out, "") << "success: no reply";
  // Nothing pending: no drain.
  run_with_drain(*fx.svc, R"({"execute":"guest-shutdown"})", out, d);
  EXPECT_EQ(d.seen.size(), 1u);
}

}  // namespace
}  // namespace fleetga::test
