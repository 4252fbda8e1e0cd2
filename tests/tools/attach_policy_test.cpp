// fleetga-host attach's policy (tools/attach/policy.hpp): the level each domain gets and why,
// the config file, the domain XML's power-management caps, --explain, host version parsing.
#include "tools/attach/policy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fleetga::host::attach {
namespace {

using commands::to_string;

constexpr support_level v(std::uint16_t a, std::uint16_t b, std::uint16_t c = 0) {
  return {a, b, c};
}

const std::string conf = "/etc/fleetga/attach.conf";

attach_config parse(const std::string& text) { return parse_config(text, conf); }

// The config_error text for `text`, or "" when it parses.
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

domain_facts dom(std::string name, std::string uuid = {}, std::string xml = {}) {
  return {std::move(name), std::move(uuid), std::move(xml)};
}

std::string xml_with_pm(const std::string& pm) {
  return "<domain type='kvm' id='3'>\n  <name>web-1</name>\n  <memory unit='KiB'>1048576</memory>\n"
         "  <on_crash>destroy</on_crash>\n  <pm>\n" + pm + "\n  </pm>\n  <devices/>\n</domain>\n";
}
const std::string s3_off = xml_with_pm("    <suspend-to-mem enabled='no'/>");

const std::string uuid = "6f1c3b9e-2f0a-4c5e-9d7b-0a1b2c3d4e5f";

// The level at which guest-suspend-ram is enabled, from the agent's own table.
support_level suspend_ram_needs() {
  for (const auto& r : level_rules())
    if (r.command == "guest-suspend-ram") return r.needs;
  ADD_FAILURE() << "guest-suspend-ram is not in the command table";
  return {};
}

// ---------------------------------------------------------------------------------------------
// resolve(): the host

TEST(AttachResolve, HostVersionIsTheDefault) {
  const auto d = resolve({}, v(9, 2), dom("web-1"));
  EXPECT_FALSE(d.skip);
  EXPECT_EQ(d.level, v(9, 2));
  ASSERT_EQ(d.reasons.size(), 1u);
  EXPECT_EQ(d.reasons[0], "host QEMU version 9.2.0: level 9.2.0");
}

TEST(AttachResolve, UnknownHostVersionIsTheMinimumAndSaysSo) {
  const auto d = resolve({}, std::nullopt, dom("web-1"));
  EXPECT_EQ(d.level, v(1, 0));
  ASSERT_EQ(d.reasons.size(), 1u);
  EXPECT_EQ(d.reasons[0], "host QEMU version unknown: level 1.0.0, the default");
}

TEST(AttachResolve, HostLevelReplacesTheVersion) {
  auto cfg = parse("[host]\nlevel = 7.2\n");
  auto d = resolve(cfg, v(9, 2), dom("web-1"));
  EXPECT_EQ(d.level, v(7, 2));
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[1], "[host] (/etc/fleetga/attach.conf:2) level = 7.2.0 replaces 9.2.0");
  // It also stands in for an unknown version, and may be above the version.
  d = resolve(cfg, std::nullopt, dom("web-1"));
  EXPECT_EQ(d.level, v(7, 2));
  cfg.host.level = v(10, 0);
  EXPECT_EQ(resolve(cfg, v(9, 2), dom("web-1")).level, v(10, 0));
}

TEST(AttachResolve, HostCapBoundsAndAnIdleCapSaysNothing) {
  auto d = resolve(parse("[host]\ncap = 8.0\n"), v(9, 2), dom("web-1"));
  EXPECT_EQ(d.level, v(8, 0));
  ASSERT_EQ(d.reasons.size(), 2u);
  // No command needs more than 8.0.0: nothing to name.
  EXPECT_EQ(d.reasons[1],
            "[host] (/etc/fleetga/attach.conf:2) cap = 8.0.0: lowered from 9.2.0 to 8.0.0");

  d = resolve(parse("[host]\ncap = 10.0\n"), v(9, 2), dom("web-1"));
  EXPECT_EQ(d.level, v(9, 2));
  EXPECT_EQ(d.reasons.size(), 1u);
}

TEST(AttachResolve, HostCapBoundsTheHostLevel) {
  const auto d = resolve(parse("[host]\nlevel = 9.0\ncap = 8.0\n"), v(9, 2), dom("web-1"));
  EXPECT_EQ(d.level, v(8, 0));
  EXPECT_EQ(d.reasons.size(), 3u);
}

// ---------------------------------------------------------------------------------------------
// resolve(): the domain XML

TEST(AttachResolve, SuspendToMemDisabledLowersBelowSuspendRam) {
  const auto top = highest_level_without("guest-suspend-ram");
  ASSERT_TRUE(top.has_value());
  const auto d = resolve({}, v(9, 2), dom("web-1", uuid, s3_off));
  EXPECT_EQ(d.level, *top);
  EXPECT_LT(d.level, suspend_ram_needs());
  ASSERT_EQ(d.reasons.size(), 2u);
  // The current table: ram and hybrid need 1.1.0, nothing else sits between 1.0.0 and 9.2.0.
  EXPECT_EQ(d.reasons[1],
            "suspend-to-mem disabled in the domain XML: guest-suspend-ram and "
            "guest-suspend-hybrid need 1.1.0, lowered from 9.2.0 to 1.0.0");
}

TEST(AttachResolve, SuspendToMemEnabledOrAbsentKeepsTheLevel) {
  for (const std::string& xml :
       {std::string(), xml_with_pm("    <suspend-to-mem enabled='yes'/>"),
        xml_with_pm("    <suspend-to-disk enabled='yes'/>"), std::string("<domain type='kvm'/>"),
        std::string("<domain type='kvm'><name>web-1</name></domain>"),
        // A <pm> in a comment is no <pm>.
        std::string("<domain><!-- <pm><suspend-to-mem enabled='no'/></pm> --></domain>")}) {
    const auto d = resolve({}, v(9, 2), dom("web-1", uuid, xml));
    EXPECT_EQ(d.level, v(9, 2)) << xml;
    EXPECT_EQ(d.reasons.size(), 1u) << xml;
  }
}

