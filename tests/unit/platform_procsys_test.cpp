// platform/procsys: the pure parsers (sscanf/strto* semantics of qemu-ga) and the /sys file
// work on fixture roots (tests/data/hardware: `real` captured from a Debian 12 VM with 2
// vCPUs, `synthetic` hand-made). Writes happen only in temporary copies.
#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "commands_harness.hpp"
#include "platform/procsys.hpp"

namespace fleetga::test {
namespace {

using namespace platform;

std::string hw_data(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/hardware/" + std::string(rel); }

std::string hw_file(std::string_view rel) { return slurp(hw_data(rel)); }

// Names of `dir` in readdir order (what qemu-ga iterates), "." and ".." left out.
std::vector<std::string> readdir_names(const std::string& dir) {
  std::vector<std::string> v;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") v.push_back(n);
    }
    ::closedir(d);
  }
  return v;
}

// A writable copy of a fixture tree.
struct fixture_copy {
  temp_dir dir;
  explicit fixture_copy(std::string_view tree) {
    std::filesystem::copy(hw_data(tree), dir.path, std::filesystem::copy_options::recursive);
  }
  std::string operator/(std::string_view rel) const { return dir / rel; }
};

constexpr std::uint64_t u64max = std::numeric_limits<std::uint64_t>::max();

std::vector<std::uint64_t> values(const disk_stats_entry& e) {
  std::vector<std::uint64_t> v;
  for (int s = 0; s < disk_stat_count; ++s)
    if (e.has(static_cast<disk_stat>(s))) v.push_back(e.v[s]);
  return v;
}

// ---- /proc/diskstats -------------------------------------------------------------------

TEST(HardwareDiskstats, RealCapture) {
  auto d = parse_diskstats(hw_file("real/proc/diskstats"));
  ASSERT_EQ(d.size(), 10u);
  EXPECT_EQ(d[0].name, "loop0");
  EXPECT_EQ(d[0].major, 7u);
  EXPECT_EQ(d[0].minor, 0u);
  EXPECT_EQ(d[0].present, (1u << disk_stat_count) - 1);  // 20 fields: every member
  const auto& vda = d[8];
  EXPECT_EQ(vda.name, "vda");
  EXPECT_EQ(vda.major, 254u);
  EXPECT_EQ(vda.minor, 0u);
  // 141999 13439 6013266 127821 43298 48351 25163384 63217 0 19632 194952 20998 23 16446664 3870 1307 43
  EXPECT_EQ(vda.v[ds_read_ios], 141999u);
  EXPECT_EQ(vda.v[ds_read_merges], 13439u);
  EXPECT_EQ(vda.v[ds_read_sectors], 6013266u);
  EXPECT_EQ(vda.v[ds_read_ticks], 127821u);
  EXPECT_EQ(vda.v[ds_write_ios], 43298u);
  EXPECT_EQ(vda.v[ds_write_merges], 48351u);
  EXPECT_EQ(vda.v[ds_write_sectors], 25163384u);
  EXPECT_EQ(vda.v[ds_write_ticks], 63217u);
  EXPECT_EQ(vda.v[ds_ios_pgr], 0u);
  EXPECT_EQ(vda.v[ds_total_ticks], 19632u);
  EXPECT_EQ(vda.v[ds_weight_ticks], 194952u);
  EXPECT_EQ(vda.v[ds_discard_ios], 20998u);
  EXPECT_EQ(vda.v[ds_discard_merges], 23u);
  EXPECT_EQ(vda.v[ds_discard_sectors], 16446664u);
  EXPECT_EQ(vda.v[ds_discard_ticks], 3870u);
  EXPECT_EQ(vda.v[ds_flush_ios], 1307u);
  EXPECT_EQ(vda.v[ds_flush_ticks], 43u);
  EXPECT_EQ(d[9].name, "zram0");
  EXPECT_EQ(d[9].major, 253u);
}

TEST(HardwareDiskstats, MembersByFieldCount) {
  auto d = parse_diskstats(hw_file("synthetic/proc/diskstats"));
  ASSERT_EQ(d.size(), 11u);  // the blank line and "x 1 2" (5 fields) are skipped
  // 20 conversions (23 columns: the rest is ignored): all 17.
  EXPECT_EQ(d[0].name, "sda");
  EXPECT_EQ(d[0].present, (1u << disk_stat_count) - 1);
  EXPECT_EQ(d[0].v[ds_read_ios], 11u);
  EXPECT_EQ(d[0].v[ds_read_merges], 22u);
  EXPECT_EQ(d[0].v[ds_read_sectors], 33u);
  EXPECT_EQ(d[0].v[ds_flush_ios], 16u);
  EXPECT_EQ(d[0].v[ds_flush_ticks], 17u);
  // 7: the 2.4 partition format: ios, sectors, ios, sectors.
  EXPECT_EQ(d[1].name, "sda1");
  EXPECT_EQ(d[1].present, (1u << ds_read_ios) | (1u << ds_read_sectors) | (1u << ds_write_ios) | (1u << ds_write_sectors));
  EXPECT_EQ(d[1].v[ds_read_ios], 1u);
  EXPECT_EQ(d[1].v[ds_read_sectors], 2u);
  EXPECT_EQ(d[1].v[ds_write_ios], 3u);
  EXPECT_EQ(d[1].v[ds_write_sectors], 4u);
  // 8 and 13: qemu-ga sets nothing.
  EXPECT_EQ(d[2].name, "sda2");
  EXPECT_EQ(d[2].present, 0u);
  EXPECT_EQ(d[3].name, "sda3");
  EXPECT_EQ(d[3].present, 0u);
  // 14 and 17: the classic eleven.
  const std::vector<std::uint64_t> classic{3, 1, 2, 7, 5, 6, 4, 8, 9, 10, 11};
  EXPECT_EQ(d[4].name, "sdb");
  EXPECT_EQ(values(d[4]), classic);  // schema order: read-sectors, read-ios, read-merges, ...
  EXPECT_EQ(d[5].name, "sdb1");
  EXPECT_EQ(values(d[5]), classic);
  // 18 and 19: + discard.
  EXPECT_EQ(d[6].name, "sdb2");
  EXPECT_EQ(values(d[6]), (std::vector<std::uint64_t>{3, 1, 2, 7, 5, 6, 14, 12, 13, 4, 8, 15, 9, 10, 11}));
  EXPECT_EQ(d[7].name, "sdc");
  EXPECT_FALSE(d[7].has(ds_flush_ios));
  EXPECT_TRUE(d[7].has(ds_discard_ticks));
  // sscanf conversions: %lu saturates and wraps negatives, %u truncates to 32 bits.
  const auto& sr0 = d[8];
  EXPECT_EQ(sr0.name, "sr0");
  EXPECT_EQ(sr0.major, 11u);
  EXPECT_EQ(sr0.v[ds_read_ios], 4294967297u);
  EXPECT_EQ(sr0.v[ds_read_merges], u64max);  // 18446744073709551616 overflows
  EXPECT_EQ(sr0.v[ds_read_sectors], u64max);  // -1
  EXPECT_EQ(sr0.v[ds_read_ticks], 5u);        // +5
  EXPECT_EQ(sr0.v[ds_write_ticks], 0u);       // %u of 4294967296
  EXPECT_EQ(sr0.v[ds_ios_pgr], 1u);           // %u of 4294967297
  // A non-number stops the conversions: 10 -> nothing set.
  EXPECT_EQ(d[9].name, "md0");
  EXPECT_EQ(d[9].present, 0u);
  // The last line has no newline.
  EXPECT_EQ(d[10].name, "nvme0n1");
  EXPECT_EQ(d[10].major, 259u);
  EXPECT_EQ(d[10].present, (1u << disk_stat_count) - 1);
}

TEST(HardwareDiskstats, OddLines) {
  EXPECT_TRUE(parse_diskstats("").empty());
  EXPECT_TRUE(parse_diskstats("\n\n   \n").empty());
  EXPECT_TRUE(parse_diskstats("8 0 sda 1 2 3\n").empty());  // 6 fields
  EXPECT_TRUE(parse_diskstats("x 0 sda 1 2 3 4\n").empty());
  // %u major/minor are 32-bit.
  auto d = parse_diskstats("4294967298 -1 sda 1 2 3 4\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].major, 2u);
  EXPECT_EQ(d[0].minor, 4294967295u);
  // A NUL ends the line for sscanf; tabs, CR and vertical tabs are blanks.
  static constexpr char odd[] = "8\t0 a\r1 2 3 4\0 5 6 7 8 9 10 11\n8 1 b\v1 2 3 4\n";
  d = parse_diskstats(std::string_view(odd, sizeof odd - 1));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].name, "a");
  EXPECT_EQ(d[0].present, (1u << ds_read_ios) | (1u << ds_read_sectors) | (1u << ds_write_ios) | (1u << ds_write_sectors));
  EXPECT_EQ(d[1].name, "b");
  // Names with odd bytes are kept as they are.
  d = parse_diskstats("8 0 dm-\xff\"x 1 2 3 4\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].name, "dm-\xff\"x");
}

