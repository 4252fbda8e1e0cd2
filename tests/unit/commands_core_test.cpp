#include <gtest/gtest.h>

#include <set>

#include <algorithm>

#include "commands/table.hpp"
#include "commands_harness.hpp"
#include "fleetga/version.hpp"

namespace fleetga::test {
namespace {

using commands::options;

TEST(CommandsCore, PingExactBytes) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-ping"})"), "{\"return\": {}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-ping","arguments":{}})"), "{\"return\": {}}\n");
}

TEST(CommandsCore, PingEchoesId) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-ping","id":1})"), "{\"return\": {}, \"id\": 1}\n");
  EXPECT_EQ(t(R"({"execute":"guest-ping","id":{"a":[1,"x"]}})"),
            "{\"return\": {}, \"id\": {\"a\": [1, \"x\"]}}\n");
}

TEST(CommandsCore, PingRejectsArguments) {  // upstream test-qga.c /qga/invalid-args
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-ping","arguments":{"foo":42}})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'foo' is unexpected\"}}\n");
}

TEST(CommandsCore, Sync) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-sync","arguments":{"id":1234567}})"), "{\"return\": 1234567}\n");
  EXPECT_EQ(t(R"({"execute":"guest-sync","arguments":{"id":-5},"id":"abc"})"),
            "{\"return\": -5, \"id\": \"abc\"}\n");
  EXPECT_EQ(t(R"({"execute":"guest-sync"})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'id' is missing\"}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-sync","arguments":{"id":"1"}})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'id', expected: integer\"}}\n");
}

TEST(CommandsCore, SyncDelimitedHasFFPrefixOnlyOnSuccess) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-sync-delimited","arguments":{"id":42}})"), "\xff{\"return\": 42}\n");
  EXPECT_EQ(t(R"({"execute":"guest-sync-delimited"})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'id' is missing\"}}\n");
}

TEST(CommandsCore, UnknownCommand) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-foo","id":7})"),
            "{\"id\": 7, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command guest-foo has not been found\"}}\n");
  // Upstream commands a Linux build doesn't register are "not found" too (upstream >= 9.1).
  EXPECT_EQ(t(R"({"execute":"guest-get-devices"})"),
            "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command guest-get-devices has not been found\"}}\n");
}

