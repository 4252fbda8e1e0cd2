// Framer conformance: every expectation below was checked against Debian's qemu-ga 7.2
// (raw bytes over -m unix-listen) unless the comment says it is derived from QEMU's source.
#include "protocol/framer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace fp = fleetga::protocol;
using namespace std::string_literals;

namespace {

// "M:<text>" for a message, "X:<text>" for an extended message, "E:<desc>" for an error.
std::string describe(const fp::frame& f) {
  if (f.type == fp::frame::kind::error) return "E:" + std::string(f.error);
  return (f.extended ? "X:" : "M:") + std::string(f.text);
}

void drain(fp::framer& fr, std::vector<std::string>& out) {
  fp::frame f;
  while (fr.next(f)) {
    if (f.type == fp::frame::kind::message) {
      // The padding after a message must be readable (ASan checks this in sanitizer builds).
      volatile char sink = 0;
      for (std::size_t i = 0; i < fp::input_padding; ++i) sink = sink ^ f.text.data()[f.text.size() + i];
      (void)sink;
    }
    out.push_back(describe(f));
  }
}

void feed(fp::framer& fr, std::string_view in, std::vector<std::string>& out) {
  auto span = fr.prepare(in.size());
  ASSERT_GE(span.size(), in.size());
  std::memcpy(span.data(), in.data(), in.size());
  fr.commit(in.size());
  drain(fr, out);
}

std::vector<std::string> frames(std::string_view in, std::size_t chunk = 0) {
  fp::framer fr;
  std::vector<std::string> out;
  if (chunk == 0) chunk = std::max<std::size_t>(in.size(), 1);
  for (std::size_t pos = 0; pos < in.size(); pos += chunk) feed(fr, in.substr(pos, chunk), out);
  return out;
}

using V = std::vector<std::string>;

const std::string kPing = R"({"execute":"guest-ping"})";
const std::string kPingC = R"({"execute":"guest-ping","id":"C"})";

}  // namespace

// ---- §1.1 framing --------------------------------------------------------------------

TEST(Framer, ObjectWithoutNewlineIsAnsweredAtOnce) { EXPECT_EQ(frames(kPing), V{"M:" + kPing}); }

TEST(Framer, TwoObjectsInOneRead) {
  EXPECT_EQ(frames(kPing + kPingC), (V{"M:" + kPing, "M:" + kPingC}));
}

TEST(Framer, ObjectSplitOverThreeWrites) {
  fp::framer fr;
  V out;
  feed(fr, R"({"exec)", out);
  EXPECT_TRUE(out.empty());
  feed(fr, R"(ute":"guest)", out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(fr.pending_bytes(), 17u);
  feed(fr, R"(-ping"})", out);
  EXPECT_EQ(out, V{"M:" + kPing});
  EXPECT_EQ(fr.pending_bytes(), 0u);
}

TEST(Framer, TopLevelStringIsImmediate) { EXPECT_EQ(frames(R"("abc")"), V{R"(M:"abc")"}); }

