#include <gtest/gtest.h>
#include <algorithm>

#include "commands/handlers.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

std::string data(std::string_view name) { return std::string(FLEETGA_TEST_DATA) + "/" + std::string(name); }

TEST(CommandsSystem, GetTime) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-get-time"})"), "{\"return\": 1700000000123456000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-time","arguments":{"x":1}})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}\n");
}

TEST(CommandsSystem, RealClockHasMicrosecondResolution) {
  platform::linux_system sys;
  std::int64_t a = sys.realtime_ns();
  EXPECT_GT(a, std::int64_t{1600000000} * 1000000000);
  EXPECT_EQ(a % 1000, 0);
}

TEST(CommandsSystem, HostName) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-get-host-name"})"), "{\"return\": {\"host-name\": \"vm-1\"}}\n");
  t.sys.host_err = EINVAL;
  EXPECT_EQ(t(R"({"execute":"guest-get-host-name"})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"cannot get hostname: Invalid argument\"}}\n");
}

TEST(CommandsSystem, Timezone) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-get-timezone"})"), "{\"return\": {\"zone\": \"CET\", \"offset\": 3600}}\n");
  t.sys.tz = {std::nullopt, -12600};
  EXPECT_EQ(t(R"({"execute":"guest-get-timezone"})"), "{\"return\": {\"offset\": -12600}}\n");
}

TEST(CommandsSystem, RealTimezoneFromTZ) {
  platform::linux_system sys;
  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  ::setenv("TZ", "UTC0", 1);
  auto tz = sys.timezone();
  EXPECT_EQ(tz.offset, 0);
  EXPECT_EQ(tz.zone, std::optional<std::string>("UTC"));
  ::setenv("TZ", "<+0530>-5:30", 1);
  tz = sys.timezone();
  EXPECT_EQ(tz.offset, 19800);
  EXPECT_EQ(tz.zone, std::optional<std::string>("+0530"));
  // GLib falls back to UTC for a $TZ it cannot use; glibc alone would say zone "garbage".
  ::setenv("TZ", "garbage", 1);
  tz = sys.timezone();
  EXPECT_EQ(tz.offset, 0);
  EXPECT_EQ(tz.zone, std::optional<std::string>("UTC"));
  ::setenv("TZ", "ABC+1", 1);
  tz = sys.timezone();
  EXPECT_EQ(tz.offset, -3600);
  EXPECT_EQ(tz.zone, std::optional<std::string>("ABC"));
  if (old) ::setenv("TZ", saved.c_str(), 1);
  else ::unsetenv("TZ");
  ::tzset();
}

TEST(CommandsSystem, Load) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-get-load"})"),
            "{\"return\": {\"load15m\": 0.5, \"load5m\": 0.25, \"load1m\": 1.5}}\n");
  t.sys.load = {0.1, 0, 2};
  EXPECT_EQ(t(R"({"execute":"guest-get-load"})"),
            "{\"return\": {\"load15m\": 2, \"load5m\": 0, \"load1m\": 0.10000000000000001}}\n");
  t.sys.load_err = EIO;
  EXPECT_EQ(t(R"({"execute":"guest-get-load"})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"cannot query load average: Input/output error\"}}\n");
}

TEST(CommandsSystem, OsinfoUpstreamTestData) {  // test-qga.c /qga/guest-get-osinfo (case 26)
  service_fixture t;
  t.sys.env["QGA_OS_RELEASE"] = data("test-qga-os-release");
  EXPECT_EQ(t(R"({"execute":"guest-get-osinfo"})"),
            "{\"return\": {\"name\": \"QEMU-GA\", \"kernel-release\": \"6.1.0-test\", \"version\": \"Test 1\", "
            "\"variant\": \"Unit test \\\"'$`\\\\ and \\\\\\\\ etc.\", \"pretty-name\": \"QEMU Guest Agent test\", "
            "\"version-id\": \"1\", \"variant-id\": \"unit-test\", \"kernel-version\": \"#1 SMP PREEMPT_DYNAMIC "
            "Debian 6.1.0\", \"machine\": \"x86_64\", \"id\": \"qemu-ga-test\"}}\n");
}