TEST(HardwareDiskstats, ManyLines) {
  std::string text;
  for (int i = 0; i < 5000; ++i)
    text += "   7 " + std::to_string(i) + " loop" + std::to_string(i) + " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n";
  auto d = parse_diskstats(text);
  ASSERT_EQ(d.size(), 5000u);
  EXPECT_EQ(d[4999].name, "loop4999");
  EXPECT_EQ(d[4999].minor, 4999u);
}

// ---- /proc/stat ------------------------------------------------------------------------

TEST(HardwareCpustats, RealCapture) {
  auto c = parse_cpustats(hw_file("real/proc/stat"), 100);
  ASSERT_EQ(c.size(), 2u);  // the aggregate "cpu" line is skipped
  // cpu0 108614 0 19549 212591 153 0 33 64 0 0
  EXPECT_EQ(c[0].cpu, 0);
  EXPECT_EQ(c[0].present, (1u << cpu_stat_count) - 1);
  EXPECT_EQ(c[0].ms[cs_user], 1086140u);
  EXPECT_EQ(c[0].ms[cs_nice], 0u);
  EXPECT_EQ(c[0].ms[cs_system], 195490u);
  EXPECT_EQ(c[0].ms[cs_idle], 2125910u);
  EXPECT_EQ(c[0].ms[cs_iowait], 1530u);
  EXPECT_EQ(c[0].ms[cs_irq], 0u);
  EXPECT_EQ(c[0].ms[cs_softirq], 330u);
  EXPECT_EQ(c[0].ms[cs_steal], 640u);
  EXPECT_EQ(c[0].ms[cs_guest], 0u);
  EXPECT_EQ(c[0].ms[cs_guestnice], 0u);
  EXPECT_EQ(c[1].cpu, 1);
  EXPECT_EQ(c[1].ms[cs_user], 1062030u);
}

