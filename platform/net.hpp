#pragma once
// The network family's view of the host: getifaddrs(), SIOCGIFHWADDR and the /proc/net
// files, behind a narrow interface so the grouping and formatting in commands/network.cpp
// run in unit tests on synthetic interface lists and fixture files. Plus the pure parsers
// of /proc/net/dev, /proc/net/route and /proc/net/ipv6_route, with qemu-ga's sscanf()
// semantics (upstream qga/commands-posix.c guest_get_network_stats(), qga/commands-linux.c
// qmp_guest_network_get_route()).
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/system.hpp"

namespace fleetga::platform {

// One getifaddrs() entry, copied out; the vector keeps the kernel's order.
struct if_address {
  enum class family : std::uint8_t { other, ipv4, ipv6 };  // other: AF_PACKET, or no address
  std::string name;                     // ifa_name (an IPv4 label such as "eth0:1" included)
  family fam = family::other;
  std::array<std::uint8_t, 16> addr{};  // network byte order; the first 4 bytes for IPv4
  bool has_netmask = false;
  std::array<std::uint8_t, 16> netmask{};
  std::uint32_t scope_id = 0;           // sin6_scope_id: qemu-ga prints no "%eth0", neither do we
};

struct hwaddr_result {
  enum class status : std::uint8_t {
    ok,             // mac holds the first 6 bytes of ifr_hwaddr.sa_data
    unavailable,    // the ioctl failed (err): no hardware-address, not an error
    socket_failed,  // socket() failed (err): the whole command fails
  };
  status st = status::ok;
  int err = 0;
  std::array<std::uint8_t, 6> mac{};
};

// Largest /proc/net file we read. qemu-ga has no limit (getline() over the whole file); 64 MiB
// is ~500,000 IPv4 routes, far beyond any guest, and bounds what a runaway table costs us.
inline constexpr std::size_t proc_net_file_max = std::size_t{64} << 20;

// The socket SIOCGIFHWADDR is asked on, for the queries of one command: closed with it, so no
// descriptor lives between commands. (qemu-ga opens and closes one per interface: the same
// answers for three syscalls a query instead of one.)
class hwaddr_socket {
 public:
  hwaddr_socket() = default;
  ~hwaddr_socket();
  hwaddr_socket(const hwaddr_socket&) = delete;
  hwaddr_socket& operator=(const hwaddr_socket&) = delete;
  int fd = -1;
};

class net {
 public:
  virtual ~net() = default;
  // getifaddrs(); returns errno (0 on success).
  virtual int list_addresses(std::vector<if_address>& out) = 0;
  // ioctl(SIOCGIFHWADDR) on `name` over `sock`, which is opened (socket(PF_INET, SOCK_STREAM))
  // at the first query that needs it; a socket() failure is reported and tried again by the
  // next query, as qemu-ga, which opens one per interface, meets it.
  virtual hwaddr_result hardware_address(const std::string& name, hwaddr_socket& sock) = 0;
  // Reads the whole file root + abs_path. Returns open()'s errno (0: opened); a read error
  // later just ends the data (qemu-ga's getline() loop stops the same way); EFBIG when the
  // file is larger than proc_net_file_max.
  virtual int read_proc_file(std::string_view abs_path, std::string& out) = 0;
};

// The real thing. /proc paths are rooted through `sys` (the same root as everything else).
//
// The interface list and the hardware addresses are kept between calls and asked again only
// after the kernel announced a change: a netlink socket subscribed to link and IPv4/IPv6
// address events (every rename, new or removed link or address, MAC change, up/down) is read,
// without blocking, before each list. Nothing pending: the last getifaddrs() and SIOCGIFHWADDR
// answers are still the kernel's. Something pending, an overflowed socket (ENOBUFS) or no
// socket: asked again. The watch is subscribed before the list it guards is read, so a change
// during the read shows at the next call. (Statistics are read every time; they are not
// announced.) Thread-safe.
class linux_net final : public net {
 public:
  explicit linux_net(const system& sys) noexcept : sys_(sys) {}
  ~linux_net() override;
  linux_net(const linux_net&) = delete;
  linux_net& operator=(const linux_net&) = delete;
  int list_addresses(std::vector<if_address>& out) override;
  hwaddr_result hardware_address(const std::string& name, hwaddr_socket& sock) override;
  int read_proc_file(std::string_view abs_path, std::string& out) override;

