#include "agent/run.hpp"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/channel.hpp"
#include "agent/daemon.hpp"
#include "agent/log.hpp"
#include "agent/offloader.hpp"
#include "agent/reactor.hpp"
#include "commands/service.hpp"
#include "commands/timer.hpp"
#include "platform/system.hpp"
#include "protocol/framer.hpp"
#include "fleetga/version.hpp"

namespace asio = boost::asio;

namespace fleetga::agent {
namespace {

// Blocking work is file I/O and helpers; two workers keep one slow call from stalling the
// next offloaded one without letting a flood of requests pile up threads.
constexpr std::size_t worker_threads = 2;

// The signals the agent handles once its event loop runs (docs: fleetga(8), SIGNALS).
constexpr int handled_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};

// Counters for SIGUSR1's line; the I/O thread alone touches them.
struct agent_stats {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::uint64_t requests = 0;  // frames handled, errors included
};

// Resident set from /proc/self/statm (memory, not disk: fine on the I/O thread).
long rss_kib() {
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  if (!f) return -1;
  long size = 0, resident = -1;
  if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
  std::fclose(f);
  return resident < 0 ? -1 : resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

long open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  long n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // opendir's own descriptor
}

void log_stats(const agent_stats& st, bool frozen) {
  const auto up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - st.started);
  log_always(spdlog::level::info, fmt::format("stats uptime_s={} requests={} rss_kib={} open_fds={} frozen={}",
                                              up.count(), st.requests, rss_kib(), open_fds(), frozen ? 1 : 0));
}

// SIGHUP: the -l file again, by path (after logrotate renamed it). Not while frozen: the
// file may be on a frozen filesystem (opening it would block the I/O thread); the thaw does it.
void reopen_log(const options& opts, bool frozen, bool& pending) {
  if (!opts.logfile) {
    spdlog::debug("SIGHUP: no log file to reopen (logging to stderr)");
    return;
  }
  if (frozen) {
    pending = true;
    return;
  }
  pending = false;
  if (auto err = open_logfile(*opts.logfile))
    spdlog::error("SIGHUP: {}: {}; still logging to the previous file", *opts.logfile, *err);
  else
    spdlog::debug("SIGHUP: reopened log file {}", *opts.logfile);
}

struct signal_actions {
  asio::io_context& io;
  commands::service& svc;
  const options& opts;
  const agent_stats& stats;
  bool reopen_pending = false;
};

void arm_signals(asio::signal_set& signals, signal_actions& act) {
  signals.async_wait([&signals, &act](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      reopen_log(act.opts, act.svc.frozen(), act.reopen_pending);
    } else if (sig == SIGUSR1) {
      log_stats(act.stats, act.svc.frozen());
    } else if (!act.svc.frozen()) {
      spdlog::debug("received signal num {}, quitting", sig);
      act.io.stop();
      return;
    }
    // qemu-ga refuses to exit while frozen: its log/pid files may be on frozen filesystems
    // and leaving them frozen is almost certainly a mistake.
    arm_signals(signals, act);
  });
}

// The pidfile, once this process wrote it, is removed on every way out of run(): the
// normal end, a start-up failure after daemonizing, an exception on its way to main().
struct pidfile_owner {
  std::string path;
  bool written = false;
  void remove() noexcept {
    if (written) ::unlink(path.c_str());
    written = false;
  }
  ~pidfile_owner() { remove(); }
};

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
  // May run on a worker (the watchdog's thaw): the line is logged on the I/O thread, after
  // `before_warn` (the agent's thaw bookkeeping: the deferred log file first).
  void warn(std::string_view message) override {
    asio::post(timer_.get_executor(), [this, line = std::string(message)] {
      if (before_warn) before_warn();
      spdlog::warn("{}", line);
    });
  }
  std::function<void()> before_warn;

 private:
  asio::steady_timer timer_;
};

// The service needs its offloader before the agent may fork (-d), a thread pool must not
// exist before fork(): this one starts its threads on start().
class late_offloader final : public commands::offloader {
 public:
  explicit late_offloader(asio::any_io_executor io) : io_(std::move(io)) {}
  void start(std::size_t threads) { pool_.emplace(io_, threads); }
  void run(std::function<void()> work, std::coroutine_handle<> resume) override {
    if (pool_) {
      pool_->run(std::move(work), resume);
      return;
    }
    work();  // before start(): nothing offloads then, but stay correct if something does
    asio::post(io_, [resume] { resume.resume(); });
  }
  void join() {
    if (pool_) pool_->join();
  }