TEST(AttachResolve, SuspendToMemDisabledOnALowLevelChangesNothing) {
  const auto d = resolve({}, v(1, 0), dom("web-1", uuid, s3_off));
  EXPECT_EQ(d.level, v(1, 0));
  EXPECT_EQ(d.reasons.size(), 1u);
}

TEST(AttachResolve, SuspendToDiskDisabledLowersOnlyIfACommandNeedsIt) {
  const auto d = resolve({}, v(9, 2),
                         dom("web-1", uuid, xml_with_pm("<suspend-to-disk enabled='no'/>")));
  if (const auto top = highest_level_without("guest-suspend-disk")) {
    EXPECT_EQ(d.level, *top);
  } else {  // today: guest-suspend-disk needs 1.0.0 (S4 resumes through a normal boot)
    EXPECT_EQ(d.level, v(9, 2));
    EXPECT_EQ(d.reasons.size(), 1u);
  }
}

// ---------------------------------------------------------------------------------------------
// parse_domain_caps()

TEST(AttachDomainCaps, QuotesOrderBlanksAndClosingTags) {
  for (const std::string pm : {
           "<suspend-to-mem enabled='no'/>",
           "<suspend-to-mem enabled=\"no\"/>",
           "<suspend-to-mem enabled = 'no' />",
           "<suspend-to-mem\n      enabled='no'\n/>",
           "<suspend-to-mem foo='x' enabled='no' bar=\"y\"/>",
           "<suspend-to-mem foo='a > b' enabled='no'/>",
           "<suspend-to-mem enabled='no'></suspend-to-mem>",
           "<suspend-to-disk enabled='yes'/><suspend-to-mem enabled='no'/>",
       }) {
    const auto c = parse_domain_caps(xml_with_pm(pm));
    EXPECT_FALSE(c.s3) << pm;
    EXPECT_TRUE(c.s4) << pm;
  }
}

TEST(AttachDomainCaps, SuspendToDisk) {
  auto c = parse_domain_caps(xml_with_pm("<suspend-to-disk enabled=\"no\"/>"));
  EXPECT_TRUE(c.s3);
  EXPECT_FALSE(c.s4);
  c = parse_domain_caps(
      xml_with_pm("<suspend-to-mem enabled='no'/>\n<suspend-to-disk enabled='no'/>"));
  EXPECT_FALSE(c.s3);
  EXPECT_FALSE(c.s4);
}

TEST(AttachDomainCaps, OnlyThePmOfTheRootDomainCounts) {
  const std::string off = "<pm><suspend-to-mem enabled='no'/><suspend-to-disk enabled='no'/></pm>";
  for (const std::string& xml : std::vector<std::string>{
           "",
           "<domain><!-- " + off + " --></domain>",
           "<domain><!-- a > b " + off + " --></domain>",  // a '>' does not end a comment
           "<domain><![CDATA[ a ]] > b " + off + "]]></domain>",  // only "]]>" ends CDATA
           "<domain><description><![CDATA[" + off + "]]></description></domain>",
           "<domain><metadata><app:x xmlns:app='urn:x'>" + off + "</app:x></metadata></domain>",
           "<domain><pm/><other>" + off + "</other></domain>",
           "<domain><pm></pm></domain>" + off,    // after the root
           "<domain/>" + off,
           "<network>" + off + "</network>",       // not a domain
           "<domain><pm><x><suspend-to-mem enabled='no'/></x></pm></domain>",  // not a child
           "<domain><x><pm></pm><suspend-to-mem enabled='no'/></x></domain>",  // nor a <pm>'s
           "<domain><pm><suspend-to-mem enabled='maybe'/><suspend-to-mem/></pm></domain>",
           "<domain><pm><suspend-to-memory enabled='no'/></pm></domain>",
           "<domain><pm><suspend-to-mem disabled='no'/></pm></domain>",
           "<domain><pm><suspend-to-mem enabled='no", // truncated
       }) {
    const auto c = parse_domain_caps(xml);
    EXPECT_TRUE(c.s3) << xml;
    EXPECT_TRUE(c.s4) << xml;
  }
}

TEST(AttachDomainCaps, PrologueAndSkippedConstructsBeforeThePm) {
  const std::string xml =
      "<?xml version='1.0'?>\n<!DOCTYPE domain [ <!ENTITY x '<pm>'> ]>\n"
      "<!-- <domain> --><domain type='kvm'>\n"
      "  <description><![CDATA[</domain> <pm>]]></description>\n"
      "  <title>a 'quoted' &amp; &lt;pm&gt;</title>\n"
      "  <pm><!-- <suspend-to-mem enabled='yes'/> --><suspend-to-mem enabled='no'/></pm>\n"
      "</domain>\n";
  const auto c = parse_domain_caps(xml);
  EXPECT_FALSE(c.s3);
  EXPECT_TRUE(c.s4);
}

// ---------------------------------------------------------------------------------------------
// resolve(): [domain] sections

