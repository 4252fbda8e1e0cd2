// The power family (wire spec §3.2; qemu-ga's qmp_guest_shutdown in qga/commands-posix.c and
// guest_suspend & co. in qga/commands-linux.c): guest-shutdown, guest-suspend-disk,
// guest-suspend-ram, guest-suspend-hybrid. Each command is one offloaded job (helpers are
// waited for, /sys/power/state is written); nothing is sent on success.
#include "commands/power.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "commands/handlers.hpp"
#include "commands/state.hpp"
#include "protocol/args.hpp"

namespace fleetga::commands {
namespace {
struct shutdown_args {
  std::optional<std::string> mode;
};
}  // namespace
}  // namespace fleetga::commands

namespace fleetga::protocol {
template <>
struct arg_schema<commands::shutdown_args> {
  static constexpr auto members = std::make_tuple(member("mode", &commands::shutdown_args::mode));
};
}  // namespace fleetga::protocol

namespace fleetga::commands {

platform::helper_result spawn_power_runner::run(const std::vector<std::string>& argv) {
  if (armed) return platform::run_helper(argv);
  platform::helper_result r;
  r.how = platform::helper_result::outcome::exec_failed;
  r.status = 1;
  r.err = EPERM;
  r.output = "failed to exec '" + argv[0] + "': " + std::strerror(EPERM) + "\n";
  return r;
}

}  // namespace fleetga::commands

namespace fleetga::commands::power_detail {

bool is_executable(const std::string& root, std::string_view path) {
  const std::string p = root + std::string(path);
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  return (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0 && ::access(p.c_str(), X_OK) == 0;
}

std::optional<std::vector<std::string>> shutdown_argv(const std::optional<std::string>& mode,
                                                      const std::string& root) {
  std::string_view flag, direct;
  if (!mode || *mode == "powerdown") {
    flag = "-P";
    direct = "/sbin/poweroff";
  } else if (*mode == "halt") {
    flag = "-H";
    direct = "/sbin/halt";
  } else if (*mode == "reboot") {
    flag = "-r";
    direct = "/sbin/reboot";
  } else {
    return std::nullopt;
  }
  // Upstream >= 10.2 prefers the dedicated program (systems without a shutdown(8)).
  if (is_executable(root, direct)) return std::vector<std::string>{std::string(direct)};
  return std::vector<std::string>{"/sbin/shutdown", "-h", std::string(flag), "+0", "hypervisor initiated shutdown"};
}

namespace {

constexpr std::array<const char*, 3> systemd_units{"systemd-hibernate", "systemd-suspend", "systemd-hybrid-sleep"};
constexpr std::array<const char*, 3> systemd_verbs{"hibernate", "suspend", "hybrid-sleep"};
constexpr std::array<const char*, 3> pm_flags{"--hibernate", "--suspend", "--suspend-hybrid"};
constexpr std::array<const char*, 3> pm_programs{"pm-hibernate", "pm-suspend", "pm-suspend-hybrid"};
constexpr std::array<const char*, 3> sys_state_words{"disk", "mem", nullptr};

constexpr std::string_view sys_state_file = "/sys/power/state";

std::size_t idx(suspend_mode m) { return static_cast<std::size_t>(m); }

}  // namespace

// run_process_child(): g_spawn_sync() with output to /dev/null, PATH search. Returns
// WEXITSTATUS of the wait status (0 for a helper killed by a signal: g_spawn_sync succeeded),
// -1 without an error for a program that isn't there, -1 with an error when the process
// could not be created.
int run_child(power_runner& r, const std::vector<std::string>& argv, std::optional<std::string>& err) {
  const platform::helper_result h = r.run(argv);
  using o = platform::helper_result::outcome;
  switch (h.how) {
    case o::exited:
      return h.status;
    case o::signaled:
      return 0;
    case o::exec_failed:
      if (h.err == ENOENT) return -1;
      err = "failed to create child process, error 'Failed to execute child process \xE2\x80\x9C" + argv[0] +
            "\xE2\x80\x9D (" + std::strerror(h.err) + ")'";
      return -1;
    case o::pipe_failed:
    case o::spawn_failed:
    case o::wait_failed:
    case o::input_failed:
      err = "failed to create child process, error 'Failed to fork (" + std::string(std::strerror(h.err)) + ")'";
      return -1;
  }
  return -1;
}

namespace {

bool systemd_supports(power_runner& r, suspend_mode m) {
  std::optional<std::string> err;
  const int status = run_child(r, {"systemctl", "status", systemd_units[idx(m)]}, err);
  // LSB status codes: 1..3 = the unit exists (3: not running), 4 = no such unit.
  return status > 0 && status < 4;
}

std::optional<std::string> systemd_suspend(power_runner& r, suspend_mode m) {
  std::optional<std::string> err;
  const std::string verb = systemd_verbs[idx(m)];
  const int status = run_child(r, {"systemctl", verb}, err);
  if (status == 0) return std::nullopt;
  if (status == -1 && !err) return "the helper program 'systemctl " + verb + "' was not found";
  if (err) return err;
  return "the helper program 'systemctl " + verb + "' returned an unexpected exit status code (" +
         std::to_string(status) + ")";
}

bool pmutils_supports(power_runner& r, suspend_mode m) {
  std::optional<std::string> err;  // qemu-ga drops it: the next mechanism is tried
  return run_child(r, {"pm-is-supported", pm_flags[idx(m)]}, err) == 0;
}

std::optional<std::string> pmutils_suspend(power_runner& r, suspend_mode m) {
  std::optional<std::string> err;
  const std::string prog = pm_programs[idx(m)];
  const int status = run_child(r, {prog}, err);
  if (status == 0) return std::nullopt;
  if (status == -1 && !err) return "the helper program '" + prog + "' was not found";
  if (err) return err;
  return "the helper program '" + prog + "' returned an unexpected exit status code (" + std::to_string(status) + ")";
}

}  // namespace

bool sys_state_supports(std::string_view state_text, suspend_mode m) {
  const char* word = sys_state_words[idx(m)];
  if (!word) return false;  // no sysfs path for hybrid
  // qemu-ga reads at most 31 bytes and looks for the word anywhere in them.
  state_text = state_text.substr(0, 31);
  return state_text.find(word) != std::string_view::npos;
}

namespace {

std::optional<std::string> read_sys_state(const std::string& root) {
  const std::string p = root + std::string(sys_state_file);
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[32];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  return std::string(buf, static_cast<std::size_t>(n));
}

// linux_sys_state_suspend() (>= 8.1: written in-process, no child).
std::optional<std::string> sys_state_suspend(const std::string& root, bool armed, suspend_mode m) {
  const char* word = sys_state_words[idx(m)];
  const std::string p = root + std::string(sys_state_file);
  int err = 0;
  int fd = -1;
  if (root.empty() && !armed)
    err = EPERM;  // not the real agent: never suspend the machine running the tests
  else if ((fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC)) < 0 || ::write(fd, word, std::strlen(word)) < 0)
    err = errno;
  if (fd >= 0) ::close(fd);
  if (err == 0) return std::nullopt;
  return "suspend: cannot write to '" + std::string(sys_state_file) + "': " + std::strerror(err);
}

}  // namespace

// guest_suspend() (>= 8.1): a mechanism that is supported and succeeds ends it; one that is
// supported but fails lets the next one try; the last one's error is the answer.
std::optional<std::string> suspend(power_context& pc, suspend_mode m) {
  power_runner& r = *pc.runner;
  bool supported = false;
  if (systemd_supports(r, m)) {
    supported = true;
    if (!systemd_suspend(r, m)) return std::nullopt;
  }
  if (pmutils_supports(r, m)) {
    supported = true;
    if (!pmutils_suspend(r, m)) return std::nullopt;
  }
  std::optional<std::string> err;
  if (auto text = read_sys_state(pc.root); text && sys_state_supports(*text, m)) {
    supported = true;
    err = sys_state_suspend(pc.root, pc.armed(), m);
  }
  if (!supported) return std::string(suspend_unsupported);
  return err;
}

}  // namespace fleetga::commands::power_detail