 private:
  bool changed();  // drains the watch; true when the kept answers can't be used (lock held)

  const system& sys_;
  std::mutex m_;
  int watch_ = -1;            // NETLINK_ROUTE, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
  std::uint64_t epoch_ = 0;   // getifaddrs() calls so far; the kept answers belong to the last
  bool kept_ = false;         // addrs_ and hw_ hold the answers of epoch_
  std::vector<if_address> addrs_;
  std::map<std::string, hwaddr_result, std::less<>> hw_;
};

// ---- /proc/net/dev -------------------------------------------------------------------

struct dev_stats {
  std::uint64_t rx_bytes = 0, rx_packets = 0, rx_errs = 0, rx_dropped = 0;
  std::uint64_t tx_bytes = 0, tx_packets = 0, tx_errs = 0, tx_dropped = 0;
  friend bool operator==(const dev_stats&, const dev_stats&) = default;
};

// guest_get_network_stats(): the first line that, with leading white space removed, is
// exactly `name` followed by ':' (the first ':' of the line) and has 16 numbers after it.
// Numbers are read like "%lld" (sign allowed, saturating at the long long range) and
// stored into uint64 (so a negative one wraps).
std::optional<dev_stats> find_dev_stats(std::string_view proc_net_dev, std::string_view name);

// ---- /proc/net/route, /proc/net/ipv6_route -------------------------------------------

// One GuestNetworkRoute. Absent optionals are absent members.
struct route {
  std::string iface;
  std::string destination;
  std::int64_t metric = 0;
  std::optional<std::string> gateway, mask;
  std::optional<std::int64_t> irtt;
  std::optional<std::uint64_t> flags;
  std::optional<std::int64_t> refcnt, use, window, mtu;
  std::optional<std::string> desprefixlen, source, srcprefixlen, nexthop;
  std::int64_t version = 4;
};

using route_sink = std::function<void(const route&)>;

// /proc/net/route: the first line is skipped whatever it holds; every other line that
// sscanf("%s %X %X %x %d %d %d %X %d %d %d") reads completely is one route. The hex
// addresses are the kernel's __be32 printed as a host (little-endian) integer; they become
// dotted quads lowest byte first, as upstream prints them. %d/%X are stored into 32-bit C
// int/unsigned exactly like glibc does (64-bit strtol/strtoul, saturating, then truncated),
// so "4294967295" is -1, as upstream's `int metric` makes it.
void parse_ipv4_routes(std::string_view text, const route_sink& sink);

// /proc/net/ipv6_route: no header; "%32s %x %32s %x %32s %x %x %x %x %s" must read all ten
// fields. Upstream stores all six %x values in C `int`: a metric of ffffffff (the kernel's
// "unreachable" default) is -1, and flags with bit 31 set (RTF_LOCAL 0x80000000) are
// sign-extended into the uint64 member (80200001 -> 18446744071564165121). That is what
// qemu-ga >= 9.1 sends, so we send it too (the prefix lengths likewise print as "%d" of an
// int). Addresses go through inet_ntop(); a destination that is not 32 hex digits drops
// the route, a bad source/next hop only drops that member.
void parse_ipv6_routes(std::string_view text, const route_sink& sink);

// hex_to_ip_address(, 1): 16 groups of "%02hhx" at offsets 0, 2, ... 30 of `hex`
// (nullopt when one does not parse), formatted by inet_ntop(AF_INET6).
std::optional<std::string> ipv6_from_hex(std::string_view hex);

// popcount of a netmask, qemu-ga's prefix (4 bytes for IPv4, 16 for IPv6).
int prefix_length(const std::array<std::uint8_t, 16>& netmask, bool ipv6) noexcept;

// inet_ntop() of an if_address's address.
std::string address_text(const if_address& a);

}  // namespace fleetga::platform
