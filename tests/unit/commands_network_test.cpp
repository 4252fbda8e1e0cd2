// The network family: guest-network-get-interfaces on synthetic getifaddrs() lists (a fake
// platform::net), guest-network-get-route through service::handle on fixture roots.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <string>
#include <vector>

#include "commands/network.hpp"
#include "commands/state.hpp"
#include "commands/table.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

using platform::hwaddr_result;
using platform::if_address;

std::string fixture(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/network/" + std::string(rel); }

if_address packet(std::string name) {
  if_address a;
  a.name = std::move(name);
  return a;
}
if_address v4(std::string name, const char* addr, int prefix) {
  if_address a;
  a.name = std::move(name);
  a.fam = if_address::family::ipv4;
  EXPECT_EQ(::inet_pton(AF_INET, addr, a.addr.data()), 1) << addr;
  if (prefix >= 0) {
    a.has_netmask = true;
    for (int i = 0; i < prefix; ++i) a.netmask[i / 8] |= static_cast<std::uint8_t>(0x80u >> (i % 8));
  }
  return a;
}
if_address v6(std::string name, const char* addr, int prefix, std::uint32_t scope = 0) {
  if_address a = v4(std::move(name), "0.0.0.0", prefix);
  a.fam = if_address::family::ipv6;
  EXPECT_EQ(::inet_pton(AF_INET6, addr, a.addr.data()), 1) << addr;
  a.scope_id = scope;
  return a;
}

struct fake_net final : platform::net {
  std::vector<if_address> list;
  int list_err = 0;
  std::map<std::string, std::array<std::uint8_t, 6>> macs;  // others: ENODEV
  int socket_err = 0;
  std::map<std::string, std::string> files;  // others: ENOENT
  std::vector<std::string> hw_queries;
  int file_reads = 0;

  int list_addresses(std::vector<if_address>& out) override {
    out = list;
    return list_err;
  }
  hwaddr_result hardware_address(const std::string& name, platform::hwaddr_socket&) override {
    hw_queries.push_back(name);
    hwaddr_result r;
    if (socket_err) {
      r.st = hwaddr_result::status::socket_failed;
      r.err = socket_err;
    } else if (auto it = macs.find(name); it != macs.end()) {
      r.mac = it->second;
    } else {
      r.st = hwaddr_result::status::unavailable;
      r.err = ENODEV;
    }
    return r;
  }
  int read_proc_file(std::string_view path, std::string& out) override {
    ++file_reads;
    auto it = files.find(std::string(path));
    if (it == files.end()) return ENOENT;
    out = it->second;
    return 0;
  }
};

// A handler run directly on an agent_state whose `net` is the fake (service hides its state).
struct direct {
  temp_dir dir;
  fake_system sys;
  commands::inline_offloader pool;
  commands::agent_state st{pool, sys, dir.path, commands::all_commands_mask, {1, 0, 0}};
  fake_net net;
  direct() { st.net = &net; }

  std::string run(commands::task<commands::handler_result> (*h)(commands::call&)) {
    std::string out;
    protocol::json_writer w(out);
    commands::call c{{}, w, st};
    auto t = h(c);
    EXPECT_TRUE(t.start());
    auto err = t.take();
    if (err) return "error: " + err->desc;
    return out;
  }
  std::string interfaces() { return run(commands::handlers::guest_network_get_interfaces); }
};

// What this machine's getifaddrs() said when qemu-ga 7.2's reply below was recorded.
void this_machine(fake_net& n) {
  n.list = {packet("lo"),
            packet("ifb0"),
            packet("ifb1"),
            packet("eth0"),
            v4("lo", "127.0.0.1", 8),
            v4("eth0", "192.0.2.2", 24),
            v6("lo", "::1", 128),
            v6("eth0", "fd00::2", 64),
            v6("eth0", "fe80::fc:ff:fe00:1", 64, 2)};
  n.macs = {{"lo", {0, 0, 0, 0, 0, 0}},
            {"ifb0", {0x4e, 0xb4, 0xd6, 0xec, 0xed, 0x78}},
            {"ifb1", {0xfe, 0xaf, 0xcb, 0x67, 0xac, 0xd3}},
            {"eth0", {0x02, 0xfc, 0x00, 0x00, 0x00, 0x01}}};
  n.files["/proc/net/dev"] = slurp(fixture("machine/proc/net/dev"));
}

TEST(CommandsNetwork, InterfacesByteForByteLikeQemuGa) {
  direct d;
  this_machine(d.net);
  // qemu-ga 7.2 on this machine, same /proc/net/dev snapshot (tests/data/network/machine).
  EXPECT_EQ(d.interfaces(),
            R"([{"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}, )"
            R"({"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}], "statistics": {"tx-packets": 29, )"
            R"("tx-errs": 0, "rx-bytes": 3267, "rx-dropped": 0, "rx-packets": 29, "rx-errs": 0, "tx-bytes": 3267, )"
            R"("tx-dropped": 0}, "hardware-address": "00:00:00:00:00:00"}, {"name": "ifb0", "hardware-address": )"
            R"("4e:b4:d6:ec:ed:78"}, {"name": "ifb1", "hardware-address": "fe:af:cb:67:ac:d3"}, {"name": "eth0", )"
            R"("ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "192.0.2.2", "prefix": 24}, )"
            R"({"ip-address-type": "ipv6", "ip-address": "fd00::2", "prefix": 64}, {"ip-address-type": "ipv6", )"
            R"("ip-address": "fe80::fc:ff:fe00:1", "prefix": 64}], "statistics": {"tx-packets": 4814, "tx-errs": 0, )"
            R"("rx-bytes": 382947402, "rx-dropped": 0, "rx-packets": 8513, "rx-errs": 0, "tx-bytes": 325113, )"
            R"("tx-dropped": 0}, "hardware-address": "02:fc:00:00:00:01"}])");
  // One MAC query per interface once it succeeded; /proc/net/dev read once for the call.
  EXPECT_EQ(d.net.hw_queries, (std::vector<std::string>{"lo", "ifb0", "ifb1", "eth0"}));
  EXPECT_EQ(d.net.file_reads, 1);
}

