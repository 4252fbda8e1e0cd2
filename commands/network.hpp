#pragma once
// The network family: guest-network-get-interfaces, guest-network-get-route.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "commands/command.hpp"
#include "platform/net.hpp"

namespace fleetga::commands::handlers {

task<handler_result> guest_network_get_interfaces(call&);
task<handler_result> guest_network_get_route(call&);

}  // namespace fleetga::commands::handlers

// The steps of both handlers, exposed for unit tests on a fake platform::net.
namespace fleetga::commands::network {

struct ip_address {
  bool ipv6 = false;
  std::string text;  // inet_ntop(), never a scope id
  std::int64_t prefix = 0;
};

// One GuestNetworkInterface.
struct interface_info {
  std::string name;
  std::optional<std::array<std::uint8_t, 6>> mac;
  std::vector<ip_address> addresses;  // "ip-addresses" is present iff non-empty
  std::optional<platform::dev_stats> stats;
};

// qmp_guest_network_get_interfaces(): interfaces in order of first appearance in the
// getifaddrs() list, each getting its addresses in list order; the MAC is asked for (again)
// on every entry of an interface until one query succeeds; statistics come from
// /proc/net/dev, only for interfaces with an IPv4/IPv6 address.
handler_result collect_interfaces(platform::net& net, std::vector<interface_info>& out);
void write_interfaces(protocol::json_writer& w, const std::vector<interface_info>& list);

// qmp_guest_network_get_route(): the whole reply value into `json`, or the error.
handler_result collect_routes(platform::net& net, std::string& json);
void write_route(protocol::json_writer& w, const platform::route& r);

}  // namespace fleetga::commands::network
