// platform/blockdev: sysfs walks over fixture roots (this machine's capture and a synthetic
// tree), the pure sysfs-path parsers, kernfs directory order, and statvfs with a deadline.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "platform/blockdev.hpp"
#include "platform/statvfs_runner.hpp"

namespace fleetga::platform {
namespace {

std::string fixture(std::string_view rel) { return std::string(FLEETGA_TEST_DATA) + "/storage/" + std::string(rel); }

TEST(PlatformBlockdev, KernfsOrderIsThisMachinesSysBlockOrder) {
  // `ls -f /sys/block` on this machine.
  std::vector<std::string> seen{"loop1", "loop6", "loop4", "loop2", "loop0", "loop7", "zram0", "loop5", "vda", "loop3"};
  auto sorted = seen;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return kernfs_before(a, b); });
  EXPECT_EQ(sorted, seen);
  EXPECT_GE(kernfs_name_hash(""), 2u);
}

TEST(PlatformBlockdev, EnvValue) {
  EXPECT_EQ(env_value("MAJOR=8\nDEVNAME=sda\n", "", "DEVNAME"), "sda");
  EXPECT_EQ(env_value("E:ID_SERIAL_SHORT=x\nE:ID_SERIAL=QM1", "E:", "ID_SERIAL"), "QM1");
  EXPECT_EQ(env_value("DEVNAME\nDEVNAMEX=1\n", "", "DEVNAME"), std::nullopt);
  EXPECT_EQ(env_value("E:DM_NAME=\n", "E:", "DM_NAME"), "");
}

struct fake_lookup final : pci_lookup {
  std::map<std::string, std::string> drivers;
  std::map<std::string, std::vector<unsigned>> host_dirs;
  std::string driver(std::string_view prefix) const override {
    auto it = drivers.find(std::string(prefix));
    return it == drivers.end() ? "" : it->second;
  }
  std::optional<std::vector<unsigned>> hosts(std::string_view dir, bool, int& err) const override {
    auto it = host_dirs.find(std::string(dir));
    if (it == host_dirs.end()) {
      err = ENOENT;
      return std::nullopt;
    }
    return it->second;
  }
};

TEST(PlatformBlockdev, PciIdeUsesHostIndexAndTarget) {
  fake_lookup l;
  l.drivers["/sys/devices/pci0000:00/0000:00:01.1"] = "ata_piix";
  l.host_dirs["/sys/devices/pci0000:00/0000:00:01.1"] = {1, 2};  // ata1, ata2
  disk_address d;
  std::string err;
  ASSERT_TRUE(pci_disk_address(
      "/sys/devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:1/1:0:1:0/block/sdb", l, d, err));
  EXPECT_EQ(d.bus_type, "ide");
  EXPECT_EQ(d.bus, 1);   // ata2 is the second ata port
  EXPECT_EQ(d.unit, 1);  // target*:0:<unit>:0
  EXPECT_EQ(d.pci, (pci_address{0, 0, 1, 1}));
  EXPECT_TRUE(err.empty());
}

TEST(PlatformBlockdev, PciLsiScsiAndUsbAndUnknown) {
  fake_lookup l;
  l.drivers["/sys/devices/pci0000:00/0000:00:07.0"] = "sym53c8xx";
  l.drivers["/sys/devices/pci0000:00/0000:00:08.0"] = "xhci_hcd";
  l.drivers["/sys/devices/pci0000:00/0000:00:09.0"] = "megaraid_sas";
  l.host_dirs["/sys/devices/pci0000:00/0000:00:07.0"] = {0};
  l.host_dirs["/sys/devices/pci0000:00/0000:00:08.0/usb2/2-1/2-1:1.0"] = {3};
  disk_address d;
  std::string err;
  ASSERT_TRUE(pci_disk_address("/sys/devices/pci0000:00/0000:00:07.0/host0/target0:0:5/0:0:5:0/block/sdc", l, d, err));
  EXPECT_EQ(d.bus_type, "scsi");
  EXPECT_EQ(d.unit, 5);
  disk_address u;
  ASSERT_TRUE(pci_disk_address(
      "/sys/devices/pci0000:00/0000:00:08.0/usb2/2-1/2-1:1.0/host3/target3:0:0/3:0:0:0/block/sdd", l, u, err));
  EXPECT_EQ(u.bus_type, "usb");
  EXPECT_EQ(u.pci, (pci_address{0, 0, 8, 0}));
  disk_address x;
  EXPECT_FALSE(pci_disk_address("/sys/devices/pci0000:00/0000:00:09.0/host4/target4:0:0/4:0:0:0/block/sde", l, x, err));
  EXPECT_FALSE(pci_disk_address("/sys/devices/platform/foo/block/mmcblk0", l, x, err));
  EXPECT_FALSE(pci_disk_address("/sys/devices/pci0000:00/zz/block/x", l, x, err));
  EXPECT_TRUE(err.empty());
}