TEST(AttachResolve, DomainGlobByName) {
  const auto cfg = parse("[domain \"web-*\"]\ncap = 1.0.0\n");
  auto d = resolve(cfg, v(9, 2), dom("web-1", uuid));
  EXPECT_EQ(d.level, v(1, 0));
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[1].rfind("[domain \"web-*\"] (/etc/fleetga/attach.conf:2, matches the "
                               "name) cap = 1.0.0: guest-suspend-ram and guest-suspend-hybrid "
                               "need 1.1.0, lowered from 9.2.0 to 1.0.0",
                               0),
            0u)
      << d.reasons[1];
  EXPECT_EQ(resolve(cfg, v(9, 2), dom("db-1", uuid)).level, v(9, 2));
  // Names are case-sensitive, as libvirt's are.
  EXPECT_EQ(resolve(cfg, v(9, 2), dom("Web-1", uuid)).level, v(9, 2));
}

TEST(AttachResolve, DomainByUuidInAnyCase) {
  std::string upper = uuid;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  const auto cfg = parse("[domain \"" + upper + "\"]\nlevel = 1.1\n");
  const auto d = resolve(cfg, v(9, 2), dom("db-7", uuid));
  EXPECT_EQ(d.level, v(1, 1));
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_NE(d.reasons[1].find("matches the UUID"), std::string::npos) << d.reasons[1];
  // Socket mode knows no UUID: nothing to match.
  EXPECT_EQ(resolve(cfg, v(9, 2), dom("db-7")).level, v(9, 2));
  EXPECT_EQ(resolve(parse("[domain \"6f1c*\"]\nskip = yes\n"), v(9, 2), dom("db-7")).skip, false);
  EXPECT_EQ(resolve(parse("[domain \"6f1c*\"]\nskip = yes\n"), v(9, 2), dom("db-7", uuid)).skip,
            true);
}

TEST(AttachResolve, FirstMatchingSectionWins) {
  const auto cfg = parse(
      "[domain \"web-1\"]\nlevel = 2.0\n"
      "[domain \"web-*\"]\nlevel = 3.0\n"
      "[domain \"*\"]\nlevel = 4.0\n");
  EXPECT_EQ(resolve(cfg, v(9, 2), dom("web-1")).level, v(2, 0));
  EXPECT_EQ(resolve(cfg, v(9, 2), dom("web-2")).level, v(3, 0));
  EXPECT_EQ(resolve(cfg, v(9, 2), dom("db-1")).level, v(4, 0));
  // A UUID match of an earlier section beats a name match of a later one.
  const auto by_uuid =
      parse("[domain \"" + uuid + "\"]\nlevel = 5.0\n[domain \"web-*\"]\nlevel = 6.0\n");
  EXPECT_EQ(resolve(by_uuid, v(9, 2), dom("web-1", uuid)).level, v(5, 0));
}

TEST(AttachResolve, DomainSkip) {
  const auto cfg = parse("[domain \"appliance-*\"]\nskip = true\n");
  auto d = resolve(cfg, v(9, 2), dom("appliance-3"));
  EXPECT_TRUE(d.skip);
  EXPECT_EQ(d.level, v(9, 2));  // what it would get
  ASSERT_FALSE(d.reasons.empty());
  // The last reason says why (the engine logs it).
  EXPECT_EQ(d.reasons.back(),
            "[domain \"appliance-*\"] (/etc/fleetga/attach.conf:2, matches the name) skip = "
            "true: this agent is left alone");
  EXPECT_FALSE(resolve(cfg, v(9, 2), dom("web-1")).skip);
  // skip comes last even when the level changed on the way.
  d = resolve(parse("[domain \"a\"]\nskip = 1\ncap = 2.0\n"), v(9, 2), dom("a"));
  EXPECT_TRUE(d.skip);
  EXPECT_EQ(d.level, v(2, 0));
  ASSERT_EQ(d.reasons.size(), 3u);
  EXPECT_NE(d.reasons[1].find("cap = 2.0.0"), std::string::npos);
  EXPECT_NE(d.reasons[2].find("skip = true"), std::string::npos);
}

TEST(AttachResolve, HostSkipWithDomainOptIn) {
  const auto cfg = parse("[host]\nskip = true\n[domain \"canary-*\"]\nskip = false\n");
  auto d = resolve(cfg, v(9, 2), dom("web-1"));
  EXPECT_TRUE(d.skip);
  EXPECT_EQ(d.reasons.back(),
            "[host] (/etc/fleetga/attach.conf:2) skip = true: agents are left alone unless "
            "their [domain] section says skip = false");
  d = resolve(cfg, v(9, 2), dom("canary-1"));
  EXPECT_FALSE(d.skip);
  EXPECT_EQ(d.reasons.back(),
            "[domain \"canary-*\"] (/etc/fleetga/attach.conf:4, matches the name) skip = false: "
            "overrides [host] skip = true");
  // skip = false without a [host] skip changes nothing, so says nothing.
  d = resolve(parse("[domain \"x\"]\nskip = no\n"), v(9, 2), dom("x"));
  EXPECT_FALSE(d.skip);
  EXPECT_EQ(d.reasons.size(), 1u);
}

TEST(AttachResolve, TheHostCapBeatsADomainLevel) {
  const auto cfg = parse("[host]\ncap = 8.0\n[domain \"big\"]\nlevel = 9.1\n");
  const auto d = resolve(cfg, v(7, 0), dom("big"));
  EXPECT_EQ(d.level, v(8, 0));
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[1],
            "[domain \"big\"] (/etc/fleetga/attach.conf:4, matches the name) level = 9.1.0 is "
            "above the [host] cap 8.0.0: the host cap wins, level 8.0.0");
  // Below the host cap the domain's level stands, above the host's version too.
  EXPECT_EQ(resolve(parse("[host]\ncap = 8.0\n[domain \"big\"]\nlevel = 7.5\n"), v(7, 0),
                    dom("big"))
                .level,
            v(7, 5));
}

