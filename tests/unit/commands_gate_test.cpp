#include <gtest/gtest.h>

#include "commands/gate.hpp"
#include "commands/table.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

using commands::gate;
using commands::options;
using commands::support_level;
using commands::verdict;

std::string disabled(std::string_view name) {
  return "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command " + std::string(name) +
         " has been disabled: the command is not allowed\"}}\n";
}

// "enabled" of one command in a guest-info reply.
bool enabled_in_info(const std::string& info, std::string_view name) {
  std::string probe = "\"name\": \"" + std::string(name) + "\"";
  auto pos = info.find(probe);
  EXPECT_NE(pos, std::string::npos) << name;
  auto start = info.rfind("{\"enabled\": ", pos);
  return info.compare(start, 17, "{\"enabled\": true,") == 0;
}

TEST(Gate, WordLayout) {
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
  gate g(~0ull, 0);
  EXPECT_EQ(g.load(), 0x0000'0001'0000'0000ull);  // 1.0.0
  g.set_level({2, 3, 4});
  EXPECT_EQ(g.load(), 0x0000'0002'0003'0004ull);
  g.set_frozen(true);
  EXPECT_EQ(g.load(), 0x0001'0002'0003'0004ull);
  g.set_level({1, 1, 0});
  EXPECT_EQ(g.load(), 0x0001'0001'0001'0000ull);  // frozen bit kept
  EXPECT_TRUE(gate::frozen(g.load()));
  EXPECT_EQ(gate::level(g.load()), (support_level{1, 1, 0}));
  g.set_frozen(false);
  EXPECT_EQ(g.load(), 0x0000'0001'0001'0000ull);
}

TEST(Gate, CheckOrderListsThenFrozenThenLevel) {
  // Command 0: listed & freeze-safe, 1: listed only, 2: not listed.
  gate g(0b011, 0b001);
  const support_level base{1, 0, 0}, s3{1, 1, 0};
  auto w = g.load();
  EXPECT_EQ(g.check(0, base, w), verdict::enabled);
  EXPECT_EQ(g.check(1, base, w), verdict::enabled);
  EXPECT_EQ(g.check(2, base, w), verdict::not_allowed);
  EXPECT_EQ(g.check(1, s3, w), verdict::level_too_low);
  EXPECT_EQ(g.check(2, s3, w), verdict::not_allowed);  // lists beat the level
  g.set_frozen(true);
  w = g.load();
  EXPECT_EQ(g.check(0, base, w), verdict::enabled);
  EXPECT_EQ(g.check(1, base, w), verdict::not_allowed);
  EXPECT_EQ(g.check(1, s3, w), verdict::not_allowed);  // frozen beats the level
  EXPECT_EQ(g.check(0, s3, w), verdict::level_too_low);
  g.set_level({1, 1, 0});
  w = g.load();
  EXPECT_EQ(g.check(0, s3, w), verdict::enabled);
  g.set_level({1, 0, 65535});
  EXPECT_EQ(g.check(0, s3, g.load()), verdict::level_too_low);
  g.set_level({2, 0, 0});
  EXPECT_EQ(g.check(0, s3, g.load()), verdict::enabled);
}

TEST(Gate, DisabledTexts) {
  EXPECT_EQ(commands::disabled_text("guest-ping", verdict::not_allowed, {1, 0, 0}, {1, 0, 0}),
            "Command guest-ping has been disabled: the command is not allowed");
  EXPECT_EQ(commands::disabled_text("guest-suspend-ram", verdict::level_too_low, {1, 0, 0}, {1, 1, 0}),
            "Command guest-suspend-ram has been disabled: host support level 1.0.0 is below 1.1.0");
}

TEST(Gate, BlockList) {  // upstream /qga/blockedrpcs
  options o;
  o.block_rpcs = {"guest-ping", "guest-get-time", "guest-no-such-command"};
  service_fixture t(o);
  EXPECT_EQ(t(R"({"execute":"guest-ping"})"), disabled("guest-ping"));
  EXPECT_EQ(t(R"({"execute":"guest-get-time","id":"q"})"),
            "{\"id\": \"q\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command guest-get-time has been disabled: the command is not allowed\"}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-sync","arguments":{"id":1}})"), "{\"return\": 1}\n");
  std::string info = t(R"({"execute":"guest-info"})");
  EXPECT_FALSE(enabled_in_info(info, "guest-ping"));
  EXPECT_FALSE(enabled_in_info(info, "guest-get-time"));
  EXPECT_TRUE(enabled_in_info(info, "guest-sync"));
  EXPECT_TRUE(enabled_in_info(info, "guest-info"));
}

TEST(Gate, DisabledCheckPrecedesArgumentCheck) {
  options o;
  o.block_rpcs = {"guest-ping"};
  service_fixture t(o);
  EXPECT_EQ(t(R"({"execute":"guest-ping","arguments":{"foo":1}})"), disabled("guest-ping"));
}

TEST(Gate, AllowList) {  // upstream /qga/allowedrpcs
  options o;
  o.allow_rpcs = {"guest-ping", "guest-get-time"};
  service_fixture t(o);
  EXPECT_EQ(t(R"({"execute":"guest-ping"})"), "{\"return\": {}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-time"})"), "{\"return\": 1700000000123456000}\n");
  EXPECT_EQ(t(R"({"execute":"guest-get-host-name"})"), disabled("guest-get-host-name"));
  // guest-info itself is not allowed here.
  EXPECT_EQ(t(R"({"execute":"guest-info"})"), disabled("guest-info"));
}

TEST(Gate, AllowAndBlockCombined) {  // 9.1+: both may be given
  options o;
  o.allow_rpcs = {"guest-ping", "guest-get-time", "guest-info"};
  o.block_rpcs = {"guest-ping"};
  service_fixture t(o);
  EXPECT_EQ(t(R"({"execute":"guest-ping"})"), disabled("guest-ping"));
  EXPECT_EQ(t(R"({"execute":"guest-get-time"})"), "{\"return\": 1700000000123456000}\n");
  std::string info = t(R"({"execute":"guest-info"})");
  EXPECT_FALSE(enabled_in_info(info, "guest-ping"));
  EXPECT_TRUE(enabled_in_info(info, "guest-get-time"));
  EXPECT_TRUE(enabled_in_info(info, "guest-info"));
  EXPECT_FALSE(enabled_in_info(info, "guest-sync"));
}

TEST(Gate, FrozenAllowsOnlyFreezeSafeAndKeepsBlocks) {
  temp_dir d;
  spit(d / "qga.state.isfrozen", "");
  fake_system sys;
  commands::inline_offloader pool;
  options o;
  o.statedir = d.path;
  o.block_rpcs = {"guest-sync"};
  commands::service svc(o, pool, sys);
  ASSERT_FALSE(svc.init());
  EXPECT_EQ(run(svc, R"({"execute":"guest-ping"})"), "{\"return\": {}}\n");
  EXPECT_EQ(run(svc, R"({"execute":"guest-sync-delimited","arguments":{"id":9}})"), "\xff{\"return\": 9}\n");
  EXPECT_EQ(run(svc, R"({"execute":"guest-sync","arguments":{"id":1}})"), disabled("guest-sync"));
  EXPECT_EQ(run(svc, R"({"execute":"guest-get-time"})"), disabled("guest-get-time"));
  EXPECT_EQ(run(svc, R"({"execute":"guest-file-open","arguments":{"path":"x"}})"), disabled("guest-file-open"));
  EXPECT_EQ(run(svc, R"({"execute":"guest-set-support-level","arguments":{"major":2,"minor":0}})"),
            disabled("guest-set-support-level"));
  std::string info = run(svc, R"({"execute":"guest-info"})");
  for (std::string_view n : {"guest-ping", "guest-info", "guest-sync-delimited", "guest-fsfreeze-status"})
    EXPECT_TRUE(enabled_in_info(info, n)) << n;
  for (std::string_view n : {"guest-sync", "guest-get-time", "guest-file-open", "guest-set-support-level",
                             "guest-get-osinfo", "guest-get-load"})
    EXPECT_FALSE(enabled_in_info(info, n)) << n;
  EXPECT_EQ(d.list(), (std::set<std::string>{"qga.state.isfrozen"}));
}

}  // namespace
}  // namespace fleetga::test
