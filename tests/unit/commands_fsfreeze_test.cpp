// The fsfreeze family on fixture mount tables with a fake freezer (no FIFREEZE/FITRIM ever
// reaches this machine's kernel), real hook scripts in temporary directories, a fake timer
// for the auto-thaw watchdog, and the gate's frozen bit through the command table.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "commands/fsfreeze.hpp"
#include "commands/gate.hpp"
#include "commands/state.hpp"
#include "commands/table.hpp"
#include "commands/timer.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

using platform::fs_result;

std::string fixture(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/fsfreeze/" + std::string(rel); }

// Kernel freeze state per mount point: FITHAW succeeds once per FIFREEZE, then EINVAL.
struct fake_freezer final : platform::freezer {
  std::vector<std::string> calls;
  std::map<std::string, int> open_err, freeze_err, trim_err;
  std::map<std::string, int> frozen;
  std::uint64_t granularity = 4096;

  fs_result freeze(const std::string& p) override {
    calls.push_back("freeze " + p);
    if (auto it = open_err.find(p); it != open_err.end()) return {fs_result::step::open, it->second};
    if (auto it = freeze_err.find(p); it != freeze_err.end()) return {fs_result::step::ioctl, it->second};
    ++frozen[p];
    return {};
  }
  fs_result thaw(const std::string& p) override {
    calls.push_back("thaw " + p);
    if (auto it = open_err.find(p); it != open_err.end()) return {fs_result::step::open, it->second};
    if (frozen[p] > 0) {
      --frozen[p];
      return {};
    }
    return {fs_result::step::ioctl, EINVAL};
  }
  fs_result trim(const std::string& p, std::uint64_t& minlen, std::uint64_t& trimmed) override {
    calls.push_back("trim " + p);
    if (auto it = open_err.find(p); it != open_err.end()) return {fs_result::step::open, it->second};
    if (auto it = trim_err.find(p); it != trim_err.end()) return {fs_result::step::ioctl, it->second};
    minlen = std::max(minlen, granularity);
    trimmed = 1000 * p.size();
    return {};
  }
  int total_frozen() const {
    int n = 0;
    for (auto& [k, v] : frozen) n += v;
    return n;
  }
};

struct fake_timer final : commands::timer_service {
  std::optional<std::chrono::seconds> armed;
  std::function<void()> fn;
  int cancels = 0;
  std::vector<std::string> warnings;
  void arm(std::chrono::seconds after, std::function<void()> f) override {
    armed = after;
    fn = std::move(f);
  }
  void cancel() noexcept override {
    ++cancels;
    armed.reset();
  }
  void warn(std::string_view m) override { warnings.emplace_back(m); }
  // Fires even when cancelled: Asio may deliver a completion that was already queued.
  void fire() {
    auto f = fn;
    armed.reset();
    if (f) f();
  }
};

// Handlers run on an agent_state whose freezer and timer are the fakes, through the same
// gate check service::handle does.
struct direct {
  temp_dir dir;
  fake_system sys;
  commands::inline_offloader pool;
  commands::agent_state st;
  fake_freezer fz;
  fake_timer timer;

  explicit direct(std::string root = fixture("odd"))
      : sys(std::move(root)), st{pool, sys, dir.path, commands::all_commands_mask, {1, 0, 0}} {
    st.fsfreeze.freezer = &fz;
    st.fsfreeze.timer = &timer;
  }

  std::string operator()(std::string_view name, std::string_view args = {}) {
    auto idx = commands::find_command(name);
    EXPECT_TRUE(idx) << name;
    if (!idx) return "no such command";
    const commands::descriptor& d = commands::command_table[*idx];
    const auto word = st.gate.load();
    if (auto v = st.gate.check(*idx, d.needs, word); v != commands::verdict::enabled)
      return "disabled: " + commands::disabled_text(d.name, v, commands::gate::level(word), d.needs);
    std::string buf(args);
    buf.append(protocol::input_padding, '\0');
    std::string out;
    protocol::json_writer w(out);
    commands::call c{std::string_view(buf.data(), args.size()), w, st};
    auto t = d.handler(c);
    EXPECT_TRUE(t.start());
    auto err = t.take();
    if (err) return "error: " + err->desc;
    return out;
  }
  bool isfrozen_file() const { return platform::file_exists(dir / "qga.state.isfrozen"); }
  bool frozen() const { return commands::gate::frozen(st.gate.load()); }
};

// The odd fixture as the agent sees it under that root (/dev/vdb is no device there, so
// btrfs /home drops out): six local filesystems in mount order.
const std::vector<std::string> odd_mounts{"/", "/mnt/my data", "/boot/efi", "/mnt/back\\slash\ttab",
                                          "/mnt/\\777not-octal\\04", "/boot"};

std::vector<std::string> prefixed(const char* verb, std::vector<std::string> v, bool reverse) {
  if (reverse) std::reverse(v.begin(), v.end());
  for (auto& s : v) s = std::string(verb) + " " + s;
  return v;
}

std::string hook_script(const temp_dir& d, const std::string& statedir, std::string_view extra = {}) {
  std::string p = d / "fsfreeze-hook";
  spit(p, "#!/bin/sh\n"
          "if [ -e '" + statedir + "/qga.state.isfrozen' ]; then s=frozen-file; else s=no-file; fi\n"
          "echo \"$1 $s\" >> '" + (d / "hook.log") + "'\n" + std::string(extra));
  ::chmod(p.c_str(), 0755);
  return p;
}

// Issue 16, defect 2: a link at qga.state.isfrozen is not followed to create a file as root.
TEST(CommandsFsfreeze, FrozenMarkerDoesNotFollowALink) {
  direct d;
  temp_dir elsewhere;
  const std::string victim = elsewhere / "created-through-link";
  ASSERT_EQ(::symlink(victim.c_str(), (d.dir / "qga.state.isfrozen").c_str()), 0);
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "6");
  EXPECT_TRUE(d.frozen());
  EXPECT_FALSE(platform::file_exists(victim));
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "6");
  EXPECT_FALSE(d.frozen());
}