TEST(AttachResolve, DomainCapBoundsDomainLevel) {
  const auto d = resolve(parse("[domain \"x\"]\nlevel = 7.0\ncap = 6.0\n"), v(9, 2), dom("x"));
  EXPECT_EQ(d.level, v(6, 0));
  ASSERT_EQ(d.reasons.size(), 3u);
  EXPECT_NE(d.reasons[1].find("level = 7.0.0 replaces 9.2.0"), std::string::npos);
  EXPECT_NE(d.reasons[2].find("cap = 6.0.0"), std::string::npos);
}

TEST(AttachResolve, DomainLevelReplacesTheXmlLowering) {
  // The operator's explicit word on one domain beats what the XML implies.
  const auto d = resolve(parse("[domain \"web-1\"]\nlevel = 1.1\n"), v(9, 2),
                         dom("web-1", uuid, s3_off));
  EXPECT_EQ(d.level, v(1, 1));
  ASSERT_EQ(d.reasons.size(), 3u);
  EXPECT_NE(d.reasons[1].find("suspend-to-mem disabled"), std::string::npos);
  EXPECT_NE(d.reasons[2].find("level = 1.1.0 replaces 1.0.0"), std::string::npos);
}

TEST(AttachResolve, LevelsBelowTheMinimumAreRaised) {
  auto d = resolve({}, v(0, 15), dom("old"));
  EXPECT_EQ(d.level, v(1, 0));
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[1], "0.15.0 is below 1.0.0, the lowest support level: raised to 1.0.0");
  d = resolve(parse("[domain \"x\"]\ncap = 0.5\n"), v(9, 2), dom("x"));
  EXPECT_EQ(d.level, v(1, 0));
  EXPECT_EQ(d.reasons.back(), "0.5.0 is below 1.0.0, the lowest support level: raised to 1.0.0");
  d = resolve(parse("[host]\nlevel = 0.0\n"), std::nullopt, dom("x"));
  EXPECT_EQ(d.level, v(1, 0));
}

TEST(AttachResolve, EveryStepInOrder) {
  const auto cfg = parse(
      "[host]\nlevel = 9.0\ncap = 8.0\n"
      "[domain \"web-*\"]\nlevel = 8.5\ncap = 0.9\n");
  const auto d = resolve(cfg, v(9, 2), dom("web-1", uuid, s3_off));
  EXPECT_EQ(d.level, v(1, 0));
  const std::vector<std::string> want = {
      "host QEMU version 9.2.0: level 9.2.0",
      "[host] (/etc/fleetga/attach.conf:2) level = 9.0.0 replaces 9.2.0",
      "[host] (/etc/fleetga/attach.conf:3) cap = 8.0.0: lowered from 9.0.0 to 8.0.0",
      "suspend-to-mem disabled in the domain XML: guest-suspend-ram and guest-suspend-hybrid "
      "need 1.1.0, lowered from 8.0.0 to 1.0.0",
      "[domain \"web-*\"] (/etc/fleetga/attach.conf:5, matches the name) level = 8.5.0 is above "
      "the [host] cap 8.0.0: the host cap wins, level 8.0.0",
      "[domain \"web-*\"] (/etc/fleetga/attach.conf:6, matches the name) cap = 0.9.0: "
      "guest-suspend-ram and guest-suspend-hybrid need 1.1.0, lowered from 8.0.0 to 0.9.0",
      "0.9.0 is below 1.0.0, the lowest support level: raised to 1.0.0",
  };
  EXPECT_EQ(d.reasons, want);
}

TEST(AttachResolve, ConfigWithoutAFileNameSaysNoLocation) {
  attach_config cfg;
  cfg.host.cap = v(2, 0);
  auto d = resolve(cfg, v(9, 2), dom("x"));
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[1].rfind("[host] cap = 2.0.0: ", 0), 0u) << d.reasons[1];
  // With a file but no key line (set in code): the section's line.
  cfg.path = "a.conf";
  cfg.host.line = 3;
  d = resolve(cfg, v(9, 2), dom("x"));
  ASSERT_EQ(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[1].rfind("[host] (a.conf:3) cap = 2.0.0: ", 0), 0u) << d.reasons[1];
}

// ---------------------------------------------------------------------------------------------
// parse_config()

TEST(AttachConfig, EveryKey) {
  const auto cfg = parse(
      "# comment\n"
      "; comment\n"
      "\n"
      "[host]\n"
      "level = 7.2\n"
      "cap=9.0.1\n"
      "  timeout   =   30  \n"
      "\tconcurrency\t=\t16\n"
      "   # indented comment\n"
      "[domain \"web-*\"]\n"
      "cap = 1.0.0\n"
      "[ domain   \"6f1c3b9e-*\" ]\n"
      "level = 1.1\n"
      "skip = FALSE\n"
      "[domain \"app [a-c]?\"]\n"
      "skip = Yes\n");
  EXPECT_EQ(cfg.path, conf);
  EXPECT_EQ(cfg.host.level, v(7, 2));
  EXPECT_EQ(cfg.host.cap, v(9, 0, 1));
  EXPECT_FALSE(cfg.host.skip.has_value());
  EXPECT_EQ(cfg.host.line, 4);
  EXPECT_EQ(cfg.host.level_line, 5);
  EXPECT_EQ(cfg.host.cap_line, 6);
  EXPECT_EQ(cfg.host.skip_line, 0);
  EXPECT_EQ(cfg.timeout_s, 30);
  EXPECT_EQ(cfg.concurrency, 16);
  ASSERT_EQ(cfg.domains.size(), 3u);
  EXPECT_EQ(cfg.domains[0].pattern, "web-*");
  EXPECT_EQ(cfg.domains[0].settings.cap, v(1, 0));
  EXPECT_FALSE(cfg.domains[0].settings.level.has_value());
  EXPECT_EQ(cfg.domains[0].settings.line, 10);
  EXPECT_EQ(cfg.domains[1].pattern, "6f1c3b9e-*");
  EXPECT_EQ(cfg.domains[1].settings.level, v(1, 1));
  EXPECT_EQ(cfg.domains[1].settings.skip, false);
  EXPECT_EQ(cfg.domains[1].settings.line, 12);
  EXPECT_EQ(cfg.domains[1].settings.level_line, 13);
  EXPECT_EQ(cfg.domains[1].settings.skip_line, 14);
  EXPECT_EQ(cfg.domains[1].settings.cap_line, 0);
  EXPECT_EQ(cfg.domains[2].pattern, "app [a-c]?");  // a ']' inside the quotes is the glob's
  EXPECT_EQ(cfg.domains[2].settings.skip, true);
  EXPECT_TRUE(resolve(cfg, v(9, 2), dom("app b7")).skip);
  EXPECT_FALSE(resolve(cfg, v(9, 2), dom("app d7")).skip);
}