TEST(HardwareCpustats, OptionalCountersByColumns) {
  auto c = parse_cpustats(hw_file("synthetic/proc/stat"), 100);
  // cpu0..cpu6, cpux, cpu12, then "cpu7 1 2 3" ends the list (cpu8 never seen).
  ASSERT_EQ(c.size(), 9u);
  auto bits = [](std::initializer_list<cpu_stat> l) {
    std::uint32_t b = 0;
    for (auto s : l) b |= 1u << s;
    return b;
  };
  const std::uint32_t base = bits({cs_user, cs_nice, cs_system, cs_idle});
  EXPECT_EQ(c[0].cpu, 0);
  EXPECT_EQ(c[0].present, (1u << cpu_stat_count) - 1);
  EXPECT_EQ(c[0].ms[cs_guestnice], 100u);
  EXPECT_EQ(c[1].cpu, 1);
  EXPECT_EQ(c[1].present, base);
  EXPECT_EQ(c[1].ms[cs_user], 1000u);
  EXPECT_EQ(c[1].ms[cs_system], 2500u);
  EXPECT_EQ(c[1].ms[cs_idle], 70u);
  EXPECT_EQ(c[2].present, base | bits({cs_iowait}));
  EXPECT_EQ(c[2].ms[cs_iowait], 90u);
  // 6 counters: irq and softirq both (qemu-ga's softirq is uninitialised there; 0 here).
  EXPECT_EQ(c[3].present, base | bits({cs_iowait, cs_irq, cs_softirq}));
  EXPECT_EQ(c[3].ms[cs_irq], 110u);
  EXPECT_EQ(c[3].ms[cs_softirq], 0u);
  EXPECT_EQ(c[4].present, base | bits({cs_iowait, cs_irq, cs_softirq}));
  EXPECT_EQ(c[4].ms[cs_softirq], 130u);
  EXPECT_EQ(c[5].present, base | bits({cs_iowait, cs_irq, cs_softirq, cs_steal}));
  EXPECT_EQ(c[5].ms[cs_steal], 150u);
  EXPECT_EQ(c[6].present, base | bits({cs_iowait, cs_irq, cs_softirq, cs_steal, cs_guest}));
  EXPECT_EQ(c[6].ms[cs_guest], 170u);
  // "cpux": atoi("x") == 0.
  EXPECT_EQ(c[7].cpu, 0);
  EXPECT_EQ(c[7].ms[cs_user], 50u);
  // unsigned long arithmetic: ULONG_MAX * 1000 wraps before the division.
  EXPECT_EQ(c[8].cpu, 12);
  EXPECT_EQ(c[8].ms[cs_user], (u64max * 1000) / 100);
}