TEST(CommandsNetwork, InterfaceVanishingBetweenGetifaddrsAndIoctl) {
  direct d;
  d.net.list = {packet("gone0"), v4("gone0", "10.0.0.1", 8), v6("gone0", "fe80::1", 64, 7)};
  d.net.files["/proc/net/dev"] = slurp(fixture("machine/proc/net/dev"));  // no gone0 line any more
  EXPECT_EQ(d.interfaces(),
            R"([{"name": "gone0", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.0.1", "prefix": 8}, )"
            R"({"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64}]}])");
  // Like qemu-ga, every entry of the interface asks again while no MAC was obtained.
  EXPECT_EQ(d.net.hw_queries, (std::vector<std::string>{"gone0", "gone0", "gone0"}));
}

TEST(CommandsNetwork, AddressLessAndOddEntries) {
  direct d;
  d.net.list = {packet("dummy0"), v4("eth0", "192.0.2.9", -1), v4("eth0:1", "192.0.2.10", 32),
                v6("eth0", "fe80::1", 64, 2), packet("dummy0")};
  d.net.macs = {{"eth0", {0xAA, 0xBB, 0xCC, 0x0D, 0x0E, 0xFF}}, {"eth0:1", {0xAA, 0xBB, 0xCC, 0x0D, 0x0E, 0xFF}}};
  d.net.files["/proc/net/dev"] = slurp(fixture("odd/proc/net/dev"));
  // dummy0: no address -> no ip-addresses/statistics, and no MAC (ioctl failed twice);
  // no netmask -> prefix 0; the IPv4 label "eth0:1" is an interface of its own without
  // statistics (qemu-ga matches /proc/net/dev up to the first ':'); no "%scope" in IPv6.
  EXPECT_EQ(d.interfaces(),
            R"([{"name": "dummy0"}, {"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv4", )"
            R"("ip-address": "192.0.2.9", "prefix": 0}, {"ip-address-type": "ipv6", "ip-address": "fe80::1", )"
            R"("prefix": 64}], "statistics": {"tx-packets": 4814, "tx-errs": 3, "rx-bytes": 382947402, )"
            R"("rx-dropped": 2, "rx-packets": 8513, "rx-errs": 1, "tx-bytes": 325113, "tx-dropped": 4}, )"
            R"("hardware-address": "aa:bb:cc:0d:0e:ff"}, {"name": "eth0:1", "ip-addresses": [{"ip-address-type": )"
            R"("ipv4", "ip-address": "192.0.2.10", "prefix": 32}], "hardware-address": "aa:bb:cc:0d:0e:ff"}])");
  EXPECT_EQ(d.net.hw_queries, (std::vector<std::string>{"dummy0", "eth0", "eth0:1", "dummy0"}));
}

