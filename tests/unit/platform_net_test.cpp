// platform/net: the /proc/net parsers on fixture files (this machine's and odd ones), checked
// against what upstream qemu-ga's own parsing loop reads from the same files
// (tests/data/network/*/routes.expected), and the real linux_net on this machine.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "in_child.hpp"
#include "platform/net.hpp"
#include "platform/system.hpp"

namespace fleetga::platform {
namespace {

using test::child_cannot;
using test::in_child;

std::string fixture(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/network/" + std::string(rel); }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The line format of routes.expected.
std::string line_of(const route& r) {
  std::string s = std::to_string(r.version) + " " + r.iface + " " + r.destination + " ";
  auto i = [](const std::optional<std::int64_t>& v) { return v ? std::to_string(*v) : std::string("?"); };
  if (r.version == 4) {
    s += r.gateway.value_or("?") + " " + r.mask.value_or("?") + " " + std::to_string(r.metric) + " " +
         std::to_string(r.flags.value_or(0)) + " " + i(r.refcnt) + " " + i(r.use) + " " + i(r.mtu) + " " +
         i(r.window) + " " + i(r.irtt);
    EXPECT_FALSE(r.source || r.nexthop || r.desprefixlen || r.srcprefixlen) << s;
  } else {
    s += r.desprefixlen.value_or("?") + " " + r.source.value_or("-") + " " + r.srcprefixlen.value_or("?") + " " +
         r.nexthop.value_or("-") + " " + std::to_string(r.metric) + " " + std::to_string(r.flags.value_or(0)) + " " +
         i(r.refcnt) + " " + i(r.use);
    EXPECT_FALSE(r.gateway || r.mask || r.mtu || r.window || r.irtt) << s;
  }
  return s + "\n";
}

std::string parse_both(const std::string& dir) {
  std::string out;
  route_sink sink = [&](const route& r) { out += line_of(r); };
  parse_ipv4_routes(slurp(fixture(dir + "/proc/net/route")), sink);
  parse_ipv6_routes(slurp(fixture(dir + "/proc/net/ipv6_route")), sink);
  return out;
}

TEST(PlatformNetwork, RoutesOfThisMachineAsUpstreamReadsThem) {
  std::string got = parse_both("machine");
  EXPECT_EQ(got, slurp(fixture("machine/routes.expected")));
  // Spelled out: the default route, and the IPv6 quirks of upstream's `int` variables.
  EXPECT_NE(got.find("4 eth0 0.0.0.0 192.0.2.1 0.0.0.0 0 3 0 0 0 0 0\n"), std::string::npos);
  EXPECT_NE(got.find("6 lo :: 0 :: 0 :: 4294967295 2097664 1 0\n"), std::string::npos);  // metric ffffffff: unsigned, not -1
  EXPECT_NE(got.find("6 lo ::1 128 :: 0 :: 0 2149580801 2 0\n"), std::string::npos);  // 80200001: not sign-extended
}

TEST(PlatformNetwork, OddRouteTables) {
  std::string got = parse_both("odd");
  EXPECT_EQ(got, slurp(fixture("odd/routes.expected")));
  EXPECT_EQ(got,
            "4 eth0 0.0.0.0 192.0.2.1 0.0.0.0 100 3 0 0 0 0 0\n"
            "4 wg0 10.0.0.0 0.0.0.0 255.0.0.0 -1 1 0 0 1420 0 0\n"
            "4 br-lan 192.168.1.0 0.0.0.0 255.255.255.0 -2147483648 4294967295 -2 7 0 0 -1\n"
            "4 tun0 255.255.255.255 0.0.0.0 255.255.255.0 0 1 0 0 0 0 0\n"
            "4 lo 127.0.0.0 0.0.0.0 255.0.0.0 3 1 1 2 4 5 6\n"
            "6 eth0 fe80:: 64 :: 0 :: 256 1 1 0\n"
            "6 lo :: 0 :: 0 :: 4294967295 2097664 1 0\n"
            "6 lo ::1 128 :: 0 :: 0 2149580801 2 0\n"
            "6 eth0 fd00:: 64 - 0 - 256 1 1 0\n"
            "6 verylongname0123 2001:db8:: 4294967295 :: 2147483648 :: 2147483647 1 4294967295 2147483648\n"
            "6 00000001 2001:db8:: 1 - 0 - 0 0 1 1\n");
}

TEST(PlatformNetwork, HundredsOfRoutes) {
  std::string got = parse_both("many");
  EXPECT_EQ(got, slurp(fixture("many/routes.expected")));
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), 600);
}

TEST(PlatformNetwork, RouteEdgeCases) {
  std::vector<route> v;
  route_sink sink = [&](const route& r) { v.push_back(r); };
  parse_ipv4_routes("", sink);
  parse_ipv4_routes("eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n", sink);  // only a "header"
  EXPECT_TRUE(v.empty());
  // A NUL ends the line for sscanf(); the rest of that line is not seen.
  static constexpr char with_nul[] = "h\neth0 0 0 1 0 0 0 0 0 0\0 7\nlo 0 0 1 0 0 0 0 0 0 9\n";
  parse_ipv4_routes(std::string_view(with_nul, sizeof with_nul - 1), sink);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].iface, "lo");
  EXPECT_EQ(v[0].irtt, 9);
  v.clear();
  // Signs: "%X" of "-1" is strtoul's ULONG_MAX truncated; "%d" of "+5" is 5.
  parse_ipv4_routes("h\nx -1 +0 -0 +5 -5 0 0 0 0 0\n", sink);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].destination, "255.255.255.255");
  EXPECT_EQ(v[0].gateway, "0.0.0.0");
  EXPECT_EQ(v[0].flags, 0u);
  EXPECT_EQ(v[0].refcnt, 5);
  EXPECT_EQ(v[0].use, -5);
  v.clear();
  parse_ipv6_routes("", sink);
  parse_ipv6_routes("\n\n", sink);
  parse_ipv6_routes("fe800000000000000000000000000000 40", sink);
  EXPECT_TRUE(v.empty());
}