TEST(HardwareCpustats, ClockTicksAndOddNames) {
  auto c = parse_cpustats("cpu3 1 3 999 1000 1\n", 250);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].ms[cs_user], 4u);
  EXPECT_EQ(c[0].ms[cs_nice], 12u);
  EXPECT_EQ(c[0].ms[cs_system], 3996u);
  EXPECT_EQ(c[0].ms[cs_idle], 4000u);
  EXPECT_EQ(c[0].ms[cs_iowait], 4u);
  // atoi(): sign, saturation to long, then int truncation.
  c = parse_cpustats("cpu-3 1 1 1 1\ncpu+4 1 1 1 1\ncpu4294967297 1 1 1 1\ncpu99999999999999999999 1 1 1 1\n", 100);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].cpu, -3);
  EXPECT_EQ(c[1].cpu, 4);
  EXPECT_EQ(c[2].cpu, 1);
  EXPECT_EQ(c[3].cpu, -1);  // (int)LONG_MAX
  // Lines that aren't "cpuN" never stop the list, even short ones; an empty file is [].
  EXPECT_TRUE(parse_cpustats("", 100).empty());
  EXPECT_TRUE(parse_cpustats("cpu 1\nctxt 5\nbtime\n\n", 100).empty());
  c = parse_cpustats("cp 1\ncpu 1 2\ncpu0 1 2 3 4", 100);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].ms[cs_idle], 40u);
  // A cpuN line with a non-number in the first four counters ends the list.
  EXPECT_TRUE(parse_cpustats("cpu0 1 2 x 4\ncpu1 1 2 3 4\n", 100).empty());
}

// ---- names and sizes -------------------------------------------------------------------

