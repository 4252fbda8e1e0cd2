// The fsfreeze family (wire spec §3.2, qemu-ga's qga/commands-posix.c + commands-linux.c +
// main.c ga_set_frozen/ga_unset_frozen): guest-fsfreeze-status, -freeze, -freeze-list, -thaw,
// guest-fstrim, the hook, qga.state.isfrozen, and fleetga's auto-thaw watchdog.
//
// Everything that blocks - the hook, the mount table, the isfrozen file, FIFREEZE (waits for
// dirty data), FITHAW, FITRIM - runs as one offloaded job per command. The gate's frozen bit
// is an atomic, so a job may flip it on its worker; the I/O thread is parked in the handler
// meanwhile (one request at a time), and fsfreeze_context::op orders the jobs against an
// auto-thaw that fires on its own.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <coroutine>
#include <cstring>
#include <string>
#include <vector>

#include "commands/fsfreeze.hpp"
#include "commands/handlers.hpp"
#include "commands/service.hpp"
#include "commands/state.hpp"
#include "platform/mounts.hpp"
#include "platform/spawn.hpp"
#include "protocol/args.hpp"

namespace fleetga::commands {
namespace {

struct freeze_list_args {
  std::optional<std::vector<std::string>> mountpoints;
};
struct fstrim_args {
  std::optional<std::int64_t> minimum;
};

}  // namespace
}  // namespace fleetga::commands

namespace fleetga::protocol {
template <>
struct arg_schema<commands::freeze_list_args> {
  static constexpr auto members = std::make_tuple(member("mountpoints", &commands::freeze_list_args::mountpoints));
};
template <>
struct arg_schema<commands::fstrim_args> {
  static constexpr auto members = std::make_tuple(member("minimum", &commands::fstrim_args::minimum));
};
}  // namespace fleetga::protocol

