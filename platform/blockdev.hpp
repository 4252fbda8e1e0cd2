#pragma once
// Block devices as qemu-ga's guest-get-fsinfo and guest-get-disks see them (qga/commands-linux.c
// build_guest_fsinfo_for_device & co., qmp_guest_get_disks): a sysfs walk under an injectable
// root. Their neighbours, kept apart so this header stays light: statvfs with a deadline
// (platform/statvfs_runner.hpp: a dead network mount must not wedge the agent) and NVMe SMART
// (platform/nvme_smart.hpp).
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
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/nvme_smart.hpp"

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

struct disk_info {  // GuestDiskInfo
  std::string name;  // /dev/vda
  bool partition = false;
  std::optional<std::vector<std::string>> dependencies;
  std::optional<disk_address> address;
  std::optional<std::string> alias;
  std::optional<nvme_smart> smart;  // nvme disks only, filled by the caller (nvme_admin)
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

}  // namespace fleetga::platform
