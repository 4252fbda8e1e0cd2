#include <gtest/gtest.h>

#include "commands/state.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

using commands::options;

std::string level_json(int major, int minor, int micro) {
  return "\"support_level\": {\"micro\": " + std::to_string(micro) + ", \"minor\": " + std::to_string(minor) +
         ", \"major\": " + std::to_string(major) + "}}}\n";
}

bool info_has_level(service_fixture& t, int major, int minor, int micro) {
  std::string info = t(R"({"execute":"guest-info"})");
  return info.size() > 60 && info.ends_with(level_json(major, minor, micro));
}

std::string generic(std::string_view desc) {
  return "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + std::string(desc) + "\"}}\n";
}

TEST(SupportLevel, Parse) {
  using commands::parse_support_level;
  using commands::support_level;
  EXPECT_EQ(parse_support_level("1.1"), (support_level{1, 1, 0}));
  EXPECT_EQ(parse_support_level("2.3.4"), (support_level{2, 3, 4}));
  EXPECT_EQ(parse_support_level("65535.0.65535"), (support_level{65535, 0, 65535}));
  for (std::string_view bad : {"", "1", "1.", ".1", "1.1.1.1", "1.65536", "a.b", "1.-1", "1. 1", " 1.1", "1.1 "})
    EXPECT_FALSE(parse_support_level(bad)) << bad;
}

TEST(SupportLevel, DefaultIs100) {
  service_fixture t;
  EXPECT_TRUE(info_has_level(t, 1, 0, 0));
}

TEST(SupportLevel, SetAndReport) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":1},"id":2})"),
            "{\"return\": {}, \"id\": 2}\n");
  EXPECT_TRUE(info_has_level(t, 1, 1, 0));
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":10,"minor":2,"micro":65535}})"),
            "{\"return\": {}}\n");
  EXPECT_TRUE(info_has_level(t, 10, 2, 65535));
  EXPECT_EQ(slurp(t.state / "qga.state"), "[global]\nfd_counter=1000\nsupport_level=10.2.65535\n");
  EXPECT_EQ(t.state.list(), (std::set<std::string>{"qga.state"}));
}

TEST(SupportLevel, BelowMinimumIsRaised) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":2,"minor":0}})"), "{\"return\": {}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":0,"minor":15,"micro":3}})"),
            "{\"return\": {}}\n");
  EXPECT_TRUE(info_has_level(t, 1, 0, 0));
  EXPECT_EQ(slurp(t.state / "qga.state"), "[global]\nfd_counter=1000\nsupport_level=1.0.0\n");
}

TEST(SupportLevel, RangeErrorsNameTheParameter) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":65536}})"),
            generic("Parameter 'minor' expects a value between 0 and 65535"));
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":-1,"minor":70000}})"),
            generic("Parameter 'major' expects a value between 0 and 65535"));
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":1,"micro":-1}})"),
            generic("Parameter 'micro' expects a value between 0 and 65535"));
  EXPECT_TRUE(info_has_level(t, 1, 0, 0));  // unchanged
}

TEST(SupportLevel, ArgumentErrors) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level"})"), generic("Parameter 'major' is missing"));
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1}})"),
            generic("Parameter 'minor' is missing"));
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":"1","minor":0}})"),
            generic("Invalid parameter type for 'major', expected: integer"));
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":1.5}})"),
            generic("Invalid parameter type for 'minor', expected: integer"));
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":0,"patch":1}})"),
            generic("Parameter 'patch' is unexpected"));
}

TEST(SupportLevel, PersistsAcrossRestart) {
  service_fixture t;
  ASSERT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":1}})"), "{\"return\": {}}\n");
  t.start();  // a new service on the same statedir
  EXPECT_TRUE(info_has_level(t, 1, 1, 0));
}

