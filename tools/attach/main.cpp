// fleetga-host attach: sets the host support level on every agent attach (tools/README.md,
// man fleetga-host). The daemon's option parsing, signals and the two modes' loops.
#include <getopt.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "tools/attach/engine.hpp"
#include "tools/attach/libvirt.hpp"
#include "tools/attach/sockets.hpp"
#include "tools/common.hpp"
#include "tools/subcommands.hpp"

namespace fleetga::host {

namespace {

using namespace attach;

constexpr const char* default_config = "/etc/fleetga/attach.conf";

struct attach_options {
  std::string uri = "qemu:///system";
  std::string sockets;  // socket mode when set
  std::string config;
  bool config_given = false;
  std::optional<support_level> host_level;
  std::optional<int> timeout_s, concurrency;
  int rescan_s = 300;
  bool once = false;
  std::string explain;
  double stats_s = 0;
  std::string log_level = "info";
};

support_level parse_level_opt(const char* v, const char* opt) {
  auto l = commands::parse_support_level(v);
  if (!l) throw usage_error(fmt::format("{}: '{}' is not a support level (MAJ.MIN[.MIC], each 0..65535)", opt, v));
  return commands::clamp_to_minimum(*l);
}

attach_options parse(int argc, char** argv) {
  enum : int { o_libvirt = 1000, o_sockets, o_config, o_host_level, o_timeout, o_concurrency, o_rescan, o_once,
               o_explain, o_stats, o_log_level, o_help };
  static const option longopts[] = {
      {"libvirt", required_argument, nullptr, o_libvirt},
      {"sockets", required_argument, nullptr, o_sockets},
      {"config", required_argument, nullptr, o_config},
      {"host-level", required_argument, nullptr, o_host_level},
      {"timeout", required_argument, nullptr, o_timeout},
      {"concurrency", required_argument, nullptr, o_concurrency},
      {"rescan", required_argument, nullptr, o_rescan},
      {"once", no_argument, nullptr, o_once},
      {"explain", required_argument, nullptr, o_explain},
      {"stats", required_argument, nullptr, o_stats},
      {"log-level", required_argument, nullptr, o_log_level},
      {"help", no_argument, nullptr, o_help},
      {nullptr, 0, nullptr, 0},
  };
  attach_options o;
  bool libvirt_given = false;
  // getopt_long permutes argv[1..]; argv[0] here is the first option (main passes argv + 2),
  // so hand it a program name in front.
  std::vector<char*> args;
  args.push_back(const_cast<char*>("fleetga-host attach"));
  for (int i = 0; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  optind = 0;
  opterr = 0;
  int c;
  while ((c = getopt_long(static_cast<int>(args.size() - 1), args.data(), ":", longopts, nullptr)) != -1) {
    std::string arg = optarg ? optarg : "";
    switch (c) {
      case o_libvirt: o.uri = arg; libvirt_given = true; break;
      case o_sockets: o.sockets = arg; break;
      case o_config: o.config = arg; o.config_given = true; break;
      case o_host_level: o.host_level = parse_level_opt(optarg, "--host-level"); break;
      case o_timeout: {
        double s = parse_seconds(arg, "--timeout");
        if (s < 1 || s > 300) throw usage_error("--timeout: expected 1..300 seconds, got '" + arg + "'");
        o.timeout_s = static_cast<int>(s);
        break;
      }
      case o_concurrency: {
        long long n = parse_count(arg, "--concurrency");
        if (n < 1 || n > 256) throw usage_error("--concurrency: expected 1..256, got '" + arg + "'");
        o.concurrency = static_cast<int>(n);
        break;
      }
      case o_rescan: o.rescan_s = static_cast<int>(parse_seconds(arg, "--rescan")); break;
      case o_once: o.once = true; break;
      case o_explain: o.explain = arg; break;
      case o_stats: o.stats_s = parse_seconds(arg, "--stats"); break;
      case o_log_level:
        if (arg != "debug" && arg != "info" && arg != "warn")
          throw usage_error("--log-level: expected debug, info or warn, got '" + arg + "'");
        o.log_level = arg;
        break;
      case o_help: std::cout << attach_usage; std::exit(0);
      case ':': throw usage_error(fmt::format("option '{}' needs a value", args[static_cast<std::size_t>(optind - 1)]));
      default: throw usage_error(fmt::format("unknown option '{}'", args[static_cast<std::size_t>(optind - 1)]));
    }
  }
  if (optind < static_cast<int>(args.size() - 1))
    throw usage_error(fmt::format("unexpected argument '{}'", args[static_cast<std::size_t>(optind)]));
  if (libvirt_given && !o.sockets.empty()) throw usage_error("--libvirt and --sockets exclude each other");
  if (!o.config_given && ::access(default_config, F_OK) == 0) o.config = default_config;
  return o;
}

// Signals go to one thread (blocked everywhere else): TERM/INT stop, USR1 logs the counters,
// HUP re-reads the config file.
struct signal_thread {
  sigset_t set{};
  int stop_fd = -1;
  std::thread t;
  std::function<void(int)> on_signal;
  signal_thread() {
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  void start() {
    t = std::thread([this] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGTERM || sig == SIGINT) {
          std::uint64_t one = 1;
          (void)!::write(stop_fd, &one, sizeof one);
          return;
        }
        if (on_signal) on_signal(sig);
      }
    });
  }
  void request_stop() {
    std::uint64_t one = 1;
    (void)!::write(stop_fd, &one, sizeof one);
  }
  ~signal_thread() {
    if (t.joinable()) {
      pthread_kill(t.native_handle(), SIGTERM);
      t.join();
    }
    if (stop_fd >= 0) ::close(stop_fd);
  }
};

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("attach");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z fleetga-host[%P]: %l: %v");
  logger->set_level(level == "debug" ? spdlog::level::debug
                    : level == "warn" ? spdlog::level::warn
                                      : spdlog::level::info);
  logger->flush_on(spdlog::level::debug);
  spdlog::set_default_logger(logger);
}

