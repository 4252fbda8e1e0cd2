#include "protocol/base64.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

using namespace fleetga::protocol;

namespace {
std::string enc(std::string_view s) {
  std::string out;
  base64_encode(s, out);
  return out;
}
std::string dec(std::string_view s) {
  auto r = base64_decode(s);
  return r ? *r : std::string("<invalid>");
}
}  // namespace

TEST(Base64, EncodeRfc4648Vectors) {
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg==");
  EXPECT_EQ(enc("fo"), "Zm8=");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foob"), "Zm9vYg==");
  EXPECT_EQ(enc("fooba"), "Zm9vYmE=");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
  EXPECT_EQ(enc(std::string("\xff\xfe\x00", 3)), "//4A");
  std::string out = "x";
  base64_encode("foo", out);
  EXPECT_EQ(out, "xZm9v");  // appends
}

TEST(Base64, DecodeStandard) {
  EXPECT_EQ(dec(""), "");
  EXPECT_EQ(dec("Zg=="), "f");
  EXPECT_EQ(dec("Zm8="), "fo");
  EXPECT_EQ(dec("Zm9vYmFy"), "foobar");
  EXPECT_EQ(dec("//4A"), std::string("\xff\xfe\x00", 3));
}

TEST(Base64, RoundTripAllLengths) {
  std::mt19937 rng(42);
  for (std::size_t n = 0; n < 300; ++n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    auto d = base64_decode(enc(s));
    ASSERT_TRUE(d.has_value());
    ASSERT_EQ(*d, s) << n;
  }
}

TEST(Base64, CharsetCheck) {
  for (const char* bad : {"Zm9v!", "Zm 9v", "Zm9v\r\n", "Zm-9", "Zm_9", "\t", "Zm9v\xc3\xa9"})
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  EXPECT_FALSE(base64_decode(std::string_view("Zm9v\0Zm9v", 9)).has_value());  // NUL
  EXPECT_FALSE(base64_decode(std::string(4000, 'A') + "*").has_value());  // late garbage
}

TEST(Base64, NewlinesAreSkipped) {
  EXPECT_EQ(dec("Zm9v\nYmFy\n"), "foobar");
  EXPECT_EQ(dec("Z\nm\n9\nv"), "foo");
  EXPECT_EQ(dec("\n\n"), "");
}

TEST(Base64, GlibPaddingSemantics) {
  // '=' is a zero digit; the 3rd/4th digit being '=' drops output byte 2/3 of its group.
  EXPECT_EQ(dec("QQ==QQ=="), "AA");
  EXPECT_EQ(dec("QUI=QQ=="), "ABA");
  EXPECT_EQ(dec("QU=D"), std::string("A\x03", 2));  // byte 2 dropped, byte 3 kept
  EXPECT_EQ(dec("===="), std::string("\0", 1));
  EXPECT_EQ(dec("Q==="), std::string("@", 1));
  EXPECT_EQ(dec("=QUJD"), std::string("\x01\x05\x09", 3));  // "=QUJ" group; "D" dropped
}

TEST(Base64, IncompleteTrailingGroupDropped) {
  EXPECT_EQ(dec("QUJDQQ"), "ABC");
  EXPECT_EQ(dec("QUJDQ"), "ABC");
  EXPECT_EQ(dec("QUJDQUI"), "ABC");
  EXPECT_EQ(dec("QQ="), "");
  EXPECT_EQ(dec("Q"), "");
}

TEST(Base64, Large48MiBIsFast) {
  std::string data(48u << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 2654435761u >> 13);
  auto t0 = std::chrono::steady_clock::now();
  std::string b64;
  base64_encode(data, b64);
  auto t1 = std::chrono::steady_clock::now();
  auto back = base64_decode(b64);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(*back == data);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count();
  RecordProperty("encode_ms", static_cast<int>(ms));
  // Generous bound: sanitizer builds are several times slower than -O2.
  EXPECT_LT(ms, 2000);
}
