#include "platform/clock.hpp"

#include <fcntl.h>
#include <linux/rtc.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace fleetga::platform {

rtc_scale parse_adjtime_scale(std::string_view text) {
  // Lines 1 and 2 (drift, last calibration) are skipped whatever they hold.
  for (int line = 0; line < 2; ++line) {
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) return rtc_scale::utc;
    text.remove_prefix(nl + 1);
  }
  const auto nl = text.find('\n');
  if (nl == std::string_view::npos) return rtc_scale::utc;  // fgets kept no '\n': no match
  return text.substr(0, nl + 1) == "LOCAL\n" ? rtc_scale::local : rtc_scale::utc;
}

bool to_rtc_fields(std::int64_t epoch_sec, rtc_scale scale, rtc_fields& out) {
  const auto t = static_cast<std::time_t>(epoch_sec);
  if (static_cast<std::int64_t>(t) != epoch_sec) return false;
  std::tm tm{};
  if ((scale == rtc_scale::utc ? ::gmtime_r(&t, &tm) : ::localtime_r(&t, &tm)) == nullptr) return false;
  out = {tm.tm_sec, tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon, tm.tm_year};
  return true;
}

namespace {

bool leap(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in(int mon, long year) {
  static constexpr int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return mon == 1 && leap(year) ? 29 : d[mon];
}

}  // namespace

std::optional<std::int64_t> from_rtc_fields(const rtc_fields& f, rtc_scale scale) {
  // The kernel's rtc_valid_tm() plus "no leap second": anything else is a garbage RTC,
  // which hwclock refuses too ("invalid values in hardware clock").
  if (f.mon < 0 || f.mon > 11 || f.mday < 1 || f.mday > days_in(f.mon, 1900L + f.year) || f.hour < 0 ||
      f.hour > 23 || f.min < 0 || f.min > 59 || f.sec < 0 || f.sec > 59 || f.year < 0)
    return std::nullopt;
  std::tm tm{};
  tm.tm_sec = f.sec;
  tm.tm_min = f.min;
  tm.tm_hour = f.hour;
  tm.tm_mday = f.mday;
  tm.tm_mon = f.mon;
  tm.tm_year = f.year;
  tm.tm_isdst = -1;  // hwclock: let mktime decide whether DST is in effect
  errno = 0;
  const std::time_t t = scale == rtc_scale::utc ? ::timegm(&tm) : ::mktime(&tm);
  if (t == static_cast<std::time_t>(-1) && errno != 0) return std::nullopt;
  return static_cast<std::int64_t>(t);
}

int linux_effects::set_realtime(std::int64_t sec, std::int64_t nsec) {
  if (!acts()) return EPERM;
  struct timespec ts {};
  ts.tv_sec = static_cast<std::time_t>(sec);
  ts.tv_nsec = static_cast<long>(nsec);
  return ::clock_settime(CLOCK_REALTIME, &ts) == 0 ? 0 : errno;
}

void linux_effects::get_realtime(std::int64_t& sec, std::int64_t& nsec) {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  sec = ts.tv_sec;
  nsec = ts.tv_nsec;
}

namespace {

// struct rtc_time is laid out like the first nine ints of struct tm; only six are used.
rtc_status rtc_ioctl(const std::string& path, int flags, unsigned long req, struct rtc_time& rt) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return {rtc_status::step::open, errno};
  int err = 0;
  if (::ioctl(fd, req, &rt) != 0) err = errno;
  ::close(fd);
  return {rtc_status::step::ioctl, err};
}

}  // namespace

rtc_status linux_effects::rtc_read(const std::string& device, rtc_fields& out) {
  struct rtc_time rt {};
  rtc_status s = rtc_ioctl(root_ + device, O_RDONLY, RTC_RD_TIME, rt);
  if (s.ok()) out = {rt.tm_sec, rt.tm_min, rt.tm_hour, rt.tm_mday, rt.tm_mon, rt.tm_year};
  return s;
}

rtc_status linux_effects::rtc_write(const std::string& device, const rtc_fields& in) {
  if (!acts()) return {rtc_status::step::ioctl, EPERM};
  struct rtc_time rt {};
  rt.tm_sec = in.sec;
  rt.tm_min = in.min;
  rt.tm_hour = in.hour;
  rt.tm_mday = in.mday;
  rt.tm_mon = in.mon;
  rt.tm_year = in.year;
  rt.tm_isdst = 0;
  // hwclock opens the device read-only for RTC_SET_TIME too; the ioctl checks CAP_SYS_TIME.
  return rtc_ioctl(root_ + device, O_RDONLY, RTC_SET_TIME, rt);
}

helper_result linux_effects::run(const std::vector<std::string>& argv, std::optional<std::string_view> input) {
  if (acts()) return run_helper(argv, input);
  helper_result r;
  r.how = helper_result::outcome::exec_failed;
  r.status = 1;
  r.err = EPERM;
  r.output = "failed to exec '" + argv[0] + "': " + std::strerror(EPERM) + "\n";
  return r;
}

void linux_effects::sleep_ns(std::int64_t ns) {
  if (ns <= 0) return;
  struct timespec ts {};
  ts.tv_sec = static_cast<std::time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace fleetga::platform
