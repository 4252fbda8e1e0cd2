// guest-set-time and guest-set-user-password through service::handle with a fake
// platform::system_effects: nothing here sets this machine's clock, writes an RTC or runs
// hwclock/chpasswd; roots are temporary fixture trees.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "commands/accounts.hpp"
#include "commands/clock.hpp"
#include "commands/state.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

using platform::helper_result;
using platform::rtc_fields;
using platform::rtc_status;
using argv_t = std::vector<std::string>;
using calls_t = std::vector<std::string>;

std::string generic(std::string_view desc) {
  return "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + std::string(desc) + "\"}}\n";
}
constexpr std::string_view ok = "{\"return\": {}}\n";

struct tz_guard {
  std::optional<std::string> old;
  explicit tz_guard(const char* tz) {
    if (const char* o = std::getenv("TZ")) old = o;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~tz_guard() {
    if (old) ::setenv("TZ", old->c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
  }
};

std::string fmt(const rtc_fields& f) {
  char b[64];
  std::snprintf(b, sizeof b, "%04d-%02d-%02d %02d:%02d:%02d", f.year + 1900, f.mon + 1, f.mday, f.hour, f.min, f.sec);
  return b;
}

// Records every effect as one line; answers from the members.
struct fake_effects : platform::system_effects {
  calls_t calls;
  std::vector<std::optional<std::string>> inputs;  // stdin given to each run()
  int set_err = 0;
  std::int64_t now_sec = 1700000000, now_nsec = 250000000;
  rtc_fields rtc{20, 13, 22, 14, 10, 123};  // 2023-11-14 22:13:20
  std::vector<rtc_fields> rtc_seq;          // successive reads first, then `rtc` for ever
  std::size_t rtc_next = 0;
  std::size_t reads = 0, fail_read_no = 0;  // the fail_read_no-th read (1-based) fails with EIO
  rtc_status read_status{}, write_status{};
  std::map<std::string, helper_result> answers;  // by argv joined with ' '; default: exit 0

  int set_realtime(std::int64_t sec, std::int64_t nsec) override {
    calls.push_back("set_realtime " + std::to_string(sec) + " " + std::to_string(nsec));
    return set_err;
  }
  void get_realtime(std::int64_t& sec, std::int64_t& nsec) override {
    calls.push_back("get_realtime");
    sec = now_sec;
    nsec = now_nsec;
  }
  rtc_status rtc_read(const std::string& dev, rtc_fields& out) override {
    calls.push_back("rtc_read " + dev);
    if (++reads == fail_read_no) return {rtc_status::step::ioctl, EIO};
    if (read_status.ok()) out = rtc_next < rtc_seq.size() ? rtc_seq[rtc_next++] : rtc;
    return read_status;
  }
  rtc_status rtc_write(const std::string& dev, const rtc_fields& in) override {
    calls.push_back("rtc_write " + dev + " " + fmt(in));
    return write_status;
  }
  helper_result run(const argv_t& argv, std::optional<std::string_view> input) override {
    std::string key;
    for (const auto& a : argv) key += (key.empty() ? "" : " ") + a;
    calls.push_back("run " + key);
    inputs.push_back(input ? std::optional<std::string>(std::string(*input)) : std::nullopt);
    if (auto it = answers.find(key); it != answers.end()) return it->second;
    return {};
  }
  void sleep_ns(std::int64_t ns) override { calls.push_back("sleep " + std::to_string(ns)); }

  void exits(const std::string& key, int status, std::string output = {}) {
    helper_result r;
    r.status = status;
    r.output = std::move(output);
    answers[key] = r;
  }
};

// A temporary root: sbin/usr-sbin programs (executable or not), dev entries, /etc/adjtime.
struct clock_root {
  temp_dir dir;
  clock_root() {
    for (const char* d : {"/sbin", "/usr/sbin", "/dev/misc", "/etc"}) std::filesystem::create_directories(dir.path + d);
  }
  clock_root& program(const std::string& rel, bool executable = true) {
    spit(dir / rel, "#!/bin/false\n");
    ::chmod((dir / rel).c_str(), executable ? 0755 : 0644);
    return *this;
  }
  clock_root& device(const std::string& rel) {
    spit(dir / rel, "");
    return *this;
  }
  clock_root& adjtime(std::string_view fixture) {
    spit(dir / "etc/adjtime", slurp(std::string(FLEETGA_TEST_DATA) + "/clock/adjtime/" + std::string(fixture)));
    return *this;
  }
};

struct clock_system final : fake_system, fake_effects {
  using fake_system::fake_system;
};

struct clock_fixture {
  temp_dir statedir;
  clock_system sys;
  commands::inline_offloader pool;
  std::unique_ptr<commands::service> svc;
  fake_effects& fx;
  std::vector<std::string> audit;

  explicit clock_fixture(const std::string& root) : sys(root), fx(sys) {
    commands::options o;
    o.statedir = statedir.path;
    o.audit = [this](std::string_view l) { audit.emplace_back(l); };
    svc = std::make_unique<commands::service>(std::move(o), pool, sys);
    auto err = svc->init();
    EXPECT_FALSE(err) << *err;
  }
  std::string operator()(std::string_view json) { return run(*svc, json); }
};

std::string set_time(std::int64_t ns) {
  return R"({"execute":"guest-set-time","arguments":{"time":)" + std::to_string(ns) + "}}";
}
constexpr std::string_view from_rtc = R"({"execute":"guest-set-time"})";
const std::string hw_fail = "child process has failed to set hardware clock to system time: ";

// ---- argument checks ------------------------------------------------------------------

TEST(ClockCheckTime, YearRangeInUtc) {
  tz_guard tz("UTC0");
  using commands::clock_detail::check_time;
  std::int64_t s = 0, us = 0;
  EXPECT_EQ(check_time(0, s, us), std::nullopt);
  EXPECT_EQ(check_time(1700000000123456789, s, us), std::nullopt);
  EXPECT_EQ(s, 1700000000);
  EXPECT_EQ(us, 123456);
  EXPECT_EQ(check_time(3155759999999999999, s, us), std::nullopt);  // 2069-12-31 23:59:59.999
  EXPECT_EQ(check_time(3155760000000000000, s, us), "Invalid time");  // 2070-01-01
  EXPECT_EQ(check_time(-1000000000, s, us), "Invalid time");          // 1969-12-31 23:59:59
  EXPECT_EQ(check_time(INT64_MAX, s, us), "Invalid time");
  EXPECT_EQ(check_time(INT64_MIN, s, us), "Invalid time");
  // C division: -1 ns is second 0 (1970, valid), -1500 ns is second 0 and -1 us.
  EXPECT_EQ(check_time(-1, s, us), std::nullopt);
  EXPECT_EQ(s, 0);
  EXPECT_EQ(us, 0);
  EXPECT_EQ(check_time(-1500, s, us), std::nullopt);
  EXPECT_EQ(us, -1);
}

TEST(ClockCheckTime, YearIsTheLocalYear) {
  tz_guard tz(R"(XST-2)");  // two hours east of UTC
  using commands::clock_detail::check_time;
  std::int64_t s = 0, us = 0;
  // 1969-12-31 23:00 UTC is already 1970 here; 2069-12-31 23:00 UTC is 2070.
  EXPECT_EQ(check_time(-3600000000000, s, us), std::nullopt);
  EXPECT_EQ(check_time(3155756400000000000, s, us), "Invalid time");
}

TEST(ClockSetTime, ArgumentErrorsTouchNothing) {
  tz_guard tz("UTC0");
  clock_root r;
  r.program("sbin/hwclock");
  clock_fixture t(r.dir.path);
  EXPECT_EQ(t(set_time(4000000000000000000)), generic("Invalid time"));
  EXPECT_EQ(t(set_time(-1000000000)), generic("Invalid time"));
  EXPECT_EQ(t(set_time(INT64_MIN)), generic("Invalid time"));
  EXPECT_EQ(t(R"({"execute":"guest-set-time","arguments":{"time":"x"}})"),
            generic("Invalid parameter type for 'time', expected: integer"));
  EXPECT_EQ(t(R"({"execute":"guest-set-time","arguments":{"time":1.5}})"),
            generic("Invalid parameter type for 'time', expected: integer"));
  EXPECT_EQ(t(R"({"execute":"guest-set-time","arguments":{"time":null}})"),
            generic("Invalid parameter type for 'time', expected: integer"));
  EXPECT_EQ(t(R"({"execute":"guest-set-time","arguments":{"time":9223372036854775808}})"),
            generic("Invalid parameter type for 'time', expected: integer"));
  EXPECT_EQ(t(R"({"execute":"guest-set-time","arguments":{"tim":1}})"), generic("Parameter 'tim' is unexpected"));
  EXPECT_TRUE(t.fx.calls.empty());
  EXPECT_TRUE(t.audit.empty());
}

// ---- with hwclock (qemu-ga's way) --------------------------------------------------------

TEST(ClockSetTime, SetsClockThenRunsHwclockW) {
  clock_root r;
  r.program("sbin/hwclock").device("dev/rtc0");
  clock_fixture t(r.dir.path);
  EXPECT_EQ(t(set_time(1700000000123456789)), ok);
  // Microseconds, like settimeofday: the last 3 digits are dropped.
  EXPECT_EQ(t.fx.calls, (calls_t{"set_realtime 1700000000 123456000", "run /sbin/hwclock -w"}));
  EXPECT_EQ(t.fx.inputs, (std::vector<std::optional<std::string>>{std::nullopt}));
  EXPECT_EQ(t.audit, (std::vector<std::string>{"guest-set-time called, time: 1700000000123456789"}));
}

TEST(ClockSetTime, WithoutTimeRunsHwclockS) {
  clock_root r;
  r.program("sbin/hwclock");
  clock_fixture t(r.dir.path);
  EXPECT_EQ(t(from_rtc), ok);
  EXPECT_EQ(t(R"({"execute":"guest-set-time","arguments":{}})"), ok);
  EXPECT_EQ(t.fx.calls, (calls_t{"run /sbin/hwclock -s", "run /sbin/hwclock -s"}));
  EXPECT_EQ(t.audit, (std::vector<std::string>(2, "guest-set-time called, time: from the RTC")));
}

TEST(ClockSetTime, UsrSbinHwclockWhenSbinHasNone) {
  clock_root r;
  r.program("sbin/hwclock", /*executable*/ false).program("usr/sbin/hwclock");
  clock_fixture t(r.dir.path);
  EXPECT_EQ(t(from_rtc), ok);
  EXPECT_EQ(t.fx.calls, (calls_t{"run /usr/sbin/hwclock -s"}));
}

TEST(ClockSetTime, HwclockFailureTexts) {
  clock_root r;
  r.program("sbin/hwclock");
  clock_fixture t(r.dir.path);
  // What util-linux hwclock prints in a container without an RTC (this machine).
  t.fx.exits("/sbin/hwclock -w", 1,
             "hwclock: Cannot access the Hardware Clock via any known method.\n"
             "hwclock: Use the --verbose option to see the details of our search for an access method.\n");
  EXPECT_EQ(t(set_time(1700000000000000000)),
            generic(hw_fail +
                    "hwclock: Cannot access the Hardware Clock via any known method.\\nhwclock: Use the --verbose "
                    "option to see the details of our search for an access method.\\n"));
  t.fx.exits("/sbin/hwclock -s", 1);
  EXPECT_EQ(t(from_rtc), generic(hw_fail + "exit status 1"));
  helper_result sig;
  sig.how = helper_result::outcome::signaled;
  sig.status = 9;
  t.fx.answers["/sbin/hwclock -s"] = sig;
  EXPECT_EQ(t(from_rtc), generic("child process has terminated abnormally"));
  helper_result spawn;
  spawn.how = helper_result::outcome::spawn_failed;
  spawn.err = EAGAIN;
  t.fx.answers["/sbin/hwclock -s"] = spawn;
  EXPECT_EQ(t(from_rtc), generic("failed to create child process: Resource temporarily unavailable"));
}

TEST(ClockSetTime, ClockFailureStopsBeforeHwclock) {
  clock_root r;
  r.program("sbin/hwclock");
  clock_fixture t(r.dir.path);
  t.fx.set_err = EPERM;
  EXPECT_EQ(t(set_time(1700000000000000000)), generic("Failed to set time to guest: Operation not permitted"));
  EXPECT_EQ(t.fx.calls, (calls_t{"set_realtime 1700000000 0"}));
}

TEST(ClockSetTime, NegativeMicrosecondsAreEinval) {
  tz_guard tz("UTC0");
  clock_root r;
  r.program("sbin/hwclock");
  clock_fixture t(r.dir.path);
  EXPECT_EQ(t(set_time(-1500)), generic("Failed to set time to guest: Invalid argument"));
  EXPECT_TRUE(t.fx.calls.empty());
  EXPECT_EQ(t(set_time(-1)), ok);  // second 0, 0 us: what qemu-ga sets too
  EXPECT_EQ(t.fx.calls, (calls_t{"set_realtime 0 0", "run /sbin/hwclock -w"}));
}

// ---- without hwclock: the RTC device -----------------------------------------------------

TEST(ClockRtcDevice, PlanOrder) {
  using commands::clock_detail::plan_rtc;
  using kind = commands::clock_detail::rtc_plan::kind;
  clock_root r;
  EXPECT_EQ(plan_rtc(r.dir.path).how, kind::none);
  r.device("dev/misc/rtc");
  EXPECT_EQ(plan_rtc(r.dir.path).path, "/dev/misc/rtc");
  r.device("dev/rtc");
  EXPECT_EQ(plan_rtc(r.dir.path).path, "/dev/rtc");
  r.device("dev/rtc0");
  auto p = plan_rtc(r.dir.path);
  EXPECT_EQ(p.how, kind::device);
  EXPECT_EQ(p.path, "/dev/rtc0");
  EXPECT_EQ(p.scale, platform::rtc_scale::utc);  // no /etc/adjtime
  r.adjtime("local");
  EXPECT_EQ(plan_rtc(r.dir.path).scale, platform::rtc_scale::local);
  r.program("usr/sbin/hwclock");
  p = plan_rtc(r.dir.path);
  EXPECT_EQ(p.how, kind::hwclock);
  EXPECT_EQ(p.path, "/usr/sbin/hwclock");
  // A directory named like a device is not one.
  clock_root d;
  std::filesystem::create_directories(d.dir.path + "/dev/rtc0");
  EXPECT_EQ(plan_rtc(d.dir.path).how, kind::none);
}

TEST(ClockRtcDevice, WritesTheNextWholeSecondInUtc) {
  clock_root r;
  r.device("dev/rtc0").adjtime("utc");
  clock_fixture t(r.dir.path);
  t.fx.now_sec = 1700000000;
  t.fx.now_nsec = 250000000;
  EXPECT_EQ(t(set_time(1700000000250000000)), ok);
  EXPECT_EQ(t.fx.calls, (calls_t{"set_realtime 1700000000 250000000", "get_realtime", "sleep 750000000",
                                 "rtc_write /dev/rtc0 2023-11-14 22:13:21"}));
}

TEST(ClockRtcDevice, WholeSecondNeedsNoWait) {
  clock_root r;
  r.device("dev/rtc");
  clock_fixture t(r.dir.path);
  t.fx.now_nsec = 0;
  EXPECT_EQ(t(set_time(1700000000000000000)), ok);
  EXPECT_EQ(t.fx.calls,
            (calls_t{"set_realtime 1700000000 0", "get_realtime", "rtc_write /dev/rtc 2023-11-14 22:13:20"}));
}

TEST(ClockRtcDevice, LocalAdjtimeWritesLocalTime) {
  tz_guard tz("CET-1CEST,M3.5.0,M10.5.0/3");
  clock_root r;
  r.device("dev/rtc0").adjtime("local");
  clock_fixture t(r.dir.path);
  t.fx.now_nsec = 0;
  EXPECT_EQ(t(set_time(1700000000000000000)), ok);
  EXPECT_EQ(t.fx.calls.back(), "rtc_write /dev/rtc0 2023-11-14 23:13:20");
  // "LOCAL" without its newline is not LOCAL for hwclock: UTC.
  r.adjtime("local-no-newline");
  EXPECT_EQ(t(set_time(1700000000000000000)), ok);
  EXPECT_EQ(t.fx.calls.back(), "rtc_write /dev/rtc0 2023-11-14 22:13:20");
}

TEST(ClockRtcDevice, SystemTimeFromRtcAtItsTick) {
  clock_root r;
  r.device("dev/rtc0");
  clock_fixture t(r.dir.path);
  t.fx.rtc_seq = {rtc_fields{19, 13, 22, 14, 10, 123}, rtc_fields{19, 13, 22, 14, 10, 123}};
  EXPECT_EQ(t(from_rtc), ok);
  // 22:13:19, still :19 after 10 ms, then :20 (the tick): that second is set.
  EXPECT_EQ(t.fx.calls, (calls_t{"rtc_read /dev/rtc0", "sleep 10000000", "rtc_read /dev/rtc0", "sleep 10000000",
                                 "rtc_read /dev/rtc0", "set_realtime 1700000000 0"}));
}

TEST(ClockRtcDevice, RtcThatDoesNotTickGivesUpAfterOneAndAHalfSeconds) {
  clock_root r;
  r.device("dev/rtc0");
  clock_fixture t(r.dir.path);
  EXPECT_EQ(t(from_rtc), ok);
  ASSERT_EQ(t.fx.calls.size(), 1u + 2 * 150 + 1);
  EXPECT_EQ(std::count(t.fx.calls.begin(), t.fx.calls.end(), "sleep 10000000"), 150);
  EXPECT_EQ(t.fx.calls.back(), "set_realtime 1700000000 0");
}

TEST(ClockRtcDevice, SystemTimeFromLocalRtc) {
  tz_guard tz("CET-1CEST,M3.5.0,M10.5.0/3");
  clock_root r;
  r.device("dev/rtc0").adjtime("local");
  clock_fixture t(r.dir.path);
  t.fx.rtc_seq = {rtc_fields{19, 13, 23, 14, 10, 123}};
  t.fx.rtc = rtc_fields{20, 13, 23, 14, 10, 123};  // 23:13:20 CET
  EXPECT_EQ(t(from_rtc), ok);
  EXPECT_EQ(t.fx.calls, (calls_t{"rtc_read /dev/rtc0", "sleep 10000000", "rtc_read /dev/rtc0",
                                 "set_realtime 1700000000 0"}));
}

TEST(ClockRtcDevice, FailureTexts) {
  clock_root r;
  r.device("dev/rtc0");
  clock_fixture t(r.dir.path);
  t.fx.now_nsec = 0;
  t.fx.write_status = {rtc_status::step::ioctl, EINVAL};
  EXPECT_EQ(t(set_time(1700000000000000000)),
            generic(hw_fail + "ioctl(RTC_SET_TIME) to /dev/rtc0 to set the time failed: Invalid argument"));
  t.fx.write_status = {rtc_status::step::open, EACCES};
  EXPECT_EQ(t(set_time(1700000000000000000)), generic(hw_fail + "cannot open /dev/rtc0: Permission denied"));
  t.fx.read_status = {rtc_status::step::ioctl, EIO};
  EXPECT_EQ(t(from_rtc), generic(hw_fail + "ioctl(RTC_RD_TIME) to /dev/rtc0 to read the time failed: Input/output error"));
  t.fx.read_status = {rtc_status::step::open, EBUSY};
  EXPECT_EQ(t(from_rtc), generic(hw_fail + "cannot open /dev/rtc0: Device or resource busy"));
  t.fx.read_status = {};
  t.fx.rtc = rtc_fields{0, 0, 0, 31, 1, 123};  // February 31st
  t.fx.calls.clear();
  EXPECT_EQ(t(from_rtc), generic(hw_fail + "/dev/rtc0 holds an invalid time"));
  EXPECT_EQ(t.fx.calls, (calls_t{"rtc_read /dev/rtc0"}));  // the clock is left alone
  t.fx.rtc_seq = {rtc_fields{19, 13, 22, 14, 10, 123}};
  t.fx.rtc = rtc_fields{20, 13, 22, 14, 10, 123};
  t.fx.set_err = EPERM;
  EXPECT_EQ(t(from_rtc), generic(hw_fail + "settimeofday() failed: Operation not permitted"));
  // A read failing while waiting for the tick: nothing is set.
  t.fx.set_err = 0;
  t.fx.rtc_seq = {rtc_fields{19, 13, 22, 14, 10, 123}};
  t.fx.rtc_next = 0;
  t.fx.reads = 0;
  t.fx.fail_read_no = 2;
  t.fx.calls.clear();
  EXPECT_EQ(t(from_rtc), generic(hw_fail + "ioctl(RTC_RD_TIME) to /dev/rtc0 to read the time failed: Input/output error"));
  EXPECT_EQ(t.fx.calls, (calls_t{"rtc_read /dev/rtc0", "sleep 10000000", "rtc_read /dev/rtc0"}));
}

TEST(ClockRtcDevice, NeitherHwclockNorRtcReadsLikeQemuGa) {
  clock_root r;
  clock_fixture t(r.dir.path);
  const std::string text = generic(hw_fail + "failed to exec '/sbin/hwclock': No such file or directory\\n");
  EXPECT_EQ(t(from_rtc), text);
  EXPECT_EQ(t(set_time(1700000000000000000)), text);
  EXPECT_EQ(t.fx.calls, (calls_t{"set_realtime 1700000000 0"}));  // nothing spawned
}

// ---- guest-set-user-password ------------------------------------------------------------

TEST(PasswordPrepare, ChecksInUpstreamOrder) {
  using commands::password_detail::chpasswd_job;
  using commands::password_detail::prepare;
  auto err = [](auto v) { return std::get<std::string>(v); };
  EXPECT_EQ(err(prepare("root", "!!!", false)), "Base64 data contains invalid characters");
  EXPECT_EQ(err(prepare("a:b", "!", true)), "Base64 data contains invalid characters");
  EXPECT_EQ(err(prepare("root", "Cg==", false)), "forbidden characters in raw password");      // "\n"
  EXPECT_EQ(err(prepare("a:b", "eAp5", true)), "forbidden characters in raw password");        // "x\ny"
  EXPECT_EQ(err(prepare("a:b", "eA==", false)), "forbidden characters in username");
  EXPECT_EQ(err(prepare("a\nb", "eA==", false)), "forbidden characters in username");
  EXPECT_EQ(err(prepare(":", "", false)), "forbidden characters in username");

  chpasswd_job j = std::get<chpasswd_job>(prepare("root", "c2VjcmV0", false));  // "secret"
  EXPECT_EQ(j.argv, (argv_t{"chpasswd"}));
  EXPECT_EQ(j.input, "root:secret\n");
  j = std::get<chpasswd_job>(prepare("root", "JDYkc2FsdCRoYXNo", true));  // "$6$salt$hash"
  EXPECT_EQ(j.argv, (argv_t{"chpasswd", "-e"}));
  EXPECT_EQ(j.input, "root:$6$salt$hash\n");
  // A C string: the bytes after a NUL don't count, not even a newline among them.
  j = std::get<chpasswd_job>(prepare("root", "AAo=", false));  // "\0\n"
  EXPECT_EQ(j.input, "root:\n");
  j = std::get<chpasswd_job>(prepare("root", "eAB5", false));  // "x\0y"
  EXPECT_EQ(j.input, "root:x\n");
  j = std::get<chpasswd_job>(prepare("root", "", false));
  EXPECT_EQ(j.input, "root:\n");
  // Base64 split over lines is fine (qemu-ga's charset includes '\n').
  j = std::get<chpasswd_job>(prepare("u", "c2Vj\ncmV0", false));
  EXPECT_EQ(j.input, "u:secret\n");
  j = std::get<chpasswd_job>(prepare(std::string_view("a\0b", 3), "eA==", false));
  EXPECT_EQ(j.input, "a\xC0\x80" "b:x\n");
}

TEST(PasswordSet, RunsChpasswdWithTheLineOnStdin) {
  clock_root r;
  clock_fixture t(r.dir.path);
  EXPECT_EQ(t(R"({"execute":"guest-set-user-password","arguments":{"username":"alice","password":"c2VjcmV0","crypted":false}})"), ok);
  EXPECT_EQ(t(R"({"execute":"guest-set-user-password","arguments":{"username":"bob","password":"JDYkc2FsdCRoYXNo","crypted":true}})"), ok);
  EXPECT_EQ(t.fx.calls, (calls_t{"run chpasswd", "run chpasswd -e"}));
  EXPECT_EQ(t.fx.inputs, (std::vector<std::optional<std::string>>{"alice:secret\n", "bob:$6$salt$hash\n"}));
  EXPECT_EQ(t.audit, (std::vector<std::string>{"guest-set-user-password called, username: alice, crypted: false",
                                               "guest-set-user-password called, username: bob, crypted: true"}));
  for (const auto& l : t.audit) {
    EXPECT_EQ(l.find("secret"), std::string::npos);
    EXPECT_EQ(l.find("$6$"), std::string::npos);
  }
}

TEST(PasswordSet, NulInUserNameIsQemusCString) {
  clock_root r;
  clock_fixture t(r.dir.path);
  EXPECT_EQ(t(R"({"execute":"guest-set-user-password","arguments":{"username":"a\u0000b","password":"eA==","crypted":false}})"), ok);
  EXPECT_EQ(t.fx.inputs, (std::vector<std::optional<std::string>>{"a\xC0\x80" "b:x\n"}));
  EXPECT_EQ(t.audit, (std::vector<std::string>{"guest-set-user-password called, username: a\xC0\x80" "b, crypted: false"}));
}

TEST(PasswordSet, ArgumentErrorsRunNothing) {
  clock_root r;
  clock_fixture t(r.dir.path);
  const std::pair<std::string_view, std::string_view> cases[] = {
      {R"({"execute":"guest-set-user-password"})", "Parameter 'username' is missing"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"root","password":"!!!","crypted":false}})",
       "Base64 data contains invalid characters"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"root","password":"Cg==","crypted":false}})",
       "forbidden characters in raw password"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"a:b","password":"eA==","crypted":false}})",
       "forbidden characters in username"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"a\nb","password":"eA==","crypted":true}})",
       "forbidden characters in username"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA=="}})",
       "Parameter 'crypted' is missing"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"root","crypted":true}})",
       "Parameter 'password' is missing"},
      {R"({"execute":"guest-set-user-password","arguments":{"password":"eA==","crypted":true}})",
       "Parameter 'username' is missing"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":1,"password":"eA==","crypted":true}})",
       "Invalid parameter type for 'username', expected: string"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA==","crypted":"yes"}})",
       "Invalid parameter type for 'crypted', expected: boolean"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"a:b","password":"!","crypted":true}})",
       "Base64 data contains invalid characters"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"a:b","password":"Cg==","crypted":true}})",
       "forbidden characters in raw password"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA==","crypted":true,"x":1}})",
       "Parameter 'x' is unexpected"},
      {R"({"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA\u0000","crypted":true}})",
       "Base64 data contains invalid characters"},
  };
  for (const auto& [req, desc] : cases) EXPECT_EQ(t(req), generic(desc)) << req;
  EXPECT_TRUE(t.fx.calls.empty());
  EXPECT_TRUE(t.audit.empty());
}

