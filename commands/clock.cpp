// The clock family: guest-set-time (wire spec §3.2; qmp_guest_set_time in upstream
// qga/commands-posix.c), with an RTC path of its own for guests without hwclock. See
// clock.hpp for the order of the RTC methods and the error texts.
#include "commands/clock.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "commands/power.hpp"
#include "commands/state.hpp"
#include "protocol/args.hpp"

namespace fleetga::commands {
namespace {
struct set_time_args {
  std::optional<std::int64_t> time;
};
}  // namespace
}  // namespace fleetga::commands

namespace fleetga::protocol {
template <>
struct arg_schema<commands::set_time_args> {
  static constexpr auto members = std::make_tuple(member("time", &commands::set_time_args::time));
};
}  // namespace fleetga::protocol

namespace fleetga::commands::clock_detail {

namespace {

constexpr std::int64_t ns_per_sec = 1000000000;

// Where upstream runs hwclock (argv[0] "/sbin/hwclock"), then the merged-/usr location.
constexpr std::string_view hwclock_paths[] = {"/sbin/hwclock", "/usr/sbin/hwclock"};
// util-linux hwclock's device order when no --rtc is given.
constexpr std::string_view rtc_devices[] = {"/dev/rtc0", "/dev/rtc", "/dev/misc/rtc"};
constexpr std::string_view adjtime_file = "/etc/adjtime";
constexpr std::size_t adjtime_max = 4096;  // three short lines

bool present(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

// /etc/adjtime's text ("" when missing or unreadable: hwclock's UTC default applies).
// Blocking read of a small file: runs on the worker pool with the rest of set_time().
std::string read_adjtime(const std::string& root) {
  std::string text;
  if (FILE* f = std::fopen((root + std::string(adjtime_file)).c_str(), "rbe")) {
    char buf[adjtime_max];
    const std::size_t n = std::fread(buf, 1, sizeof buf, f);
    text.assign(buf, n);
    std::fclose(f);
  }
  return text;
}

std::string failed(std::string_view why) {
  std::string d = "child process has failed to ";
  d += hwclock_action;
  d += ": ";
  d += why;
  return d;
}

std::string with_errno(std::string text, int err) {
  text += ": ";
  text += std::strerror(err);
  return text;
}

// hwclock -w without hwclock: the next whole second of the system clock into the RTC.
std::optional<std::string> device_systohc(platform::system_effects& fx, const rtc_plan& p) {
  std::int64_t sec = 0, nsec = 0;
  fx.get_realtime(sec, nsec);
  if (nsec > 0) {
    fx.sleep_ns(ns_per_sec - nsec);
    ++sec;
  }
  platform::rtc_fields f;
  if (!platform::to_rtc_fields(sec, p.scale, f)) return failed("the system time has no calendar form");
  const platform::rtc_status st = fx.rtc_write(p.path, f);
  if (st.ok()) return std::nullopt;
  if (st.at == platform::rtc_status::step::open) return failed(with_errno("cannot open " + p.path, st.err));
  return failed(with_errno("ioctl(RTC_SET_TIME) to " + p.path + " to set the time failed", st.err));
}

std::optional<std::string> read_failed(const rtc_plan& p, const platform::rtc_status& st) {
  if (st.at == platform::rtc_status::step::open) return failed(with_errno("cannot open " + p.path, st.err));
  return failed(with_errno("ioctl(RTC_RD_TIME) to " + p.path + " to read the time failed", st.err));
}

// hwclock -s without hwclock: the RTC's time into the system clock. The RTC counts whole
// seconds, so like hwclock's synchronize_to_clock_tick() (busy-wait method) we wait for its
// second to change - polling every 10 ms, for at most 1.5 s - and take the time at that edge
// (off by < 10 ms instead of up to a second). An RTC that doesn't tick: its last value.
std::optional<std::string> device_hctosys(platform::system_effects& fx, const rtc_plan& p) {
  constexpr std::int64_t poll_ns = 10000000;
  constexpr int max_polls = 150;
  platform::rtc_fields f;
  platform::rtc_status st = fx.rtc_read(p.path, f);
  if (!st.ok()) return read_failed(p, st);
  if (!platform::from_rtc_fields(f, p.scale)) return failed(p.path + " holds an invalid time");
  for (int i = 0; i < max_polls; ++i) {
    fx.sleep_ns(poll_ns);
    platform::rtc_fields g;
    st = fx.rtc_read(p.path, g);
    if (!st.ok()) return read_failed(p, st);
    if (g != f) {
      f = g;
      break;
    }
  }
  const std::optional<std::int64_t> t = platform::from_rtc_fields(f, p.scale);
  if (!t) return failed(p.path + " holds an invalid time");
  if (const int err = fx.set_realtime(*t, 0)) return failed(with_errno("settimeofday() failed", err));
  return std::nullopt;
}

std::optional<std::string> sync_rtc(clock_context& cc, bool to_rtc) {
  const rtc_plan p = plan_rtc(cc.root);
  switch (p.how) {
    case rtc_plan::kind::hwclock:
      return platform::helper_error(cc.fx->run({p.path, to_rtc ? "-w" : "-s"}, std::nullopt), hwclock_action);
    case rtc_plan::kind::device:
      return to_rtc ? device_systohc(*cc.fx, p) : device_hctosys(*cc.fx, p);
    case rtc_plan::kind::none:
      break;
  }
  // What qemu-ga answers on such a guest (its execvp of /sbin/hwclock fails).
  return failed("failed to exec '/sbin/hwclock': " + std::string(std::strerror(ENOENT)) + "\n");
}

}  // namespace

std::optional<std::string> check_time(std::int64_t time_ns, std::int64_t& sec, std::int64_t& usec) {
  sec = time_ns / ns_per_sec;
  usec = (time_ns % ns_per_sec) / 1000;
  // year-2038 overflow with a 32-bit time_t (never true with a 64-bit one).
  if (static_cast<std::int64_t>(static_cast<std::time_t>(sec)) != sec)
    return "Time " + std::to_string(time_ns) + " is too large";
  // g_date_set_time_t(): the local date; a time localtime can't convert leaves the date
  // empty (year 0), which is out of range as well.
  const auto t = static_cast<std::time_t>(sec);
  std::tm tm{};
  const long year = ::localtime_r(&t, &tm) ? 1900L + tm.tm_year : 0L;
  // Upstream uses error_setg_errno() here with whatever errno is; it is 0 in practice (7.2
  // verified), so the text is bare.
  if (year < 1970 || year >= 2070) return std::string("Invalid time");
  return std::nullopt;
}

rtc_plan plan_rtc(const std::string& root) {
  rtc_plan p;
  for (std::string_view h : hwclock_paths) {
    if (power_detail::is_executable(root, h)) {
      p.how = rtc_plan::kind::hwclock;
      p.path = h;
      return p;
    }
  }
  for (std::string_view d : rtc_devices) {
    if (present(root + std::string(d))) {
      p.how = rtc_plan::kind::device;
      p.path = d;
      p.scale = platform::parse_adjtime_scale(read_adjtime(root));
      return p;
    }
  }
  return p;
}

std::optional<std::string> set_time(clock_context& cc, std::optional<std::int64_t> time_ns) {
  if (time_ns) {
    std::int64_t sec = 0, usec = 0;
    if (auto e = check_time(*time_ns, sec, usec)) return e;
    // settimeofday() refuses a negative tv_usec (a time like -1500 ns) with EINVAL before
    // looking at privileges; checked here so a fake or a dry run answers the same.
    const int err = usec < 0 ? EINVAL : cc.fx->set_realtime(sec, usec * 1000);
    if (err != 0) return with_errno("Failed to set time to guest", err);
  }
  // With a time: system clock -> RTC; without: RTC -> system clock.
  return sync_rtc(cc, time_ns.has_value());
}

}  // namespace fleetga::commands::clock_detail

namespace fleetga::commands::handlers {

// Reply: {} (no members, so no member order to check).
task<handler_result> guest_set_time(call& c) {
  set_time_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  if (a.time) {
    std::int64_t sec = 0, usec = 0;
    if (auto err = clock_detail::check_time(*a.time, sec, usec)) co_return protocol::generic(std::move(*err));
  }
  c.state.audit(a.time ? "guest-set-time called, time: " + std::to_string(*a.time)
                       : std::string("guest-set-time called, time: from the RTC"));
  clock_context& cc = c.state.clock;
  const std::optional<std::int64_t> t = a.time;
  std::optional<std::string> err = co_await offload(c.state.pool, [&cc, t] { return clock_detail::set_time(cc, t); });
  if (err) co_return protocol::generic(std::move(*err));
  c.out.begin_object();
  c.out.end_object();
  co_return std::nullopt;
}

}  // namespace fleetga::commands::handlers
