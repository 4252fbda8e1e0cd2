#include "protocol/json_writer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <limits>

using fleetga::protocol::json_writer;
using fleetga::protocol::in_qemu_order;
using fleetga::protocol::qemu_bucket;

namespace {
std::string esc(std::string_view s) {
  std::string out;
  json_writer::append_string(out, s);
  return out;
}
std::string dbl(double d) {
  std::string out;
  json_writer w(out);
  w.number(d);
  return out;
}
std::string printf17g(double d) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", d);
  return b;
}
}  // namespace

TEST(JsonWriter, PlainAndSimpleEscapes) {
  EXPECT_EQ(esc(""), "\"\"");
  EXPECT_EQ(esc("guest-ping"), "\"guest-ping\"");
  EXPECT_EQ(esc("a/b"), "\"a/b\"");  // '/' is not escaped
  EXPECT_EQ(esc("\" \\ \b \f \n \r \t"), "\"\\\" \\\\ \\b \\f \\n \\r \\t\"");
}

TEST(JsonWriter, ControlCharsAndDelUpperHex) {
  EXPECT_EQ(esc(std::string_view("\x00", 1)), "\"\\u0000\"");
  EXPECT_EQ(esc("\x01\x1f\x0b"), "\"\\u0001\\u001F\\u000B\"");
  EXPECT_EQ(esc("\x7f"), "\"\\u007F\"");
  EXPECT_EQ(esc("x\x1ey"), "\"x\\u001Ey\"");
}