TEST(PasswordSet, ChpasswdFailureTexts) {
  clock_root r;
  clock_fixture t(r.dir.path);
  const std::string req =
      R"({"execute":"guest-set-user-password","arguments":{"username":"nosuch","password":"eA==","crypted":false}})";
  t.fx.exits("chpasswd", 1, "chpasswd: (user nosuch) pam_chauthtok() failed, error:\nAuthentication token manipulation error\n");
  EXPECT_EQ(t(req), generic("child process has failed to set user password: chpasswd: (user nosuch) pam_chauthtok() "
                            "failed, error:\\nAuthentication token manipulation error\\n"));
  t.fx.exits("chpasswd", 1);
  EXPECT_EQ(t(req), generic("child process has failed to set user password: exit status 1"));
  helper_result nf;
  nf.how = helper_result::outcome::exec_failed;
  nf.status = 1;
  nf.err = ENOENT;
  nf.output = "failed to exec 'chpasswd': No such file or directory\n";
  t.fx.answers["chpasswd"] = nf;
  EXPECT_EQ(t(req), generic("child process has failed to set user password: failed to exec 'chpasswd': No such file or "
                            "directory\\n"));
  helper_result in;
  in.how = helper_result::outcome::input_failed;
  in.err = EPIPE;
  t.fx.answers["chpasswd"] = in;
  EXPECT_EQ(t(req), generic("set user password: cannot write to stdin pipe: Broken pipe"));
  helper_result sig;
  sig.how = helper_result::outcome::signaled;
  sig.status = 11;
  sig.output = "boom\n";
  t.fx.answers["chpasswd"] = sig;
  EXPECT_EQ(t(req), generic("child process has terminated abnormally: boom\\n"));
}

