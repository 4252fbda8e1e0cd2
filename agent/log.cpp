#include "agent/log.hpp"

#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>

namespace fleetga::agent {
namespace {

const char* level_text(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::critical: return "critical";
    case spdlog::level::err: return "error";
    case spdlog::level::warn: return "warning";
    case spdlog::level::info: return "info";
    default: return "debug";
  }
}

std::FILE* open_log(const std::string& path) { return std::fopen(path.c_str(), "ae"); }

// qemu-ga 10.x formats the time with g_date_time_format("%s.%f"): microseconds zero-padded
// to six digits (7.2 printed them unpadded).
class qga_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  qga_sink(std::FILE* f, const log_control& control) : file_(f), control_(control) {}
  ~qga_sink() override {
    if (file_ && file_ != stderr) std::fclose(file_);
  }
  void replace_file(std::FILE* f) {
    std::lock_guard lock(mutex_);
    if (file_ && file_ != stderr) std::fclose(file_);
    file_ = f;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (control_.muted && control_.muted()) return;
    timeval tv{};
    gettimeofday(&tv, nullptr);
    fmt::memory_buffer line;
    fmt::format_to(std::back_inserter(line), "{}.{:06}: {}: {}\n", static_cast<unsigned long>(tv.tv_sec),
                   static_cast<unsigned long>(tv.tv_usec), level_text(msg.level),
                   std::string_view(msg.payload.data(), msg.payload.size()));
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fflush(file_);
  }
  void flush_() override { std::fflush(file_); }

 private:
  std::FILE* file_;
  const log_control& control_;
};

std::weak_ptr<qga_sink> current_sink;

std::string ascii(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += s[i++];
      continue;
    }
    out += '?';
    std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    std::size_t j = 1;
    while (j < n && i + j < s.size() && (static_cast<unsigned char>(s[i + j]) & 0xC0) == 0x80) ++j;
    i += j;
  }
  return out;
}

}  // namespace

std::optional<std::string> init_logging(const std::optional<std::string>& logfile, bool verbose,
                                        const log_control& control) {
  std::FILE* f = stderr;
  if (logfile) {
    f = open_log(*logfile);
    if (!f) return fmt::format("unable to open specified log file: {}", std::strerror(errno));
  }
  auto sink = std::make_shared<qga_sink>(f, control);
  current_sink = sink;
  auto logger = std::make_shared<spdlog::logger>("fleetga", sink);
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::err);
  spdlog::set_default_logger(std::move(logger));
  return std::nullopt;
}

std::optional<std::string> open_logfile(const std::string& path) {
  std::FILE* f = open_log(path);
  if (!f) return fmt::format("unable to open specified log file: {}", std::strerror(errno));
  if (auto sink = current_sink.lock())
    sink->replace_file(f);
  else
    std::fclose(f);
  return std::nullopt;
}

void log_always(spdlog::level::level_enum level, std::string_view line) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  spdlog::details::log_msg msg(logger->name(), level, spdlog::string_view_t(line.data(), line.size()));
  for (const auto& sink : logger->sinks()) sink->log(msg);
}

void audit(std::string_view line, const log_control& control) {
  if (control.muted && control.muted()) return;
  // qemu-ga never calls openlog(); glibc then uses the program name, which for a drop-in
  // replacement has to stay "qemu-ga".
  static const bool opened = [] {
    ::openlog("qemu-ga", LOG_ODELAY, LOG_USER);
    return true;
  }();
  (void)opened;
  ::syslog(LOG_INFO, "info: %.*s", static_cast<int>(line.size()), line.data());
  spdlog::info("{}", line);
}

namespace {
void glib_print(const char* level, std::string_view message) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  std::tm tm{};
  time_t secs = tv.tv_sec;
  localtime_r(&secs, &tm);
  std::fprintf(stderr, "\n** (process:%d): %s **: %02d:%02d:%02d.%03d: %s\n", static_cast<int>(::getpid()), level,
               tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000), ascii(message).c_str());
}
}  // namespace

void glib_critical(std::string_view message) { glib_print("CRITICAL", message); }
void glib_warning(std::string_view message) { glib_print("WARNING", message); }

}  // namespace fleetga::agent