// libvirt prints every error to stderr by default; the daemon reports them itself.
void quiet_libvirt_errors(void*, virErrorPtr) {}

}  // namespace

int cmd_attach(int argc, char** argv) {
  attach_options o = parse(argc, argv);

  attach_config cfg;
  if (!o.config.empty()) {
    try {
      cfg = load_config(o.config);
    } catch (const config_error& e) {
      std::cerr << fmt::format("fleetga-host attach: {}\n", e.what());
      return exit_code::usage;
    }
  }
  if (o.host_level) {  // the command line beats the file
    cfg.host.level = o.host_level;
    cfg.host.level_line = -1;
  }
  engine_options eo;
  eo.timeout = std::chrono::seconds(o.timeout_s.value_or(cfg.timeout_s));
  eo.concurrency = static_cast<unsigned>(o.concurrency.value_or(cfg.concurrency));
  bool socket_mode = !o.sockets.empty();
  // Socket mode has no event for an agent that comes back. libvirt mode has, but not for
  // every case: after libvirtd restarts, the sweep can see a channel that libvirt reports
  // connected before libvirtd has reopened its agent connection, and no event follows. A
  // "disconnected" event drops the retry, so a guest whose agent really left costs nothing.
  eo.retry_not_connected = true;
  if (o.once) {  // a script waits for the answer: fewer, quicker retries
    eo.max_attempts = 3;
    eo.retry_first = std::chrono::milliseconds(500);
  }

  setup_logging(o.log_level);
  virSetErrorFunc(nullptr, quiet_libvirt_errors);

  std::unique_ptr<host_stack> hs;
  libvirt_stack* lv = nullptr;
  socket_stack* ss = nullptr;
  if (socket_mode) {
    // The policy applies a configured level itself (and says where it came from); the QEMU
    // binary is only asked when nothing is configured.
    auto p = std::make_unique<socket_stack>(o.sockets, cfg.host.level ? std::nullopt : detect_qemu_level());
    ss = p.get();
    hs = std::move(p);
  } else {
    if (virEventRegisterDefaultImpl() < 0) {
      std::cerr << "fleetga-host attach: libvirt's event loop could not be set up\n";
      return exit_code::failed;
    }
    auto p = std::make_unique<libvirt_stack>(o.uri, std::nullopt);
    lv = p.get();
    hs = std::move(p);
  }

  // --explain: what a domain would get, nothing sent.
  if (!o.explain.empty()) {
    std::string id = o.explain;
    if (lv) {
      try {
        lv->connect();
      } catch (const std::exception& e) {
        std::cerr << fmt::format("fleetga-host attach: {}\n", e.what());
        return exit_code::unreachable;
      }
      auto found = lv->find_domain(o.explain);
      if (!found) {
        std::cerr << fmt::format("fleetga-host attach: no domain '{}' on {}\n", o.explain, o.uri);
        return exit_code::failed;
      }
      id = *found;
    } else if (::access((o.sockets + "/" + id).c_str(), F_OK) != 0 &&
               ::access((o.sockets + "/" + id + ".qga").c_str(), F_OK) == 0) {
      id += ".qga";
    }
    auto f = hs->facts(id);
    if (!f) {
      std::cerr << fmt::format("fleetga-host attach: domain '{}' is not running\n", o.explain);
      return exit_code::failed;
    }
    std::cout << explain(resolve(cfg, hs->host_level(), *f), *f);
    return exit_code::ok;
  }

  signal_thread sig;
  engine eng(*hs, cfg, eo);
  std::mutex tally_mu;
  std::map<std::string, outcome> final_outcome;
  eng.on_result([&](const attach_result& r) {
    std::lock_guard lk(tally_mu);
    final_outcome[r.id] = r.result;
  });
  sig.on_signal = [&](int s) {
    if (s == SIGUSR1) {
      spdlog::info("{}", eng.stats_line());
    } else if (s == SIGHUP) {
      if (o.config.empty()) {
        spdlog::info("SIGHUP: no config file to read again");
        return;
      }
      try {
        attach_config fresh = load_config(o.config);
        if (o.host_level) {
          fresh.host.level = o.host_level;
          fresh.host.level_line = -1;
        }
        eng.set_config(std::move(fresh));
        spdlog::info("SIGHUP: {} read again; it applies from the next attach", o.config);
      } catch (const config_error& e) {
        spdlog::error("SIGHUP: {}; keeping the config in use", e.what());
      }
    }
  };
  sig.start();
  if (ss) ss->abort_on(sig.stop_fd);  // SIGTERM ends socket I/O in flight at once

  auto last_stats = std::chrono::steady_clock::now();
  auto tick = [&] {
    if (o.stats_s <= 0) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_stats >= std::chrono::duration<double>(o.stats_s)) {
      last_stats = now;
      spdlog::info("{}", eng.stats_line());
    }
  };

  spdlog::info("fleetga-host attach: {} mode ({}), timeout {} s, concurrency {}{}", socket_mode ? "socket" : "libvirt",
               socket_mode ? o.sockets : o.uri, eo.timeout.count() / 1000, eo.concurrency,
               o.config.empty() ? std::string() : ", config " + o.config);

  if (o.once) {
    try {
      if (lv) lv->connect();
      eng.sweep();
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return exit_code::unreachable;
    }
    // Every attach ends within attempts x (timeouts + back-off); the bound is only a guard.
    eng.wait_idle(std::chrono::minutes(10));
    eng.stop();
    std::size_t good = 0, bad = 0, unsupported = 0, skipped = 0;
    for (auto& [id, oc] : final_outcome) {
      if (oc == outcome::confirmed) ++good;
      else if (oc == outcome::unsupported) ++unsupported;
      else if (oc == outcome::skipped) ++skipped;
      else ++bad;
    }
    std::cout << fmt::format("attached {} agents: {} confirmed, {} without support level, {} skipped, {} failed\n",
                             final_outcome.size(), good, unsupported, skipped, bad);
    return bad ? exit_code::failed : exit_code::ok;
  }

  int rc = exit_code::ok;
  try {
    if (lv) {
      run_libvirt(*lv, eng, sig.stop_fd, tick);
    } else {
      std::atomic<bool> done = false;
      std::thread ticker([&] {
        while (!done.load()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          tick();
        }
      });
      try {
        watch_sockets(ss->dir(), eng, sig.stop_fd, std::chrono::seconds(o.rescan_s));
      } catch (...) {
        done = true;
        ticker.join();
        throw;
      }
      done = true;
      ticker.join();
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    rc = exit_code::failed;
  }
  eng.stop();
  spdlog::info("{}", eng.stats_line());
  spdlog::info("stopped");
  return rc;
}

}  // namespace fleetga::host