// ---- safety: a service that is not the agent never acts ----------------------------------

TEST(ClockSafety, UnarmedServiceOnRealRootChangesNothing) {
  tz_guard tz("UTC0");
  service_fixture t;  // fake_system on root "", the real linux_effects, acts_on_system false
  EXPECT_EQ(t(set_time(1000000000)), generic("Failed to set time to guest: Operation not permitted"));
  const std::string s = t(std::string(from_rtc));
  // hwclock (this machine has it) "fails to exec" with EPERM; without hwclock and RTC the
  // text names /sbin/hwclock too; with only an RTC device the system clock is refused.
  EXPECT_TRUE(s == generic(hw_fail + "failed to exec '/sbin/hwclock': Operation not permitted\\n") ||
              s == generic(hw_fail + "failed to exec '/usr/sbin/hwclock': Operation not permitted\\n") ||
              s == generic(hw_fail + "failed to exec '/sbin/hwclock': No such file or directory\\n") ||
              s.find("settimeofday() failed: Operation not permitted") != std::string::npos ||
              s.find("to read the time failed") != std::string::npos)
      << s;
  EXPECT_EQ(t(R"({"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA==","crypted":false}})"),
            generic("child process has failed to set user password: failed to exec 'chpasswd': Operation not "
                    "permitted\\n"));
}

TEST(ClockTable, RowsSitInUpstreamOrder) {
  const auto names = commands::service::command_names();
  auto at = [&](std::string_view n) { return std::find(names.begin(), names.end(), n) - names.begin(); };
  EXPECT_EQ(at("guest-set-time"), at("guest-get-time") + 1);
  EXPECT_EQ(at("guest-set-user-password"), at("guest-get-fsinfo") + 1);
}

}  // namespace
}  // namespace fleetga::test