TEST(HardwareSysfsNames, VcpuNames) {
  EXPECT_EQ(parse_vcpu_name("cpu0"), 0);
  EXPECT_EQ(parse_vcpu_name("cpu127"), 127);
  EXPECT_EQ(parse_vcpu_name("cpu01"), 1);
  EXPECT_EQ(parse_vcpu_name("cpu-1"), -1);
  EXPECT_EQ(parse_vcpu_name("cpu+2"), 2);
  EXPECT_EQ(parse_vcpu_name("cpu 5"), 5);    // %ld skips blanks
  EXPECT_EQ(parse_vcpu_name("cpu7abc"), 7);  // trailing text ignored
  EXPECT_EQ(parse_vcpu_name("cpu99999999999999999999"), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(parse_vcpu_name("cpufreq"), std::nullopt);
  EXPECT_EQ(parse_vcpu_name("cpuidle"), std::nullopt);
  EXPECT_EQ(parse_vcpu_name("cpu"), std::nullopt);
  EXPECT_EQ(parse_vcpu_name("cpu-"), std::nullopt);
  EXPECT_EQ(parse_vcpu_name("kernel_max"), std::nullopt);
  EXPECT_EQ(parse_vcpu_name("online"), std::nullopt);
}

TEST(HardwareSysfsNames, MemoryBlockNames) {
  EXPECT_EQ(parse_memory_block_name("memory0"), 0u);
  EXPECT_EQ(parse_memory_block_name("memory196"), 196u);
  EXPECT_EQ(parse_memory_block_name("memory_tiers"), 0u);  // strtoul without digits
  EXPECT_EQ(parse_memory_block_name("memory-1"), u64max);
  EXPECT_EQ(parse_memory_block_name("memory99999999999999999999"), u64max);
  EXPECT_EQ(parse_memory_block_name("memor"), std::nullopt);
  EXPECT_EQ(parse_memory_block_name("power"), std::nullopt);
}

TEST(HardwareSysfsNames, BlockSize) {
  EXPECT_EQ(parse_block_size("8000000\n"), 134217728u);
  EXPECT_EQ(parse_block_size("0x10"), 16u);
  EXPECT_EQ(parse_block_size("0X1f"), 31u);
  EXPECT_EQ(parse_block_size("0xg"), 0u);
  EXPECT_EQ(parse_block_size("  ff  "), 255u);
  EXPECT_EQ(parse_block_size("zz"), 0u);
  EXPECT_EQ(parse_block_size(""), 0u);
  EXPECT_EQ(parse_block_size("-1"), u64max);
  EXPECT_EQ(parse_block_size("ffffffffffffffffff"), static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(parse_block_size(std::string_view("10\0ff", 5)), 16u);
}

// ---- files -----------------------------------------------------------------------------

TEST(HardwareProcsys, ReadProc) {
  procsys p(hw_data("real"));
  std::string text;
  failure f;
  ASSERT_TRUE(p.read_proc("/proc/diskstats", text, f));
  EXPECT_EQ(text, hw_file("real/proc/diskstats"));
  procsys none(hw_data("nope"));
  EXPECT_FALSE(none.read_proc("/proc/stat", text, f));
  EXPECT_EQ(f.what, "open(\"/proc/stat\")");
  EXPECT_EQ(f.err, ENOENT);
}

TEST(HardwareProcsys, ReadProcLargeFile) {
  temp_dir root;
  std::filesystem::create_directories(root / "proc");
  std::string big;
  while (big.size() < 300000) big += "  8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n";
  spit(root / "proc/diskstats", big);
  procsys p(root.path);
  std::string text;
  failure f;
  ASSERT_TRUE(p.read_proc("/proc/diskstats", text, f));
  EXPECT_EQ(text, big);
}

TEST(HardwareProcsys, RealVcpusInReaddirOrder) {
  procsys p(hw_data("real"));
  std::vector<vcpu_state> v;
  failure f;
  ASSERT_TRUE(p.list_vcpus(v, f)) << f.what;
  std::vector<std::int64_t> order;
  for (const auto& n : readdir_names(hw_data("real/sys/devices/system/cpu")))
    if (n == "cpu0" || n == "cpu1") order.push_back(n[3] - '0');
  ASSERT_EQ(v.size(), 2u);
  ASSERT_EQ(order.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(v[i].logical_id, order[i]);
    EXPECT_TRUE(v[i].online);
    EXPECT_EQ(v[i].can_offline, v[i].logical_id == 1);  // cpu0 has no `online` file
  }
}

TEST(HardwareProcsys, ThreeVcpus) {
  procsys p(hw_data("synthetic"));
  std::vector<vcpu_state> v;
  failure f;
  ASSERT_TRUE(p.list_vcpus(v, f));
  ASSERT_EQ(v.size(), 3u);
  std::vector<vcpu_state> by_id(3);
  for (const auto& c : v) by_id.at(static_cast<std::size_t>(c.logical_id)) = c;
  EXPECT_TRUE(by_id[0].online);
  EXPECT_FALSE(by_id[0].can_offline);
  EXPECT_TRUE(by_id[1].online);
  EXPECT_TRUE(by_id[1].can_offline);
  EXPECT_FALSE(by_id[2].online);
  EXPECT_TRUE(by_id[2].can_offline);
}

TEST(HardwareProcsys, VcpuListFailures) {
  std::vector<vcpu_state> v;
  failure f;
  EXPECT_FALSE(procsys(hw_data("nope")).list_vcpus(v, f));
  EXPECT_EQ(f.what, "failed to list entries: /sys/devices/system/cpu");
  EXPECT_EQ(f.err, ENOENT);

  fixture_copy t("synthetic");
  procsys p(t.dir.path);
  // An empty online file.
  spit(t / "sys/devices/system/cpu/cpu2/online", "");
  EXPECT_FALSE(p.list_vcpus(v, f));
  EXPECT_EQ(f.what, "pread(\"/sys/devices/system/cpu/cpu2//online\"): unexpected EOF");
  EXPECT_EQ(f.err, 0);
  // online is a directory: the open works, the read fails.
  std::filesystem::remove(t / "sys/devices/system/cpu/cpu2/online");
  std::filesystem::create_directory(t / "sys/devices/system/cpu/cpu2/online");
  EXPECT_FALSE(p.list_vcpus(v, f));
  EXPECT_EQ(f.what, "pread(\"/sys/devices/system/cpu/cpu2//online\")");
  EXPECT_EQ(f.err, EISDIR);
  // A cpuN that is not a directory.
  std::filesystem::remove_all(t / "sys/devices/system/cpu/cpu2");
  spit(t / "sys/devices/system/cpu/cpu2", "x");
  EXPECT_FALSE(p.list_vcpus(v, f));
  EXPECT_EQ(f.what, "open(\"/sys/devices/system/cpu/cpu2/\")");
  EXPECT_EQ(f.err, ENOTDIR);
  // cpu02 is looked up as cpu2 (the path is built from the id).
  std::filesystem::remove(t / "sys/devices/system/cpu/cpu2");
  std::filesystem::create_directory(t / "sys/devices/system/cpu/cpu02");
  EXPECT_FALSE(p.list_vcpus(v, f));
  EXPECT_EQ(f.what, "open(\"/sys/devices/system/cpu/cpu2/\")");
  EXPECT_EQ(f.err, ENOENT);
}

TEST(HardwareProcsys, ManyVcpus) {
  temp_dir root;
  const std::string dir = root / "sys/devices/system/cpu";
  for (int i = 0; i < 512; ++i) {
    std::filesystem::create_directories(dir + "/cpu" + std::to_string(i));
    if (i > 0) spit(dir + "/cpu" + std::to_string(i) + "/online", i % 3 ? "1\n" : "0\n");
  }
  std::vector<vcpu_state> v;
  failure f;
  ASSERT_TRUE(procsys(root.path).list_vcpus(v, f));
  ASSERT_EQ(v.size(), 512u);
  int offline = 0;
  for (const auto& c : v) offline += !c.online;
  EXPECT_EQ(offline, 170);  // multiples of 3 in 3..510
}

TEST(HardwareProcsys, SetVcpu) {
  fixture_copy t("synthetic");
  procsys p(t.dir.path);
  const std::string cpu = t / "sys/devices/system/cpu";
  failure f;
  EXPECT_TRUE(p.set_vcpu(2, true, f));
  EXPECT_EQ(slurp(cpu + "/cpu2/online"), "1\n");  // one byte at offset 0, no truncation
  EXPECT_TRUE(p.set_vcpu(1, false, f));
  EXPECT_EQ(slurp(cpu + "/cpu1/online"), "0\n");
  // Already in the wanted state: nothing written.
  spit(cpu + "/cpu1/online", "0 keep");
  EXPECT_TRUE(p.set_vcpu(1, false, f));
  EXPECT_EQ(slurp(cpu + "/cpu1/online"), "0 keep");
  // No online file: onlining pretends, offlining is refused.
  EXPECT_TRUE(p.set_vcpu(0, true, f));
  EXPECT_FALSE(p.set_vcpu(0, false, f));
  EXPECT_EQ(f.what, "logical processor #0 can't be offlined");
  EXPECT_EQ(f.err, 0);
  EXPECT_FALSE(p.set_vcpu(7, true, f));
  EXPECT_EQ(f.what, "open(\"/sys/devices/system/cpu/cpu7/\")");
  EXPECT_EQ(f.err, ENOENT);
  EXPECT_FALSE(p.set_vcpu(-1, true, f));
  EXPECT_EQ(f.what, "open(\"/sys/devices/system/cpu/cpu-1/\")");
  // The write fails.
  std::filesystem::remove(cpu + "/cpu1/online");
  std::filesystem::create_symlink("/dev/full", cpu + "/cpu1/online");
  EXPECT_FALSE(p.set_vcpu(1, false, f));
  EXPECT_EQ(f.what, "pwrite(\"/sys/devices/system/cpu/cpu1//online\")");
  EXPECT_EQ(f.err, ENOSPC);
  spit(cpu + "/cpu2/online", "");
  EXPECT_FALSE(p.set_vcpu(2, true, f));
  EXPECT_EQ(f.what, "pread(\"/sys/devices/system/cpu/cpu2//online\"): unexpected EOF");
  std::filesystem::remove(cpu + "/cpu2/online");
  std::filesystem::create_directory(cpu + "/cpu2/online");
  EXPECT_FALSE(p.set_vcpu(2, true, f));
  EXPECT_EQ(f.what, "open(\"/sys/devices/system/cpu/cpu2//online\")");
  EXPECT_EQ(f.err, EISDIR);
}

TEST(HardwareProcsys, RealMemoryBlocks) {
  procsys p(hw_data("real"));
  std::vector<memory_block_state> v;
  bool missing = true;
  failure f;
  ASSERT_TRUE(p.list_memory_blocks(v, missing, f)) << f.what;
  EXPECT_FALSE(missing);
  std::vector<std::uint64_t> expect;
  for (const auto& n : readdir_names(hw_data("real/sys/devices/system/memory")))
    if (n.rfind("memory", 0) == 0) expect.push_back(std::stoull(n.substr(6)));
  std::vector<std::uint64_t> got;
  for (const auto& b : v) {
    got.push_back(b.phys_index);
    EXPECT_TRUE(b.online);
    EXPECT_TRUE(b.can_offline);
  }
  EXPECT_EQ(got, expect);
  EXPECT_EQ(got.size(), 9u);
  std::uint64_t size = 0;
  ASSERT_TRUE(p.memory_block_size(size, f));
  EXPECT_EQ(size, 134217728u);
}

TEST(HardwareProcsys, SyntheticMemoryBlocks) {
  procsys p(hw_data("synthetic"));
  std::vector<memory_block_state> v;
  bool missing = true;
  failure f;
  ASSERT_TRUE(p.list_memory_blocks(v, missing, f)) << f.what;
  ASSERT_EQ(v.size(), 4u);  // `power` and the files are skipped
  std::vector<memory_block_state> by(4);
  for (const auto& b : v) by.at(b.phys_index) = b;
  EXPECT_TRUE(by[0].online && by[0].can_offline);
  EXPECT_TRUE(!by[1].online && !by[1].can_offline);  // offline, removable 0
  EXPECT_TRUE(by[2].online && !by[2].can_offline);   // no removable file
  EXPECT_TRUE(by[3].online && !by[3].can_offline);   // no state file (old kernel)
}

TEST(HardwareProcsys, MemoryBlockFailures) {
  std::vector<memory_block_state> v;
  bool missing = false;
  failure f;
  // No memory directory: not an error, and flagged.
  ASSERT_TRUE(procsys(hw_data("nope")).list_memory_blocks(v, missing, f));
  EXPECT_TRUE(missing);
  EXPECT_TRUE(v.empty());
  std::uint64_t size = 0;
  EXPECT_FALSE(procsys(hw_data("nope")).memory_block_size(size, f));
  EXPECT_EQ(f.what, "open(\"/sys/devices/system/memory/\")");
  EXPECT_EQ(f.err, ENOENT);

  fixture_copy t("synthetic");
  procsys p(t.dir.path);
  const std::string mem = t / "sys/devices/system/memory";
  spit(mem + "/memory1/removable", "");
  EXPECT_FALSE(p.list_memory_blocks(v, missing, f));
  EXPECT_EQ(f.what, "pread sysfs file \"removable\": unexpected EOF");
  EXPECT_EQ(f.err, 0);
  spit(mem + "/memory1/removable", "0");
  std::filesystem::remove(mem + "/memory1/state");
  std::filesystem::create_directory(mem + "/memory1/state");
  EXPECT_FALSE(p.list_memory_blocks(v, missing, f));
  EXPECT_EQ(f.what, "pread sysfs file \"state\"");
  EXPECT_EQ(f.err, EISDIR);
  // memory_x is read as memory0's twin (strtoul gives 0).
  std::filesystem::remove(mem + "/memory1/state");
  spit(mem + "/memory1/state", "going-offline\n");
  std::filesystem::create_directory(mem + "/memory_x");
  ASSERT_TRUE(p.list_memory_blocks(v, missing, f));
  ASSERT_EQ(v.size(), 5u);
  int zeros = 0;
  for (const auto& b : v) {
    zeros += b.phys_index == 0;
    if (b.phys_index == 1) {
      EXPECT_FALSE(b.online);
    }
  }
  EXPECT_EQ(zeros, 2);
  // A memoryN that is a file is skipped (d_type), an empty directory is none at all.
  temp_dir empty;
  std::filesystem::create_directories(empty / "sys/devices/system/memory");
  spit(empty / "sys/devices/system/memory/memory5", "");
  ASSERT_TRUE(procsys(empty.path).list_memory_blocks(v, missing, f));
  EXPECT_FALSE(missing);
  EXPECT_TRUE(v.empty());
  EXPECT_FALSE(procsys(empty.path).memory_block_size(size, f));
  EXPECT_EQ(f.what, "open sysfs file \"block_size_bytes\"");
  EXPECT_EQ(f.err, ENOENT);
}

TEST(HardwareProcsys, SetMemoryBlock) {
  using r = memory_block_response;
  fixture_copy t("synthetic");
  procsys p(t.dir.path);
  const std::string mem = t / "sys/devices/system/memory";
  // Already online: success without an error code, nothing written.
  auto res = p.set_memory_block(0, true);
  EXPECT_EQ(res.response, r::success);
  EXPECT_EQ(res.error_code, std::nullopt);
  EXPECT_EQ(slurp(mem + "/memory0/state"), "online\n");
  // Offline -> online: "online" written at offset 0 without truncation, like sysfs expects.
  res = p.set_memory_block(1, true);
  EXPECT_EQ(res.response, r::success);
  EXPECT_EQ(res.error_code, std::nullopt);
  EXPECT_EQ(slurp(mem + "/memory1/state"), "onlinee\n");
  res = p.set_memory_block(0, false);
  EXPECT_EQ(res.response, r::success);
  EXPECT_EQ(slurp(mem + "/memory0/state"), "offline");
  // Unknown block.
  res = p.set_memory_block(9999, true);
  EXPECT_EQ(res.response, r::not_found);
  EXPECT_EQ(res.error_code, ENOENT);
  // No state file: offlining is not supported; onlining "succeeds" with ENOENT attached.
  res = p.set_memory_block(3, false);
  EXPECT_EQ(res.response, r::operation_not_supported);
  EXPECT_EQ(res.error_code, ENOENT);
  res = p.set_memory_block(3, true);
  EXPECT_EQ(res.response, r::success);
  EXPECT_EQ(res.error_code, ENOENT);
  // Unreadable state: failed (errno 0 after an empty read).
  spit(mem + "/memory2/state", "");
  res = p.set_memory_block(2, false);
  EXPECT_EQ(res.response, r::operation_failed);
  EXPECT_EQ(res.error_code, 0);
  // The write fails (/dev/full reads as NULs, so "not online", and takes no bytes).
  std::filesystem::remove(mem + "/memory2/state");
  std::filesystem::create_symlink("/dev/full", mem + "/memory2/state");
  res = p.set_memory_block(2, true);
  EXPECT_EQ(res.response, r::operation_failed);
  EXPECT_EQ(res.error_code, ENOSPC);
  // The block directory can't be opened for another reason than ENOENT.
  std::filesystem::remove_all(mem + "/memory3");
  spit(mem + "/memory3", "");
  res = p.set_memory_block(3, true);
  EXPECT_EQ(res.response, r::operation_failed);
  EXPECT_EQ(res.error_code, ENOTDIR);
  // No memory directory at all.
  res = procsys(hw_data("nope")).set_memory_block(0, true);
  EXPECT_EQ(res.response, r::operation_not_supported);
  EXPECT_EQ(res.error_code, ENOENT);
}

}  // namespace
}  // namespace fleetga::test