TEST(Framer, TopLevelNumberAndKeywordNeedLookahead) {
  fp::framer fr;
  V out;
  feed(fr, "123", out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(fr.pending_bytes(), 3u);
  feed(fr, "\n", out);
  EXPECT_EQ(out, V{"M:123"});
  out.clear();
  feed(fr, "true", out);
  EXPECT_TRUE(out.empty());
  feed(fr, "{}", out);  // any byte terminates it, and is then lexed itself
  EXPECT_EQ(out, (V{"M:true", "M:{}"}));
}

TEST(Framer, NumbersFollowedByStructure) {
  EXPECT_EQ(frames("1[2]-3.5e+2 0 "), (V{"M:1", "M:[2]", "M:-3.5e+2", "M:0"}));
}

TEST(Framer, WhitespaceOnlyProducesNothing) {
  fp::framer fr;
  V out;
  feed(fr, " \t\r\n\n  \n", out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(fr.pending_bytes(), 0u);
}

TEST(Framer, WhitespaceInsideMessageIsKept) {
  EXPECT_EQ(frames("{ \"a\" : [ 1 , 2 ] }\n"), V{"M:{ \"a\" : [ 1 , 2 ] }"});
}

TEST(Framer, ScalarsAtTopLevelAreSeparateMessages) {
  // "a":1 at top level: a string message, then ':' ("expecting value"), then 1.
  EXPECT_EQ(frames("\"a\":1 "), (V{"M:\"a\"", "E:JSON parse error, expecting value", "M:1"}));
}

TEST(Framer, ExtendedSyntax) {
  EXPECT_EQ(frames("{'execute':'guest-ping'}"), V{"X:{'execute':'guest-ping'}"});
  EXPECT_EQ(frames(R"({"a":"it\'s"})"), V{R"(X:{"a":"it\'s"})"});
  EXPECT_EQ(frames("{\"a\":\"x\xC0\x80y\"}"), V{"X:{\"a\":\"x\xC0\x80y\"}"});
  EXPECT_EQ(frames("'say \"hi\"'"), V{"X:'say \"hi\"'"});
  // Standard JSON, also with escapes and UTF-8, is not extended.
  EXPECT_EQ(frames(R"({"a":"\u00e9\"\\\/\b\f\n\r\t\u0000"})"), V{R"(M:{"a":"\u00e9\"\\\/\b\f\n\r\t\u0000"})"});
  EXPECT_EQ(frames("[\"\xC3\xA9\xF0\x9F\x98\x80\"]"), V{"M:[\"\xC3\xA9\xF0\x9F\x98\x80\"]"});
  // The flag is per message.
  EXPECT_EQ(frames("['a'][\"a\"]"), (V{"X:['a']", "M:[\"a\"]"}));
}

// ---- §1.2 error recovery --------------------------------------------------------------

TEST(Framer, LoneFF) { EXPECT_EQ(frames("\xff"), V{"E:JSON parse error, stray '\xff'"}); }

TEST(Framer, FFInsideStringThenRequest) {
  EXPECT_EQ(frames("{\"execute\":\"guest-pi\xff" + kPingC),
            (V{"E:JSON parse error, stray '\"guest-pi\xff'", "M:" + kPingC}));
}

TEST(Framer, GarbageBeforeRequest) {
  EXPECT_EQ(frames("@@@ " + kPingC), (V{"E:JSON parse error, stray '@'", "M:" + kPingC}));
}

TEST(Framer, WordsBeforeRequest) {
  EXPECT_EQ(frames("hello world " + kPingC),
            (V{"E:JSON parse error, invalid keyword 'hello'", "E:JSON parse error, invalid keyword 'world'",
               "M:" + kPingC}));
}

TEST(Framer, FFInsideStringThenStrayBrace) {
  EXPECT_EQ(frames("{\"execute\":\"gu\xff" "est\"}"),
            (V{"E:JSON parse error, stray '\"gu\xff'", "E:JSON parse error, expecting value"}));
}

TEST(Framer, NulThenRequest) {
  EXPECT_EQ(frames("\0"s + kPingC), (V{"E:JSON parse error, stray ''", "M:" + kPingC}));
}

TEST(Framer, StrayTextIsCutAtNul) {
  EXPECT_EQ(frames("\"ab\0cd"s), V{"E:JSON parse error, stray '\"ab'"});
}

TEST(Framer, BomThenRequest) {
  EXPECT_EQ(frames("\xEF\xBB\xBF" + kPingC), (V{"E:JSON parse error, stray '\xEF'", "M:" + kPingC}));
}

TEST(Framer, StrayClosersAreExpectingValue) {
  EXPECT_EQ(frames("}"), V{"E:JSON parse error, expecting value"});
  EXPECT_EQ(frames("]"), V{"E:JSON parse error, expecting value"});
  // A negative count ends the message at once.
  EXPECT_EQ(frames("[}]"), (V{"E:JSON parse error, expecting value", "E:JSON parse error, expecting value"}));
  EXPECT_EQ(frames("[1}"), V{"E:JSON parse error, expected separator in list"});
  EXPECT_EQ(frames("{\"a\"]"), V{"E:JSON parse error, missing : in object pair"});
}

TEST(Framer, StrayDropsPartialMessage) {
  EXPECT_EQ(frames("{\"a\":[1,2,@" + kPing), (V{"E:JSON parse error, stray '@'", "M:" + kPing}));
}

TEST(Framer, RecoveryStopsAtStructuralAndControlBytes) {
  // TAB does not end recovery, LF does (and the rest is lexed again).
  EXPECT_EQ(frames("@\ta "), V{"E:JSON parse error, stray '@'"});
  EXPECT_EQ(frames("@\na "), (V{"E:JSON parse error, stray '@'", "E:JSON parse error, invalid keyword 'a'"}));
  // 0xFF, 0xFE and other control bytes end recovery and are errors themselves.
  EXPECT_EQ(frames("@\xff"), (V{"E:JSON parse error, stray '@'", "E:JSON parse error, stray '\xff'"}));
  EXPECT_EQ(frames("@x\xfe"), (V{"E:JSON parse error, stray '@'", "E:JSON parse error, stray '\xfe'"}));
  EXPECT_EQ(frames("@x\x01"), (V{"E:JSON parse error, stray '@'", "E:JSON parse error, stray '\x01'"}));
  // Structural bytes restart lexing at themselves.
  EXPECT_EQ(frames("@abc}"), (V{"E:JSON parse error, stray '@'", "E:JSON parse error, expecting value"}));
  EXPECT_EQ(frames("@abc[1]"), (V{"E:JSON parse error, stray '@'", "M:[1]"}));
}

TEST(Framer, RawControlBytesInStrings) {
  EXPECT_EQ(frames("\"a\tb\""), (V{"E:JSON parse error, stray '\"a\t'"}));  // then '"' opens a string
  // The bad byte belongs to the error token, so recovery starts after it and skips b" .
  EXPECT_EQ(frames("\"a\nb\" "), V{"E:JSON parse error, stray '\"a\n'"});
  EXPECT_EQ(frames("\"\\\x01"), V{"E:JSON parse error, stray '\"\\\x01'"});
  EXPECT_EQ(frames("\"a\xfe"), V{"E:JSON parse error, stray '\"a\xfe'"});
  // DEL is an ordinary character.
  EXPECT_EQ(frames("\"\x7f\""), V{"M:\"\x7f\""});
}

// ---- numbers and keywords ---------------------------------------------------------------

TEST(Framer, Numbers) {
  EXPECT_EQ(frames("[0,-0,1.5,-1.5e10,2E-3,0.5e+7,12345678901234567890123]"),
            V{"M:[0,-0,1.5,-1.5e10,2E-3,0.5e+7,12345678901234567890123]"});
  EXPECT_EQ(frames("01"), V{"E:JSON parse error, stray '01'"});
  EXPECT_EQ(frames("-a"), V{"E:JSON parse error, stray '-a'"});
  EXPECT_EQ(frames("1e}"), V{"E:JSON parse error, stray '1e}'"});  // the '}' is part of the bad token
  EXPECT_EQ(frames("1. "), V{"E:JSON parse error, stray '1. '"});
  EXPECT_EQ(frames("1e+x"), V{"E:JSON parse error, stray '1e+x'"});
  EXPECT_EQ(frames(".5 "), V{"E:JSON parse error, stray '.'"});
  EXPECT_EQ(frames("+1 "), V{"E:JSON parse error, stray '+'"});
  // "0e5" is 0, then the keyword e, then 5.
  EXPECT_EQ(frames("0e5 "), (V{"M:0", "E:JSON parse error, invalid keyword 'e'", "M:5"}));
  // A lone '-' waits for more.
  EXPECT_TRUE(frames("-").empty());
}

TEST(Framer, Keywords) {
  EXPECT_EQ(frames("[true,false,null]"), V{"M:[true,false,null]"});
  EXPECT_EQ(frames("TRUE"), V{"E:JSON parse error, stray 'T'"});
  EXPECT_EQ(frames("Infinity"), V{"E:JSON parse error, stray 'I'"});
  EXPECT_EQ(frames("NaN"), V{"E:JSON parse error, stray 'N'"});
  EXPECT_EQ(frames("nan "), V{"E:JSON parse error, invalid keyword 'nan'"});
  EXPECT_EQ(frames("trUe "), (V{"E:JSON parse error, invalid keyword 'tr'", "E:JSON parse error, stray 'U'"}));
  EXPECT_EQ(frames("[1,abc]"), V{"E:JSON parse error, invalid keyword 'abc'"});
}

TEST(Framer, LongKeywordErrorIsCutLikeVsnprintf) {
  const std::string kw(3000, 'x');
  const auto out = frames("[" + kw + "]");
  ASSERT_EQ(out.size(), 1u);
  // QEMU formats the message part into char[1024].
  std::string msg = "invalid keyword '" + kw + "'";
  msg.resize(1023);
  EXPECT_EQ(out[0], "E:JSON parse error, " + msg);
}

// ---- parser error texts ----------------------------------------------------------------

TEST(Framer, ParserErrors) {
  EXPECT_EQ(frames(","), V{"E:JSON parse error, expecting value"});
  EXPECT_EQ(frames("[,"), V{});  // still open
  EXPECT_EQ(frames("[,]"), V{"E:JSON parse error, expecting value"});
  EXPECT_EQ(frames("[1,]"), V{"E:JSON parse error, expecting value"});
  EXPECT_EQ(frames("{\"a\":}"), V{"E:JSON parse error, expecting value"});
  EXPECT_EQ(frames("{\"a\":1,}"), V{"E:JSON parse error, expecting value"});
  EXPECT_EQ(frames("{:1}"), V{"E:JSON parse error, expecting value"});
  EXPECT_EQ(frames("[1 2]"), V{"E:JSON parse error, expected separator in list"});
  EXPECT_EQ(frames("[1:2]"), V{"E:JSON parse error, expected separator in list"});
  EXPECT_EQ(frames("{\"a\":1 \"b\":2}"), V{"E:JSON parse error, expected separator in dict"});
  EXPECT_EQ(frames("{\"a\" 1}"), V{"E:JSON parse error, missing : in object pair"});
  EXPECT_EQ(frames("{\"a\",1}"), V{"E:JSON parse error, missing : in object pair"});
  EXPECT_EQ(frames("{1:2}"), V{"E:JSON parse error, key is not a string in object"});
  EXPECT_EQ(frames("{true:2}"), V{"E:JSON parse error, key is not a string in object"});
  EXPECT_EQ(frames("{{}:2}"), V{"E:JSON parse error, key is not a string in object"});
  EXPECT_EQ(frames("{[1,2]:2}"), V{"E:JSON parse error, key is not a string in object"});
  EXPECT_EQ(frames("{[1 2]:2}"), V{"E:JSON parse error, expected separator in list"});  // first error wins
  EXPECT_EQ(frames("{abc:1}"), V{"E:JSON parse error, invalid keyword 'abc'"});
  EXPECT_EQ(frames("{'a':1}"), V{"X:{'a':1}"});
  // One error frame per message, whatever follows inside it.
  EXPECT_EQ(frames("[1 2 3 , , }}]] " + kPing),
            (V{"E:JSON parse error, expected separator in list", "E:JSON parse error, expecting value",
               "E:JSON parse error, expecting value", "E:JSON parse error, expecting value", "M:" + kPing}));
}

TEST(Framer, StringErrors) {
  EXPECT_EQ(frames(R"("\q")"), V{"E:JSON parse error, invalid escape sequence in string"});
  EXPECT_EQ(frames(R"(["ok","\x"])"), V{"E:JSON parse error, invalid escape sequence in string"});
  EXPECT_EQ(frames(R"("\ud800")"), V{R"(E:JSON parse error, \ud800 is not a valid Unicode character)"});
  EXPECT_EQ(frames(R"("\udc00x")"), V{R"(E:JSON parse error, \udc00 is not a valid Unicode character)"});
  EXPECT_EQ(frames(R"("\ud800\u0041")"), V{R"(E:JSON parse error, \ud800 is not a valid Unicode character)"});
  EXPECT_EQ(frames(R"("\uFFFF")"), V{R"(E:JSON parse error, \uFFFF is not a valid Unicode character)"});
  EXPECT_EQ(frames(R"("\ufdd0")"), V{R"(E:JSON parse error, \ufdd0 is not a valid Unicode character)"});
  EXPECT_EQ(frames(R"("\ud83f\udfff")"), V{R"(E:JSON parse error, \ud83f\udfff is not a valid Unicode character)"});
  EXPECT_EQ(frames(R"("\u12")"), V{R"(E:JSON parse error, \u12" is not a valid Unicode character)"});
  EXPECT_EQ(frames(R"("\u")"), V{R"(E:JSON parse error, \u" is not a valid Unicode character)"});
  EXPECT_EQ(frames(R"("\ud83d\ude00")"), V{R"(M:"\ud83d\ude00")"});
  EXPECT_EQ(frames("\"\xC3\""), V{"E:JSON parse error, invalid UTF-8 sequence in string"});
  EXPECT_EQ(frames("\"\x80\""), V{"E:JSON parse error, invalid UTF-8 sequence in string"});
  EXPECT_EQ(frames("\"\xED\xA0\x80\""), V{"E:JSON parse error, invalid UTF-8 sequence in string"});  // surrogate
  EXPECT_EQ(frames("\"\xEF\xBF\xBF\""), V{"E:JSON parse error, invalid UTF-8 sequence in string"});  // U+FFFF
  EXPECT_EQ(frames("\"\xE0\x80\x80\""), V{"E:JSON parse error, invalid UTF-8 sequence in string"});  // overlong
  EXPECT_EQ(frames("\"\xF4\x90\x80\x80\""), V{"E:JSON parse error, invalid UTF-8 sequence in string"});
  EXPECT_EQ(frames("\"\xF4\x8F\xBF\xBF\""), V{"E:JSON parse error, invalid UTF-8 sequence in string"});  // U+10FFFF
  EXPECT_EQ(frames("\"\xF0\x9F\x98\x80\""), V{"M:\"\xF0\x9F\x98\x80\""});
  // A string error is reported in token order, before later grammar errors.
  EXPECT_EQ(frames(R"({"\q" 1})"), V{"E:JSON parse error, invalid escape sequence in string"});
  EXPECT_EQ(frames(R"([1 "\q"])"), V{"E:JSON parse error, expected separator in list"});
}

// ---- duplicate keys ---------------------------------------------------------------------

TEST(Framer, DuplicateKeys) {
  EXPECT_EQ(frames(R"({"a":1,"a":2})"), V{"E:JSON parse error, duplicate key"});
  EXPECT_EQ(frames(R"({"execute":"x","arguments":{"b":1,"b":2}})"), V{"E:JSON parse error, duplicate key"});
  EXPECT_EQ(frames(R"([{"x":[{"b":1,"c":{},"b":2}]}])"), V{"E:JSON parse error, duplicate key"});
  EXPECT_EQ(frames(R"({"a":{"x":1},"a":2})"), V{"E:JSON parse error, duplicate key"});
  // Same key in different objects is fine, also after the inner object closed.
  EXPECT_EQ(frames(R"({"a":{"a":{"a":1}},"b":{"a":2},"c":[{"a":1},{"a":1}]})"),
            V{R"(M:{"a":{"a":{"a":1}},"b":{"a":2},"c":[{"a":1},{"a":1}]})"});
  // Keys compare decoded.
  EXPECT_EQ(frames(R"({"\u0061":1,"a":2})"), V{"E:JSON parse error, duplicate key"});
  EXPECT_EQ(frames(R"({'a':1,"a":2})"), V{"E:JSON parse error, duplicate key"});
  EXPECT_EQ(frames(R"({"\'":1,"'":2})"), V{"E:JSON parse error, duplicate key"});
  EXPECT_EQ(frames("{\"\\u0000\":1,\"\xC0\x80\":2}"), V{"E:JSON parse error, duplicate key"});
  EXPECT_EQ(frames(R"({"\ud83d\ude00":1,"😀":2})"), V{"E:JSON parse error, duplicate key"});
  EXPECT_EQ(frames(R"({"a":1,"A":2,"a ":3})"), V{R"(M:{"a":1,"A":2,"a ":3})"});
  // The duplicate is detected after the member's value: errors inside the value come first.
  EXPECT_EQ(frames(R"({"a":1,"a":[1 2]})"), V{"E:JSON parse error, expected separator in list"});
  EXPECT_EQ(frames(R"({"a":1,"a" 2})"), V{"E:JSON parse error, missing : in object pair"});
}

TEST(Framer, DuplicateKeyAmongManyKeys) {
  std::string big = "{";
  for (int i = 0; i < 20000; ++i) big += "\"k" + std::to_string(i) + "\":{\"k" + std::to_string(i) + "\":1},";
  EXPECT_EQ(frames(big + "\"end\":0}"), V{"M:" + big + "\"end\":0}"});
  EXPECT_EQ(frames(big + "\"k12345\":0}"), V{"E:JSON parse error, duplicate key"});
}

// ---- limits ---------------------------------------------------------------------------------

TEST(Framer, NestingLimit) {
  const std::string ok = std::string(1024, '[') + std::string(1024, ']');
  EXPECT_EQ(frames(ok), V{"M:" + ok});
  const std::string mixed = [] {
    std::string s;
    for (int i = 0; i < 600; ++i) s += "{\"a\":";
    s += std::string(424, '[') + std::string(424, ']') + std::string(600, '}');
    return s;
  }();
  EXPECT_EQ(frames(mixed), V{"M:" + mixed});
  // The 1025th opener trips the limit; the partial message is dropped, and each of the 1025
  // closers then is a stray message of its own.
  const auto out = frames(std::string(1025, '[') + std::string(1025, ']'));
  ASSERT_EQ(out.size(), 1026u);
  EXPECT_EQ(out[0], "E:JSON nesting depth limit exceeded");
  for (std::size_t i = 1; i < out.size(); ++i) EXPECT_EQ(out[i], "E:JSON parse error, expecting value");
}

TEST(Framer, TokenCountLimit) {
  // '[' + 2^20 x "1," + ']' is 2^21 + 2 tokens... build exactly 2Mi and 2Mi+1.
  std::string exact = "[";  // 1 + 2*(2^20 - 1) + 1 = 2^21 tokens; trailing comma -> parser error
  for (std::size_t i = 0; i + 1 < (std::size_t{1} << 20); ++i) exact += "1,";
  exact += "]";
  EXPECT_EQ(frames(exact), V{"E:JSON parse error, expecting value"});
  std::string over = exact;  // 2^21 + 1 tokens: the limit trips on the final ']'
  over.insert(over.size() - 1, "1");
  EXPECT_EQ(frames(over + kPing), (V{"E:JSON token count limit exceeded", "M:" + kPing}));
}

TEST(Framer, TokenSizeLimitSingleToken) {
  // '"' + 64 MiB of 'a': the token passes MAX_TOKEN_SIZE inside the lexer, the message is
  // dropped and the rest ("]) is lexed as fresh input: a new string, ended by a raw LF.
  std::string big = "[\"" + std::string(fp::max_token_size, 'a') + "\"]\n";
  fp::framer fr;
  V out;
  for (std::size_t pos = 0; pos < big.size(); pos += 1 << 20) feed(fr, std::string_view(big).substr(pos, 1 << 20), out);
  EXPECT_EQ(out, (V{"E:JSON token size limit exceeded", "E:JSON parse error, stray '\"]\n'"}));
  EXPECT_EQ(fr.pending_bytes(), 0u);
}

TEST(Framer, TokenSizeLimitBoundaries) {
  // A string token of 64 MiB - 1 bytes is accepted; 64 MiB trips the streamer's check
  // (token_size + len + 1 > MAX) when the token completes. Verified against qemu-ga.
  std::string s = "\"" + std::string(fp::max_token_size - 3, 'a') + "\"";
  {
    const auto out = frames(s, 1 << 20);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].size(), 2 + fp::max_token_size - 1);
    EXPECT_EQ(out[0].substr(0, 4), "M:\"a");
  }
  s.insert(1, "a");
  EXPECT_EQ(frames(s + kPing, 1 << 20), (V{"E:JSON token size limit exceeded", "M:" + kPing}));
  // The sum of all token bytes is limited too.
  const std::string half(fp::max_token_size / 2, 'b');
  EXPECT_EQ(frames("[\"" + half + "\",\"" + half + "\"]", 1 << 20),
            (V{"E:JSON token size limit exceeded", "E:JSON parse error, expecting value"}));
}

// ---- memory --------------------------------------------------------------------------------

TEST(Framer, LongWhitespaceRunsInsideAMessageAreSqueezed) {
  fp::framer fr;
  V out;
  feed(fr, "{\"a\":", out);
  const std::string spaces(1 << 16, ' ');
  std::size_t max_span = 0;
  for (int i = 0; i < 1024; ++i) {  // 64 MiB of whitespace inside one pending message
    auto span = fr.prepare(spaces.size());
    max_span = std::max(max_span, span.size());
    std::memcpy(span.data(), spaces.data(), spaces.size());
    fr.commit(spaces.size());
    drain(fr, out);
    ASSERT_LE(fr.pending_bytes(), 5u + 8u);
  }
  EXPECT_LT(max_span, std::size_t{1} << 20);  // the buffer never grew with the whitespace
  feed(fr, "1\n\n\n\n\n\n\n\n\n\n}", out);
  EXPECT_EQ(out, V{"M:{\"a\":        1\n\n\n\n\n\n\n\n}"});
}

TEST(Framer, SqueezingKeepsShortRunsAndTokens) {
  const std::string in = "{ \"a b\"  :\t[ 1 ,                     \"  x  \"          ]  ,\r\n  \"c\":'d'}";
  const std::string want = "{ \"a b\"  :\t[ 1 ,        \"  x  \"        ]  ,\r\n  \"c\":'d'}";
  for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{7}}) {
    EXPECT_EQ(frames(in, chunk), V{"X:" + want}) << chunk;
  }
}

TEST(Framer, WhitespaceBetweenMessagesCostsNothing) {
  fp::framer fr;
  V out;
  const std::string spaces(1 << 16, '\n');
  for (int i = 0; i < 256; ++i) {
    feed(fr, spaces, out);
    ASSERT_EQ(fr.pending_bytes(), 0u);
  }
  feed(fr, kPing, out);
  EXPECT_EQ(out, V{"M:" + kPing});
}

TEST(Framer, RecoveryGarbageCostsNothing) {
  fp::framer fr;
  V out;
  feed(fr, "@", out);
  const std::string junk(1 << 16, 'x');
  for (int i = 0; i < 64; ++i) {
    feed(fr, junk, out);
    ASSERT_EQ(fr.pending_bytes(), 0u);
  }
  feed(fr, kPing, out);
  EXPECT_EQ(out, (V{"E:JSON parse error, stray '@'", "M:" + kPing}));
}

TEST(Framer, BufferShrinksAfterHugeMessage) {
  fp::framer fr;
  V out;
  const std::string big = "\"" + std::string(32 << 20, 'a') + "\"";
  for (std::size_t pos = 0; pos < big.size(); pos += 1 << 20) feed(fr, std::string_view(big).substr(pos, 1 << 20), out);
  ASSERT_EQ(out.size(), 1u);
  feed(fr, kPing, out);
  EXPECT_LT(fr.prepare(4096).size(), std::size_t{1} << 20);
}

// ---- split equivalence ----------------------------------------------------------------------

TEST(Framer, SplitAtEveryPointEqualsWhole) {
  const std::vector<std::string> corpus = {
      kPing + kPingC,
      "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":12345}}\n123 true \"s\" 'q'",
      "{ \"a\" :                 [1.5e3, -0, null, {\"b\":\"\\u00e9\\\"\\'\"}] }",
      "@@@ hello \xff{\"a\":\"x\xff\"}[}]\x00\xEF\xBB\xBF{\"a\":1,\"a\":2}",
      "[1 2]{\"a\" 1}{1:2}[\"\\ud800\"][\"\xC3\"]{\"k\":\"\\q\"}01 -a 1e} .5 TRUE nan ",
      "\"ab\ncd\" [\"\\\x01\"] {'a':\"\xC0\x80\"} [[[[]]]] ]]",
  };
  for (const auto& in : corpus) {
    const V whole = frames(in);
    EXPECT_EQ(frames(in, 1), whole) << in;
    for (std::size_t cut = 1; cut < in.size(); ++cut) {
      fp::framer fr;
      V out;
      feed(fr, std::string_view(in).substr(0, cut), out);
      feed(fr, std::string_view(in).substr(cut), out);
      ASSERT_EQ(out, whole) << "cut at " << cut << " of " << in;
    }
  }
}

