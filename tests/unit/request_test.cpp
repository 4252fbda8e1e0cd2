#include "protocol/request.hpp"

#include <gtest/gtest.h>

#include "protocol/response.hpp"

using namespace fleetga::protocol;

namespace {

class Request : public ::testing::Test {
 protected:
  // Parses `msg` (kept padded by 64 bytes like the framer does) and renders the reply qemu-ga
  // would send for a command returning {} (success) or the error.
  std::string reply(std::string_view msg, bool extended = false) {
    buf_.assign(msg);
    buf_.append(input_padding, '\0');
    frame f;
    f.text = padded_view::for_tests(buf_);
    f.extended = extended;
    ok_ = parser_.parse(f, req_, err_);
    std::string out;
    if (ok_) {
      begin_return(out, false);
      out += "{}";
      end_return(out, req_.id);
    } else {
      write_error(out, err_, req_.id);
    }
    return out;
  }
  std::string err(std::string_view desc, std::string_view id = "") {
    std::string out;
    write_error(out, generic(std::string(desc)), id);
    return out;
  }
  std::string ret(std::string_view id) {
    std::string out;
    begin_return(out, false);
    out += "{}";
    end_return(out, id);
    return out;
  }

  std::string buf_;
  request_parser parser_;
  request req_;
  error err_;
  bool ok_ = false;
};

}  // namespace

TEST_F(Request, Simple) {
  EXPECT_EQ(reply(R"({"execute":"guest-ping"})"), "{\"return\": {}}\n");
  EXPECT_TRUE(ok_);
  EXPECT_EQ(req_.execute, "guest-ping");
  EXPECT_TRUE(req_.arguments.empty());
  EXPECT_TRUE(req_.id.empty());
}

TEST_F(Request, ViewsPointIntoTheBuffer) {
  reply(R"( { "execute" : "guest-sync" , "arguments" : { "id" : 5 } , "id" : "abc" } )");
  ASSERT_TRUE(ok_);
  EXPECT_EQ(req_.execute, "guest-sync");
  EXPECT_EQ(req_.arguments, R"({ "id" : 5 })");
  EXPECT_EQ(req_.id, "\"abc\"");
  auto in = [&](std::string_view v) {
    return v.data() >= buf_.data() && v.data() + v.size() <= buf_.data() + buf_.size();
  };
  EXPECT_TRUE(in(req_.execute));
  EXPECT_TRUE(in(req_.arguments));
  EXPECT_TRUE(in(req_.id));
}

TEST_F(Request, NotAnObject) {
  for (const char* m : {"[]", "[1,2]", "1", "\"s\"", "null", "true", "-1.5"}) {
    EXPECT_EQ(reply(m), err("QMP input must be a JSON object")) << m;
    EXPECT_TRUE(req_.id.empty());
  }
}

TEST_F(Request, UnexpectedMember) {
  EXPECT_EQ(reply(R"({"execute":"guest-ping","foo":1})"),
            err("QMP input member 'foo' is unexpected"));
  EXPECT_EQ(reply(R"({"exec-oob":"guest-ping","id":"q"})"),
            err("QMP input member 'exec-oob' is unexpected", "\"q\""));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","x\u00e9":1})"),
            err("QMP input member 'x\xc3\xa9' is unexpected"));
}

TEST_F(Request, ExecuteNotString) {
  EXPECT_EQ(reply(R"({"execute":1})"), err("QMP input member 'execute' must be a string"));
  EXPECT_EQ(reply(R"({"execute":null,"id":7})"),
            err("QMP input member 'execute' must be a string", "7"));
  EXPECT_EQ(reply(R"({"execute":["guest-ping"]})"),
            err("QMP input member 'execute' must be a string"));
}

TEST_F(Request, ArgumentsNotObject) {
  for (const char* a : {"null", "[]", "1", "\"x\"", "true"}) {
    EXPECT_EQ(reply(std::string(R"({"execute":"guest-ping","arguments":)") + a + "}"),
              err("QMP input member 'arguments' must be an object"))
        << a;
  }
}

