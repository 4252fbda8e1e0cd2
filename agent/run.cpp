#include "agent/run.hpp"

#include <signal.h>

#include <cstdio>
#include <exception>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "agent/channel.hpp"
#include "agent/log.hpp"
#include "agent/offloader.hpp"
#include "commands/service.hpp"
#include "commands/timer.hpp"
#include "platform/system.hpp"
#include "protocol/framer.hpp"

namespace asio = boost::asio;

namespace fleetga::agent {
namespace {

// Blocking work is file I/O and helpers; two workers keep one slow call from stalling the
// next offloaded one without letting a flood of requests pile up threads.
constexpr std::size_t worker_threads = 2;

void arm_quit(asio::signal_set& signals, asio::io_context& io, commands::service& svc) {
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (svc.frozen()) {
      // qemu-ga refuses to exit while frozen: its log/pid files may be on frozen filesystems
      // and leaving them frozen is almost certainly a mistake.
      arm_quit(signals, io, svc);
      return;
    }
    spdlog::debug("received signal num {}, quitting", sig);
    io.stop();
  });
}

// The fsfreeze auto-thaw watchdog's clock (commands/timer.hpp) on the I/O thread.
class asio_timer final : public commands::timer_service {
 public:
  explicit asio_timer(asio::io_context& io) : timer_(io) {}
  void arm(std::chrono::seconds after, std::function<void()> fire) override {
    timer_.expires_after(after);
    timer_.async_wait([fire = std::move(fire)](const boost::system::error_code& ec) {
      if (!ec) fire();
    });
  }
  void cancel() noexcept override { timer_.cancel(); }
  void warn(std::string_view message) override { spdlog::warn("{}", message); }

 private:
  asio::steady_timer timer_;
};

}  // namespace

int run(const options& opts) {
  log_control logs;
  if (auto err = init_logging(opts.logfile, opts.verbose, logs)) {
    std::fprintf(stderr, "%s\n", err->c_str());
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);

  // qemu-ga checks for a path before it looks at the method: only the two device methods
  // have a default path.
  std::string path;
  if (opts.path) {
    path = *opts.path;
  } else if (opts.method == "virtio-serial") {
    path = default_virtio_path;
  } else if (opts.method == "isa-serial") {
    path = default_serial_path;
  } else {
    spdlog::critical("must specify a path for this channel");
    return 1;
  }
  if (opts.method != "virtio-serial" && opts.method != "unix-listen") {
    // isa-serial and vsock-listen arrive with the transports milestone (issue 4).
    spdlog::critical("unsupported channel method/type: {}", opts.method);
    spdlog::critical("failed to initialize guest agent channel");
    return 1;
  }

  asio::io_context io(1);
  pool_offloader pool(io.get_executor(), worker_threads);
  platform::linux_system sys;
  commands::options copts;
  copts.statedir = opts.statedir;
  copts.block_rpcs = opts.block_rpcs;
  copts.allow_rpcs = opts.allow_rpcs;
  copts.support_level = opts.support_level;
  copts.fsfreeze_hook = opts.fsfreeze_hook;
  copts.fsfreeze_timeout = opts.fsfreeze_timeout;
  asio_timer freeze_timer(io);
  copts.fsfreeze_timer = &freeze_timer;
  copts.acts_on_system = true;  // the real agent: freeze, trim, shutdown and suspend act for real
  commands::service svc(std::move(copts), pool, sys);
  logs.muted = [&svc] { return svc.frozen(); };
  if (auto err = svc.init()) {
    // qemu-ga's texts; it then exits with status 0 (an accident of its main()), fleetga with 1
    // so that a supervisor sees the failed start.
    spdlog::critical("{}", *err);
    spdlog::critical("error initializing guest agent");
    return 1;
  }

  protocol::framer framer;
  std::string out;
  session_io sio{framer, svc, out};

  asio::signal_set quit(io, SIGTERM, SIGINT);
  arm_quit(quit, io, svc);

  int status = 0;
  auto on_channel_end = [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::critical("{}", ex.what());
        spdlog::critical("failed to initialize guest agent channel");
        status = 1;
      }
    }
    io.stop();
  };
  if (opts.method == "unix-listen")
    asio::co_spawn(io, run_unix_listen(path, sio), on_channel_end);
  else
    asio::co_spawn(io, run_virtio_serial(path, sio), on_channel_end);

  io.run();
  // Work still running on a worker refers to the service's state: let it finish before the
  // service goes away.
  pool.join();
  svc.thaw_for_exit();
  return status;
}

}  // namespace fleetga::agent
