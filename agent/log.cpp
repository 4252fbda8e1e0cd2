#include "agent/log.hpp"

#include <sys/time.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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

// qemu-ga prints "%lu.%lu" of a GTimeVal: the microseconds are NOT zero-padded.
class qga_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  qga_sink(std::FILE* f, const log_control& control) : file_(f), control_(control) {}
  ~qga_sink() override {
    if (file_ && file_ != stderr) std::fclose(file_);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (control_.muted && control_.muted()) return;
    timeval tv{};
    gettimeofday(&tv, nullptr);
    fmt::memory_buffer line;
    fmt::format_to(std::back_inserter(line), "{}.{}: {}: {}\n", static_cast<unsigned long>(tv.tv_sec),
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

}  // namespace

std::optional<std::string> init_logging(const std::optional<std::string>& logfile, bool verbose,
                                        const log_control& control) {
  std::FILE* f = stderr;
  if (logfile) {
    f = std::fopen(logfile->c_str(), "ae");
    if (!f) return fmt::format("unable to open specified log file: {}", std::strerror(errno));
  }
  auto sink = std::make_shared<qga_sink>(f, control);
  auto logger = std::make_shared<spdlog::logger>("fleetga", sink);
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::err);
  spdlog::set_default_logger(std::move(logger));
  return std::nullopt;
}

}  // namespace fleetga::agent