TEST(AttachConfig, EmptyAndDefaults) {
  for (const std::string text : {"", "\n\n", "# nothing\n", "[host]\n", "\xEF\xBB\xBF"}) {
    const auto cfg = parse(text);
    EXPECT_EQ(cfg.timeout_s, 5);
    EXPECT_EQ(cfg.concurrency, 8);
    EXPECT_FALSE(cfg.host.level || cfg.host.cap || cfg.host.skip);
    EXPECT_TRUE(cfg.domains.empty());
  }
}

TEST(AttachConfig, BooleansAndRanges) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, bool>>{
           {"true", true}, {"yes", true}, {"1", true}, {"TRUE", true},
           {"false", false}, {"no", false}, {"0", false}, {"No", false}}) {
    EXPECT_EQ(parse("[host]\nskip = " + text + "\n").host.skip, want) << text;
  }
  EXPECT_EQ(parse("[host]\ntimeout = 1\nconcurrency = 1\n").timeout_s, 1);
  EXPECT_EQ(parse("[host]\ntimeout = 300\nconcurrency = 256\n").concurrency, 256);
  EXPECT_EQ(parse("[host]\nlevel = 65535.65535.65535\n").host.level, v(65535, 65535, 65535));
  // Not clamped here: resolve() raises it and says so.
  EXPECT_EQ(parse("[host]\ncap = 0.0\n").host.cap, v(0, 0));
}

TEST(AttachConfig, BomAndCrlf) {
  const auto cfg =
      parse("\xEF\xBB\xBF[host]\r\nlevel = 7.2\r\n\r\n# x\r\n[domain \"a\"]\r\ncap = 2.0\r\n");
  EXPECT_EQ(cfg.host.level, v(7, 2));
  ASSERT_EQ(cfg.domains.size(), 1u);
  EXPECT_EQ(cfg.domains[0].pattern, "a");
  EXPECT_EQ(cfg.domains[0].settings.cap, v(2, 0));
  EXPECT_EQ(cfg.domains[0].settings.line, 5);
  // Line numbers still count CRLF lines; a last line without an end is read too.
  EXPECT_EQ(error_of("[host]\r\n\r\ncap = x\r\n"),
            "/etc/fleetga/attach.conf:3: cap: 'x' is not a support level (MAJ.MIN[.MIC], each "
            "0..65535)");
  EXPECT_EQ(parse("[host]\r\nlevel = 7.2").host.level, v(7, 2));
  // A BOM anywhere else is not blank.
  EXPECT_EQ(error_of("[host]\n\xEF\xBB\xBFlevel = 7.2\n"),
            "/etc/fleetga/attach.conf:2: unknown key '\xEF\xBB\xBFlevel' in [host] (valid: level, "
            "cap, skip, timeout, concurrency)");
}

TEST(AttachConfig, TheBriefsExample) {
  try {
    parse("# 1\n# 2\n[host]\n# 4\nlevel = 7.2\n\ncap = 9.x\n");
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(),
                 "/etc/fleetga/attach.conf:7: cap: '9.x' is not a support level (MAJ.MIN[.MIC], "
                 "each 0..65535)");
    EXPECT_EQ(e.file, conf);
    EXPECT_EQ(e.line, 7);
  }
}

TEST(AttachConfig, SectionErrors) {
  const std::string f = "/etc/fleetga/attach.conf:";
  EXPECT_EQ(error_of("[hots]\n"),
            f + "1: unknown section '[hots]' (valid: [host], [domain \"PATTERN\"])");
  EXPECT_EQ(error_of("[Host]\n"),
            f + "1: unknown section '[Host]' (valid: [host], [domain \"PATTERN\"])");
  EXPECT_EQ(error_of("[domains \"x\"]\n"),
            f + "1: unknown section '[domains \"x\"]' (valid: [host], [domain \"PATTERN\"])");
  EXPECT_EQ(error_of("\n[host\nlevel = 1.0\n"),
            f + "2: unterminated section header '[host' (no closing ']')");
  EXPECT_EQ(error_of("[domain \"web-*\"\n"),
            f + "1: unterminated section header '[domain \"web-*\"' (no closing ']')");
  EXPECT_EQ(error_of("[domain \"web-*]\n"),
            f + "1: '[domain \"web-*]': the pattern goes in double quotes: [domain \"PATTERN\"]");
  EXPECT_EQ(error_of("[domain \"web-*] x\n"),
            f + "1: unterminated section header '[domain \"web-*] x' (no closing ']')");
  EXPECT_EQ(error_of("[domain \"a]b\"] x\n"),
            f + "1: unexpected ' x' after the section header '[domain \"a]b\"]'");
  EXPECT_EQ(error_of("[host] # x\n"), f + "1: unexpected ' # x' after the section header '[host]'");
  EXPECT_EQ(error_of("[domain web-*]\n"),
            f + "1: '[domain web-*]': the pattern goes in double quotes: [domain \"PATTERN\"]");
  EXPECT_EQ(error_of("[domain 'web-*']\n"),
            f + "1: '[domain 'web-*']': the pattern goes in double quotes: [domain \"PATTERN\"]");
  EXPECT_EQ(error_of("[domain]\n"),
            f + "1: '[domain]': the pattern goes in double quotes: [domain \"PATTERN\"]");
  EXPECT_EQ(error_of("[domain \"a\"b\"]\n"),
            f + "1: '[domain \"a\"b\"]': the pattern goes in double quotes: [domain \"PATTERN\"]");
  EXPECT_EQ(error_of("[domain \"\"]\n"), f + "1: '[domain \"\"]': empty domain pattern");
  EXPECT_EQ(error_of("[domain \"web-*\"]\ncap = 1.0\n[domain \"db\"]\n[domain \"web-*\"]\n"),
            f + "4: duplicate section [domain \"web-*\"] (the first is at line 1)");
  EXPECT_EQ(error_of("[host]\nlevel = 1.0\n[host]\ncap = 2.0\n"),
            f + "3: a second [host] section (the first is at line 1); one per file");
}

