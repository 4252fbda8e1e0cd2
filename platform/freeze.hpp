#pragma once
// FIFREEZE / FITHAW / FITRIM on one mount point, behind a narrow interface so the command
// logic (reverse order, rollback, counting) is tested with a fake. Every call blocks (a
// freeze waits for dirty data to reach the disk): commands/ runs them on the worker pool.
#include <cstdint>
#include <string>

namespace fleetga::platform {

struct fs_result {
  enum class step : std::uint8_t { ok, open, ioctl };
  step failed = step::ok;  // which call failed
  int err = 0;             // its errno
  bool ok() const noexcept { return failed == step::ok; }
};

class freezer {
 public:
  virtual ~freezer() = default;
  // open(O_RDONLY) + ioctl(FIFREEZE).
  virtual fs_result freeze(const std::string& mountpoint) = 0;
  // open(O_RDONLY) + ONE ioctl(FITHAW) (the caller repeats until it fails).
  virtual fs_result thaw(const std::string& mountpoint) = 0;
  // open(O_RDONLY) + ioctl(FITRIM, {0, ~0, minlen}); on success `minlen` and `trimmed` are
  // what the kernel left in the range (minlen may be raised to the discard granularity).
  virtual fs_result trim(const std::string& mountpoint, std::uint64_t& minlen, std::uint64_t& trimmed) = 0;
};

// The real ioctls. Safe by default: FIFREEZE and FITRIM reach the kernel only when
// `kernel_changes` is true and the root is "/" (""), so a unit test, a fuzzer or a fixture
// root can never freeze or trim the machine that runs it: they get EPERM (FITHAW with a
// fixture root: EINVAL, "not frozen"). FITHAW on the real root always runs: it cannot harm
// (EINVAL on a filesystem that is not frozen) and it is what rescues a frozen guest.
class linux_freezer final : public freezer {
 public:
  explicit linux_freezer(std::string root = {}) : root_(std::move(root)) {}
  bool kernel_changes = false;

  fs_result freeze(const std::string& mountpoint) override;
  fs_result thaw(const std::string& mountpoint) override;
  fs_result trim(const std::string& mountpoint, std::uint64_t& minlen, std::uint64_t& trimmed) override;

 private:
  std::string root_;
};

}  // namespace fleetga::platform