TEST(PlatformBlockdev, PciHostDirectoryFailureIsAnError) {
  fake_lookup l;
  l.drivers["/sys/devices/pci0000:00/0000:00:1f.2"] = "ahci";
  disk_address d;
  std::string err;
  EXPECT_FALSE(pci_disk_address("/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", l, d,
                                err));
  EXPECT_EQ(err, "opendir(\"/sys/devices/pci0000:00/0000:00:1f.2\"): No such file or directory");
}

TEST(PlatformBlockdev, NonPciVirtioAndCcw) {
  disk_address d;
  ASSERT_TRUE(ccw_disk_address("/sys/devices/css0/0.0.0002/0.0.0001/virtio1/host0/target0:0:2/0:0:2:7/block/sda", d));
  ASSERT_TRUE(d.ccw);
  EXPECT_EQ(*d.ccw, (ccw_address{0, 0, 2, 1}));
  EXPECT_EQ(d.bus_type, "scsi");
  EXPECT_EQ(d.target, 2);
  EXPECT_EQ(d.unit, 7);
  disk_address v;
  ASSERT_TRUE(nonpci_virtio_address("/sys/devices/platform/a000000.virtio_mmio/virtio0/block/vda", v));
  EXPECT_EQ(v.bus_type, "virtio");
  EXPECT_EQ(v.pci, pci_address{});
  disk_address n;
  EXPECT_FALSE(nonpci_virtio_address("/sys/devices/platform/virtio0/net/eth0", n));
  EXPECT_FALSE(ccw_disk_address("/sys/devices/css0/junk", n));
}

disk_address pci_addr(std::string bus_type, pci_address p, std::string dev, std::int64_t unit = 0) {
  disk_address a;
  a.pci = p;
  a.bus_type = std::move(bus_type);
  a.dev = std::move(dev);
  a.unit = unit;
  return a;
}

TEST(PlatformBlockdev, ThisMachineRootDisk) {
  blockdev b(fixture("host"));
  fs_devices f;
  std::string err;
  ASSERT_TRUE(b.fs_devices_of(254, 0, f, err)) << err;
  EXPECT_EQ(f.name, "vda");
  ASSERT_EQ(f.disks.size(), 1u);
  EXPECT_EQ(f.disks[0], pci_addr("virtio", {0, 0, 2, 0}, "/dev/vda"));

  std::vector<disk_info> disks;
  ASSERT_TRUE(b.list_disks(disks, err)) << err;  // loops and zram0 are zero-sized
  ASSERT_EQ(disks.size(), 1u);
  EXPECT_EQ(disks[0].name, "/dev/vda");
  EXPECT_FALSE(disks[0].partition);
  EXPECT_EQ(disks[0].dependencies, std::vector<std::string>{});
  EXPECT_EQ(disks[0].address, pci_addr("virtio", {0, 0, 2, 0}, "/dev/vda"));
  EXPECT_EQ(disks[0].alias, std::nullopt);
}

TEST(PlatformBlockdev, DeviceMapperWalksBothSlaves) {
  blockdev b(fixture("synthetic"));
  fs_devices f;
  std::string err;
  ASSERT_TRUE(b.fs_devices_of(253, 0, f, err)) << err;
  EXPECT_EQ(f.name, "dm-0");
  // slaves/ in kernfs order is vdb2, sda1; qemu-ga prepends.
  disk_address sda1 = pci_addr("scsi", {0, 0, 5, 0}, "/dev/sda1", 3);
  ASSERT_EQ(f.disks.size(), 2u);
  EXPECT_EQ(f.disks[0], sda1);
  EXPECT_EQ(f.disks[1], pci_addr("virtio", {0, 0, 4, 0}, "/dev/vdb2"));
}