TEST(AttachConfig, KeyErrors) {
  const std::string f = "/etc/fleetga/attach.conf:";
  EXPECT_EQ(error_of("level = 1.0\n"),
            f + "1: key 'level' before any section ([host] or [domain \"PATTERN\"])");
  EXPECT_EQ(error_of("# x\n\nlevel = 1.0\n[host]\n"),
            f + "3: key 'level' before any section ([host] or [domain \"PATTERN\"])");
  EXPECT_EQ(error_of("[host]\nlevle = 1.0\n"),
            f + "2: unknown key 'levle' in [host] (valid: level, cap, skip, timeout, concurrency)");
  EXPECT_EQ(error_of("[domain \"x\"]\nmax = 1.0\n"),
            f + "2: unknown key 'max' in [domain \"x\"] (valid: level, cap, skip)");
  EXPECT_EQ(error_of("[domain \"x\"]\ntimeout = 5\n"),
            f + "2: unknown key 'timeout' in [domain \"x\"] (valid: level, cap, skip); 'timeout' "
                "is a [host] key");
  EXPECT_EQ(error_of("[domain \"x\"]\nconcurrency = 5\n"),
            f + "2: unknown key 'concurrency' in [domain \"x\"] (valid: level, cap, skip); "
                "'concurrency' is a [host] key");
  EXPECT_EQ(error_of("[host]\ncap = 1.0\nlevel = 1.0\ncap = 2.0\n"),
            f + "4: duplicate key 'cap' in [host] (the first is at line 2)");
  EXPECT_EQ(error_of("[domain \"x\"]\nskip = no\nskip = no\n"),
            f + "3: duplicate key 'skip' in [domain \"x\"] (the first is at line 2)");
  // The same key in two sections is fine.
  EXPECT_EQ(
      error_of("[host]\ncap = 1.0\n[domain \"x\"]\ncap = 1.0\n[domain \"y\"]\ncap = 1.0\n"),
      "");
  EXPECT_EQ(error_of("[host]\nlevel 1.0\n"),
            f + "2: 'level 1.0' is not `key = value`, a [section] header or a comment");
  EXPECT_EQ(error_of("just words\n"),
            f + "1: 'just words' is not `key = value`, a [section] header or a comment");
  EXPECT_EQ(error_of("[host]\n = 1.0\n"), f + "2: '= 1.0' has no key");
}

TEST(AttachConfig, ValueErrors) {
  const std::string f = "/etc/fleetga/attach.conf:2: ";
  const std::string lv = "' is not a support level (MAJ.MIN[.MIC], each 0..65535)";
  EXPECT_EQ(error_of("[host]\nlevel = 9.x\n"), f + "level: '9.x" + lv);
  EXPECT_EQ(error_of("[host]\nlevel = 9\n"), f + "level: '9" + lv);
  EXPECT_EQ(error_of("[host]\nlevel = 65536.0\n"), f + "level: '65536.0" + lv);
  EXPECT_EQ(error_of("[host]\nlevel = 1.2.3.4\n"), f + "level: '1.2.3.4" + lv);
  EXPECT_EQ(error_of("[host]\nlevel = -1.0\n"), f + "level: '-1.0" + lv);
  EXPECT_EQ(error_of("[host]\nlevel =\n"), f + "level: '" + lv);
  EXPECT_EQ(error_of("[host]\nlevel = \"1.0\"\n"), f + "level: '\"1.0\"" + lv);
  // No trailing comments: nothing is guessed.
  EXPECT_EQ(error_of("[domain \"x\"]\ncap = 1.0 # web\n"), f + "cap: '1.0 # web" + lv);
  EXPECT_EQ(error_of("[domain \"x\"]\nskip = maybe\n"),
            f + "skip: 'maybe' is not a boolean (true/false, yes/no, 1/0)");
  EXPECT_EQ(error_of("[domain \"x\"]\nskip = on\n"),
            f + "skip: 'on' is not a boolean (true/false, yes/no, 1/0)");
  for (const std::string t : {"0", "301", "5s", "-1", "+5", "1.5", "", "99999999999"})
    EXPECT_EQ(error_of("[host]\ntimeout = " + t + "\n"),
              f + "timeout: '" + t + "' is not a number of seconds in 1..300");
  for (const std::string c : {"0", "257", "eight", "8 8"})
    EXPECT_EQ(error_of("[host]\nconcurrency = " + c + "\n"),
              f + "concurrency: '" + c + "' is not a whole number in 1..256");
}