TEST(CommandsFsfreeze, FreezeInReverseMountOrderThenThaw) {
  direct d;
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "6");
  EXPECT_EQ(d.fz.calls, prefixed("freeze", odd_mounts, true));
  EXPECT_TRUE(d.frozen());
  EXPECT_TRUE(d.isfrozen_file());
  EXPECT_EQ(d("guest-fsfreeze-status"), "\"frozen\"");
  ASSERT_TRUE(d.timer.armed);
  EXPECT_EQ(*d.timer.armed, std::chrono::seconds(600));

  d.fz.calls.clear();
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "6");
  // Mount order, FITHAW repeated until it fails.
  std::vector<std::string> want;
  for (const auto& m : odd_mounts) want.insert(want.end(), {"thaw " + m, "thaw " + m});
  EXPECT_EQ(d.fz.calls, want);
  EXPECT_EQ(d.fz.total_frozen(), 0);
  EXPECT_FALSE(d.frozen());
  EXPECT_FALSE(d.isfrozen_file());
  EXPECT_EQ(d("guest-fsfreeze-status"), "\"thawed\"");
  EXPECT_EQ(d.timer.cancels, 1);
  EXPECT_FALSE(d.timer.armed);
}

TEST(CommandsFsfreeze, OnlyTheFreezeSafeSixWhileFrozen) {
  direct d;
  ASSERT_EQ(d("guest-fsfreeze-freeze"), "6");
  const std::string off = "disabled: Command guest-file-open has been disabled: the command is not allowed";
  EXPECT_EQ(d("guest-file-open", R"({"path": "/tmp/x", "mode": "w"})"), off);
  EXPECT_EQ(d("guest-fsfreeze-freeze"),
            "disabled: Command guest-fsfreeze-freeze has been disabled: the command is not allowed");
  EXPECT_EQ(d("guest-fstrim"), "disabled: Command guest-fstrim has been disabled: the command is not allowed");
  EXPECT_EQ(d("guest-set-support-level", R"({"major": 1, "minor": 1})"),
            "disabled: Command guest-set-support-level has been disabled: the command is not allowed");
  EXPECT_EQ(d("guest-ping"), "{}");
  EXPECT_EQ(d("guest-sync", R"({"id": 5})"), "5");
  EXPECT_EQ(d("guest-fsfreeze-status"), "\"frozen\"");
  // The table's freeze-safe set is exactly qemu-ga's.
  std::vector<std::string_view> safe;
  for (const auto& c : commands::command_table)
    if (c.freeze_safe) safe.push_back(c.name);
  EXPECT_EQ(safe, (std::vector<std::string_view>{"guest-sync-delimited", "guest-sync", "guest-ping", "guest-info",
                                                 "guest-fsfreeze-status", "guest-fsfreeze-thaw"}));
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "6");
  EXPECT_NE(d("guest-file-open", R"({"path": "/nonexistent-dir/x"})").find("failed to open file"), std::string::npos);
}

