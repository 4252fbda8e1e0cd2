// The storage family: guest-get-fsinfo and guest-get-disks (qemu-ga 10.2, qga/commands-linux.c
// qmp_guest_get_fsinfo / build_guest_fsinfo / qmp_guest_get_disks).
//
// Where the work runs: everything - the mount table, the sysfs walk and the statvfs wait - is
// one offloaded job per request. statvfs(2) itself runs on detached threads with a deadline
// (platform::statvfs_runner): a mount on a dead network server is reported without sizes
// after at most `statvfs_deadline` instead of wedging a worker or the agent, and once its call
// is known to be stuck, later requests skip it without waiting (at most one stuck thread per
// mount point, 64 in all).
//
// Differences from qemu-ga 7.2 (wire spec §7), following upstream: `total-bytes-privileged`
// (9.1); bind mounts (a device already listed) skipped (10.0, in the shared mount list).
// NVMe SMART (`smart` in GuestDiskInfo, 7.1): for a disk whose address says nvme, qemu-ga's
// get_nvme_smart() - Get Log Page 02h through NVME_IOCTL_ADMIN_CMD on the device node, in the
// same offloaded job; a failure (no permission, not a controller) just leaves `smart` out.
// Serial numbers stay udev's ID_SERIAL only, as upstream: a sysfs fallback (device/serial,
// virtio's serial) would make replies differ from qemu-ga's where udev's database is absent.
#include <array>
#include <string>
#include <vector>

#include "commands/state.hpp"
#include "commands/storage.hpp"
#include "platform/mounts.hpp"