TEST(JsonWriter, NonAsciiAsUpperHex) {
  EXPECT_EQ(esc("\xc3\xa9"), "\"\\u00E9\"");            // é
  EXPECT_EQ(esc("\xc2\x80"), "\"\\u0080\"");
  EXPECT_EQ(esc("\xe2\x82\xac"), "\"\\u20AC\"");        // €
  EXPECT_EQ(esc("\xef\xbf\xbd"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("\xf0\x9f\x98\x80"), "\"\\uD83D\\uDE00\"");  // 😀
  EXPECT_EQ(esc("\xf4\x8f\xbf\xbd"), "\"\\uDBFF\\uDFFD\"");  // U+10FFFD
}

TEST(JsonWriter, InvalidUtf8LikeModUtf8Codepoint) {
  EXPECT_EQ(esc("\xff"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("\xfe"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("\x80"), "\"\\uFFFD\"");                   // lone continuation
  EXPECT_EQ(esc("\x80\x80"), "\"\\uFFFD\\uFFFD\"");        // one per continuation byte
  EXPECT_EQ(esc("\xc0\x80"), "\"\\u0000\"");               // modified UTF-8 NUL
  EXPECT_EQ(esc("\xc0\xaf"), "\"\\uFFFD\"");               // overlong '/' (2 bytes, one FFFD)
  EXPECT_EQ(esc("\xc1\xbf"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("\xe0\x80\x80"), "\"\\uFFFD\"");           // overlong 3-byte NUL
  EXPECT_EQ(esc("\xe0\x9f\xbf"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("\xf0\x80\x80\x80"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("\xed\xa0\x80"), "\"\\uFFFD\"");           // UTF-8-encoded surrogate
  EXPECT_EQ(esc("\xed\xbf\xbf"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("\xf4\x90\x80\x80"), "\"\\uFFFD\"");       // > U+10FFFF
  EXPECT_EQ(esc("\xf8\x88\x80\x80\x80"), "\"\\uFFFD\"");   // 5-byte form
  EXPECT_EQ(esc("\xfc\x84\x80\x80\x80\x80"), "\"\\uFFFD\"");  // 6-byte form
  EXPECT_EQ(esc("\xef\xbf\xbe"), "\"\\uFFFD\"");           // noncharacter U+FFFE
  EXPECT_EQ(esc("\xef\xbf\xbf"), "\"\\uFFFD\"");           // U+FFFF
  EXPECT_EQ(esc("\xef\xb7\x90"), "\"\\uFFFD\"");           // U+FDD0
  EXPECT_EQ(esc("\xf0\x9f\xbf\xbf"), "\"\\uFFFD\"");       // U+1FFFF
  EXPECT_EQ(esc("\xef\xb7\xb0"), "\"\\uFDF0\"");           // just past the range: valid
  // Truncated sequences consume the continuation bytes present, then resume.
  EXPECT_EQ(esc("\xe2\x82"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("\xe2\x82x"), "\"\\uFFFDx\"");
  EXPECT_EQ(esc("\xe2x"), "\"\\uFFFDx\"");
  EXPECT_EQ(esc("\xf0\x9f\x98"), "\"\\uFFFD\"");
  EXPECT_EQ(esc("a\xc3"), "\"a\\uFFFD\"");
  EXPECT_EQ(esc("\xc3\xc3\xa9"), "\"\\uFFFD\\u00E9\"");
}

TEST(JsonWriter, LongAsciiRunsAndMixed) {
  std::string s(10000, 'a');
  s[5000] = '"';
  std::string expect = "\"" + std::string(5000, 'a') + "\\\"" + std::string(4999, 'a') + "\"";
  EXPECT_EQ(esc(s), expect);
}

TEST(JsonWriter, Integers) {
  std::string out;
  json_writer w(out);
  w.begin_array();
  w.integer(0);
  w.integer(-1);
  w.integer(std::numeric_limits<std::int64_t>::min());
  w.uinteger(std::numeric_limits<std::uint64_t>::max());
  w.end_array();
  EXPECT_EQ(out, "[0, -1, -9223372036854775808, 18446744073709551615]");
}

TEST(JsonWriter, DoublesPercent17g) {
  EXPECT_EQ(dbl(0.1), "0.10000000000000001");
  EXPECT_EQ(dbl(1.5e10), "15000000000");
  EXPECT_EQ(dbl(1.2345678901234568e+29), "1.2345678901234568e+29");
  EXPECT_EQ(dbl(1.0), "1");
  EXPECT_EQ(dbl(-0.0), "-0");
  EXPECT_EQ(dbl(1e17), "1e+17");
  EXPECT_EQ(dbl(1e-5), "1.0000000000000001e-05");
  EXPECT_EQ(dbl(HUGE_VAL), "inf");
  EXPECT_EQ(dbl(-HUGE_VAL), "-inf");
  EXPECT_EQ(dbl(std::nan("")), printf17g(std::nan("")));
  EXPECT_EQ(dbl(-std::nan("")), printf17g(-std::nan("")));
  const double cases[] = {0.0,   123.456, 1e300, 5e-324, 2.2250738585072014e-308, 0.5,
                          1e16,  9007199254740993.0, 1.7976931348623157e308, 3.14159,
                          100.0, 1e21,    1e22,  123456789012345678.0, 0.001};
  for (double d : cases) {
    EXPECT_EQ(dbl(d), printf17g(d)) << d;
    EXPECT_EQ(dbl(-d), printf17g(-d)) << -d;
  }
  // Pseudo-random bit patterns.
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 20000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double d;
    std::memcpy(&d, &x, sizeof d);
    if (std::isnan(d)) continue;
    ASSERT_EQ(dbl(d), printf17g(d)) << std::hex << x;
  }
}

TEST(JsonWriter, StructureSeparators) {
  std::string out;
  json_writer w(out);
  w.begin_object();
  w.key("a");
  w.begin_array();
  w.end_array();
  w.key("b");
  w.begin_object();
  w.end_object();
  w.key("c");
  w.begin_array();
  w.string("x");
  w.boolean(true);
  w.null();
  w.begin_object();
  w.key("d");
  w.raw("1");
  w.end_object();
  w.end_array();
  w.end_object();
  EXPECT_EQ(out, R"({"a": [], "b": {}, "c": ["x", true, null, {"d": 1}]})");
}

TEST(JsonWriter, QemuBucketValues) {
  // Distinct buckets keep the pairs below apart; spot-check the hash itself.
  EXPECT_LT(qemu_bucket("return"), qemu_bucket("id"));
  EXPECT_LT(qemu_bucket("id"), qemu_bucket("error"));
  EXPECT_LT(qemu_bucket("class"), qemu_bucket("desc"));
  EXPECT_LT(qemu_bucket("nonexistent"), 512u);
}

// Every order of wire spec §1.3, from the schema insertion orders (qapi-schema.json).
template <std::size_t N, std::size_t M>
constexpr bool ord(const std::array<std::string_view, N>& ins,
                   const std::array<std::string_view, M>& printed) {
  return in_qemu_order(ins, printed);
}
using sv = std::string_view;
TEST(JsonWriter, MemberOrderTable) {
  EXPECT_TRUE((ord<2, 2>({sv("return"), sv("id")}, {sv("return"), sv("id")})));
  EXPECT_TRUE((ord<2, 2>({sv("error"), sv("id")}, {sv("id"), sv("error")})));
  EXPECT_TRUE((ord<2, 2>({sv("class"), sv("desc")}, {sv("class"), sv("desc")})));
  EXPECT_TRUE((ord<2, 2>({sv("version"), sv("supported_commands")},
                         {sv("version"), sv("supported_commands")})));
  EXPECT_TRUE((ord<3, 3>({sv("name"), sv("enabled"), sv("success-response")},
                         {sv("enabled"), sv("name"), sv("success-response")})));
  EXPECT_TRUE((ord<3, 3>({sv("count"), sv("buf-b64"), sv("eof")},
                         {sv("count"), sv("buf-b64"), sv("eof")})));
  EXPECT_TRUE((ord<2, 2>({sv("position"), sv("eof")}, {sv("eof"), sv("position")})));
  EXPECT_TRUE((ord<2, 2>({sv("count"), sv("eof")}, {sv("count"), sv("eof")})));
  EXPECT_TRUE((ord<7, 7>({sv("exited"), sv("exitcode"), sv("signal"), sv("out-data"),
                          sv("err-data"), sv("out-truncated"), sv("err-truncated")},
                         {sv("exitcode"), sv("err-data"), sv("out-data"), sv("err-truncated"),
                          sv("signal"), sv("out-truncated"), sv("exited")})));
  EXPECT_TRUE((ord<4, 4>({sv("name"), sv("hardware-address"), sv("ip-addresses"),
                          sv("statistics")},
                         {sv("name"), sv("ip-addresses"), sv("statistics"),
                          sv("hardware-address")})));
  EXPECT_TRUE((ord<3, 3>({sv("ip-address"), sv("ip-address-type"), sv("prefix")},
                         {sv("ip-address-type"), sv("ip-address"), sv("prefix")})));
  EXPECT_TRUE((ord<3, 3>({sv("logical-id"), sv("online"), sv("can-offline")},
                         {sv("online"), sv("can-offline"), sv("logical-id")})));
  EXPECT_TRUE((ord<3, 3>({sv("load1m"), sv("load5m"), sv("load15m")},
                         {sv("load15m"), sv("load5m"), sv("load1m")})));
  // Omitted members keep the relative order; wrong orders are rejected.
  EXPECT_TRUE((ord<7, 2>({sv("exited"), sv("exitcode"), sv("signal"), sv("out-data"),
                          sv("err-data"), sv("out-truncated"), sv("err-truncated")},
                         {sv("exitcode"), sv("exited")})));
  EXPECT_FALSE((ord<2, 2>({sv("return"), sv("id")}, {sv("id"), sv("return")})));
  EXPECT_FALSE((ord<2, 2>({sv("position"), sv("eof")}, {sv("position"), sv("eof")})));
  EXPECT_FALSE((ord<2, 1>({sv("a"), sv("b")}, {sv("c")})));
  static_assert(in_qemu_order(std::array<sv, 2>{"error", "id"}, std::array<sv, 2>{"id", "error"}));
}

TEST(JsonWriter, SameBucketLaterInsertedFirst) {
  // Find two keys sharing a bucket and check the tie-break.
  std::string a, b;
  for (int i = 0; i < 100000 && b.empty(); ++i) {
    std::string k = "k" + std::to_string(i);
    if (a.empty()) a = k;
    else if (qemu_bucket(k) == qemu_bucket(a)) b = k;
  }
  ASSERT_FALSE(b.empty());
  std::array<sv, 2> ins{a, b};
  EXPECT_TRUE(in_qemu_order(ins, std::array<sv, 2>{b, a}));
  EXPECT_FALSE(in_qemu_order(ins, std::array<sv, 2>{a, b}));
}