TEST(CommandsFsfreeze, UnsupportedAndBusyAreSkippedNotCounted) {
  direct d;
  d.fz.freeze_err["/boot/efi"] = EOPNOTSUPP;
  d.fz.freeze_err["/boot"] = EBUSY;
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "4");
  EXPECT_EQ(d.fz.calls, prefixed("freeze", odd_mounts, true));
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "4");
}

TEST(CommandsFsfreeze, NothingFrozenLeavesFrozenStateAtOnce) {
  direct d;
  for (const auto& m : odd_mounts) d.fz.freeze_err[m] = EOPNOTSUPP;
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "0");
  EXPECT_FALSE(d.frozen());
  EXPECT_FALSE(d.isfrozen_file());
  EXPECT_FALSE(d.timer.armed);
  EXPECT_EQ(d("guest-fsfreeze-status"), "\"thawed\"");
}

TEST(CommandsFsfreeze, FailureThawsEverythingBack) {
  direct d;
  temp_dir hd;
  d.st.fsfreeze.hook = hook_script(hd, d.dir.path);
  d.fz.freeze_err["/mnt/my data"] = EIO;
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "error: failed to freeze /mnt/my data: Input/output error");
  std::vector<std::string> want = prefixed("freeze", {"/mnt/my data", "/boot/efi", "/mnt/back\\slash\ttab",
                                                      "/mnt/\\777not-octal\\04", "/boot"},
                                           false);
  std::reverse(want.begin(), want.end());
  // then qmp_guest_fsfreeze_thaw(): every mount, in mount order, until FITHAW fails
  for (const auto& m : odd_mounts) {
    const bool was = m != "/" && m != "/mnt/my data";
    want.push_back("thaw " + m);
    if (was) want.push_back("thaw " + m);
  }
  EXPECT_EQ(d.fz.calls, want);
  EXPECT_EQ(d.fz.total_frozen(), 0);
  EXPECT_FALSE(d.frozen());
  EXPECT_FALSE(d.isfrozen_file());
  EXPECT_FALSE(d.timer.armed);
  // The rollback ran the thaw hook too (qemu-ga calls qmp_guest_fsfreeze_thaw).
  EXPECT_EQ(slurp(hd / "hook.log"), "freeze no-file\nthaw no-file\n");
}

TEST(CommandsFsfreeze, OpenFailure) {
  direct d;
  d.fz.open_err["/boot"] = EACCES;
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "error: failed to open /boot: Permission denied");
  EXPECT_FALSE(d.frozen());
  EXPECT_EQ(d.fz.calls.front(), "freeze /boot");
}

TEST(CommandsFsfreeze, FreezeListFreezesOnlyListedMountpoints) {
  direct d;
  EXPECT_EQ(d("guest-fsfreeze-freeze-list", R"({"mountpoints": ["/", "/nope", "/mnt/my data", "/boot"]})"), "3");
  EXPECT_EQ(d.fz.calls, (std::vector<std::string>{"freeze /boot", "freeze /mnt/my data", "freeze /"}));
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "3");

  d.fz.calls.clear();
  EXPECT_EQ(d("guest-fsfreeze-freeze-list", R"({"mountpoints": []})"), "0");
  EXPECT_EQ(d("guest-fsfreeze-freeze-list", R"({"mountpoints": ["/nope"]})"), "0");
  EXPECT_TRUE(d.fz.calls.empty());
  EXPECT_FALSE(d.frozen());
  // Without the argument: like guest-fsfreeze-freeze.
  EXPECT_EQ(d("guest-fsfreeze-freeze-list"), "6");
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "6");
}

