#pragma once
// What guest-set-time and guest-set-user-password do to the machine, behind one narrow
// interface so unit tests replace it with a fake that records what would have happened:
// set/read the system clock, read/write the RTC through its device (RTC_RD_TIME /
// RTC_SET_TIME, for guests without hwclock), run a helper (hwclock, chpasswd) and sleep.
// Plus the pure pieces of hwclock's behaviour: /etc/adjtime's time scale and the RTC's
// broken-down time <-> epoch seconds.
//
// Everything here blocks (ioctl on an RTC, helpers, sleeping): commands/ calls it on the
// worker pool only.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/spawn.hpp"

namespace fleetga::platform {

// The RTC's time scale as hwclock(8) reads it from /etc/adjtime.
enum class rtc_scale : unsigned char { utc, local };

// /etc/adjtime's third line exactly "LOCAL\n" -> local; anything else (UTC, a missing line or
// file, an unknown word, "LOCAL" without its newline) -> UTC. That is util-linux hwclock's
// read_adjtime() (strcmp with "UTC\n" / "LOCAL\n") plus its UTC default for "unknown".
rtc_scale parse_adjtime_scale(std::string_view adjtime_text);

// struct rtc_time's fields (the first six of struct tm): mon 0-11, year - 1900.
struct rtc_fields {
  int sec = 0, min = 0, hour = 0, mday = 1, mon = 0, year = 70;
  friend bool operator==(const rtc_fields&, const rtc_fields&) = default;
};

// Epoch seconds -> RTC fields in `scale` (gmtime_r / localtime_r of the process's zone, as
// hwclock -w does). false when the time has no broken-down form.
bool to_rtc_fields(std::int64_t epoch_sec, rtc_scale scale, rtc_fields& out);
// RTC fields -> epoch seconds (timegm / mktime with DST guessed, as hwclock -s does);
// nullopt for fields that are not a date (month 12, day 0, ...: a garbage RTC).
std::optional<std::int64_t> from_rtc_fields(const rtc_fields& f, rtc_scale scale);

// Which step of an RTC access failed and why.
struct rtc_status {
  enum class step : unsigned char { open, ioctl };
  step at = step::ioctl;
  int err = 0;
  bool ok() const noexcept { return err == 0; }
};

class system_effects {
 public:
  virtual ~system_effects() = default;
  // settimeofday()/clock_settime(CLOCK_REALTIME); returns errno (0 on success).
  virtual int set_realtime(std::int64_t sec, std::int64_t nsec) = 0;
  // clock_gettime(CLOCK_REALTIME).
  virtual void get_realtime(std::int64_t& sec, std::int64_t& nsec) = 0;
  // ioctl(RTC_RD_TIME) / ioctl(RTC_SET_TIME) on `device` ("/dev/rtc0", not rooted: the
  // implementation applies its root).
  virtual rtc_status rtc_read(const std::string& device, rtc_fields& out) = 0;
  virtual rtc_status rtc_write(const std::string& device, const rtc_fields& in) = 0;
  // platform::run_helper().
  virtual helper_result run(const std::vector<std::string>& argv, std::optional<std::string_view> input) = 0;
  virtual void sleep_ns(std::int64_t ns) = 0;
};

// The real thing, safe by default like linux_freezer and spawn_power_runner: the clock, the
// RTC and helpers are changed/run only when `armed` (the real agent) and the root is ""
// (the real /). Otherwise: set_realtime and rtc_write fail with EPERM, run() "fails to
// exec" with EPERM, so a unit test, a fuzzer or a fixture root can never change this
// machine's clock or passwords. Reading the clock or an RTC and sleeping always work.
class linux_effects final : public system_effects {
 public:
  explicit linux_effects(std::string root = {}) : root_(std::move(root)) {}
  bool armed = false;

  int set_realtime(std::int64_t sec, std::int64_t nsec) override;
  void get_realtime(std::int64_t& sec, std::int64_t& nsec) override;
  rtc_status rtc_read(const std::string& device, rtc_fields& out) override;
  rtc_status rtc_write(const std::string& device, const rtc_fields& in) override;
  helper_result run(const std::vector<std::string>& argv, std::optional<std::string_view> input) override;
  void sleep_ns(std::int64_t ns) override;

 private:
  bool acts() const noexcept { return armed && root_.empty(); }
  std::string root_;
};

}  // namespace fleetga::platform