namespace fleetga::commands {
namespace {

// GuestFilesystemTrimResult in schema order, and the order QEMU prints it (§1.3).
constexpr std::array<std::string_view, 4> trim_result_members{"path", "trimmed", "minimum", "error"};
static_assert(protocol::in_qemu_order(trim_result_members,
                                      std::array<std::string_view, 4>{"minimum", "path", "trimmed", "error"}));


// error_setg_errno(): "<text>: <strerror>", nothing appended for errno 0.
std::string errno_text(std::string text, int err) {
  if (err != 0) {
    text += ": ";
    text += std::strerror(err);
  }
  return text;
}

std::string frozen_path(const agent_state& st) { return st.statedir + "/" + std::string(frozen_file_name); }

// ga_set_frozen(): the command filter first, then the marker file, which must exist before
// the first FIFREEZE (a frozen statedir could not take it any more). A failure to create it
// is only a warning in qemu-ga (logging is already off then): ignored.
void set_frozen(agent_state& st) {
  if (gate::frozen(st.gate.load())) return;
  st.gate.set_frozen(true);
  // O_NOFOLLOW: a link at that name is not followed to create or open some other file as
  // root (qemu-ga follows it); the marker is then missing, which qemu-ga also only warns about.
  int fd = ::open(frozen_path(st).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, S_IRUSR | S_IWUSR);
  if (fd >= 0) ::close(fd);
}

// ga_unset_frozen(): the filter back, then the marker file gone.
void unset_frozen(agent_state& st) {
  if (!gate::frozen(st.gate.load())) return;
  st.gate.set_frozen(false);
  ::unlink(frozen_path(st).c_str());
}

// execute_fsfreeze_hook(): `<hook> freeze|thaw`, output captured into the error (>= 9.1).
std::optional<std::string> run_hook(const fsfreeze_context& fz, const char* arg) {
  if (!fz.hook) return std::nullopt;
  auto r = platform::run_helper({*fz.hook, arg});
  return platform::helper_error(r, fsfreeze_hook_action);
}

struct outcome {
  std::int64_t count = 0;
  std::optional<std::string> error;
};

// qmp_guest_fsfreeze_thaw() on a worker, `op` held: FITHAW every mount (in mount order)
// until it fails, count the ones that thawed at least once, leave frozen state, hook `thaw`.
// An unreadable mount table leaves the agent frozen (qemu-ga too).
outcome thaw_all(agent_state& st) {
  fsfreeze_context& fz = st.fsfreeze;
  std::string err;
  auto mounts = platform::read_mount_list(fz.root, err, platform::mount_read::fresh);
  if (!mounts) return {0, std::move(err)};
  outcome o;
  for (const auto& m : *mounts) {
    bool thawed = false;
    for (int i = 0; i < thaw_attempts_max && fz.freezer->thaw(m.dir).ok(); ++i) thawed = true;
    if (thawed) ++o.count;
  }
  unset_frozen(st);
  o.error = run_hook(fz, "thaw");
  return o;
}

// qmp_guest_fsfreeze_freeze_list() on a worker.
outcome freeze_job(agent_state& st, const std::optional<std::vector<std::string>>& only) {
  fsfreeze_context& fz = st.fsfreeze;
  std::lock_guard lock(fz.op);
  if (auto e = run_hook(fz, "freeze")) return {-1, std::move(e)};
  std::string err;
  auto mounts = platform::read_mount_list(fz.root, err, platform::mount_read::fresh);
  if (!mounts) return {-1, std::move(err)};

  set_frozen(st);
  outcome o;
  for (auto it = mounts->rbegin(); it != mounts->rend(); ++it) {  // children before parents
    if (only && std::find(only->begin(), only->end(), it->dir) == only->end()) continue;
    const platform::fs_result r = fz.freezer->freeze(it->dir);
    if (r.ok()) {
      ++o.count;
      continue;
    }
    if (r.failed == platform::fs_result::step::open) {
      o.error = errno_text("failed to open " + it->dir, r.err);
      break;
    }
    // EOPNOTSUPP: the filesystem can't freeze; EBUSY: already frozen (a bind mount).
    if (r.err != EOPNOTSUPP && r.err != EBUSY) {
      o.error = errno_text("failed to freeze " + it->dir, r.err);
      break;
    }
  }
  if (o.error) {
    thaw_all(st);  // qmp_guest_fsfreeze_thaw(NULL): its own errors are dropped
    o.count = -1;
  } else if (o.count == 0) {
    unset_frozen(st);  // nothing frozen: no thaw needed, status stays "thawed"
  }
  return o;
}

void watchdog_fired(agent_state& st, std::uint64_t generation);

void arm_watchdog(agent_state& st) {
  fsfreeze_context& fz = st.fsfreeze;
  const std::uint64_t gen = ++fz.watchdog_generation;
  if (!fz.timer || fz.timeout.count() <= 0) return;
  fz.timer->arm(fz.timeout, [&st, gen] { watchdog_fired(st, gen); });
}

void cancel_watchdog(agent_state& st) {
  fsfreeze_context& fz = st.fsfreeze;
  ++fz.watchdog_generation;
  if (fz.timer) fz.timer->cancel();
}

// Beyond qemu-ga: no thaw within the timeout (a host that died or lost the channel) -> thaw
// by ourselves, so a guest can never stay frozen. The warning is logged after the thaw
// (logging is off while frozen).
void watchdog_fired(agent_state& st, std::uint64_t generation) {
  fsfreeze_context& fz = st.fsfreeze;
  if (generation != fz.watchdog_generation || !gate::frozen(st.gate.load())) return;  // stale
  ++fz.watchdog_generation;
  const auto timeout = fz.timeout;
  st.pool.run(
      [&st, timeout] {
        fsfreeze_context& f = st.fsfreeze;
        std::lock_guard lock(f.op);
        if (!gate::frozen(st.gate.load())) return;  // a host's thaw got there first
        outcome o = thaw_all(st);
        std::string msg = "no guest-fsfreeze-thaw within " + std::to_string(timeout.count()) +
                          " s of the freeze: thawed " + std::to_string(o.count) + " filesystem(s) automatically";
        if (o.error) msg += "; " + *o.error;
        if (f.timer) f.timer->warn(msg);
      },
      std::noop_coroutine());
}

task<handler_result> freeze_common(call& c, std::optional<std::vector<std::string>> only) {
  agent_state& st = c.state;
  outcome o = co_await offload(st.pool, [&st, &only] { return freeze_job(st, only); });
  if (o.error) co_return protocol::generic(std::move(*o.error));
  if (o.count > 0) arm_watchdog(st);
  c.out.integer(o.count);
  co_return std::nullopt;
}

}  // namespace

void configure_fsfreeze(agent_state& st, const options& o) {
  fsfreeze_context& fz = st.fsfreeze;
  fz.hook = o.fsfreeze_hook;
  fz.timeout = std::chrono::seconds(o.fsfreeze_timeout > 0 ? o.fsfreeze_timeout : 0);
  fz.timer = o.fsfreeze_timer;
  fz.default_freezer.kernel_changes = o.acts_on_system;
}

void fsfreeze_started_frozen(agent_state& st) {
  if (gate::frozen(st.gate.load())) arm_watchdog(st);
}

std::int64_t fsfreeze_thaw_blocking(agent_state& st, std::string* error) {
  std::lock_guard lock(st.fsfreeze.op);
  outcome o = thaw_all(st);
  if (o.error && error) *error = *o.error;
  return o.error && gate::frozen(st.gate.load()) ? -1 : o.count;  // still frozen: no mount table
}

namespace handlers {

// "frozen" iff the agent's own frozen flag is set (not the kernel's state), wire spec §3.2.
task<handler_result> guest_fsfreeze_status(call& c) {
  if (auto e = no_args(c)) co_return e;
  c.out.string(gate::frozen(c.state.gate.load()) ? "frozen" : "thawed");
  co_return std::nullopt;
}

task<handler_result> guest_fsfreeze_freeze(call& c) {
  if (auto e = no_args(c)) co_return e;
  co_return co_await freeze_common(c, std::nullopt);
}

task<handler_result> guest_fsfreeze_freeze_list(call& c) {
  freeze_list_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  co_return co_await freeze_common(c, std::move(a.mountpoints));
}

task<handler_result> guest_fsfreeze_thaw(call& c) {
  if (auto e = no_args(c)) co_return e;
  agent_state& st = c.state;
  cancel_watchdog(st);
  outcome o = co_await offload(st.pool, [&st] {
    std::lock_guard lock(st.fsfreeze.op);
    return thaw_all(st);
  });
  if (o.error) co_return protocol::generic(std::move(*o.error));
  c.out.integer(o.count);
  co_return std::nullopt;
}

task<handler_result> guest_fstrim(call& c) {
  fstrim_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  agent_state& st = c.state;
  struct item {
    std::string path;
    std::uint64_t minimum = 0, trimmed = 0;
    std::optional<std::string> error;
  };
  struct result {
    std::optional<std::string> error;
    std::vector<item> items;  // reverse mount order (qemu-ga prepends)
  };
  // FITRIM's minlen is a u64; qemu-ga passes the int through (negative wraps).
  const std::uint64_t minlen = static_cast<std::uint64_t>(a.minimum.value_or(0));
  result r = co_await offload(st.pool, [&st, minlen] {
    result res;
    std::string err;
    auto mounts = platform::read_mount_list(st.fsfreeze.root, err, platform::mount_read::fresh);
    if (!mounts) {
      res.error = std::move(err);
      return res;
    }
    res.items.reserve(mounts->size());
    for (auto it = mounts->rbegin(); it != mounts->rend(); ++it) {
      item& i = res.items.emplace_back();
      i.path = it->dir;
      i.minimum = minlen;
      const platform::fs_result t = st.fsfreeze.freezer->trim(it->dir, i.minimum, i.trimmed);
      if (t.ok()) continue;
      if (t.failed == platform::fs_result::step::open)
        i.error = "failed to open: " + std::string(std::strerror(t.err));
      else if (t.err == ENOTTY || t.err == EOPNOTSUPP)
        i.error = "trim not supported";  // e.g. CD-ROMs report ENOTTY
      else
        i.error = "failed to trim: " + std::string(std::strerror(t.err));
    }
    return res;
  });
  if (r.error) co_return protocol::generic(std::move(*r.error));
  protocol::json_writer& w = c.out;
  w.begin_object();
  w.key("paths");
  w.begin_array();
  for (const item& i : r.items) {
    w.begin_object();
    if (i.error) {
      w.key("path");
      w.string(i.path);
      w.key("error");
      w.string(*i.error);
    } else {
      // GuestFilesystemTrimResult's int members carry the u64 bits (QAPI int is int64).
      w.key("minimum");
      w.integer(static_cast<std::int64_t>(i.minimum));
      w.key("path");
      w.string(i.path);
      w.key("trimmed");
      w.integer(static_cast<std::int64_t>(i.trimmed));
    }
    w.end_object();
  }
  w.end_array();
  w.end_object();
  co_return std::nullopt;
}

}  // namespace handlers
}  // namespace fleetga::commands
