#pragma once
// Per-agent state owned by the service and shared by the handlers (single-threaded: only the
// I/O thread touches it; offloaded work gets what it needs by value or through a pointer
// that stays valid because requests are handled one at a time).
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "commands/exec.hpp"
#include "commands/clock.hpp"
#include "commands/fsfreeze.hpp"
#include "commands/storage.hpp"
#include "commands/gate.hpp"
#include "commands/offload.hpp"
#include "commands/power.hpp"
#include "commands/support_level.hpp"
#include "platform/accounts.hpp"
#include "platform/files.hpp"
#include "platform/net.hpp"
#include "platform/system.hpp"

namespace fleetga::commands {

// <statedir>/qga.state, GLib key-file format as qemu-ga writes it:
//   [global]
//   fd_counter=1000
//   support_level=1.1.0      <- fleetga only, present once guest-set-support-level ran
struct persistent_state {
  std::int64_t fd_counter = 1000;       // qemu-ga's first handle
  std::optional<support_level> level;   // set by guest-set-support-level (wins over options)
  // A support_level value that is no level (hand-edited: "999.x", "65536.1"): not in force,
  // reported at start, and written back as it was by every save (nothing the file held is
  // lost) until guest-set-support-level sets `level`.
  std::optional<std::string> bad_level;
};

// qga.state is read whole at start-up up to this size (qemu-ga reads any size; the file holds
// two short lines unless someone added to it); a larger one stops the start, by name.
inline constexpr std::size_t state_file_max = std::size_t{64} << 20;

// The counter after handing out handle `c`: c + 1, and 0 after INT64_MAX (no overflow; the
// counter starts as a gint read from qga.state, so that takes 2^63 opens).
constexpr std::int64_t next_fd_counter(std::int64_t c) noexcept {
  return c == std::numeric_limits<std::int64_t>::max() ? 0 : c + 1;
}

inline constexpr std::string_view state_file_name = "qga.state";
inline constexpr std::string_view frozen_file_name = "qga.state.isfrozen";

std::string serialize(const persistent_state& s);
// nullopt when the text is not a key file GLib would load (`error`: GLib's message, naming the
// first line it refuses). Keys other than these two are dropped (qemu-ga rebuilds the file
// from its struct as well). fd_counter is read like qemu-ga's g_key_file_get_integer():
// strtol base 10 into a gint; a value that is not one (not a number, trailing text not after
// a blank, outside INT32_MIN..INT32_MAX) reads as 0, as it does in qemu-ga; a missing key
// keeps 1000. A malformed support_level goes to bad_level.
std::optional<persistent_state> parse_state(std::string_view text, std::string& error);
inline std::optional<persistent_state> parse_state(std::string_view text) {
  std::string error;
  return parse_state(text, error);
}
// g_key_file_get_integer() of a raw key-file value: the gint, or 0 when GLib reports an error.
std::int32_t glib_integer(std::string_view value) noexcept;

// Opened guest files, sorted by handle (handles only grow, so opening appends).
class file_table {
 public:
  platform::stdio_file* find(std::int64_t handle) noexcept;
  void add(std::int64_t handle, std::unique_ptr<platform::stdio_file> f);
  void remove(std::int64_t handle) noexcept;
  std::size_t size() const noexcept { return files_.size(); }

 private:
  std::vector<std::pair<std::int64_t, std::unique_ptr<platform::stdio_file>>> files_;
};

// guest-file-open's one call that reaches the system: platform::stdio_file::open() of the
// client's path. That path is the host's, absolute and not rooted (qemu-ga opens what the
// host names), so a fixture root cannot contain it. A `sys` that also implements file_opener
// (the fuzzer's system, tests/fuzz/fuzz_dispatch.cpp) is asked instead: guest-file-open then
// decodes and checks its arguments, persists the counter and hands out a handle as usual,
// on a file of the fake's choosing. The real agent has none (agent_state::opener nullptr).
class file_opener {
 public:
  virtual ~file_opener() = default;
  virtual platform::stdio_file::open_step open(const char* path, const char* mode, int flags, platform::stdio_file& out,
                                               int& err, int& fd_out) = 0;
};

// guest-get-osinfo's whole reply value, valid while uname and the identity (stat) of every
// os-release candidate it consulted are unchanged.
struct osinfo_cache {
  bool valid = false;
  std::optional<std::string> env_path;  // $QGA_OS_RELEASE at the time of caching
  std::vector<std::optional<platform::file_identity>> ids;  // of every candidate consulted
  platform::uname_info uname;
  std::string json;
};

struct agent_state {
  agent_state(offloader& p, platform::system& s, std::string dir, std::uint64_t list_allowed,
              support_level dflt);

  offloader& pool;
  platform::system& sys;
  commands::gate gate;
  std::string statedir;
  support_level default_level;  // options::support_level (clamped) or 1.0.0
  persistent_state pstate;
  file_table files;
  // guest-file-open's opener: nullptr (the real open) unless `sys` implements file_opener.
  file_opener* opener = dynamic_cast<file_opener*>(&sys);

  // guest-info's reply value, rebuilt only when the gate word changes.
  std::string info_cache;
  std::uint64_t info_cache_word = ~std::uint64_t{0};

  osinfo_cache osinfo;

  // Network family (getifaddrs, SIOCGIFHWADDR, /proc/net rooted like `sys`); tests repoint `net`.
  platform::linux_net default_net{sys};
  platform::net* net = &default_net;

  // Accounts family (passwd, utmp/logind, authorized_keys; rooted like `sys`).
  platform::linux_accounts default_accounts{sys.rooted("")};
  platform::accounts* accounts = &default_accounts;

  // Fsfreeze family (mount table rooted like `sys`, freezer, hook, watchdog); tests repoint
  // `fsfreeze.freezer`.
  fsfreeze_context fsfreeze{sys.rooted("")};

  // Storage family (mount table and sysfs rooted like `sys`, statvfs with a deadline); tests
  // repoint `storage.stat` and shorten `storage.statvfs_deadline`.
  storage_context storage{sys.rooted("")};

  // Power family (/sbin/* executability and /sys/power/state rooted like `sys`, helpers
  // through a runner); a `sys` that also implements power_runner (a test's fake) runs the
  // helpers instead of platform/spawn.
  power_context power{sys.rooted(""), dynamic_cast<power_runner*>(&sys)};

  // Clock family + guest-set-user-password (system clock, RTC, hwclock/chpasswd; paths rooted
  // like `sys`); a `sys` that also implements platform::system_effects (a test's fake) is used.
  clock_context clock{sys.rooted(""), dynamic_cast<platform::system_effects*>(&sys)};

  // Exec family (guest-exec children, their pipes and pidfds on options::reactor).
  exec_context exec;

  // Audit sink (service options::audit); see audit().
  std::function<void(std::string_view)> audit_sink;
  // One audit line for a privileged command; dropped while frozen (no disk writes).
  void audit(std::string_view line) const {
    if (audit_sink && !gate::frozen(gate.load())) audit_sink(line);
  }

  // The level in force: qga.state's when it has one, else the default.
  support_level effective_level() const noexcept { return pstate.level.value_or(default_level); }
};

}  // namespace fleetga::commands
