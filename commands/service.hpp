#pragma once
// What the agent sees of commands/: one object that owns the command table, the gate, the
// per-agent state (file handles, qga.state, frozen flag) and turns one framed message into
// at most one reply. The agent owns the channel, the io_context and the worker pool.
#include <coroutine>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "commands/offload.hpp"
#include "commands/task.hpp"
#include "protocol/framer.hpp"

namespace fleetga::platform { class system; }

namespace fleetga::commands {

struct options {
  std::string statedir = "/var/run";                  // qemu-ga's default statedir
  std::vector<std::string> block_rpcs;                // -b / block-rpcs (unknown names ignored)
  std::vector<std::string> allow_rpcs;                // -a / allow-rpcs
  std::optional<std::string> support_level;           // "MAJ.MIN[.MIC]" from --support-level / support-level=
  std::optional<std::string> fsfreeze_hook;           // -F / fsfreeze-hook= (path); nullopt: no hook
  std::int64_t fsfreeze_timeout = 600;                // fsfreeze-timeout= seconds before auto-thaw; <= 0: never
  class timer_service* fsfreeze_timer = nullptr;      // commands/timer.hpp; nullptr: no auto-thaw
  class fd_reactor* reactor = nullptr;               // commands/reactor.hpp; nullptr: guest-exec answers an error
  // Only the real agent sets it: FIFREEZE/FITRIM reach the kernel, shutdown/suspend helpers
  // run and /sys/power/state is written only when true, so tests and fuzzers that build a
  // service over the real root can never freeze, trim, suspend or power off the machine.
  bool acts_on_system = false;
  // Audit lines for privileged commands (qemu-ga's slog(): "guest-exec called: ...",
  // "guest-fsfreeze called", ...). The agent sends them to syslog and the log file; never
  // called while frozen; texts never carry secrets (passwords, file contents, key material).
  std::function<void(std::string_view)> audit;
  // Warnings of init() that don't stop the start (a malformed support_level in qga.state).
  std::function<void(std::string_view)> warn;
};

// Lets the service get the replies already in the output buffer onto the wire before it runs
// a command that answers nothing on success and may end the guest (guest-shutdown,
// guest-suspend-*): a host that sent `guest-sync-delimited` and `guest-shutdown` in one write
// (Proxmox) must see its sync reply before the guest goes away. The session implements it:
// write `out` (the buffer handle() was given), then resume `h` on the I/O thread.
class output_drain {
 public:
  virtual ~output_drain() = default;
  virtual void drain(std::coroutine_handle<> h) = 0;
};

class service {
 public:
  // `pool` and `sys` must outlive the service. The agent passes its worker-pool offloader
  // and a `platform::linux_system` (platform/system.hpp; root "" = the real /).
  service(options opts, offloader& pool, platform::system& sys);
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  // Call once before handle(), on the thread that will run the session (it does blocking
  // file I/O). Starts frozen when <statedir>/qga.state.isfrozen exists; reads
  // <statedir>/qga.state, creating it ("[global]\nfd_counter=1000\n") when absent unless
  // frozen, as qemu-ga does at start-up. The support level in force is qga.state's
  // `support_level` when present, else options::support_level, else 1.0.0 (raised to
  // 1.0.0 when lower). Returns the text to print and exit 1 with, one message a line:
  // qemu-ga's for qga.state ("error loading persistent state from path: PATH, REASON" - GLib's
  // reason, naming a refused line - or "failed to write persistent state to PATH: ..." and
  // "unable to create state file at path PATH", then "failed to load persistent state"), or
  // "invalid support level '...' (expected MAJOR.MINOR[.MICRO])" for a malformed
  // options::support_level. A malformed support_level in qga.state doesn't stop the start: it
  // goes to options::warn and stays in the file (persistent_state::bad_level).
  std::optional<std::string> init();

  // After init() and after daemonizing, before the first request (blocking): opens what the
  // agent keeps open for its life - the interface watch's netlink socket (bound now, its port
  // id is the daemon's pid, not the parent's) and the mount table watch - so that every
  // descriptor the agent holds exists from the start. Without it they open at first use.
  void open_watches();

  // Handles one frame from the framer and appends the reply (if the command has one) to
  // `out`. Completes synchronously for commands that don't block; one that offloads
  // suspends and is resumed by the offloader on the I/O thread. The frame's buffer AND `out`
  // must stay untouched by others until the task completes (handle one frame at a time).
  // The result is true when a reply was appended (false: success-response=false command
  // succeeded). Never throws for a request: handler bugs become GenericError replies.
  // Don't call handle() again, and don't destroy the task, before it completed: offloaded
  // work still running on a worker refers to the task's frame (a client that disconnects
  // mid-request just gets its reply discarded by the agent).
  // `drain` (may be null): see output_drain.
  task<bool> handle(const protocol::frame& f, std::string& out, output_drain* drain = nullptr);

  bool frozen() const noexcept;

  // At exit: a still-frozen agent thaws first, as qemu-ga does. Blocking (FITHAW + hook).
  void thaw_for_exit();

  // Every registered command in registration order (for `-b help` / `-a help`).
  static std::vector<std::string_view> command_names();

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace fleetga::commands