TEST(Framer, PrepareSmallReadsIntoBigMessage) {
  // The session may ask for little space at a time; messages still come out contiguous.
  std::string msg = "{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":1,\"buf-b64\":\"";
  msg += std::string(300000, 'Q') + "\"}}";
  fp::framer fr;
  V out;
  for (std::size_t pos = 0; pos < msg.size(); pos += 4096) {
    const std::size_t n = std::min<std::size_t>(4096, msg.size() - pos);
    auto span = fr.prepare(n);
    ASSERT_GE(span.size(), n);
    std::memcpy(span.data(), msg.data() + pos, n);
    fr.commit(n);
    drain(fr, out);
  }
  EXPECT_EQ(out, V{"M:" + msg});
}

TEST(Framer, ViewsStayValidUntilNextCall) {
  fp::framer fr;
  V out;
  auto span = fr.prepare(64);
  const std::string in = kPing + "[1]" + kPingC;
  std::memcpy(span.data(), in.data(), in.size());
  fr.commit(in.size());
  fp::frame a;
  ASSERT_TRUE(fr.next(a));
  const std::string first(a.text);
  EXPECT_EQ(first, kPing);
  ASSERT_TRUE(fr.next(a));
  EXPECT_EQ(a.text, "[1]");
  ASSERT_TRUE(fr.next(a));
  EXPECT_EQ(a.text, kPingC);
  EXPECT_FALSE(fr.next(a));
}

