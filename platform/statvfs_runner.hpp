#pragma once
// statvfs(2) with a deadline for guest-get-fsinfo: a dead network mount must not wedge the
// agent. The call sits behind a narrow interface (fs_stat) so tests can stand in for a hung
// filesystem.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::platform {

struct fs_sizes {  // the statvfs fields qemu-ga uses
  std::uint64_t blocks = 0, bfree = 0, bavail = 0, frsize = 0;
};

// The narrow interface: one statvfs(2). May block forever (a dead NFS server).
class fs_stat {
 public:
  virtual ~fs_stat() = default;
  virtual int statvfs(const std::string& path, fs_sizes& out) = 0;  // errno, 0 on success
};

class linux_fs_stat final : public fs_stat {
 public:
  int statvfs(const std::string& path, fs_sizes& out) override;
};

// Local disk filesystems whose statfs is answered from in-memory superblock counters (no I/O,
// no daemon): ext2/3/4, xfs, btrfs, f2fs, vfat/msdos/exfat, iso9660, udf, squashfs, erofs.
// fuseblk (ntfs-3g) and anything unknown are not: their statfs can wait on a daemon or device.
bool statfs_in_memory(std::string_view type) noexcept;

// Runs statvfs calls on detached threads, one per path, all at once, and waits for them until
// a deadline; a late answer is dropped (the mount is reported without sizes).
//
// Bound on stuck threads: a path whose statvfs from an earlier call is still running gets no
// new thread (it is reported without sizes at once, without waiting), so there is at most one
// stuck thread per mount point, and never more than `max_in_flight` in all (further paths are
// reported without sizes). A thread that finally returns frees its slot. The threads share
// only reference-counted state, so they may outlive the runner (and the agent's state).
class statvfs_runner {
 public:
  static constexpr std::size_t default_max_in_flight = 64;
  explicit statvfs_runner(std::shared_ptr<fs_stat> backend, std::size_t max_in_flight = default_max_in_flight);
  ~statvfs_runner();
  statvfs_runner(const statvfs_runner&) = delete;
  statvfs_runner& operator=(const statvfs_runner&) = delete;

  // Results index-aligned with `paths`; nullopt = failed, late, or skipped (see above).
  std::vector<std::optional<fs_sizes>> run(const std::vector<std::string>& paths, std::chrono::milliseconds deadline);
  // The same, but paths whose `direct[i]` is true (their filesystem's statfs is answered from
  // memory, see statfs_in_memory()) are asked on the calling thread (a worker, never the I/O
  // thread): no thread hand-off for the common case. The others go through the deadline threads.
  std::vector<std::optional<fs_sizes>> run(const std::vector<std::string>& paths, const std::vector<bool>& direct,
                                           std::chrono::milliseconds deadline);
  // statvfs calls still running (stuck or about to finish).
  std::size_t in_flight() const;

 private:
  struct shared;  // statvfs_runner.cpp: the job queue and the busy paths, shared with the threads
  static void worker(std::shared_ptr<shared> s);
  std::shared_ptr<shared> s_;
  std::size_t max_;
};

}  // namespace fleetga::platform