TEST(CommandsCore, RequestValidationErrorsComeFromTheParser) {
  service_fixture t;
  EXPECT_EQ(t(R"([])"), "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\n");
  EXPECT_EQ(t(R"({"exec-oob":"guest-ping"})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is unexpected\"}}\n");
}

TEST(CommandsCore, FramerErrorFrame) {
  service_fixture t;
  protocol::frame f;
  f.type = protocol::frame::kind::error;
  f.error = "JSON parse error, stray '\\xff'";  // raw desc; the writer escapes it
  std::string out;
  auto task = t.svc->handle(f, out);
  ASSERT_TRUE(task.start());
  EXPECT_TRUE(task.take());
  EXPECT_EQ(out, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\\\xff'\"}}\n");
}

TEST(CommandsCore, AppendsAfterExistingOutput) {
  service_fixture t;
  std::string buf = std::string(R"({"execute":"guest-sync","arguments":{"id":1}})") + std::string(64, '\0');
  protocol::frame f;
  f.text = protocol::padded_view::for_tests(buf);
  std::string out = "previous\n";
  auto task = t.svc->handle(f, out);
  ASSERT_TRUE(task.start());
  EXPECT_EQ(out, "previous\n{\"return\": 1}\n");
}

TEST(CommandsCore, InfoListsRegisteredCommandsInReverseOrder) {
  service_fixture t;
  std::string r = t(R"({"execute":"guest-info"})");
  std::string expect = "{\"return\": {\"version\": \"" FLEETGA_QEMU_VERSION "\", \"supported_commands\": [";
  auto names = commands::service::command_names();
  for (std::size_t i = names.size(); i-- > 0;) {
    // at the default level 1.0.0, commands that need a newer host are listed disabled
    expect += commands::command_table[i].needs == commands::support_level{1, 0, 0}
                  ? "{\"enabled\": true, \"name\": \""
                  : "{\"enabled\": false, \"name\": \"";
    expect += names[i];
    expect += commands::command_table[i].success_response ? "\", \"success-response\": true}"
                                                           : "\", \"success-response\": false}";
    if (i) expect += ", ";
  }
  expect += "], \"support_level\": {\"micro\": 0, \"minor\": 0, \"major\": 1}}}\n";
  EXPECT_EQ(r, expect);
  // Served from the cache the second time: same bytes.
  EXPECT_EQ(t(R"({"execute":"guest-info"})"), expect);
  EXPECT_EQ(r.rfind("{\"return\": {\"version\": \"10.2.0\", \"supported_commands\": [{\"enabled\": true, \"name\": \"" +
                        std::string(names.back()) + "\"", 0),
            0u);
  EXPECT_NE(r.find("{\"enabled\": true, \"name\": \"guest-sync-delimited\", \"success-response\": true}]"), std::string::npos);
}

TEST(CommandsCore, CommandNamesFollowUpstreamSchemaOrder) {
  // Upstream qemu-ga's registration order on Linux (qga/qapi-schema.json), with fleetga's
  // guest-set-support-level after guest-info. Registered commands must appear in this order
  // (commands not implemented yet are simply absent), and nothing else may be registered.
  const std::vector<std::string_view> upstream{
      "guest-sync-delimited", "guest-sync", "guest-ping", "guest-get-time", "guest-set-time",
      "guest-info", "guest-set-support-level", "guest-shutdown", "guest-file-open",
      "guest-file-close", "guest-file-read", "guest-file-write", "guest-file-seek",
      "guest-file-flush", "guest-fsfreeze-status", "guest-fsfreeze-freeze",
      "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-fstrim", "guest-suspend-disk",
      "guest-suspend-ram", "guest-suspend-hybrid", "guest-network-get-interfaces",
      "guest-get-vcpus", "guest-set-vcpus", "guest-get-disks", "guest-get-fsinfo",
      "guest-set-user-password", "guest-get-memory-blocks", "guest-set-memory-blocks",
      "guest-get-memory-block-info", "guest-exec-status", "guest-exec", "guest-get-host-name",
      "guest-get-users", "guest-get-timezone", "guest-get-osinfo",
      "guest-ssh-get-authorized-keys", "guest-ssh-add-authorized-keys",
      "guest-ssh-remove-authorized-keys", "guest-get-diskstats", "guest-get-cpustats",
      "guest-get-load", "guest-network-get-route"};
  auto names = commands::service::command_names();
  std::size_t pos = 0;
  for (auto name : names) {
    while (pos < upstream.size() && upstream[pos] != name) ++pos;
    ASSERT_LT(pos, upstream.size()) << name << " is out of upstream order or not an upstream command";
    ++pos;
  }
  // The foundation's commands are all there.
  for (auto must : {"guest-sync-delimited", "guest-sync", "guest-ping", "guest-get-time", "guest-info",
                    "guest-set-support-level", "guest-file-open", "guest-file-close", "guest-file-read",
                    "guest-file-write", "guest-file-seek", "guest-file-flush", "guest-fsfreeze-status",
                    "guest-get-host-name", "guest-get-timezone", "guest-get-osinfo", "guest-get-load"})
    EXPECT_NE(std::find(names.begin(), names.end(), must), names.end()) << must;
}

// The man page names the freeze-safe commands in one sentence; it must say what the schema says.
TEST(CommandsCore, ManPageFreezeSafeListIsTheSchemas) {
  std::string man = slurp(std::string(FLEETGA_TEST_DATA) + "/../../packaging/fleetga.8");
  ASSERT_FALSE(man.empty());
  for (char& ch : man)
    if (ch == '\n') ch = ' ';
  const std::string head = "While frozen, only ", tail = " are enabled";
  auto b = man.find(head);
  ASSERT_NE(b, std::string::npos);
  b += head.size();
  auto e = man.find(tail, b);
  ASSERT_NE(e, std::string::npos);
  std::string list = man.substr(b, e - b);
  for (auto pos = list.find(" and "); pos != std::string::npos; pos = list.find(" and ")) list.replace(pos, 5, ", ");
  std::set<std::string> named;
  for (std::size_t p = 0; p <= list.size();) {
    auto q = list.find(", ", p);
    if (q == std::string::npos) q = list.size();
    named.insert(list.substr(p, q - p));
    p = q + 2;
  }
  std::set<std::string> schema;
  for (const auto& s : commands::command_schemas)
    if (s.has(commands::freeze_safe)) schema.insert(std::string(s.name));
  EXPECT_EQ(named, schema);
}

TEST(CommandsCore, TableLookup) {
  for (std::size_t i = 0; i < commands::command_count; ++i)
    EXPECT_EQ(commands::find_command(commands::command_table[i].name), i);
  EXPECT_FALSE(commands::find_command("guest-pin"));
  EXPECT_FALSE(commands::find_command("guest-pingg"));
  EXPECT_FALSE(commands::find_command("GUEST-PING"));
  EXPECT_FALSE(commands::find_command(std::string_view("guest-ping\0", 11)));
  // The freeze-safe set: qemu-ga's six, nothing else.
  std::vector<std::string_view> safe;
  for (const auto& d : commands::command_table)
    if (d.freeze_safe) safe.push_back(d.name);
  std::vector<std::string_view> expect{"guest-sync-delimited", "guest-sync", "guest-ping", "guest-info",
                                       "guest-fsfreeze-status", "guest-fsfreeze-thaw"};
  EXPECT_EQ(safe, expect);
}

TEST(CommandsCore, FsfreezeStatus) {
  service_fixture t;
  EXPECT_EQ(t(R"({"execute":"guest-fsfreeze-status"})"), "{\"return\": \"thawed\"}\n");
  EXPECT_FALSE(t.svc->frozen());
}

TEST(CommandsCore, StartsFrozenWhenIsfrozenExistsAndDefersStateCreation) {
  temp_dir d;
  spit(d / "qga.state.isfrozen", "");
  fake_system sys;
  commands::inline_offloader pool;
  options o;
  o.statedir = d.path;
  commands::service svc(o, pool, sys);
  ASSERT_FALSE(svc.init());
  EXPECT_TRUE(svc.frozen());
  EXPECT_EQ(run(svc, R"({"execute":"guest-fsfreeze-status"})"), "{\"return\": \"frozen\"}\n");
  EXPECT_EQ(d.list(), (std::set<std::string>{"qga.state.isfrozen"}));  // no qga.state written
}

TEST(CommandsCore, InitCreatesStateFileLikeQemuGa) {
  service_fixture t;
  EXPECT_EQ(slurp(t.state / "qga.state"), "[global]\nfd_counter=1000\n");
  EXPECT_EQ(t.state.list(), (std::set<std::string>{"qga.state"}));
}

TEST(CommandsCore, InitFailsOnBadStatedir) {
  fake_system sys;
  commands::inline_offloader pool;
  options o;
  o.statedir = "/nonexistent/fleetga-statedir";
  commands::service svc(o, pool, sys);
  // qemu-ga 7.2's lines (its temporary file's name in place of the strerror's subject).
  EXPECT_EQ(svc.init(), std::optional<std::string>(
                            "failed to write persistent state to /nonexistent/fleetga-statedir/qga.state: "
                            "No such file or directory\n"
                            "unable to create state file at path /nonexistent/fleetga-statedir/qga.state\n"
                            "failed to load persistent state"));
}

// Issue 16, defect 6: every start failure said only "failed to load persistent state"; qemu-ga
// names the file and GLib's reason (the refused line). Texts checked against qemu-ga 7.2.
std::optional<std::string> init_with_state(temp_dir& d, std::vector<std::string>* warnings = nullptr) {
  fake_system sys;
  commands::inline_offloader pool;
  options o;
  o.statedir = d.path;
  if (warnings) o.warn = [warnings](std::string_view w) { warnings->emplace_back(w); };
  commands::service svc(o, pool, sys);
  return svc.init();
}

TEST(CommandsCore, InitFailsOnUnparsableState) {
  temp_dir d;
  spit(d / "qga.state", "[global]\nthis is not a key file line\n");
  EXPECT_EQ(init_with_state(d), std::optional<std::string>(
                                    "error loading persistent state from path: " + (d / "qga.state") +
                                    ", Key file contains line \u201cthis is not a key file line\u201d which is not a "
                                    "key-value pair, group, or comment\nfailed to load persistent state"));
  spit(d / "qga.state", "[global]\nfd_counter=5\n[x\n");
  EXPECT_EQ(init_with_state(d), std::optional<std::string>(
                                    "error loading persistent state from path: " + (d / "qga.state") +
                                    ", Key file contains line \u201c[x\u201d which is not a key-value pair, group, "
                                    "or comment\nfailed to load persistent state"));
  EXPECT_EQ(slurp(d / "qga.state"), "[global]\nfd_counter=5\n[x\n");  // untouched
}

TEST(CommandsCore, InitFailsOnAStateThatIsNotAFile) {
  temp_dir d;
  std::filesystem::create_directory(d / "qga.state");
  EXPECT_EQ(init_with_state(d), std::optional<std::string>("error loading persistent state from path: " +
                                                           (d / "qga.state") +
                                                           ", Not a regular file\nfailed to load persistent state"));
}

// A valid qga.state over 1 MiB (comments, say) starts, as with qemu-ga; up to 64 MiB is read,
// a larger one is refused by name (qemu-ga would read any size).
TEST(CommandsCore, LargeStateFileStarts) {
  service_fixture t;
  spit(t.state / "qga.state", "[global]\n# " + std::string(std::size_t{3} << 20, 'x') + "\nfd_counter=5\n");
  t.start();
  spit(t.state / "f", "");
  EXPECT_EQ(t(R"({"execute":"guest-file-open","arguments":{"path":")" + (t.state / "f") + R"("}})"),
            "{\"return\": 5}\n");
  EXPECT_EQ(slurp(t.state / "qga.state"), "[global]\nfd_counter=6\n");  // rebuilt, like qemu-ga

  temp_dir d;
  spit(d / "qga.state", "[global]\n# " + std::string(std::size_t{64} << 20, 'x') + "\n");
  EXPECT_EQ(init_with_state(d), std::optional<std::string>("error loading persistent state from path: " +
                                                           (d / "qga.state") +
                                                           ", larger than 64 MiB\nfailed to load persistent state"));
}

// A support_level that is no level (hand-edited) is not in force, is reported at start, and
// stays in the file (rewritten as it was on every save) until guest-set-support-level sets one.
TEST(CommandsCore, MalformedSupportLevelIsKeptAndReported) {
  for (std::string bad : {"999.x", "65536.1", "1", ""}) {
    SCOPED_TRACE("support_level=" + bad);
    temp_dir d;
    spit(d / "qga.state", "[global]\nfd_counter=1002\nsupport_level=" + bad + "\n");
    fake_system sys;
    commands::inline_offloader pool;
    options o;
    o.statedir = d.path;
    std::vector<std::string> warnings;
    o.warn = [&warnings](std::string_view w) { warnings.emplace_back(w); };
    commands::service svc(o, pool, sys);
    ASSERT_FALSE(svc.init());
    EXPECT_EQ(warnings, (std::vector<std::string>{
                            "ignoring support_level '" + bad + "' in " + (d / "qga.state") +
                            ": not MAJOR.MINOR[.MICRO] with each part 0..65535 (kept in the file; level 1.0.0 "
                            "in force until guest-set-support-level)"}));
    spit(d / "f", "");
    EXPECT_EQ(run(svc, R"({"execute":"guest-file-open","arguments":{"path":")" + (d / "f") + R"("}})"),
              "{\"return\": 1002}\n");
    EXPECT_EQ(slurp(d / "qga.state"), "[global]\nfd_counter=1003\nsupport_level=" + bad + "\n");
    EXPECT_EQ(run(svc, R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":1}})"),
              "{\"return\": {}}\n");
    EXPECT_EQ(slurp(d / "qga.state"), "[global]\nfd_counter=1003\nsupport_level=1.1.0\n");
  }
}

TEST(CommandsCore, HandlerExceptionBecomesGenericError) {
  temp_dir d;
  fake_system sys;
  throwing_offloader pool;
  options o;
  o.statedir = d.path;
  commands::service svc(o, pool, sys);
  ASSERT_FALSE(svc.init());
  std::string r = run(svc, R"({"execute":"guest-file-open","arguments":{"path":"/tmp/x","mode":"r"},"id":3})");
  EXPECT_EQ(r, "{\"id\": 3, \"error\": {\"class\": \"GenericError\", \"desc\": \"internal error in guest-file-open: pool is gone\"}}\n");
  // Still serving.
  EXPECT_EQ(run(svc, R"({"execute":"guest-ping"})"), "{\"return\": {}}\n");
}

}  // namespace
}  // namespace fleetga::test
