// libFuzzer target for the mount-table parsers (platform/mounts): /proc/self/mountinfo and
// /proc/self/mounts (mtab) text, with a device lookup that answers from a hash of the source
// path (block device with numbers, directory, or failure) so every branch is reachable.
// Invariants: no crash or sanitizer report; at most one entry per line; no device listed
// twice; decoded names are never longer than the text they came from; the work stays within
// the budget (budget.hpp).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "budget.hpp"
#include "common.hpp"
#include "platform/mounts.hpp"

namespace fp = fleetga::platform;

namespace {

int fake_lookup(const std::string& dev, unsigned& major, unsigned& minor) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : dev) h = (h ^ c) * 16777619u;
  switch (h % 4) {
    case 0:
      return -1;
    case 1:
      return -2;
    default:
      major = (h >> 8) % 8;  // few numbers: collisions exercise the "already listed" path
      minor = (h >> 16) % 4;
      return 0;
  }
}

void check_list(const std::vector<fp::mount_entry>& v, std::size_t lines) {
  FUZZ_CHECK(v.size() <= lines);
  std::set<std::pair<unsigned, unsigned>> seen;
  for (const auto& m : v) FUZZ_CHECK(seen.insert({m.major, m.minor}).second);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n';
  const fp::device_lookup lookup = fake_lookup;
  fleetga::fuzz::budget::start();
  auto a = fp::parse_mountinfo(text, lookup);
  auto b = fp::parse_mtab(text, lookup);
  const std::string_view first = text.substr(0, text.find('\n'));
  FUZZ_CHECK(fp::decode_mountinfo_name(first).size() <= first.size());
  FUZZ_CHECK(fp::decode_mtab_name(first).size() <= first.size());
  // Measured up to ~110 regions per byte (many short lines, each a parse attempt).
  fleetga::fuzz::budget::check(size, 0, 500, 0, 40000);
  check_list(a, lines);
  check_list(b, lines);
  return 0;
}