TEST(PlatformNetwork, Ipv6FromHex) {
  EXPECT_EQ(ipv6_from_hex("00000000000000000000000000000000"), "::");
  EXPECT_EQ(ipv6_from_hex("fe8000000000000000fc00fffe000001"), "fe80::fc:ff:fe00:1");
  EXPECT_EQ(ipv6_from_hex("FD000000000000000000000000000002"), "fd00::2");
  EXPECT_EQ(ipv6_from_hex("00000000000000000000ffffc0000201"), "::ffff:192.0.2.1");
  EXPECT_EQ(ipv6_from_hex(""), std::nullopt);
  EXPECT_EQ(ipv6_from_hex("fd00"), std::nullopt);
  EXPECT_EQ(ipv6_from_hex("0000000000000000000000000000000"), "::");  // 31 digits: the last group is "0"
  EXPECT_EQ(ipv6_from_hex("g0000000000000000000000000000000"), std::nullopt);
  // "%02hhx" takes one digit when the second is not hex, and "0x" as 0 (glibc).
  EXPECT_EQ(ipv6_from_hex("fg0x0000000000000000000000000001"), "f00::1");
}

TEST(PlatformNetwork, PrefixIsPopcount) {
  std::array<std::uint8_t, 16> m{};
  EXPECT_EQ(prefix_length(m, false), 0);
  m = {255, 255, 255, 0, 255};
  EXPECT_EQ(prefix_length(m, false), 24);  // only 4 bytes count for IPv4
  EXPECT_EQ(prefix_length(m, true), 32);
  m = {255, 0, 255, 0};  // non-contiguous: qemu-ga counts bits all the same
  EXPECT_EQ(prefix_length(m, false), 16);
  m.fill(255);
  EXPECT_EQ(prefix_length(m, true), 128);
}

TEST(PlatformNetwork, DevStatsOfThisMachine) {
  std::string dev = slurp(fixture("machine/proc/net/dev"));
  auto lo = find_dev_stats(dev, "lo");
  ASSERT_TRUE(lo);
  EXPECT_EQ(*lo, (dev_stats{3267, 29, 0, 0, 3267, 29, 0, 0}));
  auto eth0 = find_dev_stats(dev, "eth0");
  ASSERT_TRUE(eth0);
  EXPECT_EQ(*eth0, (dev_stats{382947402, 8513, 0, 0, 325113, 4814, 0, 0}));
  EXPECT_TRUE(find_dev_stats(dev, "ifb1"));
  EXPECT_FALSE(find_dev_stats(dev, "eth"));
  EXPECT_FALSE(find_dev_stats(dev, "eth00"));
  EXPECT_FALSE(find_dev_stats(dev, "face |bytes"));  // header lines have no usable numbers
  EXPECT_FALSE(find_dev_stats("", "lo"));
}

TEST(PlatformNetwork, DevStatsOddLines) {
  std::string dev = slurp(fixture("odd/proc/net/dev"));
  // The first eth0 line is short: qemu-ga goes on to the next one.
  EXPECT_EQ(find_dev_stats(dev, "eth0"), (dev_stats{382947402, 8513, 1, 2, 325113, 4814, 3, 4}));
  // No space after ':'; "%lld" saturates at LLONG_MAX; -1 wraps in the uint64 member.
  EXPECT_EQ(find_dev_stats(dev, "verylongname0123"),
            (dev_stats{9223372036854775807u, 9223372036854775807u, 18446744073709551615u, 0, 5, 6, 7, 8}));
  EXPECT_EQ(find_dev_stats(dev, "eth1"), (dev_stats{10, 20, 30, 40, 50, 60, 70, 80}));  // tab-indented
  // An IPv4 label is never found: the line's first ':' ends the name.
  EXPECT_FALSE(find_dev_stats("  eth0:1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", "eth0:1"));
  EXPECT_TRUE(find_dev_stats("  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", "eth0"));  // no '\n'
  EXPECT_FALSE(find_dev_stats("  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n", "eth0"));
}

