#include "platform/nvme_smart.hpp"

#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace fleetga::platform {

namespace {
std::uint64_t le64(std::string_view p, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[at + i])} << (8 * i);
  return v;
}
}  // namespace

std::optional<nvme_smart> parse_nvme_smart_log(std::string_view page) {
  constexpr std::size_t counters_at = 32;  // data units read; the ten counters are 16 bytes each
  if (page.size() < counters_at + 10 * 16) return std::nullopt;
  auto byte = [&](std::size_t i) { return static_cast<std::int64_t>(static_cast<unsigned char>(page[i])); };
  nvme_smart s;
  s.critical_warning = byte(0);
  s.temperature = byte(1) | (byte(2) << 8);  // Kelvin, unaligned LE16
  s.available_spare = byte(3);
  s.available_spare_threshold = byte(4);
  s.percentage_used = byte(5);
  for (std::size_t i = 0; i < s.counters.size(); ++i) s.counters[i] = le64(page, counters_at + 8 * i);
  return s;
}

int linux_nvme_admin::smart_log(const std::string& devnode, std::string& page) {
  const std::string path = root_ + devnode;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  page.assign(nvme_smart_log_size, '\0');
  struct nvme_admin_cmd cmd {};
  cmd.opcode = 0x02;       // Get Log Page
  cmd.nsid = 0xffffffffu;  // all namespaces (the controller's log)
  cmd.addr = reinterpret_cast<std::uintptr_t>(page.data());
  cmd.data_len = static_cast<std::uint32_t>(page.size());
  // LID 02h, RAE (bit 15: keep asynchronous events), NUMDL = dwords - 1 (as qemu-ga).
  cmd.cdw10 = 0x02u | (1u << 15) | (static_cast<std::uint32_t>((page.size() >> 2) - 1) << 16);
  // < 0: the ioctl failed (errno); > 0: the controller's NVMe status for the command.
  const int rc = ::ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd);
  const int err = rc < 0 ? errno : rc > 0 ? EIO : 0;
  ::close(fd);
  if (err != 0) page.clear();
  return err;
}

}  // namespace fleetga::platform