// ---- the fast path (plain messages between messages) agrees with the general path --------
// Fed whole, a plain complete message takes the fast path; fed one byte at a time no message
// is ever complete when the framer looks, so the general path takes every byte. The two must
// give the same frames for anything: plain messages, and near misses built to hit each of the
// fast path's refusals.

namespace {

std::vector<std::string> fast_path_corpus() {
  std::vector<std::string> c = {
      kPing,
      kPingC,
      R"({"execute":"guest-sync","arguments":{"id":1234567890123}})",
      R"({ "execute" : "guest-exec" , "arguments" : { "path" : "/bin/sh" , "arg" : [ "-c" , "true" ] , "capture-output" : true } })",
      R"({"execute":"guest-file-open","arguments":{"path":"/tmp/x","mode":"w+"}})",
      R"({"a":[],"b":{},"c":[[],{}],"d":null,"e":false,"f":-0,"g":0,"h":-12})",
      "{\t\"execute\":\r\n\"guest-ping\"\n}",
      R"({"a":1,"a":2})",                      // duplicate key
      R"({"a":{"b":1,"b":1}})",                // duplicate key inside
      R"({"a":{"b":1},"b":{"b":1}})",          // same key in different objects: fine
      R"({"a":1}{"b":2})",                     // two messages back to back
      R"({"a":01})",                           // leading zero
      R"({"a":1.5})", R"({"a":1e5})", R"({"a":1E+5})", R"({"a":-})", R"({"a":-x})",
      R"({"a":tru})", R"({"a":truex})", R"({"a":trueX})", R"({"a":nul})", R"({"a":True})",
      R"({"a":"b\"c"})", R"({"a":"\u00e9"})", R"({'a':1})", R"({"a":'b'})", R"({"it's":1})",
      "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\x7f\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}",
      R"({"a" 1})", R"({"a":1,})", R"({,"a":1})", R"({"a":1 "b":2})", R"({"a":[1,]})",
      R"({"a":[1 2]})", R"({"a":]})", R"({"a":}})", R"({1:2})", R"({"a":1]})", R"({"a":[1}})",
      R"({"a":1}})", R"([{"a":1}])", R"("str")", R"(42)", "\xff{\"a\":1}", "\xff\n" + kPing,
      "{\"a\":         1}",  // a 9-byte whitespace run: squeezed by the general path
      "{\"a\":        1}",   // 8 bytes: kept
      "{\"a\":1",            // incomplete
      "{\"a\":12",           // an integer that might go on
      "{\"a\":tr",
  };
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "{\"k\":";
  deep += "1";
  for (int i = 0; i < 40; ++i) deep += "}";
  c.push_back(deep);
  std::string many = "{";
  for (int i = 0; i < 70; ++i) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  c.push_back(many + "}");
  c.push_back(many + ",\"k3\":0}");  // a duplicate past the fast path's key table
  return c;
}

}  // namespace