TEST(AttachConfig, ErrorWithoutAFileName) {
  try {
    parse_config("[host]\ncap = x\n", "");
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(),
                 "line 2: cap: 'x' is not a support level (MAJ.MIN[.MIC], each 0..65535)");
  }
}

// The shipped sample: as installed it changes nothing; with every commented setting
// ("#key = value", "#[section]") uncommented it is a valid config that sets every key.
std::string read_sample() {
  std::string here = __FILE__;
  const auto root = here.substr(0, here.rfind("tests/tools/"));
  std::ifstream in(root + "packaging/fleetga-attach.conf", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(AttachConfig, ShippedSampleChangesNothing) {
  const auto text = read_sample();
  ASSERT_FALSE(text.empty());
  const auto cfg = parse_config(text, "fleetga-attach.conf");
  EXPECT_FALSE(cfg.host.level || cfg.host.cap || cfg.host.skip);
  EXPECT_EQ(cfg.timeout_s, 5);
  EXPECT_EQ(cfg.concurrency, 8);
  EXPECT_TRUE(cfg.domains.empty());
}

TEST(AttachConfig, ShippedSampleUncommentedSetsEveryKey) {
  std::istringstream in(read_sample());
  std::string line, text;
  while (std::getline(in, line)) {
    if (line.size() > 1 && line[0] == '#' && (line[1] == '[' || (line[1] >= 'a' && line[1] <= 'z')))
      line.erase(0, 1);
    text += line + "\n";
  }
  const auto cfg = parse_config(text, "fleetga-attach.conf");
  EXPECT_TRUE(cfg.host.level && cfg.host.cap && cfg.host.skip);
  EXPECT_EQ(cfg.host.skip, false);  // the sample's value is the default
  bool level = false, cap = false, skip = false;
  for (const auto& d : cfg.domains) {
    level |= d.settings.level.has_value();
    cap |= d.settings.cap.has_value();
    skip |= d.settings.skip.has_value();
  }
  EXPECT_TRUE(level && cap && skip);
  // Both kinds of pattern: a UUID and a glob.
  ASSERT_GE(cfg.domains.size(), 2u);
  EXPECT_TRUE(std::any_of(cfg.domains.begin(), cfg.domains.end(),
                          [](const auto& d) { return d.pattern.find('*') != std::string::npos; }));
  EXPECT_TRUE(std::any_of(cfg.domains.begin(), cfg.domains.end(),
                          [](const auto& d) { return d.pattern.size() == 36; }));
}

// ---------------------------------------------------------------------------------------------
// load_config()

class AttachLoadConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fleetga-attach-policy-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const char* f : {"/attach.conf", "/big.conf"}) ::unlink((dir_ + f).c_str());
    ::rmdir(dir_.c_str());
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name, std::ios::binary) << text;
  }
  std::string error_of_file(const std::string& path) {
    try {
      load_config(path);
    } catch (const config_error& e) {
      EXPECT_EQ(e.file, path);
      return std::to_string(e.line) + " " + e.what();
    }
    return "";
  }
  std::string dir_;
};

TEST_F(AttachLoadConfig, ReadsTheFile) {
  write("attach.conf", "[host]\ncap = 7.0\n");
  const auto cfg = load_config(dir_ + "/attach.conf");
  EXPECT_EQ(cfg.path, dir_ + "/attach.conf");
  EXPECT_EQ(cfg.host.cap, v(7, 0));
}

TEST_F(AttachLoadConfig, ErrorsNameThePath) {
  write("attach.conf", "[host]\ncap = 7.0\nnope\n");
  EXPECT_EQ(error_of_file(dir_ + "/attach.conf"),
            "3 " + dir_ +
                "/attach.conf:3: 'nope' is not `key = value`, a [section] header or a comment");
  EXPECT_EQ(error_of_file(dir_ + "/missing.conf"),
            "0 " + dir_ + "/missing.conf: cannot open it: No such file or directory");
  EXPECT_EQ(error_of_file(dir_), "0 " + dir_ + ": cannot read it: Is a directory");
}

TEST_F(AttachLoadConfig, AtMostOneMiB) {
  std::string text = "[host]\n";
  text += std::string((1 << 20) - text.size() - 1, '#') + "\n";  // exactly 1 MiB: read
  write("big.conf", text);
  EXPECT_NO_THROW(load_config(dir_ + "/big.conf"));
  write("big.conf", text + "\n");
  EXPECT_EQ(error_of_file(dir_ + "/big.conf"),
            "0 " + dir_ + "/big.conf: larger than 1 MiB: not a config file");
}

// ---------------------------------------------------------------------------------------------
// explain()

TEST(AttachExplain, ListsReasonsAndEveryCommandAboveTheMinimum) {
  const auto facts = dom("web-1", uuid, s3_off);
  const auto d = resolve({}, v(9, 2), facts);
  const auto text = explain(d, facts);
  EXPECT_EQ(text.rfind("domain web-1 (UUID " + uuid + ")\nlevel: 1.0.0\n", 0), 0u) << text;
  EXPECT_NE(text.find("  1. host QEMU version 9.2.0: level 9.2.0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  2. suspend-to-mem disabled in the domain XML"), std::string::npos) << text;
  std::size_t at_minimum = 0, above = 0;
  for (const auto& r : level_rules()) {
    if (r.needs <= v(1, 0)) {
      ++at_minimum;
      continue;
    }
    ++above;
    // One row per command: name, the level it needs, "no" at 1.0.0, why.
    const auto row = text.find("  " + std::string(r.command) + " ");
    ASSERT_NE(row, std::string::npos) << r.command << "\n" << text;
    const auto row_end = text.find('\n', row);
    const auto line = text.substr(row, row_end - row);
    EXPECT_NE(line.find(" " + to_string(r.needs) + " "), std::string::npos) << line;
    EXPECT_NE(line.find(" no "), std::string::npos) << line;
    EXPECT_NE(line.find(std::string(r.why)), std::string::npos) << line;
  }
  EXPECT_GE(above, 2u);  // guest-suspend-ram, guest-suspend-hybrid
  EXPECT_NE(text.find("\n" + std::to_string(at_minimum) +
                      " other commands need only 1.0.0 and are enabled at every level\n"),
            std::string::npos)
      << text;
  // A command that needs only 1.0.0 gets no row.
  EXPECT_EQ(text.find("  guest-ping "), std::string::npos) << text;
}

