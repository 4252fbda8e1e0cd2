#pragma once
// Block devices as qemu-ga's guest-get-fsinfo and guest-get-disks see them (qga/commands-linux.c
// build_guest_fsinfo_for_device & co., qmp_guest_get_disks): a sysfs walk under an injectable
// root, plus statvfs behind a narrow interface with a deadline (a dead network mount must not
// wedge the agent).
//
// qemu-ga asks libudev for three things; fleetga reads what libudev reads, without the library:
//   devnode  = "/dev/" + DEVNAME from the device's sysfs `uevent` (what udev_device_get_devnode
//              returns),
//   ID_SERIAL and DM_NAME = the `E:` lines of udev's database /run/udev/data/b<MAJ>:<MIN>
//              (absent database, as on this machine: no serial, like qemu-ga; DM_NAME then
//              falls back to the kernel's <dev>/dm/name, which is where udev takes it from).
//
// Directory order: qemu-ga uses readdir() order, and sysfs (kernfs) returns the entries of a
// namespace-less directory sorted by kernfs_name_hash(), then name. Every listing here is sorted
// that way: a no-op on the real /sys (checked on this machine: /sys/block, /sys/dev/block,
// /sys/block/vda, /sys/devices/pci0000:00), and it makes fixture trees (whose own readdir order
// depends on the filesystem they sit on) reproduce the kernel's order.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <deque>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::platform {

struct pci_address {  // GuestPCIAddress; -1 = invalid
  std::int64_t domain = -1, bus = -1, slot = -1, function = -1;
  friend bool operator==(const pci_address&, const pci_address&) = default;
};

struct ccw_address {  // GuestCCWAddress (s390x)
  std::int64_t cssid = 0, ssid = 0, subchno = 0, devno = 0;
  friend bool operator==(const ccw_address&, const ccw_address&) = default;
};

struct disk_address {  // GuestDiskAddress
  pci_address pci;
  std::string bus_type = "unknown";  // GuestDiskBusType name
  std::int64_t bus = 0, target = 0, unit = 0;
  std::optional<std::string> serial, dev;
  std::optional<ccw_address> ccw;
  friend bool operator==(const disk_address&, const disk_address&) = default;
};

// What build_guest_fsinfo_for_device() fills in for one mount.
struct fs_devices {
  std::optional<std::string> name;  // kernel name of the device behind the mount (vda1, dm-0)
  std::vector<disk_address> disks;  // reply order (qemu-ga prepends: last found first)
};

// GuestNVMeSmart: the NVMe SMART / Health Information log page (log identifier 02h).
struct nvme_smart {
  std::int64_t critical_warning = 0, temperature = 0, available_spare = 0, available_spare_threshold = 0,
               percentage_used = 0;
  // The ten 128-bit little-endian counters as lo, hi pairs in schema order: data units read,
  // data units written, host read commands, host write commands, controller busy time, power
  // cycles, power on hours, unsafe shutdowns, media errors, number of error log entries.
  std::array<std::uint64_t, 20> counters{};
  friend bool operator==(const nvme_smart&, const nvme_smart&) = default;
};

struct disk_info {  // GuestDiskInfo
  std::string name;  // /dev/vda
  bool partition = false;
  std::optional<std::vector<std::string>> dependencies;
  std::optional<disk_address> address;
  std::optional<std::string> alias;
  std::optional<nvme_smart> smart;  // nvme disks only, filled by the caller (nvme_admin)
};

// The size of the SMART log page qemu-ga asks for (its NvmeSmartLog).
inline constexpr std::size_t nvme_smart_log_size = 512;
// The fields of a SMART log page as qemu-ga's get_nvme_smart() takes them (byte 0, LE16 at
// 1, bytes 3-5, LE64 pairs from 32 to 191). nullopt when the page is shorter than 192 bytes.
std::optional<nvme_smart> parse_nvme_smart_log(std::string_view page);