TEST_F(Request, LacksExecute) {
  EXPECT_EQ(reply("{}"), err("QMP input lacks member 'execute'"));
  EXPECT_EQ(reply(R"({"id":1})"), err("QMP input lacks member 'execute'", "1"));
  EXPECT_EQ(reply(R"({"arguments":{}})"), err("QMP input lacks member 'execute'"));
}

// Verified against qemu-ga 7.2: the first bad member in QEMU hash order decides.
TEST_F(Request, FirstBadMemberInHashOrderDecides) {
  EXPECT_EQ(reply(R"({"arguments":[],"execute":1})"),
            err("QMP input member 'execute' must be a string"));
  EXPECT_EQ(reply(R"({"execute":1,"foo":1})"), err("QMP input member 'execute' must be a string"));
  EXPECT_EQ(reply(R"({"arguments":1,"foo":2,"id":[]})"),
            err("QMP input member 'arguments' must be an object", "[]"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","x":1,"y":2,"arguments":[],"execute2":3})"),
            err("QMP input member 'x' is unexpected"));
  // Unexpected members beat the missing execute.
  EXPECT_EQ(reply(R"({"foo":1})"), err("QMP input member 'foo' is unexpected"));
}

TEST_F(Request, ExecuteWithEscapesIsDecoded) {
  reply(R"({"execute":"guest-\u0070ing"})");
  ASSERT_TRUE(ok_);
  EXPECT_EQ(req_.execute, "guest-ping");
  reply(R"({"execute":"guest-foo\u00e9","id":"a\u0000b"})");
  EXPECT_EQ(req_.execute, "guest-foo\xc3\xa9");
  EXPECT_EQ(req_.id, "\"a\\u0000b\"");
}

// Verified against qemu-ga 7.2.
TEST_F(Request, IdIsReserialisedLikeQemu) {
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":{"b":1,"a":[1,2.5,"\u00e9"],"id":"x","return":-0}})"),
            ret(R"({"a": [1, 2.5, "\u00E9"], "b": 1, "return": 0, "id": "x"})"));
  EXPECT_EQ(
      reply(R"({"execute":"guest-ping","id":[ 1 , -0, 18446744073709551616, -9223372036854775809, 18446744073709551615, "a\/b", true, null, {}, [], 1E2, 0.5e-1]})"),
      ret(R"([1, 0, 1.8446744073709552e+19, -9.2233720368547758e+18, 18446744073709551615, "a/b", true, null, {}, [], 100, 0.050000000000000003])"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":1.0})"), ret("1"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":1e400})"), ret("inf"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":-1e400})"), ret("-inf"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":0.1})"), ret("0.10000000000000001"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":"\u00e9\ud83d\ude00\t"})"),
            ret(R"("\u00E9\uD83D\uDE00\t")"));
  EXPECT_EQ(reply("{\"execute\":\"guest-ping\",\"id\":\"\xc3\xa9\"}"), ret(R"("\u00E9")"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":"\u007f"})"), ret(R"("\u007F")"));
  EXPECT_EQ(reply("{\"execute\":\"guest-ping\",\"id\":\"\x7f\"}"), ret(R"("\u007F")"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":-9223372036854775808})"),
            ret("-9223372036854775808"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":123456789012345678})"),
            ret("123456789012345678"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":  false  })"), ret("false"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":{"a":{"y":1,"x":2}}})"),
            ret(R"({"a": {"x": 2, "y": 1}})"));
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":-0.0})"), ret("-0"));
  EXPECT_EQ(reply(R"({'execute':'guest-ping','id':"a\u0000\u001f\u007f\ud800\udc00 '"})", true),
            ret(R"("a\u0000\u001F\u007F\uD800\uDC00 '")"));
}

TEST_F(Request, IdFastPathIsAView) {
  reply(R"({"execute":"guest-ping","id":12345})");
  EXPECT_EQ(req_.id, "12345");
  EXPECT_GE(req_.id.data(), buf_.data());
  EXPECT_LT(req_.id.data(), buf_.data() + buf_.size());
  reply(R"({"execute":"guest-ping","id":"plain/ascii id"})");
  EXPECT_EQ(req_.id, "\"plain/ascii id\"");
  EXPECT_GE(req_.id.data(), buf_.data());
  EXPECT_LT(req_.id.data(), buf_.data() + buf_.size());
}

TEST_F(Request, IdEchoedOnValidationErrors) {
  EXPECT_EQ(reply(R"({"execute":"guest-ping","id":{"z":1,"a":2},"bogus":1})"),
            err("QMP input member 'bogus' is unexpected", R"({"a": 2, "z": 1})"));
}

TEST_F(Request, ExtendedSingleQuotes) {
  // Verified against qemu-ga 7.2.
  EXPECT_EQ(reply(R"({'execute':'guest-ping','id':'a"b\'c\u00e9'})", true),
            ret(R"("a\"b'c\u00E9")"));
  EXPECT_EQ(req_.execute, "guest-ping");
  reply(R"({'execute':'guest-sync','arguments':{'id':'x"y', "k":"it\'s"}})", true);
  ASSERT_TRUE(ok_);
  EXPECT_EQ(req_.execute, "guest-sync");
  EXPECT_EQ(req_.arguments, R"({"id":"x\"y", "k":"it's"})");
  // The padding after a normalised message is there too (args decoding re-iterates it).
  EXPECT_EQ(req_.arguments.data()[req_.arguments.size() + 1], '\0');
}

TEST_F(Request, ExtendedOverlongNul) {
  EXPECT_EQ(reply("{\"execute\":\"guest-ping\",\"id\":\"a\xc0\x80z\"}", true),
            ret(R"("a\u0000z")"));
}

TEST_F(Request, ParserReuse) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(reply(R"({"execute":"guest-ping","id":"x\u00e9"})"), ret(R"("x\u00E9")"));
    EXPECT_EQ(reply(R"({"execute":1})"), err("QMP input member 'execute' must be a string"));
  }
}

