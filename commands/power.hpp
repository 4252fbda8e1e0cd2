#pragma once
// The power family (power.cpp): guest-shutdown and guest-suspend-{disk,ram,hybrid}, wire spec
// §3.2. All four change the machine and answer nothing on success (success-response false).
// Helpers go through a narrow runner in front of platform/spawn, so unit tests record argv and
// choose exit statuses instead of shutting anything down.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "commands/command.hpp"
#include "platform/spawn.hpp"

namespace fleetga::commands {

// ga_run_command()'s action for guest-shutdown's helper ("child process has failed to shutdown: ...").
inline constexpr std::string_view shutdown_action = "shutdown";

// Runs one helper and waits for it (blocking: called on the worker pool only).
class power_runner {
 public:
  virtual ~power_runner() = default;
  virtual platform::helper_result run(const std::vector<std::string>& argv) = 0;
};

// platform/spawn, safe by default like linux_freezer: nothing runs unless `armed` (the real
// agent); otherwise every helper "fails to exec" with EPERM, so a unit test or fuzzer that
// builds a service over the real root can never shut down or suspend the machine.
class spawn_power_runner final : public power_runner {
 public:
  bool armed = false;
  platform::helper_result run(const std::vector<std::string>& argv) override;
};

// The power part of agent_state, rooted like `sys`: /sbin/poweroff|halt|reboot are checked
// for executability and /sys/power/state is read and written under `root`. The helpers
// themselves run by their real names (with root "" that is the same file). Tests inject
// `runner` through the system object or repoint it.
struct power_context {
  // `injected`: a runner supplied by the platform object (a test's fake system that also
  // implements power_runner); nullptr: the real one.
  power_context(std::string r, power_runner* injected)
      : root(std::move(r)), runner(injected ? injected : &default_runner) {}

  std::string root;
  spawn_power_runner default_runner;
  power_runner* runner;
  // The real /sys/power/state (root "") is written only when armed; a fixture root always.
  bool armed() const noexcept { return default_runner.armed; }
};

// Pieces of the handlers, exposed for unit tests.
namespace power_detail {
enum class suspend_mode : unsigned char { disk, ram, hybrid };  // qemu-ga's SuspendMode order
inline constexpr std::string_view suspend_unsupported = "the requested suspend mode is not supported by the guest";

// A regular file with an execute bit that access(X_OK) accepts, at root + path.
bool is_executable(const std::string& root, std::string_view path);
// The helper for `mode` (nullopt: mode invalid): /sbin/poweroff|halt|reboot alone when
// executable under root, else /sbin/shutdown -h -P|-H|-r +0 "hypervisor initiated shutdown".
std::optional<std::vector<std::string>> shutdown_argv(const std::optional<std::string>& mode, const std::string& root);
// run_process_child()'s status: exit code, 0 when killed by a signal, -1 (with `err` set when
// the process could not be created; unset for a program that isn't there).
int run_child(power_runner& r, const std::vector<std::string>& argv, std::optional<std::string>& err);
// linux_sys_state_supports_mode() on the file's text (first 31 bytes).
bool sys_state_supports(std::string_view state_text, suspend_mode m);
// guest_suspend(): systemd, then pm-utils, then /sys/power/state. nullopt = suspended.
std::optional<std::string> suspend(power_context& pc, suspend_mode m);
}  // namespace power_detail

}  // namespace fleetga::commands

namespace fleetga::commands::handlers {
task<handler_result> guest_shutdown(call&);
task<handler_result> guest_suspend_disk(call&);
task<handler_result> guest_suspend_ram(call&);
task<handler_result> guest_suspend_hybrid(call&);
}  // namespace fleetga::commands::handlers