TEST(CommandsNetwork, HundredsOfInterfaces) {
  direct d;
  constexpr int n = 600;
  std::string dev = "Inter-|\n face |\n";
  for (int i = 0; i < n; ++i) d.net.list.push_back(packet("veth" + std::to_string(i)));
  for (int i = 0; i < n; i += 2) {
    std::string a = "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".1";
    d.net.list.push_back(v4("veth" + std::to_string(i), a.c_str(), 24));
  }
  for (int i = 0; i < n; i += 3) d.net.list.push_back(v6("veth" + std::to_string(i), "fe80::1", 64, i + 1));
  for (int i = n - 1; i >= 0; --i)  // reverse order in /proc/net/dev
    dev += "veth" + std::to_string(i) + ": " + std::to_string(i) + " 1 2 3 0 0 0 0 4 5 6 7 0 0 0 0\n";
  d.net.files["/proc/net/dev"] = dev;
  for (int i = 0; i < n; i += 5) d.net.macs["veth" + std::to_string(i)] = {2, 0, 0, 0, static_cast<std::uint8_t>(i >> 8),
                                                                           static_cast<std::uint8_t>(i)};

  std::vector<commands::network::interface_info> list;
  ASSERT_FALSE(commands::network::collect_interfaces(d.net, list));
  ASSERT_EQ(list.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto& info = list[static_cast<std::size_t>(i)];
    ASSERT_EQ(info.name, "veth" + std::to_string(i));
    std::size_t addrs = (i % 2 == 0) + (i % 3 == 0);
    ASSERT_EQ(info.addresses.size(), addrs) << i;
    ASSERT_EQ(info.stats.has_value(), addrs > 0) << i;
    if (addrs) {
      EXPECT_EQ(info.stats->rx_bytes, static_cast<std::uint64_t>(i));
    }
    ASSERT_EQ(info.mac.has_value(), i % 5 == 0) << i;
  }
  EXPECT_EQ(list[6].addresses[0].text, "10.0.6.1");
  EXPECT_EQ(list[6].addresses[1].text, "fe80::1");
  EXPECT_EQ(list[598].addresses[0].text, "10.2.86.1");
  EXPECT_EQ(d.net.file_reads, 1);

  std::string json = d.interfaces();
  EXPECT_EQ(json.substr(0, 62), R"([{"name": "veth0", "ip-addresses": [{"ip-address-type": "ipv4")");
  EXPECT_NE(json.find(R"({"name": "veth595", "hardware-address": "02:00:00:00:02:53"})"), std::string::npos);
  EXPECT_NE(json.find(R"({"name": "veth599"})"), std::string::npos);
}

TEST(CommandsNetwork, InterfaceErrors) {
  direct d;
  d.net.list_err = EMFILE;
  EXPECT_EQ(d.interfaces(), "error: getifaddrs failed: Too many open files");
  d.net.list_err = 0;
  d.net.list = {packet("lo")};
  d.net.socket_err = ENFILE;
  EXPECT_EQ(d.interfaces(), "error: failed to create socket: Too many open files in system");
  d.net.socket_err = 0;
  d.net.list = {};
  EXPECT_EQ(d.interfaces(), "[]");
  // Unreadable /proc/net/dev: no statistics, no error (qemu-ga only logs it).
  d.net.list = {v4("eth0", "192.0.2.2", 24)};
  EXPECT_EQ(d.interfaces(), R"([{"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": )"
                            R"("192.0.2.2", "prefix": 24}]}])");
}

// guest-network-get-route through service::handle with /proc under a fixture root.
struct routes_on {
  temp_dir state;
  fake_system sys;
  commands::inline_offloader pool;
  std::unique_ptr<commands::service> svc;
  explicit routes_on(const std::string& root) : sys(root) {
    commands::options o;
    o.statedir = state.path;
    svc = std::make_unique<commands::service>(std::move(o), pool, sys);
    EXPECT_FALSE(svc->init());
  }
  std::string operator()(std::string_view json) { return run(*svc, json); }
};