TEST(FramerFastPath, AgreesWithTheGeneralPathOnTheCorpus) {
  for (const auto& in : fast_path_corpus()) {
    EXPECT_EQ(frames(in), frames(in, 1)) << in;
    // And in a pipelined stream: behind a plain message, before another.
    const std::string stream = kPing + "\n" + in + "\n" + kPingC;
    EXPECT_EQ(frames(stream), frames(stream, 1)) << stream;
  }
}

TEST(FramerFastPath, AgreesWithTheGeneralPathOnMutations) {
  // Every corpus entry with one byte replaced, inserted or deleted (three tries at every
  // position), by a byte from the set that matters to the grammar.
  const std::string alphabet = "{}[]:,\"'\\ \t\n0159-.eEtrufalsn\x7f\x80\xc3\xff";
  std::uint64_t x = 0x243F6A8885A308D3ull;
  auto rnd = [&x]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  std::size_t checked = 0;
  for (const auto& base : fast_path_corpus()) {
    for (std::size_t pos = 0; pos <= 3 * base.size() + 2; ++pos) {
      std::string m = base;
      const char c = alphabet[rnd() % alphabet.size()];
      switch (rnd() % 3) {
        case 0:
          if (pos / 3 < m.size()) m[pos / 3] = c;
          break;
        case 1:
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(pos / 3), c);
          break;
        default:
          if (pos / 3 < m.size()) m.erase(pos / 3, 1);
      }
      m += "\n" + kPing;
      ASSERT_EQ(frames(m), frames(m, 1)) << m;
      ++checked;
    }
  }
  EXPECT_GT(checked, 7000u);
}

// simdjson's padding rule as a type: a padded_view comes from the framer's buffer (or, in tests,
// from a string that carries the padding), never from a bare view or pointer.
static_assert(!std::is_constructible_v<fp::padded_view, std::string_view>);
static_assert(!std::is_constructible_v<fp::padded_view, const char*, std::size_t>);
static_assert(!std::is_convertible_v<std::string_view, fp::padded_view>);
static_assert(fp::padded_view::padding == fp::input_padding);

TEST(Framer, TestFactoryLeavesThePaddingOutOfTheText) {
  const std::string padded = "{}" + std::string(fp::padded_view::padding, '\0');
  const fp::padded_view v = fp::padded_view::for_tests(padded);
  EXPECT_EQ(v, "{}");
  EXPECT_EQ(v.data(), padded.data());
  EXPECT_EQ(v.size(), 2u);
}
