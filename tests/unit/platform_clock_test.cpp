// platform/clock: hwclock's /etc/adjtime rule, RTC broken-down time, and the safety of the
// real linux_effects (nothing here sets a clock, writes an RTC or runs a helper).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>

#include "commands_harness.hpp"
#include "platform/clock.hpp"

namespace fleetga::test {
namespace {

using platform::rtc_fields;
using platform::rtc_scale;

std::string adjtime(std::string_view name) {
  return slurp(std::string(FLEETGA_TEST_DATA) + "/clock/adjtime/" + std::string(name));
}

// Sets TZ for one test and restores it.
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
constexpr const char* cet = "CET-1CEST,M3.5.0,M10.5.0/3";

TEST(ClockAdjtime, ThirdLineDecides) {
  using platform::parse_adjtime_scale;
  EXPECT_EQ(parse_adjtime_scale(adjtime("utc")), rtc_scale::utc);
  EXPECT_EQ(parse_adjtime_scale(adjtime("local")), rtc_scale::local);
}

TEST(ClockAdjtime, OnlyExactLocalLineIsLocal) {
  using platform::parse_adjtime_scale;
  // hwclock compares the fgets() line with "LOCAL\n": no newline, other case, a trailing
  // space or a CR all make it "unknown", which hwclock treats as UTC.
  EXPECT_EQ(parse_adjtime_scale(adjtime("local-no-newline")), rtc_scale::utc);
  EXPECT_EQ(parse_adjtime_scale(adjtime("lowercase")), rtc_scale::utc);
  EXPECT_EQ(parse_adjtime_scale(adjtime("local-trailing-space")), rtc_scale::utc);
  EXPECT_EQ(parse_adjtime_scale(adjtime("crlf")), rtc_scale::utc);
  EXPECT_EQ(parse_adjtime_scale(adjtime("two-lines")), rtc_scale::utc);
  EXPECT_EQ(parse_adjtime_scale(adjtime("empty")), rtc_scale::utc);
  EXPECT_EQ(parse_adjtime_scale(adjtime("local-in-wrong-lines")), rtc_scale::utc);
  EXPECT_EQ(parse_adjtime_scale("\n\nLOCAL\nextra\n"), rtc_scale::local);
  EXPECT_EQ(parse_adjtime_scale("a\nb\nLOCAL\n"), rtc_scale::local);
  EXPECT_EQ(parse_adjtime_scale(std::string_view("a\nb\nLOCAL\n\0", 13)), rtc_scale::local);
}

TEST(ClockRtcFields, UtcRoundTrip) {
  rtc_fields f;
  ASSERT_TRUE(platform::to_rtc_fields(1700000000, rtc_scale::utc, f));
  EXPECT_EQ(f, (rtc_fields{20, 13, 22, 14, 10, 123}));  // 2023-11-14 22:13:20
  EXPECT_EQ(platform::from_rtc_fields(f, rtc_scale::utc), 1700000000);
  ASSERT_TRUE(platform::to_rtc_fields(0, rtc_scale::utc, f));
  EXPECT_EQ(f, (rtc_fields{0, 0, 0, 1, 0, 70}));
  EXPECT_EQ(platform::from_rtc_fields(f, rtc_scale::utc), 0);
  // 1969-12-31 23:59:59 is -1, which timegm() also uses for errors.
  EXPECT_EQ(platform::from_rtc_fields(rtc_fields{59, 59, 23, 31, 11, 69}, rtc_scale::utc), -1);
}

TEST(ClockRtcFields, LocalUsesTheProcessZone) {
  tz_guard tz(cet);
  rtc_fields f;
  ASSERT_TRUE(platform::to_rtc_fields(1700000000, rtc_scale::local, f));
  EXPECT_EQ(f, (rtc_fields{20, 13, 23, 14, 10, 123}));  // CET, no DST in November
  EXPECT_EQ(platform::from_rtc_fields(f, rtc_scale::local), 1700000000);
  // Summer: CEST (+2).
  ASSERT_TRUE(platform::to_rtc_fields(1690000000, rtc_scale::local, f));  // 2023-07-22 04:26:40 UTC
  EXPECT_EQ(f, (rtc_fields{40, 26, 6, 22, 6, 123}));
  EXPECT_EQ(platform::from_rtc_fields(f, rtc_scale::local), 1690000000);
}

TEST(ClockRtcFields, GarbageRtcIsRefused) {
  using platform::from_rtc_fields;
  EXPECT_FALSE(from_rtc_fields(rtc_fields{0, 0, 0, 1, 12, 123}, rtc_scale::utc));   // month 13
  EXPECT_FALSE(from_rtc_fields(rtc_fields{0, 0, 0, 0, 0, 123}, rtc_scale::utc));    // day 0
  EXPECT_FALSE(from_rtc_fields(rtc_fields{0, 0, 0, 29, 1, 123}, rtc_scale::utc));   // 2023-02-29
  EXPECT_FALSE(from_rtc_fields(rtc_fields{0, 0, 0, 31, 3, 123}, rtc_scale::utc));   // April 31
  EXPECT_FALSE(from_rtc_fields(rtc_fields{60, 0, 0, 1, 0, 123}, rtc_scale::utc));   // leap second
  EXPECT_FALSE(from_rtc_fields(rtc_fields{0, 60, 0, 1, 0, 123}, rtc_scale::utc));
  EXPECT_FALSE(from_rtc_fields(rtc_fields{0, 0, 24, 1, 0, 123}, rtc_scale::utc));
  EXPECT_FALSE(from_rtc_fields(rtc_fields{0, 0, 0, 1, 0, -1}, rtc_scale::utc));
  EXPECT_FALSE(from_rtc_fields(rtc_fields{-1, 0, 0, 1, 0, 123}, rtc_scale::utc));
  EXPECT_EQ(from_rtc_fields(rtc_fields{0, 0, 0, 29, 1, 124}, rtc_scale::utc), 1709164800);  // 2024-02-29
  EXPECT_EQ(from_rtc_fields(rtc_fields{0, 0, 0, 29, 1, 100}, rtc_scale::utc), 951782400);   // 2000-02-29
  EXPECT_FALSE(from_rtc_fields(rtc_fields{0, 0, 0, 29, 1, 200}, rtc_scale::utc));           // 2100: no leap
}

// ---- safety of the real implementation ---------------------------------------------------

TEST(ClockLinuxEffects, UnarmedChangesNothing) {
  platform::linux_effects fx;  // root "", not armed: what a unit test or fuzzer gets
  EXPECT_EQ(fx.set_realtime(1000, 0), EPERM);
  EXPECT_EQ(fx.rtc_write("/dev/rtc0", rtc_fields{}).err, EPERM);
  const platform::helper_result r = fx.run({"chpasswd", "-e"}, std::string_view("root:x\n"));
  EXPECT_EQ(r.how, platform::helper_result::outcome::exec_failed);
  EXPECT_EQ(r.err, EPERM);
  EXPECT_EQ(r.output, "failed to exec 'chpasswd': Operation not permitted\n");
  EXPECT_EQ(platform::helper_error(r, "set user password"),
            "child process has failed to set user password: failed to exec 'chpasswd': Operation not permitted\n");
  // Reading the clock always works.
  std::int64_t s = 0, ns = -1;
  fx.get_realtime(s, ns);
  EXPECT_GT(s, 1600000000);
  EXPECT_GE(ns, 0);
  EXPECT_LT(ns, 1000000000);
}

TEST(ClockLinuxEffects, ArmedOnFixtureRootChangesNothing) {
  temp_dir root;
  platform::linux_effects fx(root.path);
  fx.armed = true;
  EXPECT_EQ(fx.set_realtime(1000, 0), EPERM);
  EXPECT_EQ(fx.rtc_write("/dev/rtc0", rtc_fields{}).err, EPERM);
  EXPECT_EQ(fx.run({"/sbin/hwclock", "-w"}, std::nullopt).err, EPERM);
}

TEST(ClockLinuxEffects, RtcReadOnFixtureFiles) {
  temp_dir root;
  std::filesystem::create_directories(root.path + "/dev");
  spit(root / "dev/rtc0", "not a device\n");
  platform::linux_effects fx(root.path);
  rtc_fields f{1, 2, 3, 4, 5, 6};
  platform::rtc_status st = fx.rtc_read("/dev/rtc0", f);
  EXPECT_EQ(st.at, platform::rtc_status::step::ioctl);
  EXPECT_EQ(st.err, ENOTTY);
  EXPECT_EQ(f, (rtc_fields{1, 2, 3, 4, 5, 6}));  // untouched on failure
  st = fx.rtc_read("/dev/rtc1", f);
  EXPECT_EQ(st.at, platform::rtc_status::step::open);
  EXPECT_EQ(st.err, ENOENT);
}

TEST(ClockLinuxEffects, SleepSleeps) {
  platform::linux_effects fx;
  struct timespec a {}, b {};
  ::clock_gettime(CLOCK_MONOTONIC, &a);
  fx.sleep_ns(20000000);
  fx.sleep_ns(0);
  fx.sleep_ns(-5);
  ::clock_gettime(CLOCK_MONOTONIC, &b);
  const long long el = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  EXPECT_GE(el, 20000000);
}

}  // namespace
}  // namespace fleetga::test