TEST(AttachExplain, EnabledAtTheDecidedLevel) {
  const auto facts = dom("web-1", uuid);
  const auto text = explain(resolve({}, suspend_ram_needs(), facts), facts);
  const auto row = text.find("  guest-suspend-ram ");
  ASSERT_NE(row, std::string::npos) << text;
  const auto line = text.substr(row, text.find('\n', row) - row);
  EXPECT_NE(line.find(" yes "), std::string::npos) << line;
}

TEST(AttachExplain, SkippedAndUnknownUuid) {
  const auto facts = dom("appliance-3");
  const auto d = resolve(parse("[domain \"appliance-*\"]\nskip = true\n"), v(9, 2), facts);
  const auto text = explain(d, facts);
  EXPECT_EQ(text.rfind("domain appliance-3 (UUID unknown)\nlevel: skipped", 0), 0u) << text;
  EXPECT_NE(text.find("without skip: 9.2.0"), std::string::npos) << text;
  EXPECT_NE(text.find("skip = true: this agent is left alone"), std::string::npos) << text;
  const auto row = text.find("  guest-suspend-ram ");
  ASSERT_NE(row, std::string::npos) << text;
  const auto line = text.substr(row, text.find('\n', row) - row);
  EXPECT_EQ(line.find(" yes "), std::string::npos) << line;
  EXPECT_EQ(line.find(" no "), std::string::npos) << line;
}

// ---------------------------------------------------------------------------------------------
// Host version

TEST(AttachHostVersion, FromVersionNumber) {
  EXPECT_EQ(level_from_version_number(9002000), v(9, 2, 0));
  EXPECT_EQ(level_from_version_number(7002015), v(7, 2, 15));
  EXPECT_EQ(level_from_version_number(1001000), v(1, 1, 0));
  EXPECT_EQ(level_from_version_number(15000), v(0, 15, 0));  // QEMU 0.15: resolve raises it
  EXPECT_EQ(level_from_version_number(65536), v(0, 65, 536));
  EXPECT_EQ(level_from_version_number(1), v(0, 0, 1));
  EXPECT_EQ(level_from_version_number(65535999999ULL), v(65535, 999, 999));
  EXPECT_EQ(level_from_version_number(0), std::nullopt);  // libvirt: unknown
  EXPECT_EQ(level_from_version_number(65536000000ULL), std::nullopt);
  EXPECT_EQ(level_from_version_number(~0ULL), std::nullopt);
}

TEST(AttachHostVersion, FromQemuBanner) {
  EXPECT_EQ(level_from_qemu_banner("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u18)\n"
                                   "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project "
                                   "developers\n"),
            v(7, 2, 15));
  EXPECT_EQ(level_from_qemu_banner("QEMU emulator version 6.2.0 (qemu-kvm-6.2.0-11.el9_0.3)"),
            v(6, 2, 0));
  EXPECT_EQ(level_from_qemu_banner("QEMU PC emulator version 0.12.1 (qemu-kvm-0.12.1.2), "
                                   "Copyright (c) 2003-2008 Fabrice Bellard"),
            v(0, 12, 1));
  EXPECT_EQ(level_from_qemu_banner("QEMU emulator version 2.5.0, Copyright (c) 2003-2008"),
            v(2, 5, 0));
  EXPECT_EQ(level_from_qemu_banner("QEMU emulator version 9.2.0\r\nCopyright\r\n"), v(9, 2, 0));
  EXPECT_EQ(level_from_qemu_banner("QEMU emulator version 9.2.0"), v(9, 2, 0));
  EXPECT_EQ(level_from_qemu_banner("QEMU emulator version 8.2\n"), v(8, 2, 0));
  EXPECT_EQ(level_from_qemu_banner("QEMU emulator version 65535.65535.65535\n"),
            v(65535, 65535, 65535));
}

TEST(AttachHostVersion, BannerEdgeCasesAndGarbage) {
  for (const std::string t : {
           "",
           "\n",
           "garbage",
           "QEMU",
           "QEMU emulator version",
           "QEMU emulator version \n",
           "QEMU emulator version x.y.z",
           "QEMU emulator version 65536.0.0",
           "QEMU emulator version 7.65536.0",
           "QEMU emulator version 0.0.0",
           "QEMU emulator version 0.0",
           "QEMU emulator version 7",
           "QEMU emulator version 7.2.15.1",
           "QEMU emulator version 7.2.15a",
           "QEMU emulator version 7..2",
           "QEMU emulator version 7.2.",
           "QEMU emulator version -7.2.0",
           "qemu-system-x86_64: command not found",
           "bash: QEMU emulator version 7.2.0",
           "\nQEMU emulator version 7.2.0\n",  // only the first line counts
           "Copyright (c) 2003\nQEMU emulator version 7.2.0",
       }) {
    EXPECT_EQ(level_from_qemu_banner(t), std::nullopt) << "'" << t << "'";
  }
}

}  // namespace
}  // namespace fleetga::host::attach
