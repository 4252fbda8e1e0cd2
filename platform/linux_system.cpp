#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>

#include "platform/system.hpp"

namespace fleetga::platform {

std::int64_t linux_system::realtime_ns() {
  // g_get_real_time() is gettimeofday(): microseconds. qemu-ga multiplies by 1000.
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  return (static_cast<std::int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec) * 1000;
}

int linux_system::hostname(std::string& out) {
  // HOST_NAME_MAX is 64 on Linux; g_get_host_name-free like qemu-ga's qga_get_host_name().
  char buf[256 + 1];
  if (::gethostname(buf, sizeof buf - 1) != 0) return errno;
  buf[sizeof buf - 1] = '\0';
  out.assign(buf);
  return 0;
}

int linux_system::uname(uname_info& out) {
  struct utsname u {};
  if (::uname(&u) != 0) return errno;
  out.release.assign(u.release);
  out.version.assign(u.version);
  out.machine.assign(u.machine);
  return 0;
}

namespace {

// GLib falls back to UTC (abbreviation "UTC") for a $TZ it cannot use, where glibc would
// take an unparsable string as a zone *named* after it with offset 0 ("garbage" -> zone
// "garbage"). GLib accepts a TZif file (absolute, or under $TZDIR / /usr/share/zoneinfo,
// optional leading ':') or a POSIX rule that has at least "std offset".
bool glib_accepts_tz(std::string_view v) {
  if (v.empty()) return true;
  if (v[0] == ':') v.remove_prefix(1);
  if (v.empty()) return true;
  std::string path;
  if (v[0] == '/') {
    path = v;
  } else {
    const char* dir = std::getenv("TZDIR");
    path = dir && *dir ? dir : "/usr/share/zoneinfo";
    path += '/';
    path += v;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return true;
  std::size_t i = 0;
  if (v[0] == '<') {
    i = v.find('>');
    if (i == std::string_view::npos) return false;
    ++i;
  } else {
    while (i < v.size() && ((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z'))) ++i;
    if (i < 3) return false;
  }
  return i < v.size() && ((v[i] >= '0' && v[i] <= '9') || v[i] == '+' || v[i] == '-');
}

}  // namespace

timezone_info linux_system::timezone() {
  // GLib's local zone comes from $TZ, else /etc/localtime, and it is cached per $TZ value;
  // glibc's tzset()+localtime_r() gives the same offset and abbreviation (both read TZif /
  // POSIX TZ strings) with the same caching.
  if (const char* env = std::getenv("TZ"); env && !glib_accepts_tz(env)) return {std::string("UTC"), 0};
  ::tzset();
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  timezone_info tz;
  if (!::localtime_r(&now, &tm)) return tz;  // offset 0, no zone: what GLib's UTC fallback gives
  tz.offset = tm.tm_gmtoff;
  if (tm.tm_zone && *tm.tm_zone) tz.zone.emplace(tm.tm_zone);
  return tz;
}

int linux_system::loadavg(load_average& out) {
  double v[3];
  if (::getloadavg(v, 3) != 3) return errno ? errno : EIO;
  out.load1m = v[0];
  out.load5m = v[1];
  out.load15m = v[2];
  return 0;
}

std::optional<std::string> linux_system::getenv(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

std::string linux_system::rooted(std::string_view abs_path) const {
  std::string p;
  p.reserve(root_.size() + abs_path.size());
  p += root_;
  p += abs_path;
  return p;
}

int linux_system::read_small_file(const std::string& path, std::size_t max, std::string& out) {
  // O_NONBLOCK: a FIFO (or a device) at the path must not hold the caller in open() until
  // someone writes to it; only regular files and directories are read (below).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return errno;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
    ::close(fd);
    return ESPIPE;
  }
  out.clear();
  char buf[4096];
  int err = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max) {
      err = EFBIG;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return err;
}

std::optional<file_identity> linux_system::identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  file_identity id;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  id.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return id;
}

}  // namespace fleetga::platform