TEST(CommandsNetwork, RoutesOfThisMachine) {
  routes_on t(fixture("machine"));
  std::string r = t(R"({"execute":"guest-network-get-route"})");
  const std::string v4_default =
      R"({"flags": 3, "metric": 0, "refcnt": 0, "window": 0, "version": 4, "iface": "eth0", "destination": )"
      R"("0.0.0.0", "irtt": 0, "gateway": "192.0.2.1", "use": 0, "mtu": 0, "mask": "0.0.0.0"})";
  const std::string v6_first =
      R"({"flags": 1, "source": "::", "metric": 256, "refcnt": 1, "version": 6, "nexthop": "::", "iface": )"
      R"("eth0", "destination": "fd00::", "desprefixlen": "64", "srcprefixlen": "0", "use": 0})";
  const std::string v6_unreachable =
      R"({"flags": 2097664, "source": "::", "metric": 4294967295, "refcnt": 1, "version": 6, "nexthop": "::", "iface": )"
      R"("lo", "destination": "::", "desprefixlen": "0", "srcprefixlen": "0", "use": 0})";
  EXPECT_EQ(r.substr(0, 13 + v4_default.size()), "{\"return\": [" + v4_default + ",");
  EXPECT_NE(r.find(v6_first), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - v6_unreachable.size() - 3), v6_unreachable + "]}\n");
  EXPECT_NE(r.find(R"({"flags": 2149580801, "source": "::", "metric": 0, "refcnt": 2, "version": 6, )"
                   R"("nexthop": "::", "iface": "lo", "destination": "::1", "desprefixlen": "128")"),
            std::string::npos);
  std::size_t routes = 0;
  for (std::size_t p = 0; (p = r.find("\"version\": ", p)) != std::string::npos; ++p) ++routes;
  EXPECT_EQ(routes, 10u);
}

TEST(CommandsNetwork, RoutesOddAndMany) {
  routes_on odd(fixture("odd"));
  std::string r = odd(R"({"execute":"guest-network-get-route"})");
  // Bad source and short next hop: those members are absent.
  EXPECT_NE(r.find(R"({"flags": 1, "metric": 256, "refcnt": 1, "version": 6, "iface": "eth0", "destination": )"
                   R"("fd00::", "desprefixlen": "64", "srcprefixlen": "0", "use": 0})"),
            std::string::npos);
  EXPECT_NE(r.find(R"({"flags": 4294967295, "metric": -2147483648, "refcnt": -2, "window": 0, "version": 4, )"
                   R"("iface": "br-lan", "destination": "192.168.1.0", "irtt": -1, "gateway": "0.0.0.0", "use": 7, )"
                   R"("mtu": 0, "mask": "255.255.255.0"})"),
            std::string::npos);
  routes_on many(fixture("many"));
  r = many(R"({"execute":"guest-network-get-route"})");
  std::size_t routes = 0;
  for (std::size_t p = 0; (p = r.find("\"version\": ", p)) != std::string::npos; ++p) ++routes;
  EXPECT_EQ(routes, 600u);
  EXPECT_NE(r.find(R"("iface": "eth5", "destination": "10.1.43.0", "irtt": 0, "gateway": "10.0.1.1", "use": 299, )"),
            std::string::npos);
}

TEST(CommandsNetwork, RouteFileErrors) {
  routes_on noipv6(fixture("noipv6"));  // IPv6 disabled: upstream fails the whole command
  EXPECT_EQ(noipv6(R"({"execute":"guest-network-get-route"})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"open(\\\"/proc/net/ipv6_route\\\"): No such file or "
            "directory\"}}\n");
  routes_on none(fixture("does-not-exist"));  // both missing: the first error (upstream aborts)
  EXPECT_EQ(none(R"({"execute":"guest-network-get-route"})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"open(\\\"/proc/net/route\\\"): No such file or "
            "directory\"}}\n");
}

TEST(CommandsNetwork, ArgumentsAndTable) {
  routes_on t(fixture("machine"));
  EXPECT_EQ(t(R"({"execute":"guest-network-get-route","arguments":{"x":1}})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-network-get-interfaces","arguments":{"y":1}})"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'y' is unexpected\"}}\n");
  EXPECT_EQ(t(R"({"execute":"guest-network-get-route","arguments":{}, "id": 7})").substr(0, 12), "{\"return\": [");
  auto i = commands::find_command("guest-network-get-interfaces");
  auto r = commands::find_command("guest-network-get-route");
  ASSERT_TRUE(i && r);
  EXPECT_EQ(commands::command_table[*i].since, "1.1");
  EXPECT_EQ(commands::command_table[*r].since, "9.1");
  EXPECT_EQ(*r, commands::command_count - 1);  // upstream registers it last
}

TEST(CommandsNetwork, RealInterfacesThroughTheService) {
  service_fixture t;
  std::string r = t(R"({"execute":"guest-network-get-interfaces"})");
  // Every Linux machine: lo first, with 127.0.0.1/8 and the all-zero MAC.
  const std::string lo = R"({"return": [{"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", )"
                         R"("ip-address": "127.0.0.1", "prefix": 8})";
  EXPECT_EQ(r.substr(0, lo.size()), lo);
  EXPECT_NE(r.find(R"("hardware-address": "00:00:00:00:00:00"})"), std::string::npos);
}

}  // namespace
}  // namespace fleetga::test
