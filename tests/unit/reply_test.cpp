// protocol/reply.hpp: members listed once in schema order, printed in QEMU's order.
#include "protocol/reply.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace fleetga::test {
namespace {

struct inner {
  std::string name;
  std::uint64_t size = 0;
};
struct outer {
  std::int64_t id = 0;
  std::optional<std::string> comment;
  std::vector<inner> parts;
  bool ok = false;
  double ratio = 0;
};

}  // namespace
}  // namespace fleetga::test

template <>
struct fleetga::protocol::reply_schema<fleetga::test::inner> {
  static constexpr auto members =
      std::make_tuple(reply_member("name", &test::inner::name), reply_member("size", &test::inner::size));
};
template <>
struct fleetga::protocol::reply_schema<fleetga::test::outer> {
  static constexpr auto members =
      std::make_tuple(reply_member("id", &test::outer::id), reply_member("comment", &test::outer::comment),
                      reply_member("parts", &test::outer::parts), reply_member("ok", &test::outer::ok),
                      reply_member("ratio", &test::outer::ratio));
};

namespace fleetga::test {
namespace {

TEST(Reply, MembersInQemuOrderOptionalsLeftOutNestedAndLists) {
  constexpr auto printed = protocol::qemu_printed(protocol::reply_detail::member_names<outer>());
  // The order the writer uses is the one qemu_print_order() gives for the schema order.
  outer v{
      -3, std::nullopt, {{"a", 1}, {"b\"", 2}},
        true, 0.5
  };
  std::string out;
  protocol::json_writer w(out);
  protocol::write_reply(w, v);
  std::string expect = "{";
  for (std::size_t i = 0; i < printed.size(); ++i) {
    std::string_view k = printed[i];
    if (k == "comment") continue;  // absent optional: left out
    if (expect.size() > 1) expect += ", ";
    expect += "\"" + std::string(k) + "\": ";
    if (k == "id") expect += "-3";
    if (k == "ok") expect += "true";
    if (k == "ratio") expect += "0.5";
    if (k == "parts") {
      auto ip = protocol::qemu_printed(protocol::reply_detail::member_names<inner>());
      auto obj = [&](std::string name, std::string size) {
        return ip[0] == "name" ? "{\"name\": " + name + ", \"size\": " + size + "}"
                               : "{\"size\": " + size + ", \"name\": " + name + "}";
      };
      expect += "[" + obj("\"a\"", "1") + ", " + obj("\"b\\\"\"", "2") + "]";
    }
  }
  expect += "}";
  EXPECT_EQ(out, expect);

  v.comment = "c";
  out.clear();
  protocol::json_writer w2(out);
  protocol::write_reply(w2, v);
  EXPECT_NE(out.find("\"comment\": \"c\""), std::string::npos);
}

TEST(Reply, ListOfStructs) {
  std::vector<inner> parts{
      {"x", 7}
  };
  std::string out;
  protocol::json_writer w(out);
  protocol::write_reply(w, parts);
  EXPECT_TRUE(out == "[{\"name\": \"x\", \"size\": 7}]" || out == "[{\"size\": 7, \"name\": \"x\"}]") << out;
  out.clear();
  protocol::json_writer w2(out);
  protocol::write_reply(w2, std::vector<inner>{});
  EXPECT_EQ(out, "[]");
}

}  // namespace
}  // namespace fleetga::test
