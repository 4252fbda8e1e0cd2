#pragma once
// The mount list qemu-ga's fsfreeze, fstrim and fsinfo commands walk (qga/commands-linux.c
// build_fs_mount_list): /proc/self/mountinfo, else /proc/self/mounts, local block-device
// filesystems only, one entry per device. Pure parsers are separate so tests feed fixture
// text; the reader applies the injectable root to every path it opens or stats.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fleetga::platform {

struct mount_entry {
  std::string dir;   // mount point, escapes decoded
  std::string type;  // filesystem type
  unsigned major = 0, minor = 0;
  friend bool operator==(const mount_entry&, const mount_entry&) = default;
};

// qemu-ga's dev_major_minor(): 0 and the numbers for a block device, -2 for a directory
// (a bind mount source), -1 otherwise (stat failure, other file types; numbers left 0).
using device_lookup = std::function<int(const std::string& devpath, unsigned& major, unsigned& minor)>;

// decode_mntname(): "\\" -> '\', "\ooo" (first digit 0-3) -> that byte, any other backslash kept.
std::string decode_mountinfo_name(std::string_view s);
// glibc getmntent()'s decode_name(): only \040 \011 \012 \134 and "\\" are decoded.
std::string decode_mtab_name(std::string_view s);

// build_fs_mount_list() over mountinfo text: lines that don't parse like qemu-ga's sscanf are
// skipped; major 0 is skipped unless the type is btrfs and `lookup` resolves the source to a
// block device; a device already listed (bind mount) is skipped.
std::vector<mount_entry> parse_mountinfo(std::string_view text, const device_lookup& lookup);
// build_fs_mount_list_from_mtab(): sources not starting with '/', smbfs and cifs skipped;
// directory sources (bind mounts) skipped; an unresolvable source is kept as 0:0 (once).
std::vector<mount_entry> parse_mtab(std::string_view text, const device_lookup& lookup);

// Largest mount table read (qemu-ga: unbounded). A host with ~50,000 mounts stays below it.
inline constexpr std::size_t mount_table_max = std::size_t{16} << 20;


// /proc/self/mountinfo kept open. The kernel flags every change of the mount table to poll()
// on an open mountinfo (POLLPRI | POLLERR, proc(5)); without one the text is the one read last
// time, and generating it again (a d_path and the options of every mount) is most of what
// guest-get-fsinfo costs. A change between the poll and the read is in the text read and
// flagged again at the next poll (one read too many, never one too few). The table is the one
// of the mount namespace the process was in at the first call.
class mountinfo_watch {
 public:
  mountinfo_watch() = default;
  ~mountinfo_watch();
  mountinfo_watch(const mountinfo_watch&) = delete;
  mountinfo_watch& operator=(const mountinfo_watch&) = delete;
  // 0, or errno (the file is opened again next time). `fresh`: read it even if not flagged;
  // `read` says whether the text was read now.
  int text(std::string& out, bool fresh = false, bool* read = nullptr);
  std::uint64_t reads();  // times the text was read (tests)

 private:
  std::mutex m_;  // fsinfo, fstrim and freeze may ask from two workers at once
  int fd_ = -1;
  std::string text_;
  std::uint64_t reads_ = 0;
};

// The agent's own mount table through one mountinfo_watch (read_mount_list("") uses it).
int own_mountinfo(std::string& text);

// How the agent's own table is taken. `kept`: the watch's text when the kernel flagged no
// change, if every listed mount point still resolves to its mount (statx mount id; a rename
// of a directory above a mount point is no mount event), else read again - for fsinfo.
// `fresh`: read now - for freeze, thaw and fstrim, which act on the paths.
enum class mount_read { kept, fresh };

// Reads <root>/proc/self/mountinfo (fallback <root>/proc/self/mounts), devices stat'ed under
// <root>; root "" is the agent's own table (own_mountinfo's watch), an injected root is read
// every time. nullopt + `error` = qemu-ga's "failed to open mtab file: '/proc/self/mounts'".
// Blocking (file reads, stat): call it off the I/O thread.
std::optional<std::vector<mount_entry>> read_mount_list(const std::string& root, std::string& error,
                                                        mount_read how = mount_read::kept);
// The same through a given watch (tests: a watch opened in a mount namespace of their own).
std::optional<std::vector<mount_entry>> read_mount_list(mountinfo_watch& w, std::string& error, mount_read how);

// stat(<root><devpath>) as dev_major_minor() does.
int stat_device(const std::string& root, const std::string& devpath, unsigned& major, unsigned& minor);

}  // namespace fleetga::platform