namespace fleetga::commands::handlers {
namespace {

task<handler_result> suspend_command(call& c, power_detail::suspend_mode m) {
  if (auto e = no_args(c)) co_return e;
  power_context& pc = c.state.power;
  std::optional<std::string> err = co_await offload(c.state.pool, [&pc, m] { return power_detail::suspend(pc, m); });
  if (err) co_return protocol::generic(std::move(*err));
  co_return std::nullopt;  // success-response false: nothing is written
}

}  // namespace

task<handler_result> guest_shutdown(call& c) {
  shutdown_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  power_context& pc = c.state.power;
  // Validated before anything runs (and before the executability checks).
  if (a.mode && *a.mode != "powerdown" && *a.mode != "halt" && *a.mode != "reboot")
    co_return protocol::generic("mode is invalid (valid values are: halt|powerdown|reboot");
  std::optional<std::string> err = co_await offload(c.state.pool, [&pc, &a]() -> std::optional<std::string> {
    auto argv = power_detail::shutdown_argv(a.mode, pc.root);
    return platform::helper_error(pc.runner->run(*argv), shutdown_action);
  });
  if (err) co_return protocol::generic(std::move(*err));
  co_return std::nullopt;
}

task<handler_result> guest_suspend_disk(call& c) { return suspend_command(c, power_detail::suspend_mode::disk); }
task<handler_result> guest_suspend_ram(call& c) { return suspend_command(c, power_detail::suspend_mode::ram); }
task<handler_result> guest_suspend_hybrid(call& c) { return suspend_command(c, power_detail::suspend_mode::hybrid); }

}  // namespace fleetga::commands::handlers