TEST(SupportLevel, StateFileWinsOverOptionDefault) {
  service_fixture t;
  options o;
  o.support_level = "3.0";
  t.start(o);
  EXPECT_TRUE(info_has_level(t, 3, 0, 0));  // nothing stored yet: the option applies
  // Opening a file rewrites qga.state but must not pin the option's default into it.
  spit(t.state / "f", "x");
  ASSERT_EQ(t(R"({"execute":"guest-file-open","arguments":{"path":")" + t.state / "f" + R"("}})"),
            "{\"return\": 1000}\n");
  EXPECT_EQ(slurp(t.state / "qga.state"), "[global]\nfd_counter=1001\n");
  ASSERT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":2}})"), "{\"return\": {}}\n");
  t.start(o);
  EXPECT_TRUE(info_has_level(t, 1, 2, 0));  // the stored level wins over --support-level=3.0
  EXPECT_EQ(slurp(t.state / "qga.state"), "[global]\nfd_counter=1001\nsupport_level=1.2.0\n");
}

TEST(SupportLevel, OptionDefaultIsClampedAndValidated) {
  service_fixture t;
  options o;
  o.support_level = "0.9.9";
  t.start(o);
  EXPECT_TRUE(info_has_level(t, 1, 0, 0));
  o.support_level = "1.x";
  t.start(o, false);
  EXPECT_EQ(t.svc->init(), std::optional<std::string>("invalid support level '1.x' (expected MAJOR.MINOR[.MICRO])"));
}

TEST(SupportLevel, ReadsQemuGaStateFileAndMalformedLevel) {
  service_fixture t;
  spit(t.state / "qga.state", "[global]\nfd_counter=1002\nsupport_level=bogus\n");
  t.start();
  EXPECT_TRUE(info_has_level(t, 1, 0, 0));
  spit(t.state / "x", "");
  EXPECT_EQ(t(R"({"execute":"guest-file-open","arguments":{"path":")" + t.state / "x" + R"("}})"),
            "{\"return\": 1002}\n");
}

TEST(SupportLevel, CommitFailureLeavesLevelUnchanged) {
  service_fixture t;
  std::filesystem::remove_all(t.state.path);
  EXPECT_EQ(t(R"({"execute":"guest-set-support-level","arguments":{"major":2,"minor":0}})"),
            generic("failed to commit persistent state to disk"));
  EXPECT_TRUE(info_has_level(t, 1, 0, 0));
  std::filesystem::create_directory(t.state.path);
}

TEST(SupportLevel, StateSerialization) {
  commands::persistent_state s;
  EXPECT_EQ(commands::serialize(s), "[global]\nfd_counter=1000\n");
  auto p = commands::parse_state("# comment\n[global]\nfd_counter = 1234 \nunknown=1\n[other]\nsupport_level=9.9.9\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->fd_counter, 1234);
  EXPECT_FALSE(p->level);  // only [global] counts
  // g_key_file_get_integer() fails and qemu-ga stores its 0 (checked against qemu-ga 7.2);
  // only a missing key leaves the default.
  p = commands::parse_state("[global]\nfd_counter=abc\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->fd_counter, 0);
  p = commands::parse_state("[global]\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->fd_counter, 1000);
  // g_key_file_get_integer(): a gint or 0.
  EXPECT_EQ(commands::glib_integer("2147483647"), 2147483647);
  EXPECT_EQ(commands::glib_integer("-2147483648"), -2147483647 - 1);
  EXPECT_EQ(commands::glib_integer("-2147483649"), 0);
  EXPECT_EQ(commands::glib_integer("4294967296"), 0);
  EXPECT_EQ(commands::glib_integer("184467440737095516160"), 0);
  EXPECT_EQ(commands::glib_integer("12\t"), 12);
  EXPECT_EQ(commands::glib_integer("12 junk"), 12);
  EXPECT_EQ(commands::glib_integer("-"), 0);
  EXPECT_EQ(commands::glib_integer("- 5"), 0);
  EXPECT_EQ(commands::glib_integer("-0"), 0);
  EXPECT_EQ(commands::glib_integer("007"), 7);
  EXPECT_FALSE(commands::parse_state("fd_counter=1\n"));  // key before any group
}

}  // namespace
}  // namespace fleetga::test