TEST(CommandsFsfreeze, ArgumentErrors) {
  direct d;
  EXPECT_EQ(d("guest-fsfreeze-freeze-list", R"({"mountpoints": "/"})"),
            "error: Invalid parameter type for 'mountpoints', expected: array");
  EXPECT_EQ(d("guest-fsfreeze-freeze-list", R"({"mountpoints": [1]})"),
            "error: Invalid parameter type for 'mountpoints[0]', expected: string");
  EXPECT_EQ(d("guest-fsfreeze-freeze-list", R"({"mountpoint": []})"), "error: Parameter 'mountpoint' is unexpected");
  EXPECT_EQ(d("guest-fsfreeze-freeze", R"({"x": 1})"), "error: Parameter 'x' is unexpected");
  EXPECT_EQ(d("guest-fsfreeze-thaw", R"({"x": 1})"), "error: Parameter 'x' is unexpected");
  EXPECT_EQ(d("guest-fstrim", R"({"minimum": "1"})"), "error: Invalid parameter type for 'minimum', expected: integer");
  EXPECT_TRUE(d.fz.calls.empty());
}

TEST(CommandsFsfreeze, ThawWithNothingFrozenIsZeroAndRunsTheHook) {
  direct d;
  temp_dir hd;
  d.st.fsfreeze.hook = hook_script(hd, d.dir.path);
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "0");
  EXPECT_EQ(d.fz.calls, prefixed("thaw", odd_mounts, false));
  EXPECT_EQ(slurp(hd / "hook.log"), "thaw no-file\n");
}

TEST(CommandsFsfreeze, HookRunsBeforeTheMarkerAndAfterItIsGone) {
  direct d;
  temp_dir hd;
  d.st.fsfreeze.hook = hook_script(hd, d.dir.path);
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "6");
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "6");
  EXPECT_EQ(slurp(hd / "hook.log"), "freeze no-file\nthaw no-file\n");
}

TEST(CommandsFsfreeze, FailingFreezeHookFreezesNothing) {
  direct d;
  temp_dir hd;
  d.st.fsfreeze.hook = hook_script(hd, d.dir.path, "echo \"database refuses: $1\"; exit 2\n");
  EXPECT_EQ(d("guest-fsfreeze-freeze"),
            "error: child process has failed to execute fsfreeze hook: database refuses: freeze\n");
  EXPECT_TRUE(d.fz.calls.empty());
  EXPECT_FALSE(d.frozen());
  EXPECT_FALSE(d.isfrozen_file());

  d.st.fsfreeze.hook = hd / "no-such-hook";
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "error: child process has failed to execute fsfreeze hook: failed to exec '" +
                                            (hd / "no-such-hook") + "': No such file or directory\n");
  EXPECT_TRUE(d.fz.calls.empty());
}

TEST(CommandsFsfreeze, FailingThawHookStillThaws) {
  direct d;
  temp_dir hd;
  d.st.fsfreeze.hook = hook_script(hd, d.dir.path, "[ \"$1\" = thaw ] && exit 7\nexit 0\n");
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "6");
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "error: child process has failed to execute fsfreeze hook: exit status 7");
  EXPECT_FALSE(d.frozen());
  EXPECT_FALSE(d.isfrozen_file());
  EXPECT_EQ(d.fz.total_frozen(), 0);
}

TEST(CommandsFsfreeze, NoMountTable) {
  direct d(fixture("empty"));
  EXPECT_EQ(d("guest-fsfreeze-freeze"), "error: failed to open mtab file: '/proc/self/mounts'");
  EXPECT_FALSE(d.frozen());
  EXPECT_EQ(d("guest-fstrim"), "error: failed to open mtab file: '/proc/self/mounts'");
  // Frozen (e.g. at start-up) and no table: the thaw fails and the agent stays frozen.
  d.st.gate.set_frozen(true);
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "error: failed to open mtab file: '/proc/self/mounts'");
  EXPECT_TRUE(d.frozen());
}

