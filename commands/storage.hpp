#pragma once
// The storage family (storage.cpp): guest-get-fsinfo and guest-get-disks, on the shared mount
// list (platform/mounts.hpp) and the sysfs walk of platform/blockdev.hpp.
#include <chrono>
#include <memory>
#include <string>

#include "commands/command.hpp"
#include "platform/blockdev.hpp"
#include "platform/statvfs_runner.hpp"

namespace fleetga::commands {

// How long guest-get-fsinfo waits for statvfs(2) on all mounts together; a mount whose answer
// is late (a dead NFS/CIFS server) is reported without sizes.
inline constexpr std::chrono::milliseconds statvfs_deadline_default{5000};

// The storage part of agent_state, rooted like `sys`. Tests repoint `stat` (sizes, hangs) and
// `nvme`, and shorten `statvfs_deadline`.
struct storage_context {
  explicit storage_context(std::string r)
      : root(r), sysfs(std::move(r)), stat(std::make_shared<platform::statvfs_runner>(
                                          std::make_shared<platform::linux_fs_stat>())) {}

  std::string root;  // mount table and sysfs are read under it
  platform::blockdev sysfs;
  std::shared_ptr<platform::statvfs_runner> stat;
  std::chrono::milliseconds statvfs_deadline = statvfs_deadline_default;
  // Filesystem types asked directly on the worker (platform::statfs_in_memory); the rest get
  // the deadline threads. Tests that simulate a hung filesystem of any type clear it.
  bool (*statfs_direct)(std::string_view) noexcept = platform::statfs_in_memory;
  // NVMe SMART log pages for guest-get-disks (device nodes under `root`); tests repoint it.
  std::shared_ptr<platform::nvme_admin> nvme = std::make_shared<platform::linux_nvme_admin>(root);
};

}  // namespace fleetga::commands

namespace fleetga::commands::handlers {
task<handler_result> guest_get_disks(call&);
task<handler_result> guest_get_fsinfo(call&);
}  // namespace fleetga::commands::handlers
