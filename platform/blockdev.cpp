#include "platform/blockdev.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>

namespace fleetga::platform {
namespace {

// sscanf's %x / %u / literal matching, enough for qemu-ga's sysfs path formats.
struct scanner {
  std::string_view s;
  std::size_t p = 0;
  bool lit(char c) {
    if (p < s.size() && s[p] == c) {
      ++p;
      return true;
    }
    return false;
  }
  bool num(unsigned base, unsigned* out = nullptr) {
    std::size_t b = p;
    unsigned long long v = 0;
    while (p < s.size()) {
      char c = s[p];
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (base == 16 && c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (base == 16 && c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else break;
      v = v * base + d;
      ++p;
    }
    if (p == b) return false;
    if (out) *out = static_cast<unsigned>(v);
    return true;
  }
  bool hex(unsigned* out = nullptr) { return num(16, out); }
  bool dec(unsigned* out = nullptr) { return num(10, out); }
};

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

// "%*u:%*u:%*u/%*u:%u:%u:%u" after "/target".
bool parse_target(std::string_view syspath, unsigned tgt[3]) {
  std::size_t pos = syspath.find("/target");
  if (pos == std::string_view::npos) return false;
  scanner s{syspath, pos + 7};
  return s.dec() && s.lit(':') && s.dec() && s.lit(':') && s.dec() && s.lit('/') && s.dec() && s.lit(':') &&
         s.dec(&tgt[0]) && s.lit(':') && s.dec(&tgt[1]) && s.lit(':') && s.dec(&tgt[2]);
}

std::string basename_of(std::string_view p) {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  std::size_t slash = p.rfind('/');
  return std::string(slash == std::string_view::npos ? p : p.substr(slash + 1));
}

std::string errno_text(std::string text, int err) {
  text += ": ";
  text += std::strerror(err);
  return text;
}

constexpr std::size_t sysfs_file_max = 64 * 1024;

}  // namespace

std::uint32_t kernfs_name_hash(std::string_view name) noexcept {
  unsigned long long h = 0;  // init_name_hash(NULL)
  for (char ch : name) {
    // partial_name_hash(): the char is promoted (sign-extended on x86) to unsigned long.
    auto c = static_cast<unsigned long long>(static_cast<long long>(static_cast<signed char>(ch)));
    h = (h + (c << 4) + (c >> 4)) * 11;
  }
  h = (h * 0x61C8864680B583EBull) >> 32;  // end_name_hash() = hash_long(h, 32) on 64-bit
  auto r = static_cast<std::uint32_t>(h) & 0x7fffffffu;
  if (r < 2) r += 2;
  if (r >= static_cast<std::uint32_t>(INT_MAX)) r = static_cast<std::uint32_t>(INT_MAX) - 1;
  return r;
}

bool kernfs_before(std::string_view a, std::string_view b) noexcept {
  std::uint32_t ha = kernfs_name_hash(a), hb = kernfs_name_hash(b);
  if (ha != hb) return ha < hb;
  return a < b;
}

std::optional<std::string> env_value(std::string_view text, std::string_view prefix, std::string_view key) {
  std::size_t p = 0;
  while (p < text.size()) {
    std::size_t nl = text.find('\n', p);
    std::string_view line = text.substr(p, nl == std::string_view::npos ? std::string_view::npos : nl - p);
    p = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.starts_with(prefix)) continue;
    line.remove_prefix(prefix.size());
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == '=')
      return std::string(line.substr(key.size() + 1));
  }
  return std::nullopt;
}

bool pci_disk_address(std::string_view syspath, const pci_lookup& sys, disk_address& disk, std::string& error) {
  unsigned pci[4] = {};
  std::size_t pos = syspath.find("/devices/pci");
  if (pos == std::string_view::npos) return false;
  scanner s{syspath, pos + 12};  // "%*x:%*x/%x:%x:%x.%x%n"
  if (!(s.hex() && s.lit(':') && s.hex() && s.lit('/') && s.hex(&pci[0]) && s.lit(':') && s.hex(&pci[1]) &&
        s.lit(':') && s.hex(&pci[2]) && s.lit('.') && s.hex(&pci[3])))
    return false;
  std::size_t p = s.p;
  std::string driver;
  static constexpr std::string_view known[] = {"ata_piix", "sym53c8xx", "virtio-pci", "ahci",
                                                "nvme",     "xhci_hcd",  "ehci-pci"};
  while (true) {
    driver = sys.driver(syspath.substr(0, p));
    if (std::find(std::begin(known), std::end(known), driver) != std::end(known)) break;
    scanner t{syspath, p};  // "/%x:%x:%x.%x%n": a bridge, the controller is further down
    if (t.lit('/') && t.hex(&pci[0]) && t.lit(':') && t.hex(&pci[1]) && t.lit(':') && t.hex(&pci[2]) &&
        t.lit('.') && t.hex(&pci[3])) {
      p = t.p;
      continue;
    }
    return false;  // unsupported driver or sysfs path
  }

  unsigned tgt[3] = {};
  const bool has_tgt = parse_target(syspath, tgt);
  bool has_ata = false, has_host = false;
  unsigned host = 0;
  std::vector<unsigned> hosts;
  std::size_t hp = syspath.find("/ata");
  std::size_t offset = 4;
  if (hp != std::string_view::npos) {
    has_ata = true;
  } else {
    hp = syspath.find("/host");
    offset = 5;
  }
  if (hp != std::string_view::npos) {
    scanner h{syspath, hp + offset};
    if (h.dec(&host)) {
      has_host = true;
      int err = 0;
      std::string dir(syspath.substr(0, hp));
      auto list = sys.hosts(dir, has_ata, err);
      if (!list) {
        error = errno_text("opendir(\"" + dir + "\")", err);
        return false;
      }
      hosts = std::move(*list);
    }
  }

  disk.pci = {pci[0], pci[1], pci[2], pci[3]};
  auto host_index = [&]() -> std::optional<std::int64_t> {
    for (std::size_t i = 0; i < hosts.size(); ++i)
      if (hosts[i] == host) return static_cast<std::int64_t>(i);
    return std::nullopt;
  };
  if (driver == "ata_piix") {  // a host per IDE bus, target*:0:<unit>:0
    if (!has_host || !has_tgt) return false;
    auto i = host_index();
    if (!i) return false;
    disk.bus_type = "ide";
    disk.bus = *i;
    disk.unit = tgt[1];
  } else if (driver == "sym53c8xx") {  // LSI SCSI: target*:0:<unit>:0
    if (!has_tgt) return false;
    disk.bus_type = "scsi";
    disk.unit = tgt[1];
  } else if (driver == "virtio-pci") {
    if (has_tgt) {  // virtio-scsi: target*:0:0:<unit>
      disk.bus_type = "scsi";
      disk.unit = tgt[2];
    } else {  // virtio-blk: one disk per device
      disk.bus_type = "virtio";
    }
  } else if (driver == "ahci") {  // one host per unit
    if (!has_host || !has_tgt) return false;
    auto i = host_index();
    if (!i) return false;
    disk.unit = *i;
    disk.bus_type = "sata";
  } else if (driver == "nvme") {
    disk.bus_type = "nvme";
  } else {  // ehci-pci, xhci_hcd
    disk.bus_type = "usb";
  }
  return true;
}

bool nonpci_virtio_address(std::string_view syspath, disk_address& disk) {
  if (!contains(syspath, "/virtio") || !contains(syspath, "/block")) return false;
  unsigned tgt[3] = {};
  if (parse_target(syspath, tgt)) {  // virtio-scsi: target*:0:<target>:<unit>
    disk.bus_type = "scsi";
    disk.bus = tgt[0];
    disk.target = tgt[1];
    disk.unit = tgt[2];
  } else {
    disk.bus_type = "virtio";
  }
  return true;
}

bool ccw_disk_address(std::string_view syspath, disk_address& disk) {
  std::size_t pos = syspath.find("/devices/css");
  if (pos == std::string_view::npos) return false;
  scanner s{syspath, pos + 12};  // "%*x/%x.%x.%x/%*x.%*x.%x/"
  unsigned cssid = 0, ssid = 0, subchno = 0, devno = 0;
  if (!(s.hex() && s.lit('/') && s.hex(&cssid) && s.lit('.') && s.hex(&ssid) && s.lit('.') && s.hex(&subchno) &&
        s.lit('/') && s.hex() && s.lit('.') && s.hex() && s.lit('.') && s.hex(&devno)))
    return false;
  disk.ccw = ccw_address{cssid, ssid, subchno, devno};
  if (contains(syspath.substr(pos), "/virtio")) nonpci_virtio_address(syspath, disk);
  return true;
}

// ---- blockdev ------------------------------------------------------------------------------------

blockdev::blockdev(std::string root) : root_(std::move(root)) {
  if (!root_.empty()) {
    if (char* r = ::realpath(root_.c_str(), nullptr)) {
      canonical_root_ = r;
      std::free(r);
      if (canonical_root_ == "/") canonical_root_.clear();
    } else {
      canonical_root_ = root_;
    }
  }
}

std::optional<std::string> blockdev::resolve(const std::string& p, int& err) const {
  char* r = ::realpath(abs(p).c_str(), nullptr);
  if (!r) {
    err = errno;
    return std::nullopt;
  }
  std::string s(r);
  std::free(r);
  if (!canonical_root_.empty() && s.starts_with(canonical_root_) &&
      (s.size() == canonical_root_.size() || s[canonical_root_.size()] == '/'))
    s.erase(0, canonical_root_.size());
  return s;
}

std::optional<std::vector<blockdev::entry>> blockdev::list(const std::string& p, int& err) const {
  DIR* d = ::opendir(abs(p).c_str());
  if (!d) {
    err = errno;
    return std::nullopt;
  }
  std::vector<entry> out;
  while (true) {
    errno = 0;
    dirent* e = ::readdir(d);
    if (!e) {
      if (errno != 0) {
        err = errno;
        ::closedir(d);
        return std::nullopt;
      }
      break;
    }
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    out.push_back({std::string(n), e->d_type, kernfs_name_hash(n)});
  }
  ::closedir(d);
  // Real sysfs already hands entries out in this order (fixture trees on ext4 don't): check
  // first, sort only when needed, each name hashed once.
  auto before = [](const entry& a, const entry& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.name < b.name;
  };
  if (!std::is_sorted(out.begin(), out.end(), before)) std::sort(out.begin(), out.end(), before);
  return out;
}

// sysfs attributes are generated from kernel memory on read: no disk, no network.
std::optional<std::string> blockdev::read(const std::string& p) const {
  int fd = ::open(abs(p).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  while (out.size() < sysfs_file_max) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    // A sysfs attribute comes whole in one read (it is at most a page), and a regular file
    // (udev's database, a fixture) reads short only at its end: no second read to see EOF.
    if (static_cast<std::size_t>(n) < sizeof buf) break;
  }
  ::close(fd);
  return out;
}

std::optional<std::string> blockdev::devnode_of(std::string_view uevent) {
  auto name = env_value(uevent, "", "DEVNAME");
  if (!name || name->empty()) return std::nullopt;
  if ((*name)[0] == '/') return name;
  return "/dev/" + *name;
}

std::optional<std::string> blockdev::devnode(const std::string& syspath) const {
  auto ev = read(syspath + "/uevent");
  if (!ev) return std::nullopt;
  return devnode_of(*ev);
}

blockdev::device_ids blockdev::identify(const std::string& syspath) const {
  device_ids id;
  auto ev = read(syspath + "/uevent");
  if (!ev) return id;
  id.devnode = devnode_of(*ev);
  auto maj = env_value(*ev, "", "MAJOR"), min = env_value(*ev, "", "MINOR");
  if (maj && min) id.udev_db = read("/run/udev/data/b" + *maj + ":" + *min);
  return id;
}

std::optional<std::string> blockdev::device_ids::udev_property(std::string_view key) const {
  if (!udev_db) return std::nullopt;
  return env_value(*udev_db, "E:", key);
}

namespace {
class sysfs_pci_lookup final : public pci_lookup {
 public:
  explicit sysfs_pci_lookup(const std::string& root) : root_(root) {}
  std::string driver(std::string_view prefix) const override {
    char buf[PATH_MAX];
    std::string link = root_ + std::string(prefix) + "/driver";
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    if (n < 0) return {};
    return basename_of(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  std::optional<std::vector<unsigned>> hosts(std::string_view dir, bool ata, int& err) const override {
    DIR* d = ::opendir((root_ + std::string(dir)).c_str());
    if (!d) {
      err = errno;
      return std::nullopt;
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
    ::closedir(d);
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) { return kernfs_before(a, b); });
    std::vector<unsigned> out;
    const std::string_view prefix = ata ? "ata" : "host";
    for (const auto& n : names) {
      if (out.size() >= 8) break;  // qemu-ga's hosts[8]
      if (!std::string_view(n).starts_with(prefix)) continue;
      scanner s{n, prefix.size()};
      unsigned v = 0;
      if (s.dec(&v)) out.push_back(v);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  const std::string& root_;
};
}  // namespace

void blockdev::for_real_device(const std::string& syspath, fs_devices& fs, std::string& error,
                               const device_ids* known) const {
  disk_address d;
  const device_ids id = known ? *known : identify(syspath);
  d.dev = id.devnode;
  if (auto serial = id.udev_property("ID_SERIAL"); serial && !serial->empty()) d.serial = std::move(serial);
  bool has = false;
  if (contains(syspath, "/devices/pci")) has = pci_disk_address(syspath, sysfs_pci_lookup(root_), d, error);
  else if (contains(syspath, "/devices/css")) has = ccw_disk_address(syspath, d);
  else if (contains(syspath, "/virtio")) has = nonpci_virtio_address(syspath, d);
  if (has || d.dev || d.serial) fs.disks.insert(fs.disks.begin(), std::move(d));
}

bool blockdev::for_device(const std::string& devpath, fs_devices& fs, std::string& error, int depth) const {
  int err = 0;
  auto sp = resolve(devpath, err);
  if (!sp) {
    if (err != ENOENT) {
      error = errno_text("realpath(\"" + devpath + "\")", err);
      return false;
    }
    // ENOENT: the device may be missing from a container's /sys.
    if (!fs.name) fs.name = basename_of(devpath);
    return true;
  }
  return for_resolved(*sp, fs, error, depth, nullptr);
}

bool blockdev::for_resolved(const std::string& sp, fs_devices& fs, std::string& error, int depth,
                            const device_ids* known) const {
  int err = 0;
  if (!fs.name) fs.name = basename_of(sp);
  if (!contains(sp, "/devices/virtual/block/")) {
    for_real_device(sp, fs, error, known);
    return error.empty();
  }
  if (depth >= 32) return true;  // a slaves/ cycle (never in a real kernel; a broken fixture)
  const std::string slaves = sp + "/slaves";
  auto ents = list(slaves, err);
  if (!ents) {
    if (err == ENOENT) return true;
    error = errno_text("opendir(\"" + slaves + "\")", err);
    return false;
  }
  for (const auto& e : *ents) {
    if (e.type != DT_LNK) continue;
    if (!for_device(slaves + "/" + e.name, fs, error, depth + 1)) return false;
  }
  return true;
}

bool blockdev::fs_devices_of(unsigned major, unsigned minor, fs_devices& out, std::string& error) const {
  out = {};
  return for_device("/sys/dev/block/" + std::to_string(major) + ":" + std::to_string(minor), out, error, 0);
}

bool blockdev::list_disks(std::vector<disk_info>& out, std::string& error) const {
  out.clear();
  int err = 0;
  auto ents = list("/sys/block", err);
  if (!ents) {
    error = errno_text("Can't open directory \"/sys/block\"", err);
    return false;
  }
  for (const auto& e : *ents) {
    if (e.type != DT_LNK) continue;
    const std::string dir = "/sys/block/" + e.name;
    auto size = read(dir + "/size");
    if (!size || *size == "0\n") continue;  // unreadable or zero-sized
    // One read of uevent and of udev's database for everything asked of this disk.
    const device_ids id = identify(dir);
    if (!id.devnode) continue;
    const std::string& dev = *id.devnode;
    disk_info d;
    d.name = dev;
    if (auto a = id.udev_property("DM_NAME")) {
      if (!a->empty()) d.alias = std::move(*a);
    } else if (auto n = read(dir + "/dm/name")) {
      while (!n->empty() && n->back() == '\n') n->pop_back();
      if (!n->empty()) d.alias = std::move(*n);
    }
    int rerr = 0;
    auto real = resolve(dir, rerr);
    if (real && !contains(*real, "/devices/virtual/block/")) {  // unresolvable: treated as virtual
      fs_devices f;
      std::string ignored;
      for_resolved(*real, f, ignored, 0, &id);  // <real>/uevent is the file read above
      if (!f.disks.empty()) d.address = f.disks.front();
    }
    if (auto deps = list(dir + "/slaves", err)) {
      d.dependencies.emplace();
      for (const auto& s : *deps)
        if (auto n = devnode(dir + "/slaves/" + s.name)) d.dependencies->insert(d.dependencies->begin(), *n);
    }
    out.push_back(std::move(d));
    if (auto parts = list(dir, err)) {
      const std::string_view disk = e.name;
      for (const auto& p : *parts) {
        if (!(p.type & DT_DIR)) continue;
        std::string_view n = p.name;
        if (!n.starts_with(disk)) continue;
        std::string_view rest = n.substr(disk.size());
        auto digit = [](char c) { return c >= '0' && c <= '9'; };
        if (!(( !rest.empty() && digit(rest[0])) || (rest.size() >= 2 && rest[0] == 'p' && digit(rest[1])))) continue;
        auto pdev = devnode(dir + "/" + p.name);
        if (!pdev) continue;
        disk_info part;
        part.name = *pdev;
        part.partition = true;
        part.dependencies = std::vector<std::string>{dev};
        out.push_back(std::move(part));
      }
    }
  }
  std::reverse(out.begin(), out.end());  // qemu-ga prepends every entry
  return true;
}

}  // namespace fleetga::platform