TEST(CommandsFsfreeze, WatchdogThawsWhenTheHostNeverDoes) {
  direct d;
  d.st.fsfreeze.timeout = std::chrono::seconds(30);
  ASSERT_EQ(d("guest-fsfreeze-freeze"), "6");
  ASSERT_TRUE(d.timer.armed);
  EXPECT_EQ(*d.timer.armed, std::chrono::seconds(30));
  d.fz.calls.clear();
  d.timer.fire();
  EXPECT_FALSE(d.frozen());
  EXPECT_FALSE(d.isfrozen_file());
  EXPECT_EQ(d.fz.total_frozen(), 0);
  EXPECT_EQ(d.fz.calls.size(), 12u);
  EXPECT_EQ(d.timer.warnings,
            (std::vector<std::string>{"no guest-fsfreeze-thaw within 30 s of the freeze: thawed 6 filesystem(s) automatically"}));
  // The host's late thaw finds nothing frozen.
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "0");
}

TEST(CommandsFsfreeze, StaleWatchdogFireIsIgnored) {
  direct d;
  ASSERT_EQ(d("guest-fsfreeze-freeze"), "6");
  auto first = d.timer.fn;
  ASSERT_EQ(d("guest-fsfreeze-thaw"), "6");
  ASSERT_EQ(d("guest-fsfreeze-freeze"), "6");  // a new freeze, its own timer
  d.fz.calls.clear();
  first();  // the first freeze's timer, delivered late
  EXPECT_TRUE(d.frozen());
  EXPECT_TRUE(d.fz.calls.empty());
  EXPECT_TRUE(d.timer.warnings.empty());
  d.timer.fire();
  EXPECT_FALSE(d.frozen());
  EXPECT_EQ(d.timer.warnings.size(), 1u);
  d.timer.fn();  // firing twice: nothing more
  EXPECT_EQ(d.timer.warnings.size(), 1u);
}

TEST(CommandsFsfreeze, WatchdogDisabledByZeroOrNoTimer) {
  direct d;
  d.st.fsfreeze.timeout = std::chrono::seconds(0);
  ASSERT_EQ(d("guest-fsfreeze-freeze"), "6");
  EXPECT_FALSE(d.timer.armed);
  ASSERT_EQ(d("guest-fsfreeze-thaw"), "6");
  d.st.fsfreeze.timeout = std::chrono::seconds(600);
  d.st.fsfreeze.timer = nullptr;
  ASSERT_EQ(d("guest-fsfreeze-freeze"), "6");
  EXPECT_EQ(d("guest-fsfreeze-thaw"), "6");
}

TEST(CommandsFsfreeze, FstrimPerPathResultsInReverseMountOrder) {
  direct d;
  d.fz.trim_err["/boot/efi"] = EOPNOTSUPP;
  d.fz.trim_err["/mnt/back\\slash\ttab"] = ENOTTY;
  d.fz.trim_err["/boot"] = EIO;
  d.fz.open_err["/mnt/my data"] = EACCES;
  EXPECT_EQ(d("guest-fstrim"),
            R"({"paths": [{"path": "/boot", "error": "failed to trim: Input/output error"}, )"
            R"({"minimum": 4096, "path": "/mnt/\\777not-octal\\04", "trimmed": 21000}, )"
            R"({"path": "/mnt/back\\slash\ttab", "error": "trim not supported"}, )"
            R"({"path": "/boot/efi", "error": "trim not supported"}, )"
            R"({"path": "/mnt/my data", "error": "failed to open: Permission denied"}, )"
            R"({"minimum": 4096, "path": "/", "trimmed": 1000}]})");
  EXPECT_EQ(d.fz.calls, prefixed("trim", odd_mounts, true));
  d.fz.trim_err.clear();
  d.fz.open_err.clear();
  EXPECT_EQ(d("guest-fstrim", R"({"minimum": 1048576})").substr(0, 60),
            R"({"paths": [{"minimum": 1048576, "path": "/boot", "trimmed": )");
  EXPECT_FALSE(d.frozen());
}

TEST(CommandsFsfreeze, FstrimOnThisMachinesTable) {
  direct d(fixture("machine"));
  EXPECT_EQ(d("guest-fstrim", R"({"minimum": 0})"), R"({"paths": [{"minimum": 4096, "path": "/", "trimmed": 1000}]})");
}

