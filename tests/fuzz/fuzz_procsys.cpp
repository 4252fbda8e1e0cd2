// libFuzzer target for the /proc and /sys parsers of the hardware and storage families
// (platform/procsys, platform/blockdev): /proc/diskstats, /proc/stat, the cpuN / memoryN
// directory names, block_size_bytes, udev/uevent KEY=value lookup and the NVMe SMART page.
// Invariants: no crash or sanitizer report; at most one entry per line; a /proc/stat entry
// has at least the four mandatory counters; the SMART page parses exactly when it has 192
// bytes; the work stays within the budget (budget.hpp).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "budget.hpp"
#include "common.hpp"
#include "platform/blockdev.hpp"
#include "platform/procsys.hpp"

namespace fp = fleetga::platform;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n';
  fleetga::fuzz::budget::start();

  auto disks = fp::parse_diskstats(text);
  FUZZ_CHECK(disks.size() <= lines);
  for (const auto& d : disks) FUZZ_CHECK(!d.name.empty());

  const long clk_tck = size ? 1 + data[0] % 1000 : 100;
  auto cpus = fp::parse_cpustats(text, clk_tck);
  FUZZ_CHECK(cpus.size() <= lines);
  for (const auto& c : cpus)
    for (auto s : {fp::cs_user, fp::cs_nice, fp::cs_system, fp::cs_idle}) FUZZ_CHECK(c.has(s));

  const std::string_view first = text.substr(0, text.find('\n'));
  (void)fp::parse_vcpu_name(first);
  (void)fp::parse_memory_block_name(first);
  (void)fp::parse_block_size(first);
  (void)fp::env_value(text, "E:", first.substr(0, 16));
  (void)fp::env_value(text, "", "DEVNAME");

  auto smart = fp::parse_nvme_smart_log(text);
  FUZZ_CHECK(smart.has_value() == (size >= 192));

  // Measured up to ~50 regions per byte.
  fleetga::fuzz::budget::check(size, 0, 300, 0, 30000);
  return 0;
}
