#pragma once
// The narrow view of the host that commands/ needs for the core and system families. Every
// absolute system path (/etc/os-release, ...) goes through rooted() so tests run on fixture
// trees; the fake in tests/unit overrides the volatile parts (clock, host name, ...).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fleetga::platform {

struct uname_info {
  std::string release, version, machine;
};

struct timezone_info {
  std::optional<std::string> zone;  // abbreviation ("UTC", "CET"); absent when unknown
  std::int64_t offset = 0;          // seconds east of UTC
};

struct load_average {
  double load1m = 0, load5m = 0, load15m = 0;
};

// What decides whether a cached parse of a file is still current.
struct file_identity {
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  friend bool operator==(const file_identity&, const file_identity&) = default;
};

// Largest file read_small_file() accepts (os-release and friends are < 1 KiB).
inline constexpr std::size_t small_file_max = std::size_t{1} << 20;

class system {
 public:
  virtual ~system() = default;

  // Wall clock in ns since the epoch with microsecond resolution (g_get_real_time() * 1000,
  // so the last three digits are 000 like qemu-ga's).
  virtual std::int64_t realtime_ns() = 0;
  // gethostname(); returns errno (0 on success).
  virtual int hostname(std::string& out) = 0;
  // uname(); returns errno.
  virtual int uname(uname_info& out) = 0;
  // The local zone like GLib's g_time_zone_new_local() at this instant.
  virtual timezone_info timezone() = 0;
  // getloadavg(); returns errno (EIO when the libc call fails without one).
  virtual int loadavg(load_average& out) = 0;
  // Environment lookup (QGA_OS_RELEASE); injectable for tests.
  virtual std::optional<std::string> getenv(const char* name) = 0;
  // root + abs_path.
  virtual std::string rooted(std::string_view abs_path) const = 0;
  // Reads a whole small file (path as given: callers apply rooted() where it applies).
  // Returns errno; EFBIG when larger than `max`, EISDIR for a directory, ESPIPE for anything
  // else that is not a regular file (a FIFO is never waited on).
  virtual int read_small_file(const std::string& path, std::size_t max, std::string& out) = 0;
  virtual std::optional<file_identity> identity(const std::string& path) = 0;
};

// The real Linux implementation; `root` ("" = "/") prefixes every system path.
class linux_system : public system {
 public:
  explicit linux_system(std::string root = {}) : root_(std::move(root)) {}

  std::int64_t realtime_ns() override;
  int hostname(std::string& out) override;
  int uname(uname_info& out) override;
  timezone_info timezone() override;
  int loadavg(load_average& out) override;
  std::optional<std::string> getenv(const char* name) override;
  std::string rooted(std::string_view abs_path) const override;
  int read_small_file(const std::string& path, std::size_t max, std::string& out) override;
  std::optional<file_identity> identity(const std::string& path) override;

 private:
  std::string root_;
};

}  // namespace fleetga::platform