TEST(CommandsFsfreeze, RowsInUpstreamOrder) {
  auto names = commands::service::command_names();
  auto at = std::find(names.begin(), names.end(), "guest-fsfreeze-status");
  ASSERT_NE(at, names.end());
  ASSERT_GE(names.end() - at, 5);
  EXPECT_EQ(std::vector<std::string_view>(at, at + 5),
            (std::vector<std::string_view>{"guest-fsfreeze-status", "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list",
                                           "guest-fsfreeze-thaw", "guest-fstrim"}));
}

// Through service::handle, as the agent drives it, on a fixture root: the default
// (linux) freezer never reaches the kernel there.
struct svc_fixture {
  temp_dir state;
  fake_system sys{fixture("machine")};
  commands::inline_offloader pool;
  fake_timer timer;
  std::unique_ptr<commands::service> svc;
  void start(commands::options o = {}) {
    o.statedir = state.path;
    o.fsfreeze_timer = &timer;
    svc = std::make_unique<commands::service>(std::move(o), pool, sys);
    auto err = svc->init();
    EXPECT_FALSE(err) << *err;
  }
  std::string operator()(std::string_view json) { return run(*svc, json); }
};

TEST(CommandsFsfreeze, AgentStartedFrozenCanThaw) {
  svc_fixture f;
  spit(f.state / "qga.state.isfrozen", "");
  commands::options o;
  o.fsfreeze_timeout = 45;
  f.start(o);
  EXPECT_TRUE(f.svc->frozen());
  ASSERT_TRUE(f.timer.armed);  // a crashed agent's freeze gets the watchdog too
  EXPECT_EQ(*f.timer.armed, std::chrono::seconds(45));
  EXPECT_EQ(f(R"({"execute": "guest-fsfreeze-status"})"), "{\"return\": \"frozen\"}\n");
  EXPECT_EQ(f(R"({"execute": "guest-file-open", "arguments": {"path": "/tmp/x"}})"),
            "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command guest-file-open has been disabled: "
            "the command is not allowed\"}}\n");
  EXPECT_EQ(f(R"({"execute": "guest-fsfreeze-thaw", "id": 1})"), "{\"return\": 0, \"id\": 1}\n");
  EXPECT_FALSE(f.svc->frozen());
  EXPECT_FALSE(platform::file_exists(f.state / "qga.state.isfrozen"));
  EXPECT_EQ(f(R"({"execute": "guest-fsfreeze-status"})"), "{\"return\": \"thawed\"}\n");
  EXPECT_EQ(f.timer.cancels, 1);
}

TEST(CommandsFsfreeze, AgentStartedFrozenAutoThaws) {
  svc_fixture f;
  spit(f.state / "qga.state.isfrozen", "");
  f.start();
  ASSERT_TRUE(f.timer.armed);
  EXPECT_EQ(*f.timer.armed, std::chrono::seconds(600));
  f.timer.fire();
  EXPECT_FALSE(f.svc->frozen());
  EXPECT_FALSE(platform::file_exists(f.state / "qga.state.isfrozen"));
  EXPECT_EQ(f.timer.warnings,
            (std::vector<std::string>{"no guest-fsfreeze-thaw within 600 s of the freeze: thawed 0 filesystem(s) automatically"}));
}

TEST(CommandsFsfreeze, ServiceFreezeOnAFixtureRootNeverReachesTheKernel) {
  svc_fixture f;
  commands::options o;
  o.acts_on_system = true;  // even so: the root is a fixture
  temp_dir hd;
  o.fsfreeze_hook = hook_script(hd, f.state.path);
  f.start(o);
  EXPECT_EQ(f(R"({"execute": "guest-fsfreeze-freeze"})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"failed to freeze /: Operation not permitted\"}}\n");
  EXPECT_FALSE(f.svc->frozen());
  EXPECT_FALSE(platform::file_exists(f.state / "qga.state.isfrozen"));
  EXPECT_EQ(slurp(hd / "hook.log"), "freeze no-file\nthaw no-file\n");
  EXPECT_EQ(f(R"({"execute": "guest-fstrim"})"),
            "{\"return\": {\"paths\": [{\"path\": \"/\", \"error\": \"failed to trim: Operation not permitted\"}]}}\n");
  EXPECT_FALSE(f.timer.armed);
}

}  // namespace
}  // namespace fleetga::test
