// The storage family through the command table on fixture roots: this machine's capture
// (compared with what qemu-ga 7.2 printed here) and the synthetic tree, with statvfs faked
// (sizes, errors, a hung mount with a short deadline).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "commands/state.hpp"
#include "commands/storage.hpp"
#include "commands/table.hpp"
#include "commands_harness.hpp"

namespace fleetga::test {
namespace {

using namespace std::chrono_literals;

std::string fixture(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/storage/" + std::string(rel); }

struct sizes_stat final : platform::fs_stat {
  std::mutex m;
  std::condition_variable cv;
  bool released = false;
  std::set<std::string> hang, fail;
  int statvfs(const std::string& path, platform::fs_sizes& out) override {
    std::unique_lock l(m);
    if (hang.contains(path)) cv.wait(l, [&] { return released; });
    if (fail.contains(path)) return EIO;
    out = {1000, 300, 250, 4096};
    return 0;
  }
  void release() {
    {
      std::lock_guard l(m);
      released = true;
    }
    cv.notify_all();
  }
};

struct direct {
  temp_dir dir;
  fake_system sys;
  commands::inline_offloader pool;
  commands::agent_state st;
  std::shared_ptr<sizes_stat> stat = std::make_shared<sizes_stat>();

  explicit direct(std::string root)
      : sys(std::move(root)), st{pool, sys, dir.path, commands::all_commands_mask, {1, 0, 0}} {
    st.storage.stat = std::make_shared<platform::statvfs_runner>(stat);
  }
  ~direct() {
    stat->release();
    for (int i = 0; i < 400 && st.storage.stat->in_flight() != 0; ++i) std::this_thread::sleep_for(5ms);
  }

  std::string operator()(std::string_view name, std::string_view args = {}) {
    auto idx = commands::find_command(name);
    EXPECT_TRUE(idx) << name;
    if (!idx) return "no such command";
    std::string buf(args);
    buf.append(protocol::input_padding, '\0');
    std::string out;
    protocol::json_writer w(out);
    commands::call c{std::string_view(buf.data(), args.size()), w, st};
    auto t = commands::command_table[*idx].handler(c);
    EXPECT_TRUE(t.start());
    auto err = t.take();
    if (err) return "error: " + err->desc;
    return out;
  }
};

// {"serial"?, "bus-type", "bus", "unit", "pci-controller", "dev", "target"}: the order qemu-ga
// 7.2 printed on this machine (see ThisMachine below, which has the literal).
std::string addr(std::string_view type, int bus, int slot, std::string_view dev, int unit = 0,
                 std::string_view serial = {}) {
  std::string s = "{";
  if (!serial.empty()) s += "\"serial\": \"" + std::string(serial) + "\", ";
  s += "\"bus-type\": \"" + std::string(type) + "\", \"bus\": 0, \"unit\": " + std::to_string(unit) +
       ", \"pci-controller\": {\"bus\": " + std::to_string(bus) + ", \"slot\": " + std::to_string(slot) +
       ", \"domain\": 0, \"function\": 0}, \"dev\": \"" + std::string(dev) + "\", \"target\": 0}";
  return s;
}

constexpr std::string_view sizes = R"("total-bytes": 3891200, "total-bytes-privileged": 4096000)";
constexpr std::string_view used = R"("used-bytes": 2867200)";

TEST(CommandsStorage, FsinfoThisMachine) {
  direct d(fixture("host"));
  // qemu-ga 7.2 here: {"name": "vda", "total-bytes": 102745280512, "mountpoint": "/", "disk":
  // [{"bus-type": "virtio", "bus": 0, "unit": 0, "pci-controller": {"bus": 0, "slot": 2,
  // "domain": 0, "function": 0}, "dev": "/dev/vda", "target": 0}], "used-bytes": 24814637056,
  // "type": "ext4"}; upstream adds total-bytes-privileged after total-bytes.
  EXPECT_EQ(d("guest-get-fsinfo"),
            R"([{"name": "vda", "total-bytes": 3891200, "total-bytes-privileged": 4096000, "mountpoint": "/", )"
            R"("disk": [{"bus-type": "virtio", "bus": 0, "unit": 0, "pci-controller": {"bus": 0, "slot": 2, )"
            R"("domain": 0, "function": 0}, "dev": "/dev/vda", "target": 0}], "used-bytes": 2867200, "type": "ext4"}])");
}

TEST(CommandsStorage, DisksThisMachine) {
  direct d(fixture("host"));
  // Byte for byte what qemu-ga 7.2 printed here.
  EXPECT_EQ(d("guest-get-disks"),
            R"([{"name": "/dev/vda", "dependencies": [], "partition": false, "address": {"bus-type": "virtio", )"
            R"("bus": 0, "unit": 0, "pci-controller": {"bus": 0, "slot": 2, "domain": 0, "function": 0}, )"
            R"("dev": "/dev/vda", "target": 0}}])");
}

TEST(CommandsStorage, FsinfoSynthetic) {
  direct d(fixture("synthetic"));
  d.stat->fail = {"/mnt/gone"};
  auto fs = [](std::string_view name, std::string_view mp, std::string_view type, std::string disks,
               bool with_sizes = true) {
    std::string s = "{\"name\": \"" + std::string(name) + "\", ";
    if (with_sizes) s += std::string(sizes) + ", ";
    s += "\"mountpoint\": \"" + std::string(mp) + "\", \"disk\": [" + disks + "], ";
    if (with_sizes) s += std::string(used) + ", ";
    return s + "\"type\": \"" + std::string(type) + "\"}";
  };
  // Reverse mount order; nfs (major 0) and the bind mount of sdb are not listed.
  std::string want = "[" + fs("8:32", "/mnt/gone", "ext4", "", false) + ", " +
                     fs("nvme0n1", "/mnt/tab\\tdir", "vfat", addr("nvme", 0, 6, "/dev/nvme0n1")) + ", " +
                     fs("sdb", "/var/lib", "ext4", addr("sata", 1, 2, "/dev/sdb", 1, "QEMU_HARDDISK_QM00005")) + ", " +
                     fs("md0", "/srv/my data", "xfs",
                        addr("nvme", 0, 6, "/dev/nvme0n1p2") + ", " + addr("nvme", 0, 6, "/dev/nvme0n1p1")) +
                     ", " + fs("vdb1", "/boot", "ext2", addr("virtio", 0, 4, "/dev/vdb1")) + ", " +
                     fs("dm-0", "/", "ext4",
                        addr("scsi", 0, 5, "/dev/sda1", 3) + ", " + addr("virtio", 0, 4, "/dev/vdb2")) +
                     "]";
  EXPECT_EQ(d("guest-get-fsinfo"), want);
}

TEST(CommandsStorage, FsinfoHungMountIsReportedWithoutSizes) {
  direct d(fixture("synthetic"));
  d.stat->hang = {"/srv/my data"};
  d.st.storage.statvfs_deadline = 30ms;
  d.st.storage.statfs_direct = nullptr;  // every type through the deadline threads (e.g. fuseblk)
  auto t0 = std::chrono::steady_clock::now();
  std::string out = d("guest-get-fsinfo");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_NE(out.find(R"({"name": "md0", "mountpoint": "/srv/my data", "disk": [)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"({"name": "dm-0", "total-bytes": 3891200,)"), std::string::npos) << out;
  EXPECT_EQ(d.st.storage.stat->in_flight(), 1u);
  // Next request: the stuck call is not repeated and not waited for, even with a long deadline.
  d.st.storage.statvfs_deadline = 10s;
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(d("guest-get-fsinfo"), out);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(CommandsStorage, DisksSynthetic) {
  direct d(fixture("synthetic"));
  std::string out = d("guest-get-disks");
  auto part = [](std::string_view n, std::string_view parent) {
    return "{\"name\": \"" + std::string(n) + "\", \"dependencies\": [\"" + std::string(parent) +
           "\"], \"partition\": true}";
  };
  auto disk = [](std::string_view n, std::string_view deps, std::string address, std::string_view alias = {}) {
    std::string s = "{\"name\": \"" + std::string(n) + "\", \"dependencies\": [" + std::string(deps) +
                    "], \"partition\": false";
    if (!address.empty()) s += ", \"address\": " + address;
    if (!alias.empty()) s += ", \"alias\": \"" + std::string(alias) + "\"";
    return s + "}";
  };
  std::string want = "[" + part("/dev/sda1", "/dev/sda") + ", " + disk("/dev/sda", "", addr("scsi", 0, 5, "/dev/sda", 3)) +
                     ", " + disk("/dev/dm-0", R"("/dev/sda1", "/dev/vdb2")", "", "vg0-data") + ", " +
                     disk("/dev/md0", R"("/dev/nvme0n1p2", "/dev/nvme0n1p1")", "") + ", " +
                     part("/dev/vdb1", "/dev/vdb") + ", " + part("/dev/vdb2", "/dev/vdb") + ", " +
                     disk("/dev/vdb", "", addr("virtio", 0, 4, "/dev/vdb")) + ", " +
                     disk("/dev/sdb", "", addr("sata", 1, 2, "/dev/sdb", 1, "QEMU_HARDDISK_QM00005")) + ", " +
                     part("/dev/nvme0n1p2", "/dev/nvme0n1") + ", " + part("/dev/nvme0n1p1", "/dev/nvme0n1") + ", " +
                     disk("/dev/nvme0n1", "", addr("nvme", 0, 6, "/dev/nvme0n1")) + "]";
  EXPECT_EQ(out, want);
}

TEST(CommandsStorage, ErrorsAndArguments) {
  direct d(fixture("nonexistent"));
  EXPECT_EQ(d("guest-get-fsinfo"), "error: failed to open mtab file: '/proc/self/mounts'");
  EXPECT_EQ(d("guest-get-disks"), "error: Can't open directory \"/sys/block\": No such file or directory");
  direct h(fixture("host"));
  EXPECT_EQ(h("guest-get-fsinfo", R"({"x": 1})"), "error: Parameter 'x' is unexpected");
  EXPECT_EQ(h("guest-get-disks", R"({"x": 1})"), "error: Parameter 'x' is unexpected");
}

// Local disk filesystems are asked on the worker itself (no hand-off); others (fuseblk, unknown)
// on the deadline threads.
struct thread_stat final : platform::fs_stat {
  std::mutex m;
  std::map<std::string, std::thread::id> seen;
  int statvfs(const std::string& path, platform::fs_sizes& out) override {
    std::lock_guard l(m);
    seen[path] = std::this_thread::get_id();
    out = {1000, 300, 250, 4096};
    return 0;
  }
};

TEST(CommandsStorage, InMemoryStatfsTypesAreAskedDirectly) {
  EXPECT_TRUE(platform::statfs_in_memory("ext4"));
  EXPECT_TRUE(platform::statfs_in_memory("xfs"));
  EXPECT_FALSE(platform::statfs_in_memory("fuseblk"));
  EXPECT_FALSE(platform::statfs_in_memory("nfs4"));
  EXPECT_FALSE(platform::statfs_in_memory(""));
  auto f = std::make_shared<thread_stat>();
  platform::statvfs_runner r(f);
  auto res = r.run({"/a", "/b", "/c"}, {true, false, true}, 2s);
  ASSERT_EQ(res.size(), 3u);
  for (auto& x : res) EXPECT_TRUE(x);
  EXPECT_EQ(f->seen.at("/a"), std::this_thread::get_id());
  EXPECT_EQ(f->seen.at("/c"), std::this_thread::get_id());
  EXPECT_NE(f->seen.at("/b"), std::this_thread::get_id());
}

}  // namespace
}  // namespace fleetga::test
