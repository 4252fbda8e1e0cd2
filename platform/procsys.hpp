#pragma once
// /proc and /sys for the hardware family: /proc/diskstats, /proc/stat, the vCPU directories of
// /sys/devices/system/cpu and the memory blocks of /sys/devices/system/memory, with qemu-ga's
// semantics (qga/commands-linux.c, 10.2), quirks included: its sscanf() field counting, its
// strtoul/strtol/atoi conversions, readdir order, and the exact file operations (pread of
// one byte at offset 0, pwrite without truncation) that decide what a fixture sees.
//
// The parsers are pure functions. procsys does the file work under an injectable root; the
// paths in its failure texts are the unrooted ones qemu-ga prints.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::platform {

// ---- /proc/diskstats -------------------------------------------------------------------

// GuestDiskStats members, in schema order (qga/qapi-schema.json).
enum disk_stat : std::uint8_t {
  ds_read_sectors, ds_read_ios, ds_read_merges, ds_write_sectors, ds_write_ios, ds_write_merges,
  ds_discard_sectors, ds_discard_ios, ds_discard_merges, ds_flush_ios, ds_read_ticks, ds_write_ticks,
  ds_discard_ticks, ds_flush_ticks, ds_ios_pgr, ds_total_ticks, ds_weight_ticks,
  disk_stat_count
};

struct disk_stats_entry {
  std::string name;
  std::uint64_t major = 0, minor = 0;          // %u: 32-bit, truncated like sscanf does
  std::uint32_t present = 0;                   // bit (1 << disk_stat)
  std::array<std::uint64_t, disk_stat_count> v{};
  bool has(disk_stat s) const noexcept { return present & (std::uint32_t{1} << s); }
};

// One entry per line that sscanf("%u %u %s %lu ...") converts at least 7 fields of. Members by
// conversion count: 7 -> read/write ios+sectors (the 2.4 partition format); 8..13 -> none
// (qemu-ga sets nothing then: "stats": {}); >= 14 -> the classic eleven; >= 18 -> discard;
// >= 20 -> flush. Lines end at '\n'; a NUL ends the line for sscanf.
std::vector<disk_stats_entry> parse_diskstats(std::string_view text);

// ---- /proc/stat ------------------------------------------------------------------------

// GuestLinuxCpuStats counters, in schema order.
enum cpu_stat : std::uint8_t {
  cs_user, cs_nice, cs_system, cs_idle, cs_iowait, cs_irq, cs_softirq, cs_steal, cs_guest, cs_guestnice,
  cpu_stat_count
};

struct cpu_stats_entry {
  std::int64_t cpu = 0;                        // atoi() of what follows "cpu"
  std::uint32_t present = 0;                   // bit (1 << cpu_stat)
  std::array<std::uint64_t, cpu_stat_count> ms{};  // jiffies * 1000 / clk_tck (uint64 wrap)
  bool has(cpu_stat s) const noexcept { return present & (std::uint32_t{1} << s); }
};

// Lines whose first word starts with "cpu" and is longer than "cpu" (the aggregate line is
// skipped). A cpuN line with fewer than four counters ends the list (qemu-ga logs and
// breaks). Optional counters by how many columns converted: iowait (5), irq+softirq (6),
// steal (8), guest (9), guestnice (10). With exactly 6 columns qemu-ga reports an
// uninitialised softirq; this reports 0 there.
std::vector<cpu_stats_entry> parse_cpustats(std::string_view text, long clk_tck);

// ---- small conversions qemu-ga does with sscanf/strto* ---------------------------------

// sscanf(name, "cpu%" PRId64): the logical id of a /sys/devices/system/cpu entry, nullopt
// when sscanf returns 0. (qemu-ga also takes an entry for which sscanf returns EOF -- a name
// that is a strict prefix of "cpu", or "cpu" itself -- with an uninitialised id; such
// entries don't exist in sysfs and are skipped here.)
std::optional<std::int64_t> parse_vcpu_name(std::string_view name) noexcept;
// strncmp(name, "memory", 6) == 0 ? strtoul(name + 6, NULL, 10) : nullopt.
std::optional<std::uint64_t> parse_memory_block_name(std::string_view name) noexcept;
// strtol(text, NULL, 16) as uint64 (block_size_bytes; the text stops at a NUL).
std::uint64_t parse_block_size(std::string_view text) noexcept;

// ---- the file side ---------------------------------------------------------------------

// error_setg_errno(): desc = what + (err ? ": " + strerror(err) : "").
struct failure {
  std::string what;
  int err = 0;
};

struct vcpu_state {
  std::int64_t logical_id = 0;
  bool online = false;
  bool can_offline = false;
};

struct memory_block_state {
  std::uint64_t phys_index = 0;
  bool online = false;
  bool can_offline = false;
};

// GuestMemoryBlockResponseType, in schema order.
enum class memory_block_response : std::uint8_t { success, not_found, operation_not_supported, operation_failed };

struct memory_block_result {
  memory_block_response response = memory_block_response::success;
  std::optional<std::int64_t> error_code;  // errno
};

// Largest /proc file read (qemu-ga has no limit; a line cut by the limit is dropped).
inline constexpr std::size_t proc_file_max = std::size_t{16} << 20;

class procsys {
 public:
  // `root` ("" = "/") prefixes every /proc and /sys path.
  explicit procsys(std::string root = {}) : root_(std::move(root)) {}

  // Whole /proc file (`abs`, e.g. "/proc/diskstats"). Failure text `open("<abs>")`. A read
  // error after the open ends the text like getline() failing does (no error).
  bool read_proc(std::string_view abs, std::string& out, failure& f) const;

  // guest-get-vcpus: the cpuN entries of /sys/devices/system/cpu in readdir order; `online`
  // from the first byte of cpuN/online; no such file -> online, can't offline. Stops at the
  // first failure (texts: `failed to list entries: /sys/devices/system/cpu`,
  // `open("/sys/devices/system/cpu/cpuN/")`, `open("…/cpuN//online")`, `pread(…)`,
  // `pread(…): unexpected EOF`).
  bool list_vcpus(std::vector<vcpu_state>& out, failure& f) const;
  // One guest-set-vcpus entry: writes '0'/'1' to cpuN/online when it differs; no online file
  // -> `logical processor #N can't be offlined` when asked to offline, else success.
  bool set_vcpu(std::int64_t logical_id, bool online, failure& f) const;

  // guest-get-memory-blocks: memory* directories of /sys/devices/system/memory/ in readdir
  // order. `missing` is set (and true returned, empty list) when that directory doesn't
  // exist: qemu-ga then answers [] rather than an error.
  bool list_memory_blocks(std::vector<memory_block_state>& out, bool& missing, failure& f) const;
  // One guest-set-memory-blocks entry, with qemu-ga's response/error-code rules.
  memory_block_result set_memory_block(std::uint64_t phys_index, bool online) const;
  // guest-get-memory-block-info: block_size_bytes (hex).
  bool memory_block_size(std::uint64_t& out, failure& f) const;

  std::string rooted(std::string_view abs) const { return root_ + std::string(abs); }

 private:
  std::string root_;
};

}  // namespace fleetga::platform