TEST(PlatformBlockdev, MdRaidNvmeSataAndMissingDevice) {
  blockdev b(fixture("synthetic"));
  fs_devices f;
  std::string err;
  ASSERT_TRUE(b.fs_devices_of(9, 0, f, err)) << err;
  EXPECT_EQ(f.name, "md0");
  ASSERT_EQ(f.disks.size(), 2u);
  EXPECT_EQ(f.disks[0], pci_addr("nvme", {0, 0, 6, 0}, "/dev/nvme0n1p2"));
  EXPECT_EQ(f.disks[1], pci_addr("nvme", {0, 0, 6, 0}, "/dev/nvme0n1p1"));

  ASSERT_TRUE(b.fs_devices_of(8, 16, f, err)) << err;
  EXPECT_EQ(f.name, "sdb");
  disk_address sata = pci_addr("sata", {0, 1, 2, 0}, "/dev/sdb", 1);  // behind the bridge; ata2 of ata1..2
  sata.serial = "QEMU_HARDDISK_QM00005";                               // udev database
  ASSERT_EQ(f.disks.size(), 1u);
  EXPECT_EQ(f.disks[0], sata);

  ASSERT_TRUE(b.fs_devices_of(8, 32, f, err)) << err;  // no /sys/dev/block/8:32 (a container)
  EXPECT_EQ(f.name, "8:32");
  EXPECT_TRUE(f.disks.empty());
}

TEST(PlatformBlockdev, SyntheticDisks) {
  blockdev b(fixture("synthetic"));
  std::vector<disk_info> d;
  std::string err;
  ASSERT_TRUE(b.list_disks(d, err)) << err;
  std::vector<std::string> names;
  for (auto& x : d) names.push_back(x.name);
  // /sys/block in kernfs order: nvme0n1 sdb vdb md0 loop0(size 0) dm-0 sda; each disk, then its
  // partitions, prepended.
  EXPECT_EQ(names, (std::vector<std::string>{"/dev/sda1", "/dev/sda", "/dev/dm-0", "/dev/md0", "/dev/vdb1",
                                             "/dev/vdb2", "/dev/vdb", "/dev/sdb", "/dev/nvme0n1p2", "/dev/nvme0n1p1",
                                             "/dev/nvme0n1"}));
  ASSERT_EQ(d.size(), 11u);
  EXPECT_TRUE(d[0].partition);
  EXPECT_EQ(d[0].dependencies, std::vector<std::string>{"/dev/sda"});
  EXPECT_FALSE(d[0].address);
  EXPECT_EQ(d[1].address, pci_addr("scsi", {0, 0, 5, 0}, "/dev/sda", 3));
  EXPECT_EQ(d[2].alias, "vg0-data");
  EXPECT_EQ(d[2].dependencies, (std::vector<std::string>{"/dev/sda1", "/dev/vdb2"}));
  EXPECT_FALSE(d[2].address);  // virtual
  EXPECT_EQ(d[3].alias, std::nullopt);
  EXPECT_EQ(d[3].dependencies, (std::vector<std::string>{"/dev/nvme0n1p2", "/dev/nvme0n1p1"}));
  EXPECT_EQ(d[6].address, pci_addr("virtio", {0, 0, 4, 0}, "/dev/vdb"));
  ASSERT_TRUE(d[7].address);
  EXPECT_EQ(d[7].address->serial, "QEMU_HARDDISK_QM00005");
  EXPECT_EQ(d[10].address, pci_addr("nvme", {0, 0, 6, 0}, "/dev/nvme0n1"));
  EXPECT_EQ(d[10].dependencies, std::vector<std::string>{});
}

TEST(PlatformBlockdev, MissingSysBlockIsAnError) {
  blockdev b(fixture("nonexistent"));
  std::vector<disk_info> d;
  std::string err;
  EXPECT_FALSE(b.list_disks(d, err));
  EXPECT_EQ(err, "Can't open directory \"/sys/block\": No such file or directory");
}

// ---- statvfs with a deadline -------------------------------------------------------------------