 private:
  asio::any_io_executor io_;
  std::optional<pool_offloader> pool_;
};

}  // namespace

int run(const options& opts) {
  log_control logs;
  // qemu-ga's check_is_frozen(): a predecessor that died frozen left the marker. The log
  // file and the pidfile may be on a frozen filesystem: both wait for the thaw.
  const bool start_frozen = ::access((opts.statedir + "/qga.state.isfrozen").c_str(), F_OK) == 0;
  // Frozen agents ignore quit signals, from the start on (main()'s start-up handlers).
  ignore_quit_at_start(start_frozen);
  if (start_frozen) {
    // check_is_frozen() runs before qemu-ga installs its log handler: GLib's default one
    // prints this (whatever -v says).
    glib_warning("previous instance appears to have exited with frozen filesystems. deferring "
                 "logging/pidfile creation and disabling non-fsfreeze-safe commands until "
                 "guest-fsfreeze-thaw is issued, or filesystems are manually unfrozen and the "
                 "file " + opts.statedir + "/qga.state.isfrozen is removed");
  }
  init_logging(std::nullopt, opts.verbose, logs);
  spdlog::debug("Guest agent version {} started", FLEETGA_QEMU_VERSION);
  if (start_frozen) {
    // logging stays off until the thaw (logs.muted, set below)
  } else if (opts.logfile) {
    if (auto err = open_logfile(*opts.logfile)) {
      spdlog::critical("{}", *err);
      spdlog::critical("error initializing guest agent");
      return 1;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  // Until the signal_set below is armed, main()'s start-up handlers (agent/daemon.hpp) answer
  // SIGTERM/SIGINT at once, whatever start-up is blocked in (a FIFO at qga.state), removing
  // the pidfile if written, and keep SIGHUP/SIGUSR1 for later; they used to be held blocked,
  // which made a blocked start unkillable but by SIGKILL (issue 16, defect 9).
  agent_stats stats;

  // One thread runs the I/O; other threads (the worker pool) only post to it, so the
  // per-descriptor locks can go (the scheduler's and the timers' locks stay).
  asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
  // Its threads start after daemonizing (fork() keeps only the calling thread).
  late_offloader pool(io.get_executor());
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
  asio_reactor exec_reactor(io);  // guest-exec's pipes and pidfds
  copts.reactor = &exec_reactor;
  copts.acts_on_system = true;  // the real agent: freeze, trim, shutdown and suspend act for real
  copts.audit = [&logs](std::string_view line) { audit(line, logs); };
  // Shown without -v (qemu-ga's default shows errors and criticals): not a silent fallback.
  copts.warn = [](std::string_view line) { spdlog::error("{}", line); };
  commands::service svc(std::move(copts), pool, sys);
  logs.muted = [&svc] { return svc.frozen(); };
  if (auto err = svc.init()) {
    // qemu-ga's texts, one critical line each; it then exits with status 0 (an accident of
    // its main()), fleetga with 1 so that a supervisor sees the failed start.
    std::string_view rest = *err;
    for (std::size_t nl; (nl = rest.find('\n')) != std::string_view::npos; rest.remove_prefix(nl + 1))
      spdlog::critical("{}", rest.substr(0, nl));
    spdlog::critical("{}", rest);
    spdlog::critical("error initializing guest agent");
    return 1;
  }

  // channel_init() after the state, before daemonizing: the parent must see a failure.
  if (opts.method != "virtio-serial" && opts.method != "isa-serial" && opts.method != "unix-listen" &&
      opts.method != "vsock-listen") {
    spdlog::critical("unsupported channel method/type: {}", opts.method);
    spdlog::critical("failed to initialize guest agent channel");
    spdlog::critical("error initializing guest agent");
    return 1;
  }
  channel_config ccfg{opts.method, opts.path, opts.listen_fd, opts.retry_path};
  open_result opened = open_channel(ccfg);
  if (opened.fd < 0) {
    spdlog::critical("{}", opened.error);
    spdlog::critical("failed to create guest agent channel");
    if (!opts.retry_path) {
      spdlog::critical("failed to initialize guest agent channel");
      spdlog::critical("error initializing guest agent");
      return 1;
    }
    // qemu-ga 10.2: with -r a channel that can't be opened yet is not fatal.
    spdlog::critical("failed to initialize guest agent channel, will retry");
  }

  pidfile_owner pid;
  // A relative -f names a file in the directory we started in, also after chdir("/") (for
  // the deferred write and the unlink at exit; qemu-ga misses both).
  std::string& pidfile = pid.path;
  pidfile = opts.pidfile;
  if (!pidfile.empty() && pidfile[0] != '/') {
    if (char* cwd = ::getcwd(nullptr, 0)) {
      pidfile = std::string(cwd) + "/" + pidfile;
      std::free(cwd);
    }
  }
  // -d: the parent waits here until daemon_ready() below (or the child's end).
  int ready_fd = -1;
  if (opts.daemonize) {
    // Frozen: the pidfile is written at the thaw (ga_unset_frozen()).
    ready_fd = become_daemon(
        start_frozen ? std::nullopt : std::optional<std::string>(pidfile),
        [](void* c) { static_cast<asio::io_context*>(c)->notify_fork(asio::execution_context::fork_prepare); },
        [](void* c) { static_cast<asio::io_context*>(c)->notify_fork(asio::execution_context::fork_child); },
        &io);
    pid.written = !start_frozen;
  }
  {
    // The workers start with every handled signal blocked, so signals always reach the I/O
    // thread; spawned programs get an empty mask (platform/spawn, platform/exec).
    sigset_t handled, old;
    sigemptyset(&handled);
    for (int sig : handled_signals) sigaddset(&handled, sig);
    ::pthread_sigmask(SIG_BLOCK, &handled, &old);
    try {
      pool.start(worker_threads);
    } catch (const std::exception& e) {  // a worker thread that can't start (EAGAIN: thread limit)
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      spdlog::critical("failed to start the worker threads: {}", e.what());
      spdlog::critical("error initializing guest agent");
      return 1;
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  svc.open_watches();

  // ga_unset_frozen(): logging back on, and for an agent that started frozen the deferred
  // log file and pidfile. Checked after every request and when the watchdog thawed.
  bool was_frozen = svc.frozen();
  std::optional<std::string> deferred_log = start_frozen ? opts.logfile : std::nullopt;
  bool deferred_pid = start_frozen && opts.daemonize;
  signal_actions sig_act{io, svc, opts, stats};
  auto thaw_check = [&] {
    bool now = svc.frozen();
    if (was_frozen && !now) {
      if (deferred_log) {
        open_logfile(*deferred_log);  // failing: stays on stderr, as qemu-ga
        sig_act.reopen_pending = false;
      }
      deferred_log.reset();
      spdlog::warn("logging re-enabled due to filesystem unfreeze");
      if (sig_act.reopen_pending) reopen_log(opts, false, sig_act.reopen_pending);  // a SIGHUP while frozen
      if (deferred_pid) {
        if (auto err = write_pidfile(pidfile))
          spdlog::warn("{}", *err);
        else
          pid.written = true;
        deferred_pid = false;
      }
    }
    was_frozen = now;
  };
  std::function<void()> watch_thaw = thaw_check;
  freeze_timer.before_warn = watch_thaw;
  std::function<void()> after_request = [&] {
    ++stats.requests;
    thaw_check();
  };

  protocol::framer framer;
  std::string out;
  session_io sio{framer, svc, out, &after_request};

  // Replaces the start-up handlers; what they kept for later is delivered again now.
  asio::signal_set signals(io);
  for (int sig : handled_signals) signals.add(sig);
  arm_signals(signals, sig_act);
  for (int sig : {SIGHUP, SIGUSR1})
    if (take_start_signal(sig)) ::raise(sig);

  int status = 0;
  auto on_channel_end = [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::critical("{}", ex.what());
        status = 1;
      }
    }
    io.stop();
  };
  asio::co_spawn(io, run_channel(ccfg, opened.fd, sio), on_channel_end);

  daemon_ready(ready_fd);  // -d: the parent exits 0 now
  io.run();
  // Work still running on a worker refers to the service's state: let it finish before the
  // service goes away.
  pool.join();
  svc.thaw_for_exit();
  // Now, while the signal_set still handles SIGHUP/SIGUSR1: its destructor puts back their
  // default action (termination).
  pid.remove();
  return status;
}

}  // namespace fleetga::agent
