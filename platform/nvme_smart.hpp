#pragma once
// NVMe SMART for guest-get-disks (qemu-ga's get_nvme_smart(), 7.1): the log page's parser and
// the admin command behind a narrow interface.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace fleetga::platform {

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

}  // namespace fleetga::platform
