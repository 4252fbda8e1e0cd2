#include "platform/freeze.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace fleetga::platform {
namespace {

template <class F>
fs_result with_dir(const std::string& path, F ioctl_call) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {fs_result::step::open, errno};
  fs_result r;
  if (ioctl_call(fd) == -1) r = {fs_result::step::ioctl, errno};
  ::close(fd);
  return r;
}

}  // namespace

fs_result linux_freezer::freeze(const std::string& mountpoint) {
  if (!kernel_changes || !root_.empty()) return {fs_result::step::ioctl, EPERM};
  return with_dir(mountpoint, [](int fd) { return ::ioctl(fd, FIFREEZE, 0); });
}

fs_result linux_freezer::thaw(const std::string& mountpoint) {
  if (!root_.empty()) return {fs_result::step::ioctl, EINVAL};
  return with_dir(mountpoint, [](int fd) { return ::ioctl(fd, FITHAW, 0); });
}

fs_result linux_freezer::trim(const std::string& mountpoint, std::uint64_t& minlen, std::uint64_t& trimmed) {
  if (!kernel_changes || !root_.empty()) return {fs_result::step::ioctl, EPERM};
  struct fstrim_range r {};
  r.start = 0;
  r.len = ~std::uint64_t{0};
  r.minlen = minlen;
  fs_result res = with_dir(mountpoint, [&r](int fd) { return ::ioctl(fd, FITRIM, &r); });
  if (res.ok()) {
    minlen = r.minlen;
    trimmed = r.len;
  }
  return res;
}

}  // namespace fleetga::platform