TEST(CommandsSystem, OsinfoFromRootedEtcThenUsrLib) {
  temp_dir root;
  std::filesystem::create_directories(root / "etc");
  std::filesystem::create_directories(root / "usr/lib");
  spit(root / "usr/lib/os-release", "ID=fallback\n");
  service_fixture t;
  t.sys = fake_system(root.path);
  // Neither file readable at /etc: /usr/lib is used.
  EXPECT_EQ(t(R"({"execute":"guest-get-osinfo"})"),
            "{\"return\": {\"kernel-release\": \"6.1.0-test\", \"kernel-version\": \"#1 SMP PREEMPT_DYNAMIC Debian 6.1.0\", "
            "\"machine\": \"x86_64\", \"id\": \"fallback\"}}\n");
  // /etc/os-release appears: it wins (cache invalidated by its identity).
  spit(root / "etc/os-release", "ID=etc\nNAME='Single Quoted'\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-osinfo"})"),
            "{\"return\": {\"name\": \"'Single\", \"kernel-release\": \"6.1.0-test\", \"kernel-version\": \"#1 SMP "
            "PREEMPT_DYNAMIC Debian 6.1.0\", \"machine\": \"x86_64\", \"id\": \"etc\"}}\n");
  // Not a key file GLib loads -> fallback again.
  spit(root / "etc/os-release", "ID=etc\njunk line\n");
  EXPECT_NE(t(R"({"execute":"guest-get-osinfo"})").find("\"id\": \"fallback\""), std::string::npos);
  // Not UTF-8 -> fallback.
  spit(root / "etc/os-release", "ID=\xff\n");
  EXPECT_NE(t(R"({"execute":"guest-get-osinfo"})").find("\"id\": \"fallback\""), std::string::npos);
  // QGA_OS_RELEASE set but unusable: no fallback, only uname members.
  t.sys.env["QGA_OS_RELEASE"] = root / "nope";
  EXPECT_EQ(t(R"({"execute":"guest-get-osinfo"})"),
            "{\"return\": {\"kernel-release\": \"6.1.0-test\", \"kernel-version\": \"#1 SMP PREEMPT_DYNAMIC Debian 6.1.0\", "
            "\"machine\": \"x86_64\"}}\n");
}

TEST(CommandsSystem, OsinfoIsCachedUntilTheFileOrUnameChanges) {
  temp_dir root;
  std::filesystem::create_directories(root / "etc");
  spit(root / "etc/os-release", "ID=one\n");
  service_fixture t;
  t.sys = fake_system(root.path);
  std::string first = t(R"({"execute":"guest-get-osinfo"})");
  EXPECT_NE(first.find("\"id\": \"one\""), std::string::npos);
  EXPECT_EQ(t(R"({"execute":"guest-get-osinfo"})"), first);
  spit(root / "etc/os-release", "ID=two-longer\n");  // size changes
  EXPECT_NE(t(R"({"execute":"guest-get-osinfo"})").find("\"id\": \"two-longer\""), std::string::npos);
  t.sys.un.release = "6.2.0";
  EXPECT_NE(t(R"({"execute":"guest-get-osinfo"})").find("\"kernel-release\": \"6.2.0\""), std::string::npos);
}

TEST(CommandsSystem, OsinfoIsReadAtStartUpNotByTheFirstCall) {
  temp_dir root;
  std::filesystem::create_directories(root / "etc");
  spit(root / "etc/os-release", "ID=warm\n");
  service_fixture t({}, false);
  t.sys = fake_system(root.path);
  t.start();  // init() reads os-release
  const auto at_start = t.sys.small_reads;
  EXPECT_NE(std::find(at_start.begin(), at_start.end(), root / "etc/os-release"), at_start.end());
  EXPECT_NE(t(R"({"execute":"guest-get-osinfo"})").find("\"id\": \"warm\""), std::string::npos);
  EXPECT_EQ(t.sys.small_reads, at_start);  // answered from the cache: no file read
  spit(root / "etc/os-release", "ID=changed-later\n");
  EXPECT_NE(t(R"({"execute":"guest-get-osinfo"})").find("\"id\": \"changed-later\""), std::string::npos);
  EXPECT_EQ(t.sys.small_reads.size(), at_start.size() + 1);
}

TEST(CommandsSystem, OsReleaseUnquoteQuirks) {
  using commands::osrelease_unquote;
  EXPECT_EQ(osrelease_unquote("plain"), "plain");
  EXPECT_EQ(osrelease_unquote("two words"), "two");
  EXPECT_EQ(osrelease_unquote("a;b c"), "a");
  EXPECT_EQ(osrelease_unquote("'single quoted'"), "'single");
  EXPECT_EQ(osrelease_unquote("\"double quoted\" tail"), "double quoted");
  EXPECT_EQ(osrelease_unquote(R"("a\$b\'c\"d\\e\`f\ng")"), "a$b'c\"d\\e`f\\ng");
  EXPECT_EQ(osrelease_unquote("\"\""), "");
  EXPECT_EQ(osrelease_unquote(""), "");
  // Unterminated: qemu-ga's in-place copy leaves the original tail behind.
  EXPECT_EQ(osrelease_unquote("\"abc"), "abcc");
  EXPECT_EQ(osrelease_unquote("\"abc\\"), "abc\\\\");
}

}  // namespace
}  // namespace fleetga::test