TEST(PlatformNetwork, ReadProcFileIsRooted) {
  linux_system sys(fixture("machine"));
  linux_net net(sys);
  std::string text;
  EXPECT_EQ(net.read_proc_file("/proc/net/route", text), 0);
  EXPECT_EQ(text, slurp(fixture("machine/proc/net/route")));
  linux_system sys2(fixture("noipv6"));
  linux_net net2(sys2);
  EXPECT_EQ(net2.read_proc_file("/proc/net/ipv6_route", text), ENOENT);
  EXPECT_EQ(text, "");
}

TEST(PlatformNetwork, RealInterfacesOfThisMachine) {
  linux_system sys;
  linux_net net(sys);
  std::vector<if_address> list;
  ASSERT_EQ(net.list_addresses(list), 0);
  bool lo4 = false;
  for (const auto& a : list)
    if (a.name == "lo" && a.fam == if_address::family::ipv4) {
      lo4 = true;
      EXPECT_EQ(address_text(a), "127.0.0.1");
      EXPECT_TRUE(a.has_netmask);
      EXPECT_EQ(prefix_length(a.netmask, false), 8);
    }
  EXPECT_TRUE(lo4);
  hwaddr_socket sock;
  hwaddr_result lo = net.hardware_address("lo", sock);
  const int fd = sock.fd;
  EXPECT_GE(fd, 0);
  EXPECT_EQ(lo.st, hwaddr_result::status::ok);
  EXPECT_EQ(lo.mac, (std::array<std::uint8_t, 6>{}));
  hwaddr_result gone = net.hardware_address("fleetga-nope0", sock);
  EXPECT_EQ(gone.st, hwaddr_result::status::unavailable);
  EXPECT_EQ(gone.err, ENODEV);
  EXPECT_EQ(sock.fd, fd);  // one socket for the queries of a command
}

bool has_address(const std::vector<if_address>& list, std::string_view name, std::string_view text) {
  return std::any_of(list.begin(), list.end(), [&](const if_address& a) {
    return a.name == name && a.fam != if_address::family::other && address_text(a) == text;
  });
}

// linux_net keeps the interface list and the hardware addresses until the kernel announces a
// change: bringing a link up (the kernel then gives lo 127.0.0.1 and ::1) must show at the next
// list, and the hardware address asked after it is the kernel's. Done in a child with a
// network namespace of its own (only lo, down), so nothing outside it changes.
TEST(PlatformNetwork, KeptInterfaceListFollowsTheKernel) {
  const int rc = in_child([&] {
    if (::unshare(CLONE_NEWNET) != 0) return child_cannot;
    linux_system sys;
    linux_net net(sys);
    std::vector<if_address> down, again, up;
    if (net.list_addresses(down) != 0 || net.list_addresses(again) != 0) return 10;
    if (down.size() != 1 || down[0].name != "lo" || again.size() != 1 || again[0].name != "lo") return 11;
    hwaddr_socket hs;
    if (net.hardware_address("lo", hs).st != hwaddr_result::status::ok) return 12;
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) return child_cannot;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) return child_cannot;
    if (net.list_addresses(up) != 0) return 13;
    if (!has_address(up, "lo", "127.0.0.1")) return 14;  // the change unseen
    if (net.hardware_address("lo", hs).st != hwaddr_result::status::ok) return 15;
    if (net.hardware_address("fleetga-nope0", hs).st != hwaddr_result::status::unavailable) return 16;
    // An address added to a link already up: an address event, no link event.
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    ::inet_pton(AF_INET, "10.9.8.7", &sin.sin_addr);
    ifreq ar{};
    std::strcpy(ar.ifr_name, "lo:1");
    std::memcpy(&ar.ifr_addr, &sin, sizeof sin);
    if (::ioctl(s, SIOCSIFADDR, &ar) != 0) return 19;
    std::vector<if_address> added;
    if (net.list_addresses(added) != 0) return 13;
    if (!has_address(added, "lo:1", "10.9.8.7") || !has_address(added, "lo", "127.0.0.1")) return 17;
    // A hardware address changed (a link event): the kept answer must not be given again.
    ifreq hr{};
    std::strcpy(hr.ifr_name, "lo");
    hr.ifr_hwaddr.sa_family = ARPHRD_LOOPBACK;
    const unsigned char mac[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(hr.ifr_hwaddr.sa_data, mac, sizeof mac);
    if (::ioctl(s, SIOCSIFHWADDR, &hr) != 0) return 19;
    ::close(s);
    std::vector<if_address> changed;
    if (net.list_addresses(changed) != 0) return 13;
    hwaddr_result now = net.hardware_address("lo", hs);
    if (now.st != hwaddr_result::status::ok || now.mac != (std::array<std::uint8_t, 6>{2, 0, 0, 0, 0, 1})) return 18;
    return 0;
  });
  if (rc == child_cannot) GTEST_SKIP() << "no network namespace of our own here (not root?)";
  EXPECT_EQ(rc, 0) << "10 list failed, 11 not just lo, 14 the address of the link brought up "
                                       "not seen, 15/16 hardware addresses, 17 an added address not seen, "
                                       "18 a changed hardware address not seen, 19 adding the address or "
                                       "changing the hardware address failed";
}

}  // namespace
}  // namespace fleetga::platform
