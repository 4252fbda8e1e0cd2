// libFuzzer target for the network family's /proc parsers (platform/net): /proc/net/route,
// /proc/net/ipv6_route, /proc/net/dev and the hex IPv6 addresses. Invariants: no crash or
// sanitizer report; at most one route per line, with the family's version; an IPv6 address
// from hex only when the text has 32 hex digits; the work stays within the budget.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "budget.hpp"
#include "common.hpp"
#include "platform/net.hpp"

namespace fp = fleetga::platform;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n';
  fleetga::fuzz::budget::start();

  std::size_t v4 = 0, v6 = 0;
  fp::parse_ipv4_routes(text, [&](const fp::route& r) {
    ++v4;
    FUZZ_CHECK(r.version == 4);
  });
  fp::parse_ipv6_routes(text, [&](const fp::route& r) {
    ++v6;
    FUZZ_CHECK(r.version == 6);
  });
  FUZZ_CHECK(v4 <= lines && v6 <= lines);

  // The interface asked for: the first word of the input, and a usual name.
  std::string_view first = text.substr(0, text.find_first_of(" \n:"));
  (void)fp::find_dev_stats(text, first.substr(0, 16));
  (void)fp::find_dev_stats(text, "eth0");

  // sscanf("%02hhx") at offsets 0, 2, ... 30: the last group needs at least offset 30 (one
  // digit will do, as for sscanf; blanks before a group are skipped).
  if (auto a = fp::ipv6_from_hex(text.substr(0, 32))) FUZZ_CHECK(size >= 31 && !a->empty());

  // Measured up to ~70 regions per byte.
  fleetga::fuzz::budget::check(size, 0, 300, 0, 30000);
  return 0;
}
