#include "platform/mounts.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace fleetga::platform {
namespace {

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// A cursor with sscanf's conversions, enough for qemu-ga's two format strings.
struct scan {
  std::string_view s;
  std::size_t p = 0;
  void ws() {
    while (p < s.size() && is_space(s[p])) ++p;
  }
  bool uns(unsigned* out) {  // %u (no sign handling: the kernel never prints one)
    ws();
    std::size_t b = p;
    unsigned long long v = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') v = v * 10 + static_cast<unsigned>(s[p++] - '0');
    if (p == b) return false;
    if (out) *out = static_cast<unsigned>(v);
    return true;
  }
  bool word(std::size_t* b, std::size_t* e) {  // %n%*s%n
    ws();
    if (b) *b = p;
    std::size_t start = p;
    while (p < s.size() && !is_space(s[p])) ++p;
    if (e) *e = p;
    return p != start;
  }
  bool lit(char c) {
    if (p < s.size() && s[p] == c) { ++p; return true; }
    return false;
  }
  bool any() {  // %c
    if (p >= s.size()) return false;
    ++p;
    return true;
  }
};

int mode_major_minor(const struct stat& st, unsigned& major, unsigned& minor) {
  if (S_ISDIR(st.st_mode)) return -2;  // a bind mount
  if (S_ISBLK(st.st_mode)) {
    major = ::major(st.st_rdev);
    minor = ::minor(st.st_rdev);
    return 0;
  }
  return -1;
}

bool dev_exists(const std::vector<mount_entry>& v, unsigned major, unsigned minor) {
  for (const auto& m : v)
    if (m.major == major && m.minor == minor) return true;
  return false;
}

// Whole file; /proc files report size 0, so read until EOF.
// Straight into `out` (no buffer on the stack: the agent's threads keep their stacks small).
int read_fd(int fd, std::string& out) {
  std::size_t used = 0;
  out.resize(4096);
  while (true) {
    if (used == out.size() && used < mount_table_max) out.resize(std::min(used * 2, mount_table_max));
    char probe;  // full at the limit: one more byte says whether the table is larger
    const bool full = used == out.size();
    ssize_t n = full ? ::read(fd, &probe, 1) : ::read(fd, out.data() + used, out.size() - used);
    if (full && n > 0) {
      out.clear();
      return EFBIG;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      out.clear();
      return e;
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  out.resize(used);
  return 0;
}

int read_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int e = read_fd(fd, out);
  ::close(fd);
  return e;
}

// Splits like getline(): every line keeps its '\n' (the last one may lack it).
template <class F>
void for_each_line(std::string_view text, F f) {
  std::size_t p = 0;
  while (p < text.size()) {
    std::size_t nl = text.find('\n', p);
    std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    f(text.substr(p, end - p));
    p = end;
  }
}

}  // namespace

std::string decode_mountinfo_name(std::string_view s) {
  if (s.find('\\') == std::string_view::npos) return std::string(s);  // nothing escaped
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
    } else if (i + 1 < s.size() && s[i + 1] == '\\') {
      out += '\\';
      ++i;
    } else if (i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
               s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string decode_mtab_name(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    std::string_view rest = s.substr(i);
    if (rest.starts_with("\\040")) { out += ' '; i += 3; }
    else if (rest.starts_with("\\011")) { out += '\t'; i += 3; }
    else if (rest.starts_with("\\012")) { out += '\n'; i += 3; }
    else if (rest.starts_with("\\134")) { out += '\\'; i += 3; }
    else if (rest.starts_with("\\\\")) { out += '\\'; i += 1; }
    else out += s[i];
  }
  return out;
}

namespace {

// parse_mountinfo(), and with `ids` the mount id of every listed entry (the first field).
std::vector<mount_entry> parse_mountinfo_ids(std::string_view text, const device_lookup& lookup,
                                             std::vector<unsigned>* ids) {
  std::vector<mount_entry> mounts;
  for_each_line(text, [&](std::string_view line) {
    // "%*u %*u %u:%u %*s %n%*s%n%c": id, parent, major:minor, root, mount point, one more char
    scan a{line};
    unsigned id = 0, major = 0, minor = 0;
    std::size_t dir_s = 0, dir_e = 0;
    if (!a.uns(&id)) return;
    a.ws();
    if (!a.uns(nullptr)) return;
    a.ws();
    if (!a.uns(&major) || !a.lit(':') || !a.uns(&minor)) return;
    a.ws();
    if (!a.word(nullptr, nullptr)) return;
    a.ws();
    if (!a.word(&dir_s, &dir_e) || !a.any()) return;
    // " - %n%*s%n %n%*s%n%c" after the optional fields: type, source, one more char
    std::size_t dash = line.find(" - ", dir_e);
    if (dash == std::string_view::npos) return;
    scan b{line, dash};
    std::size_t type_s = 0, type_e = 0, dev_s = 0, dev_e = 0;
    b.ws();
    b.lit('-');
    b.ws();
    if (!b.word(&type_s, &type_e)) return;
    b.ws();
    if (!b.word(&dev_s, &dev_e) || !b.any()) return;
    std::string_view type = line.substr(type_s, type_e - type_s);
    if (major == 0) {
      // btrfs reports major 0; its source device tells the real numbers. Everything else
      // with major 0 (proc, sysfs, tmpfs, network filesystems) is skipped before any
      // string is built: most lines of a real mountinfo end here.
      if (type != "btrfs" || lookup(decode_mountinfo_name(line.substr(dev_s, dev_e - dev_s)), major, minor) < 0) return;
    }
    if (dev_exists(mounts, major, minor)) return;  // bind mount of a listed device
    mounts.push_back({decode_mountinfo_name(line.substr(dir_s, dir_e - dir_s)), std::string(type), major, minor});
    if (ids) ids->push_back(id);
  });
  return mounts;
}

// No component of `dir` (an absolute path) is a symlink: lstat of every prefix.
bool no_symlink_on(const std::string& dir) {
  struct stat st;
  for (std::size_t p = dir.find('/', 1);; p = dir.find('/', p + 1)) {
    if (::lstat(dir.substr(0, p).c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return false;
    if (p == std::string::npos) return true;
  }
}

// Every listed mount point still leads to the mount it is listed for, as the root of that
// mount: the mount id found at the path is the line's. A directory above a mount point renamed
// changes the path without a mount-table event (kept text names the old path, which is gone,
// made again on the filesystem above, or a symlink to the new place); so does a mount point
// hidden by a later mount on it. The path is resolved with no symlinks (mountinfo names none)
// and from the dentry cache only (openat2 RESOLVE_CACHED, Linux 5.12): a walk that would need
// the filesystem - a hung network mount above a listed one - is not made here, the table is
// read again instead. Without openat2 (ENOSYS: Linux < 5.6, a seccomp filter, valgrind) the
// symlinks are looked for by lstat; any other failure (EAGAIN, EINVAL, a kernel without
// STATX_MNT_ID) means "read again".
bool mount_point_resolves(const std::string& dir, unsigned id) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED;
  const int fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, dir.c_str(), &how, sizeof how));
  struct statx sx;
  int r = -1;
  if (fd >= 0) {
    r = ::statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, &sx);
    ::close(fd);
  } else if (errno == ENOSYS && no_symlink_on(dir)) {
    r = ::statx(AT_FDCWD, dir.c_str(), AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &sx);
  }
  if (r != 0 || !(sx.stx_mask & STATX_MNT_ID) || sx.stx_mnt_id != id) return false;
  return !(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

bool mount_points_resolve(const std::vector<mount_entry>& mounts, const std::vector<unsigned>& ids) {
  for (std::size_t i = 0; i < mounts.size(); ++i)
    if (!mount_point_resolves(mounts[i].dir, ids[i])) return false;
  return true;
}

}  // namespace

std::vector<mount_entry> parse_mountinfo(std::string_view text, const device_lookup& lookup) {
  return parse_mountinfo_ids(text, lookup, nullptr);
}

std::vector<mount_entry> parse_mtab(std::string_view text, const device_lookup& lookup) {
  std::vector<mount_entry> mounts;
  for_each_line(text, [&](std::string_view line) {
    // getmntent(): leading blanks skipped, blank and '#' lines skipped, fields split on
    // space/tab, a missing field is "".
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    std::size_t p = 0;
    while (p < line.size() && (line[p] == ' ' || line[p] == '\t')) ++p;
    if (p == line.size() || line[p] == '#') return;
    std::string_view f[3];
    for (auto& field : f) {
      while (p < line.size() && (line[p] == ' ' || line[p] == '\t')) ++p;
      std::size_t b = p;
      while (p < line.size() && line[p] != ' ' && line[p] != '\t') ++p;
      field = line.substr(b, p - b);
    }
    std::string fsname = decode_mtab_name(f[0]);
    std::string type = decode_mtab_name(f[2]);
    if (fsname.empty() || fsname[0] != '/' || type == "smbfs" || type == "cifs") return;
    unsigned major = 0, minor = 0;
    if (lookup(fsname, major, minor) == -2) return;  // bind mount
    if (dev_exists(mounts, major, minor)) return;
    mounts.push_back({decode_mtab_name(f[1]), std::move(type), major, minor});
  });
  return mounts;
}

int stat_device(const std::string& root, const std::string& devpath, unsigned& major, unsigned& minor) {
  major = 0;
  minor = 0;
  struct stat st;
  if (::stat((root + devpath).c_str(), &st) < 0) return -1;
  return mode_major_minor(st, major, minor);
}

mountinfo_watch::~mountinfo_watch() {
  if (fd_ >= 0) ::close(fd_);
}

int mountinfo_watch::text(std::string& out, bool fresh, bool* read) {
  std::lock_guard lock(m_);
  bool stale = fresh;
  if (fd_ < 0) {
    fd_ = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return errno;
    stale = true;
  } else if (!stale) {
    pollfd p{fd_, POLLPRI, 0};
    stale = ::poll(&p, 1, 0) != 0;  // flagged, or poll failed: read again
  }
  if (stale) {
    ++reads_;
    int e = ::lseek(fd_, 0, SEEK_SET) < 0 ? errno : read_fd(fd_, text_);
    if (e != 0) {
      ::close(fd_);
      fd_ = -1;
      return e;
    }
  }
  if (read) *read = stale;
  out = text_;
  return 0;
}

std::uint64_t mountinfo_watch::reads() {
  std::lock_guard lock(m_);
  return reads_;
}

static mountinfo_watch& own_watch() {
  static mountinfo_watch own;
  return own;
}

int own_mountinfo(std::string& text) { return own_watch().text(text); }

namespace {

std::optional<std::vector<mount_entry>> mtab_or_error(const std::string& root, const device_lookup& lookup,
                                                      std::string& error) {
  std::string text;
  if (read_file(root + "/proc/self/mounts", text) == 0) return parse_mtab(text, lookup);
  error = "failed to open mtab file: '/proc/self/mounts'";
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<mount_entry>> read_mount_list(mountinfo_watch& w, std::string& error, mount_read how) {
  device_lookup lookup = [](const std::string& dev, unsigned& major, unsigned& minor) {
    return stat_device("", dev, major, minor);
  };
  std::string text;
  bool read = false;
  if (w.text(text, how == mount_read::fresh, &read) == 0) {
    if (read) return parse_mountinfo(text, lookup);  // as the kernel has it now
    std::vector<unsigned> ids;
    auto kept = parse_mountinfo_ids(text, lookup, &ids);
    if (mount_points_resolve(kept, ids)) return kept;
    if (w.text(text, true) == 0) return parse_mountinfo(text, lookup);
  }
  return mtab_or_error("", lookup, error);
}

std::optional<std::vector<mount_entry>> read_mount_list(const std::string& root, std::string& error, mount_read how) {
  if (root.empty()) return read_mount_list(own_watch(), error, how);  // the agent's own table
  device_lookup lookup = [&root](const std::string& dev, unsigned& major, unsigned& minor) {
    return stat_device(root, dev, major, minor);
  };
  std::string text;  // an injected root is read as it is, every time
  if (read_file(root + "/proc/self/mountinfo", text) == 0) return parse_mountinfo(text, lookup);
  return mtab_or_error(root, lookup, error);
}

}  // namespace fleetga::platform