namespace fleetga::commands {
namespace {

using names = std::string_view;

// ---- member order (wire spec §1.3): schema order, QEMU's print order, what 7.2 printed here ----

constexpr std::array<names, 7> fsinfo_schema{"name", "mountpoint", "type", "used-bytes",
                                             "total-bytes", "total-bytes-privileged", "disk"};
constexpr auto fsinfo_order = protocol::qemu_print_order(fsinfo_schema);
static_assert(protocol::in_qemu_order(fsinfo_schema, protocol::qemu_printed(fsinfo_schema)));
static_assert(protocol::in_qemu_order(  // qemu-ga 7.2 on this machine (no total-bytes-privileged)
    fsinfo_schema, std::array<names, 6>{"name", "total-bytes", "mountpoint", "disk", "used-bytes", "type"}));
static_assert(protocol::qemu_printed(fsinfo_schema) ==
              std::array<names, 7>{"name", "total-bytes", "total-bytes-privileged", "mountpoint", "disk",
                                   "used-bytes", "type"});

constexpr std::array<names, 8> address_schema{"pci-controller", "bus-type", "bus",    "target",
                                              "unit",           "serial",   "dev",    "ccw-address"};
constexpr auto address_order = protocol::qemu_print_order(address_schema);
static_assert(protocol::in_qemu_order(
    address_schema, std::array<names, 6>{"bus-type", "bus", "unit", "pci-controller", "dev", "target"}));
static_assert(protocol::qemu_printed(address_schema) ==
              std::array<names, 8>{"ccw-address", "serial", "bus-type", "bus", "unit", "pci-controller", "dev",
                                   "target"});

constexpr std::array<names, 4> pci_schema{"domain", "bus", "slot", "function"};
constexpr auto pci_order = protocol::qemu_print_order(pci_schema);
static_assert(protocol::qemu_printed(pci_schema) == std::array<names, 4>{"bus", "slot", "domain", "function"});

constexpr std::array<names, 4> ccw_schema{"cssid", "ssid", "subchno", "devno"};
constexpr auto ccw_order = protocol::qemu_print_order(ccw_schema);

constexpr std::array<names, 6> disk_schema{"name", "partition", "dependencies", "address", "alias", "smart"};
constexpr auto disk_order = protocol::qemu_print_order(disk_schema);
static_assert(protocol::in_qemu_order(disk_schema,
                                      std::array<names, 4>{"name", "dependencies", "partition", "address"}));
static_assert(protocol::qemu_printed(disk_schema) ==
              std::array<names, 6>{"name", "smart", "dependencies", "partition", "address", "alias"});

// GuestDiskSmart: a flat union, base {type} then the GuestNVMeSmart branch, one QDict.
constexpr std::array<names, 26> smart_schema{
    "type",
    "critical-warning",
    "temperature",
    "available-spare",
    "available-spare-threshold",
    "percentage-used",
    "data-units-read-lo",
    "data-units-read-hi",
    "data-units-written-lo",
    "data-units-written-hi",
    "host-read-commands-lo",
    "host-read-commands-hi",
    "host-write-commands-lo",
    "host-write-commands-hi",
    "controller-busy-time-lo",
    "controller-busy-time-hi",
    "power-cycles-lo",
    "power-cycles-hi",
    "power-on-hours-lo",
    "power-on-hours-hi",
    "unsafe-shutdowns-lo",
    "unsafe-shutdowns-hi",
    "media-errors-lo",
    "media-errors-hi",
    "number-of-error-log-entries-lo",
    "number-of-error-log-entries-hi"};
constexpr auto smart_order = protocol::qemu_print_order(smart_schema);
static_assert(protocol::in_qemu_order(smart_schema, protocol::qemu_printed(smart_schema)));

void write_smart(protocol::json_writer& w, const platform::nvme_smart& s) {
  w.begin_object();
  for (std::size_t i : smart_order) {
    w.key(smart_schema[i]);
    switch (i) {
      case 0: w.string("nvme"); break;
      case 1: w.integer(s.critical_warning); break;
      case 2: w.integer(s.temperature); break;
      case 3: w.integer(s.available_spare); break;
      case 4: w.integer(s.available_spare_threshold); break;
      case 5: w.integer(s.percentage_used); break;
      default: w.uinteger(s.counters[i - 6]); break;
    }
  }
  w.end_object();
}

void write_pci(protocol::json_writer& w, const platform::pci_address& p) {
  w.begin_object();
  for (std::size_t i : pci_order) {
    w.key(pci_schema[i]);
    w.integer(i == 0 ? p.domain : i == 1 ? p.bus : i == 2 ? p.slot : p.function);
  }
  w.end_object();
}

void write_ccw(protocol::json_writer& w, const platform::ccw_address& c) {
  w.begin_object();
  for (std::size_t i : ccw_order) {
    w.key(ccw_schema[i]);
    w.integer(i == 0 ? c.cssid : i == 1 ? c.ssid : i == 2 ? c.subchno : c.devno);
  }
  w.end_object();
}

void write_address(protocol::json_writer& w, const platform::disk_address& a) {
  w.begin_object();
  for (std::size_t i : address_order) {
    switch (i) {
      case 0: w.key("pci-controller"); write_pci(w, a.pci); break;
      case 1: w.key("bus-type"); w.string(a.bus_type); break;
      case 2: w.key("bus"); w.integer(a.bus); break;
      case 3: w.key("target"); w.integer(a.target); break;
      case 4: w.key("unit"); w.integer(a.unit); break;
      case 5: if (a.serial) { w.key("serial"); w.string(*a.serial); } break;
      case 6: if (a.dev) { w.key("dev"); w.string(*a.dev); } break;
      case 7: if (a.ccw) { w.key("ccw-address"); write_ccw(w, *a.ccw); } break;
    }
  }
  w.end_object();
}

struct fs_entry {
  platform::mount_entry mount;
  platform::fs_devices dev;
  std::optional<platform::fs_sizes> sizes;
};

struct fsinfo_result {
  std::optional<std::string> error;
  std::vector<fs_entry> items;  // mount order
};

fsinfo_result fsinfo_job(storage_context& sc) {
  fsinfo_result r;
  std::string err;
  auto mounts = platform::read_mount_list(sc.root, err);
  if (!mounts) {
    r.error = std::move(err);
    return r;
  }
  r.items.reserve(mounts->size());
  std::vector<std::string> dirs;
  std::vector<bool> direct;
  dirs.reserve(mounts->size());
  direct.reserve(mounts->size());
  for (auto& m : *mounts) {
    fs_entry& e = r.items.emplace_back();
    if (!sc.sysfs.fs_devices_of(m.major, m.minor, e.dev, err)) {  // qemu-ga drops the whole list
      r.error = std::move(err);
      return r;
    }
    dirs.push_back(m.dir);
    direct.push_back(sc.statfs_direct && sc.statfs_direct(m.type));
    e.mount = std::move(m);
  }
  auto sizes = sc.stat->run(dirs, direct, sc.statvfs_deadline);
  for (std::size_t i = 0; i < r.items.size(); ++i) r.items[i].sizes = sizes[i];
  return r;
}

void write_fs(protocol::json_writer& w, const fs_entry& e) {
  w.begin_object();
  // build_guest_fsinfo(): unsigned long arithmetic, wrapping like qemu-ga's.
  std::uint64_t used = 0, total = 0, priv = 0;
  if (e.sizes) {
    const auto& s = *e.sizes;
    used = (s.blocks - s.bfree) * s.frsize;
    total = (s.blocks - s.bfree + s.bavail) * s.frsize;
    priv = s.blocks * s.frsize;
  }
  for (std::size_t i : fsinfo_order) {
    switch (i) {
      case 0: if (e.dev.name) { w.key("name"); w.string(*e.dev.name); } break;
      case 1: w.key("mountpoint"); w.string(e.mount.dir); break;
      case 2: w.key("type"); w.string(e.mount.type); break;
      case 3: if (e.sizes) { w.key("used-bytes"); w.uinteger(used); } break;
      case 4: if (e.sizes) { w.key("total-bytes"); w.uinteger(total); } break;
      case 5: if (e.sizes) { w.key("total-bytes-privileged"); w.uinteger(priv); } break;
      case 6:
        w.key("disk");
        w.begin_array();
        for (const auto& d : e.dev.disks) write_address(w, d);
        w.end_array();
        break;
    }
  }
  w.end_object();
}

void write_disk(protocol::json_writer& w, const platform::disk_info& d) {
  w.begin_object();
  for (std::size_t i : disk_order) {
    switch (i) {
      case 0: w.key("name"); w.string(d.name); break;
      case 1: w.key("partition"); w.boolean(d.partition); break;
      case 2:
        if (d.dependencies) {
          w.key("dependencies");
          w.begin_array();
          for (const auto& s : *d.dependencies) w.string(s);
          w.end_array();
        }
        break;
      case 3: if (d.address) { w.key("address"); write_address(w, *d.address); } break;
      case 4: if (d.alias) { w.key("alias"); w.string(*d.alias); } break;
      case 5: if (d.smart) { w.key("smart"); write_smart(w, *d.smart); } break;
    }
  }
  w.end_object();
}

// get_disk_smart(): disks (not partitions) whose address has bus-type nvme.
void fill_nvme_smart(platform::nvme_admin& admin, std::vector<platform::disk_info>& disks) {
  std::string page;
  for (auto& d : disks) {
    if (!d.address || d.address->bus_type != "nvme") continue;
    if (admin.smart_log(d.name, page) != 0) continue;  // qemu-ga: g_debug and no `smart`
    d.smart = platform::parse_nvme_smart_log(page);
  }
}

}  // namespace

namespace handlers {

// `name` is a required member of GuestFilesystemInfo; qemu-ga always fills it (the device's
// basename, or the /sys/dev/block/M:m basename when that is missing), so is fleetga.
task<handler_result> guest_get_fsinfo(call& c) {
  if (auto e = no_args(c)) co_return e;
  storage_context& sc = c.state.storage;
  fsinfo_result r = co_await offload(c.state.pool, [&sc] { return fsinfo_job(sc); });
  if (r.error) co_return protocol::generic(std::move(*r.error));
  protocol::json_writer& w = c.out;
  w.begin_array();
  for (auto it = r.items.rbegin(); it != r.items.rend(); ++it) write_fs(w, *it);  // qemu-ga prepends
  w.end_array();
  co_return std::nullopt;
}

task<handler_result> guest_get_disks(call& c) {
  if (auto e = no_args(c)) co_return e;
  storage_context& sc = c.state.storage;
  struct result {
    std::vector<platform::disk_info> disks;
    std::string error;
    bool ok = false;
  };
  result r = co_await offload(c.state.pool, [&sc] {
    result x;
    x.ok = sc.sysfs.list_disks(x.disks, x.error);
    if (x.ok) fill_nvme_smart(*sc.nvme, x.disks);
    return x;
  });
  if (!r.ok) co_return protocol::generic(std::move(r.error));
  protocol::json_writer& w = c.out;
  w.begin_array();
  for (const auto& d : r.disks) write_disk(w, d);
  w.end_array();
  co_return std::nullopt;
}

}  // namespace handlers
}  // namespace fleetga::commands
