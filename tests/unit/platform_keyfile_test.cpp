#include <gtest/gtest.h>

#include "platform/keyfile.hpp"

namespace fleetga::platform {
namespace {

TEST(PlatformKeyfile, GLibBasics) {
  auto kf = keyfile::parse("# c\n\n  [g]  \n a = 1 \nb=\t two words\r\nb=last\n[h]\na=x\n");
  ASSERT_TRUE(kf);
  EXPECT_EQ(*kf->get("g", "a"), "1 ");  // trailing whitespace of values is kept
  EXPECT_EQ(*kf->get("g", "b"), "last");
  EXPECT_EQ(*kf->get("h", "a"), "x");
  EXPECT_EQ(kf->get("g", "c"), nullptr);
  EXPECT_EQ(kf->get("x", "a"), nullptr);
}

TEST(PlatformKeyfile, Rejects) {
  EXPECT_FALSE(keyfile::parse("a=1\n"));                // before any group
  EXPECT_FALSE(keyfile::parse("[g]\nnot a pair\n"));
  EXPECT_FALSE(keyfile::parse("[g]\n=value\n"));
  EXPECT_FALSE(keyfile::parse("[]\n"));
  EXPECT_FALSE(keyfile::parse("[g]\nk[=1\n"));
  EXPECT_FALSE(keyfile::parse("[g]\n[x]y=1\n"));
  EXPECT_TRUE(keyfile::parse("[g]\nName[de_DE.UTF-8@euro]=x\n"));
  EXPECT_TRUE(keyfile::parse(""));
  EXPECT_TRUE(keyfile::parse("[g]\nkey with space=1\n"));
}

// GLib's GError messages for the first refused line (qemu-ga prints them for qemu-ga.conf).
TEST(PlatformKeyfile, ErrorText) {
  auto error_of = [](std::string_view data) {
    std::string error;
    EXPECT_FALSE(keyfile::parse(data, error)) << data;
    return error;
  };
  EXPECT_EQ(error_of("a=1\n"), "Key file does not start with a group");
  EXPECT_EQ(error_of("# c\n  not a pair \r\n[g]\n"),
            "Key file contains line \xE2\x80\x9C  not a pair \xE2\x80\x9D which is not a key-value pair, "
            "group, or comment");
  EXPECT_EQ(error_of("=value\n"),  // an empty key is no key-value pair, even before a group
            "Key file contains line \xE2\x80\x9C=value\xE2\x80\x9D which is not a key-value pair, group, or "
            "comment");
  EXPECT_EQ(error_of("[g]\n[]\n"), "Invalid group name: ");
  EXPECT_EQ(error_of("[g]\n[gen[eral]\nx=1\n"), "Invalid group name: gen[eral");
  EXPECT_EQ(error_of("[g]\n ba[d \t= 1\n"), "Invalid key name: ba[d");
  EXPECT_EQ(error_of("[g]\na=1\nb\n[]\n"), "Key file contains line \xE2\x80\x9C" "b\xE2\x80\x9D which is "
            "not a key-value pair, group, or comment");  // the first refused line is reported
}

TEST(PlatformKeyfile, NulEndsTheData) {
  auto kf = keyfile::parse(std::string_view("[g]\na=1\0garbage line\n", 20));
  ASSERT_TRUE(kf);
  EXPECT_EQ(*kf->get("g", "a"), "1");
}

TEST(PlatformKeyfile, Utf8) {
  EXPECT_TRUE(valid_utf8("plain ascii"));
  EXPECT_TRUE(valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xff"));
  EXPECT_FALSE(valid_utf8("\xc0\x80"));          // overlong
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(valid_utf8("\xe2\x82"));          // truncated
}

}  // namespace
}  // namespace fleetga::platform
