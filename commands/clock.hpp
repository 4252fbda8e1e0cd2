#pragma once
// The clock family (clock.cpp): guest-set-time, wire spec §3.2, and the platform effects it
// shares with guest-set-user-password (password.cpp, declared in accounts.hpp).
//
// guest-set-time, like upstream qemu-ga 10.2 (qga/commands-posix.c):
//   with `time`: "Time N is too large" when the seconds don't fit time_t (never on 64-bit),
//   "Invalid time" when the local year is outside [1970, 2070), then the system clock is set
//   ("Failed to set time to guest: <strerror>"), then the RTC from the system clock;
//   without `time`: the system clock from the RTC.
// The RTC step, in this order:
//   1. /sbin/hwclock, else /usr/sbin/hwclock, when executable: run it with -w / -s exactly
//      as qemu-ga does (ga_run_command, action "set hardware clock to system time").
//   2. No hwclock (newer cloud images): the RTC device itself, /dev/rtc0, else /dev/rtc, else
//      /dev/misc/rtc (util-linux hwclock's order), RTC_SET_TIME / RTC_RD_TIME, in UTC unless
//      /etc/adjtime's third line is "LOCAL" (hwclock's rule). -w waits for the next whole
//      second of the system clock and writes that second (hwclock's sub-second tuning and
//      /etc/adjtime drift bookkeeping are not reproduced); -s waits for the RTC's next tick
//      (polled every 10 ms, 1.5 s at most, like hwclock's busy-wait) and sets the system clock
//      to that second. Failures read like a failed hwclock run:
//        child process has failed to set hardware clock to system time: ioctl(RTC_SET_TIME)
//        to /dev/rtc0 to set the time failed: <strerror>
//      (and "cannot open /dev/rtc0: <strerror>", "ioctl(RTC_RD_TIME) to /dev/rtc0 to read
//      the time failed: <strerror>", "/dev/rtc0 holds an invalid time").
//   3. Neither: the text qemu-ga gives on such a guest, without spawning anything:
//        child process has failed to set hardware clock to system time: failed to exec
//        '/sbin/hwclock': No such file or directory\n
// Every path (/sbin, /usr/sbin, /dev, /etc/adjtime) is under the context's root. The system
// clock, the RTC and helpers are touched only by an armed platform::linux_effects on root ""
// (the real agent, options::acts_on_system); otherwise they fail with EPERM, which the
// handlers report like any other failure (a dry run that still validates).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "commands/command.hpp"
#include "platform/clock.hpp"

namespace fleetga::commands {

// ga_run_command()'s action for hwclock (upstream uses it for -s as well).
inline constexpr std::string_view hwclock_action = "set hardware clock to system time";

// The clock part of agent_state, rooted like `sys`. A `sys` that also implements
// platform::system_effects (a test's fake) is used instead of the real one.
struct clock_context {
  clock_context(std::string r, platform::system_effects* injected)
      : root(std::move(r)), default_effects(root), fx(injected ? injected : &default_effects) {}

  std::string root;
  platform::linux_effects default_effects;  // armed by the service from options::acts_on_system
  platform::system_effects* fx;
};

// Pieces of guest-set-time, exposed for unit tests.
namespace clock_detail {

// The argument checks, before anything is touched. `sec`/`usec` as qemu-ga computes them
// (C division: -1500 ns -> 0 s, -1 us). Error text or nullopt.
std::optional<std::string> check_time(std::int64_t time_ns, std::int64_t& sec, std::int64_t& usec);

struct rtc_plan {
  enum class kind : unsigned char { hwclock, device, none };
  kind how = kind::none;
  std::string path;  // the hwclock program or the RTC device (not rooted)
  platform::rtc_scale scale = platform::rtc_scale::utc;  // device only
};
// Which way the RTC is reached under `root` (see the header comment).
rtc_plan plan_rtc(const std::string& root);

// The blocking part of guest-set-time after check_time(): set the clock (when `time_ns`),
// then sync the RTC. Error text or nullopt.
std::optional<std::string> set_time(clock_context& cc, std::optional<std::int64_t> time_ns);

}  // namespace clock_detail

}  // namespace fleetga::commands

namespace fleetga::commands::handlers {
task<handler_result> guest_set_time(call&);
}  // namespace fleetga::commands::handlers