// {"execute": "name"} skips simdjson (plain_execute); every input, of that shape or near it,
// must come out exactly as the full path gives it (an `extended` frame always takes the full
// path: normalising standard JSON changes nothing).
TEST_F(Request, PlainExecuteFastPathMatchesTheFullPath) {
  const char* inputs[] = {
      R"({"execute":"guest-ping"})",
      R"({ "execute" : "guest-get-users" })",
      "{\n\t\"execute\":\r\n\"guest-info\"\n}\n",
      R"({"execute":"a.b_c-D9"})",
      R"({"execute":"no-such-command"})",
      R"({"execute":""})",
      R"({"execute":"x y"})",
      R"({"execute":"guest\u002dping"})",
      R"({"execute":"guest-ping","arguments":{}})",
      R"({"execute":"guest-ping","id":1})",
      R"({"execute":"guest-ping","foo":1})",
      R"({"execute":1})",
      R"({"execute":"guest-ping"}x)",
      R"({"execute":"guest-ping")",
      R"({"execute" "guest-ping"})",
      R"({"Execute":"guest-ping"})",
      R"({"execute":"guest-ping"}})",
      R"(["execute","guest-ping"])",
      R"({"arguments":{},"execute":"guest-ping"})",
      R"({"execute":"guest-ping","execute":"guest-info"})",
  };
  for (const char* in : inputs) {
    SCOPED_TRACE(in);
    const std::string fast = reply(in, false);
    const bool fast_ok = ok_;
    const std::string fast_exec(req_.execute), fast_args(req_.arguments), fast_id(req_.id);
    const std::string full = reply(in, true);
    EXPECT_EQ(fast, full);
    EXPECT_EQ(fast_ok, ok_);
    EXPECT_EQ(fast_exec, req_.execute);
    EXPECT_EQ(fast_args, req_.arguments);
    EXPECT_EQ(fast_id, req_.id);
  }
  // The fast path hands out a view into the message, like the full path does.
  reply(R"({"execute":"guest-ping"})");
  EXPECT_EQ(req_.execute.data(), buf_.data() + 12);
}