// The narrow interface for the admin command. Reading a log page changes nothing on the
// device (RAE set: asynchronous events stay as they are). Blocking (an ioctl on a device).
class nvme_admin {
 public:
  virtual ~nvme_admin() = default;
  // NVME_IOCTL_ADMIN_CMD Get Log Page 02h for all namespaces on `devnode` ("/dev/nvme0n1",
  // under the root), nvme_smart_log_size bytes into `page`. Returns errno (0 on success).
  virtual int smart_log(const std::string& devnode, std::string& page) = 0;
};

class linux_nvme_admin final : public nvme_admin {
 public:
  explicit linux_nvme_admin(std::string root = {}) : root_(std::move(root)) {}
  int smart_log(const std::string& devnode, std::string& page) override;

 private:
  std::string root_;
};

// kernfs_name_hash() for a directory without namespace (block devices and their children).
std::uint32_t kernfs_name_hash(std::string_view name) noexcept;
// a comes before b in a kernfs directory listing.
bool kernfs_before(std::string_view a, std::string_view b) noexcept;

// The PCI part of build_guest_fsinfo_for_pci_dev(), pure: `syspath` is the resolved sysfs path
// (relative to the root: "/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda"), `driver`
// answers the basename of <prefix>/driver (empty: none), `hosts` the sorted ataN/hostN numbers
// of a directory (nullopt: opendir failed, `err` set). Returns false when the path gives no
// address; `error` is set only for an opendir failure (qemu-ga propagates that one).
struct pci_lookup {
  virtual ~pci_lookup() = default;
  virtual std::string driver(std::string_view prefix) const = 0;
  virtual std::optional<std::vector<unsigned>> hosts(std::string_view dir, bool ata, int& err) const = 0;
};
bool pci_disk_address(std::string_view syspath, const pci_lookup& sys, disk_address& disk, std::string& error);
// build_guest_fsinfo_for_nonpci_virtio() and build_guest_fsinfo_for_ccw_dev(), pure.
bool nonpci_virtio_address(std::string_view syspath, disk_address& disk);
bool ccw_disk_address(std::string_view syspath, disk_address& disk);

// `KEY=value` (uevent) or `E:KEY=value` (udev database) lookup in a file's text.
std::optional<std::string> env_value(std::string_view text, std::string_view prefix, std::string_view key);

// The sysfs walk. Blocking only in the sense of many small sysfs reads: call it off the I/O
// thread (the handlers offload it together with the mount list and the statvfs wait).
class blockdev {
 public:
  explicit blockdev(std::string root = {});

  // build_guest_fsinfo_for_device("/sys/dev/block/<major>:<minor>"): false + qemu-ga's error
  // text (realpath/opendir/readdir failures other than ENOENT).
  bool fs_devices_of(unsigned major, unsigned minor, fs_devices& out, std::string& error) const;

  // qmp_guest_get_disks() in reply order, without `smart` (the caller asks an nvme_admin for
  // the disks whose address says nvme). false + error when /sys/block can't be opened.
  bool list_disks(std::vector<disk_info>& out, std::string& error) const;

  const std::string& root() const noexcept { return root_; }

 private:
  struct entry {
    std::string name;
    unsigned char type;  // d_type
    std::uint32_t hash;  // kernfs_name_hash(name), computed once per listing
  };
  std::string abs(std::string_view sys_path) const { return root_ + std::string(sys_path); }
  // realpath() of <root><p>, the root taken off again; nullopt + errno.
  std::optional<std::string> resolve(const std::string& p, int& err) const;
  // Directory entries without . and .., in kernfs order; nullopt + errno.
  std::optional<std::vector<entry>> list(const std::string& p, int& err) const;
  std::optional<std::string> read(const std::string& p) const;
  // A device as its uevent names it: the node, and udev's database entry (b<MAJOR>:<MINOR>),
  // each file read once however many keys are asked.
  struct device_ids {
    std::optional<std::string> devnode;
    std::optional<std::string> udev_db;
    std::optional<std::string> udev_property(std::string_view key) const;  // an E: line
  };
  device_ids identify(const std::string& syspath) const;
  static std::optional<std::string> devnode_of(std::string_view uevent);
  std::optional<std::string> devnode(const std::string& syspath) const;
  bool for_device(const std::string& devpath, fs_devices& fs, std::string& error, int depth) const;
  // for_device() past its realpath(); `known`: the device's ids when the caller has them.
  bool for_resolved(const std::string& syspath, fs_devices& fs, std::string& error, int depth,
                    const device_ids* known) const;
  void for_real_device(const std::string& syspath, fs_devices& fs, std::string& error,
                       const device_ids* known) const;