// Answers from a table; paths in `hang` block until release(). Shared with the detached
// threads, so it lives in a shared_ptr.
struct fake_stat final : fs_stat {
  std::mutex m;
  std::condition_variable cv;
  bool released = false;
  std::set<std::string> hang;
  std::map<std::string, int> calls;
  int statvfs(const std::string& path, fs_sizes& out) override {
    std::unique_lock l(m);
    ++calls[path];
    if (hang.contains(path)) cv.wait(l, [&] { return released; });
    if (path == "/err") return EACCES;
    out = {100, 40, 30, static_cast<std::uint64_t>(path.size())};
    return 0;
  }
  void release() {
    {
      std::lock_guard l(m);
      released = true;
    }
    cv.notify_all();
  }
  int count(const std::string& p) {
    std::lock_guard l(m);
    return calls[p];
  }
};

bool drained(statvfs_runner& r) {
  for (int i = 0; i < 400 && r.in_flight() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return r.in_flight() == 0;
}

using namespace std::chrono_literals;

TEST(PlatformBlockdev, StatvfsAnswersAndErrors) {
  auto f = std::make_shared<fake_stat>();
  statvfs_runner r(f);
  auto res = r.run({"/", "/err", "/boot", "/"}, 5000ms);
  ASSERT_EQ(res.size(), 4u);
  ASSERT_TRUE(res[0]);
  EXPECT_EQ(res[0]->frsize, 1u);
  EXPECT_FALSE(res[1]);
  ASSERT_TRUE(res[2]);
  EXPECT_EQ(res[2]->frsize, 5u);
  ASSERT_TRUE(res[3]);  // the same path twice: one call, both answered
  EXPECT_EQ(f->count("/"), 1);
  EXPECT_TRUE(drained(r));
}

TEST(PlatformBlockdev, StatvfsDeadlineDropsAHungMountAndLaterCallsSkipIt) {
  auto f = std::make_shared<fake_stat>();
  f->hang = {"/mnt/nfs"};
  statvfs_runner r(f);
  auto t0 = std::chrono::steady_clock::now();
  auto res = r.run({"/", "/mnt/nfs", "/boot"}, 50ms);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(res[0]);
  EXPECT_FALSE(res[1]);
  EXPECT_TRUE(res[2]);
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(r.in_flight(), 1u);

  // The stuck call is still running: no second thread, no waiting (the deadline is long).
  t0 = std::chrono::steady_clock::now();
  res = r.run({"/mnt/nfs", "/"}, 10s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_FALSE(res[0]);
  EXPECT_TRUE(res[1]);
  EXPECT_EQ(f->count("/mnt/nfs"), 1);

  f->release();  // the server came back
  ASSERT_TRUE(drained(r));
  res = r.run({"/mnt/nfs"}, 5000ms);
  EXPECT_TRUE(res[0]);
  EXPECT_EQ(f->count("/mnt/nfs"), 2);
}

TEST(PlatformBlockdev, StatvfsStuckThreadsAreCapped) {
  auto f = std::make_shared<fake_stat>();
  f->hang = {"/a", "/b"};
  statvfs_runner r(f, 1);
  auto res = r.run({"/a", "/b"}, 20ms);
  EXPECT_FALSE(res[0]);
  EXPECT_FALSE(res[1]);
  EXPECT_EQ(r.in_flight(), 1u);
  EXPECT_EQ(f->count("/b"), 0);  // never started: the cap was reached
  f->release();
  EXPECT_TRUE(drained(r));
}

TEST(PlatformBlockdev, StatvfsThreadsOutliveTheRunner) {
  auto f = std::make_shared<fake_stat>();
  f->hang = {"/x"};
  {
    statvfs_runner r(f);
    EXPECT_FALSE(r.run({"/x"}, 10ms)[0]);
  }
  f->release();  // the detached thread finishes against shared state only
  for (int i = 0; i < 400 && f.use_count() > 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(f.use_count(), 1);
}

TEST(PlatformBlockdev, RealStatvfsOnRoot) {
  linux_fs_stat s;
  fs_sizes z;
  EXPECT_EQ(s.statvfs("/", z), 0);
  EXPECT_GT(z.blocks, 0u);
  EXPECT_EQ(s.statvfs("/nonexistent-fleetga", z), ENOENT);
}

}  // namespace
}  // namespace fleetga::platform