  std::string root_;
  std::string canonical_root_;  // realpath(root), "" for "/"
};

// ---- statvfs with a deadline --------------------------------------------------------------------

struct fs_sizes {  // the statvfs fields qemu-ga uses
  std::uint64_t blocks = 0, bfree = 0, bavail = 0, frsize = 0;
};

// The narrow interface: one statvfs(2). May block forever (a dead NFS server).
class fs_stat {
 public:
  virtual ~fs_stat() = default;
  virtual int statvfs(const std::string& path, fs_sizes& out) = 0;  // errno, 0 on success
};

class linux_fs_stat final : public fs_stat {
 public:
  int statvfs(const std::string& path, fs_sizes& out) override;
};

// Runs statvfs calls on detached threads, one per path, all at once, and waits for them until
// a deadline; a late answer is dropped (the mount is reported without sizes).
//
// Bound on stuck threads: a path whose statvfs from an earlier call is still running gets no
// new thread (it is reported without sizes at once, without waiting), so there is at most one
// stuck thread per mount point, and never more than `max_in_flight` in all (further paths are
// reported without sizes). A thread that finally returns frees its slot. The threads share
// only reference-counted state, so they may outlive the runner (and the agent's state).
// Local disk filesystems whose statfs is answered from in-memory superblock counters (no I/O,
// no daemon): ext2/3/4, xfs, btrfs, f2fs, vfat/msdos/exfat, iso9660, udf, squashfs, erofs.
// fuseblk (ntfs-3g) and anything unknown are not: their statfs can wait on a daemon or device.
bool statfs_in_memory(std::string_view type) noexcept;

class statvfs_runner {
 public:
  static constexpr std::size_t default_max_in_flight = 64;
  explicit statvfs_runner(std::shared_ptr<fs_stat> backend, std::size_t max_in_flight = default_max_in_flight);
  ~statvfs_runner();
  statvfs_runner(const statvfs_runner&) = delete;
  statvfs_runner& operator=(const statvfs_runner&) = delete;

  // Results index-aligned with `paths`; nullopt = failed, late, or skipped (see above).
  std::vector<std::optional<fs_sizes>> run(const std::vector<std::string>& paths, std::chrono::milliseconds deadline);
  // The same, but paths whose `direct[i]` is true (their filesystem's statfs is answered from
  // memory, see statfs_in_memory()) are asked on the calling thread (a worker, never the I/O
  // thread): no thread hand-off for the common case. The others go through the deadline threads.
  std::vector<std::optional<fs_sizes>> run(const std::vector<std::string>& paths,
                                           const std::vector<bool>& direct,
                                           std::chrono::milliseconds deadline);
  // statvfs calls still running (stuck or about to finish).
  std::size_t in_flight() const;

 private:
  struct shared {
    std::shared_ptr<fs_stat> backend;
    mutable std::mutex m;
    std::set<std::string> busy;
    // Threads are reused: one that finished waits `linger` for the next call's work before it
    // exits, so a poller asking every few seconds doesn't pay a thread start per mount.
    std::deque<std::function<void()>> jobs;
    std::size_t idle = 0;
    bool closing = false;  // the runner is gone: idle threads exit at once
    std::condition_variable work;
  };
  static void worker(std::shared_ptr<shared> s);
  std::shared_ptr<shared> s_;
  std::size_t max_;
};

}  // namespace fleetga::platform
