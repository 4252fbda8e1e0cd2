// fleetga-host load: drives N agents with libvirt-, Proxmox- or raw-pipelined-style clients
// and a command mix, and reports count/errors/desyncs/lost and latency percentiles per command.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "protocol/base64.hpp"
#include "protocol/request.hpp"
#include "tools/cgroup.hpp"
#include "tools/net.hpp"
#include "tools/stall_probe.hpp"
#include "tools/subcommands.hpp"

namespace fleetga::host {
namespace {

enum class style : std::uint8_t { libvirt, proxmox, pipelined };

std::string_view style_name(style s) {
  switch (s) {
    case style::libvirt: return "libvirt";
    case style::proxmox: return "proxmox";
    case style::pipelined: return "pipelined";
  }
  return "?";
}

enum class scenario : std::uint8_t { none, boot_storm, timeouts, disconnects, exec_poll, backup_window, credentials, file_read };

struct load_opts {
  std::vector<std::string> agents;
  std::string spawn;
  int spawn_count = 1;
  std::vector<style> styles{style::libvirt};
  int clients = 1;
  int depth = 64;
  double rate = 0;  // per agent, requests/s; 0 = flat out
  double duration = 0;
  double warmup = 0;
  long long requests = 0;
  double timeout = 5;
  double max_duration = 300;
  std::vector<mix_entry> mix;
  bool json = false;
  bool quiet = false;
  int threads = 1;
  bool ids = true;
  bool allow_unsafe = false;
  bool allow_freeze = false;
  double hold = 2;  // backup-window: seconds frozen per window
  double every = 0;  // backup-window / credentials: seconds between rounds (0: the scenario's default)
  std::string user;  // credentials: the guest account whose keys and password are rotated
  double cpu_limit = 0;  // spawned agents: percent of one CPU each (cgroup CFS quota); 0 = none
  std::string path;      // file-read: the guest file
  std::vector<long long> chunks{4096, 65536, 1048576};  // file-read: guest-file-read counts, by turns
  // exec-poll: bytes the guest command writes, by turns: none, 64 KiB, and one byte more than
  // the 16 MiB an agent keeps (clients.md 5.3: "output of 0, 64 KiB and 16 MiB (truncation flags)")
  std::vector<long long> outputs{0, 65536, (16LL << 20) + 1};
  std::int64_t stall_probe_ns = 0;  // --stall-probe: a CPU stall is a probe waking this late; 0 = off
  scenario scen = scenario::none;
  std::uint64_t seed = 0;
};

// ---- statistics -----------------------------------------------------------------------

struct cmd_stats {
  std::uint64_t count = 0, errors = 0, desyncs = 0, lost = 0;
  histogram lat;
  void merge(const cmd_stats& o) {
    count += o.count;
    errors += o.errors;
    desyncs += o.desyncs;
    lost += o.lost;
    lat.merge(o.lat);
  }
};

// Written by one thread only; the progress thread reads the atomics.
struct single_writer_counter {
  std::atomic<std::uint64_t> v{0};
  void add(std::uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

// A recorded request's time in flight, kept under --stall-probe to set aside the requests
// that were in flight during a CPU stall.
struct timed_request {
  std::uint32_t cmd;
  std::int64_t from_ns, to_ns;
};
constexpr std::size_t max_timed_requests = 4'000'000;  // per client thread (96 MB)

struct thread_stats {
  std::vector<cmd_stats> per_cmd;
  std::vector<timed_request> timed;  // --stall-probe only
  bool timed_full = false;
  single_writer_counter replies, errors, desyncs, lost;
  std::uint64_t connects = 0, stale = 0;
  // Scenario rounds completed (backup windows held and thawed, credential rotations read back,
  // files read to the end: rounds_of()), and the bytes file-read read.
  std::uint64_t rounds = 0, bytes_read = 0;
  std::uint64_t handshake_desyncs = 0;  // a sync handshake that saw only wrong ids, then timed out
};

struct agent_info {
  std::string socket;
  std::string label;
  pid_t pid = -1;        // spawned agents
  std::string statedir;  // spawned agents
  std::uint64_t replies = 0, lost = 0, desyncs = 0;
  std::vector<std::string> problems;
  bool gave_up = false;
  // A freeze was sent and no thaw has been answered since (backup-window): checked after the
  // run, when fleetga-host thaws the agent itself. Written by the agent's client thread, read
  // after the threads are joined.
  bool maybe_frozen = false;
  void problem(std::string s) {
    if (problems.size() < 20) problems.push_back(std::move(s));
  }
};

struct shared_run {
  const load_opts* o = nullptr;
  std::int64_t t0 = 0, stop_at = 0;
  std::int64_t record_from = 0;  // replies before this (--warmup) only count when they fail
  std::atomic<long long> budget{0};  // requests left when --requests was given
  bool limited = false;
  std::atomic<bool> stop{false};
  std::vector<std::string> cmd_names;  // mix index -> command; plus scenario extras
  bool should_stop() const { return stop.load(std::memory_order_relaxed) || now_ns() >= stop_at; }
  // Takes up to n requests from the budget; returns how many may be sent.
  long long take(long long n) {
    if (should_stop()) return 0;
    if (!limited) return n;
    long long left = budget.fetch_sub(n, std::memory_order_relaxed);
    if (left <= 0) {
      stop.store(true, std::memory_order_relaxed);
      return 0;
    }
    return std::min(left, n);
  }
};

// Commands the scenarios send, after the mix entries in the statistics.
constexpr std::string_view scenario_commands[] = {
    "guest-ping", "guest-fsfreeze-status", "guest-get-users", "guest-get-host-name", "guest-get-osinfo",
    "guest-get-timezone", "guest-network-get-interfaces", "guest-get-load", "guest-get-fsinfo", "guest-info",
    "guest-exec", "guest-exec-status", "guest-fsfreeze-freeze", "guest-fsfreeze-thaw",
    "guest-ssh-add-authorized-keys", "guest-ssh-get-authorized-keys", "guest-set-user-password",
    "guest-file-open", "guest-file-read", "guest-file-close",
    "resync (0xFF + guest-sync-delimited)", "reconnect + resync", "(reply nobody asked for)"};

// Scenarios whose rounds are counted (thread_stats::rounds): the report's JSON key, and the
// problem of a run that completed none. An empty key: nothing counted.
struct round_names {
  std::string_view json_key, none;
};
round_names rounds_of(scenario s) {
  switch (s) {
    case scenario::backup_window: return {"backup_windows", "backup-window: no window completed (freeze, hold, thaw)"};
    case scenario::credentials:
      return {"credential_rotations", "credentials: no rotation completed (keys reset and read back, password set)"};
    case scenario::file_read: return {"files_read", "file-read: no file read to the end"};
    case scenario::exec_poll: return {"execs", "exec-poll: no command ran to the end with its output checked"};
    default: return {};
  }
}

// ---- one client -----------------------------------------------------------------------

struct client {
  shared_run& run;
  thread_stats& st;
  agent_info& agent;
  style sty;
  int index;  // within the agent
  rng r;
  mix_picker picker;
  std::int64_t interval_ns = 0;  // per-client pacing; 0 = flat out
  std::int64_t next_send = 0;
  std::uint64_t seq = 0;

  client(shared_run& ru, thread_stats& s, agent_info& a, style y, int idx, std::uint64_t seed)
      : run(ru), st(s), agent(a), sty(y), index(idx), r(seed), picker(ru.o->mix) {}

  std::int64_t timeout_ns() const { return static_cast<std::int64_t>(run.o->timeout * 1e9); }
  // Connecting (and retrying a refused connect) never runs past the end of the run.
  std::int64_t connect_deadline() const {
    const std::int64_t now = now_ns();
    return std::min(now + timeout_ns(), std::max(run.stop_at, now + 200'000'000));
  }

  void record(std::size_t cmd, std::int64_t lat_ns, bool error, bool desync) {
    const std::int64_t now = run.record_from || run.o->stall_probe_ns ? now_ns() : 0;
    if (run.record_from && now < run.record_from) {
      if (desync) record_desync_only(cmd);
      return;
    }
    if (run.o->stall_probe_ns) {
      if (st.timed.size() < max_timed_requests) st.timed.push_back({static_cast<std::uint32_t>(cmd), now - lat_ns, now});
      else st.timed_full = true;
    }
    auto& c = st.per_cmd[cmd];
    ++c.count;
    c.lat.add(lat_ns);
    st.replies.add();
    ++agent.replies;
    if (error) {
      ++c.errors;
      st.errors.add();
    }
    if (desync) {
      ++c.desyncs;
      st.desyncs.add();
      ++agent.desyncs;
    }
  }
  void record_lost(std::size_t cmd, std::uint64_t n = 1) {
    st.per_cmd[cmd].lost += n;
    st.lost.add(n);
    agent.lost += n;
  }
  void record_desync_only(std::size_t cmd) {
    ++st.per_cmd[cmd].desyncs;
    st.desyncs.add();
    ++agent.desyncs;
  }

  // Waits for this client's next slot under --rate; false when the run is over.
  asio::awaitable<bool> pace(asio::steady_timer& t) {
    if (interval_ns > 0) {
      const std::int64_t now = now_ns();
      if (next_send == 0) next_send = now + static_cast<std::int64_t>(r.uniform() * static_cast<double>(interval_ns));
      if (next_send > now) {
        t.expires_at(to_tp(std::min(next_send, run.stop_at)));
        co_await t.async_wait(use_tuple);
      }
      next_send = std::max(next_send + interval_ns, now_ns() - interval_ns);
    }
    co_return run.take(1) > 0;
  }

  std::uint64_t fresh_id() { return (r.next() >> 2) | 1; }

  // Request text for a mix entry in the style's own form. `sync_id` gets the id of a sync
  // command (0 otherwise).
  void render(std::string& out, std::size_t cmd, std::uint64_t& sync_id, std::int64_t req_id) {
    const mix_entry& m = run.o->mix[cmd];
    const bool is_sync = m.command == "guest-sync" || m.command == "guest-sync-delimited";
    sync_id = 0;
    std::string args = m.args;
    if (is_sync) {
      sync_id = fresh_id();
      args = fmt::format("{{\"id\":{}}}", sync_id);
    }
    switch (sty) {
      case style::libvirt:
        if (args.empty()) fmt::format_to(std::back_inserter(out), "{{\"execute\":\"{}\"}}\n", m.command);
        else fmt::format_to(std::back_inserter(out), "{{\"execute\":\"{}\",\"arguments\":{}}}\n", m.command, args);
        return;
      case style::proxmox:
        // Perl hash order: either member may come first.
        if (args.empty()) args = "{}";
        if (r.next() & 1) fmt::format_to(std::back_inserter(out), "{{\"execute\":\"{}\",\"arguments\":{}}}\n", m.command, args);
        else fmt::format_to(std::back_inserter(out), "{{\"arguments\":{},\"execute\":\"{}\"}}\n", args, m.command);
        return;
      case style::pipelined:
        // Raw: no newline between requests.
        out += "{\"execute\":\"";
        out += m.command;
        out += '"';
        if (!args.empty()) {
          out += ",\"arguments\":";
          out += args;
        }
        if (req_id >= 0) fmt::format_to(std::back_inserter(out), ",\"id\":{}", req_id);
        out += '}';
        return;
    }
  }

  // Checks one reply to `cmd` that arrived `after_delim`; returns {error, desync}.
  std::pair<bool, bool> check(std::size_t cmd, std::string_view text, bool after_delim, std::uint64_t sync_id,
                              std::int64_t req_id) {
    const std::string& name = run.o->mix[cmd].command;
    const bool delimited = name == "guest-sync-delimited";
    auto info = classify_reply(text, sync_id != 0);
    bool desync = false;
    if (info.type == reply_info::kind::other) desync = true;
    if (sync_id != 0 && !(info.type == reply_info::kind::ret && info.ret_is_int &&
                          static_cast<std::uint64_t>(info.ret_int) == sync_id))
      desync = true;
    if (delimited != after_delim) desync = true;
    if (req_id >= 0 && (!info.has_id || info.id != req_id)) desync = true;
    return {info.type == reply_info::kind::error, desync};
  }

  // ---- libvirt: one connection, guest-sync once, lock-step ----------------------------
  asio::awaitable<bool> libvirt_sync(agent_conn& c) {
    if (auto ec = co_await c.connect(agent.socket, connect_deadline())) {
      agent.problem(fmt::format("connect: {}", ec_text(ec)));
      co_return false;
    }
    const std::int64_t deadline = now_ns() + timeout_ns();
    ++st.connects;
    // libvirt's literal format string, id = wall-clock milliseconds.
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
    std::string req = fmt::format("{{\"execute\":\"guest-sync\", \"arguments\":{{\"id\":{}}}}}\n", ms);
    if (auto ec = co_await c.write(req, deadline)) {
      agent.problem(fmt::format("guest-sync write: {}", ec_text(ec)));
      co_return false;
    }
    int wrong = 0;
    for (;;) {
      reply_item it;
      if (auto ec = co_await c.next(it, deadline)) {
        agent.problem(fmt::format("guest-sync: {}{}", ec_text(ec),
                                  wrong ? fmt::format(" ({} replies with a wrong id)", wrong) : std::string()));
        if (wrong) {
          ++st.handshake_desyncs;
          st.desyncs.add();
          ++agent.desyncs;
        }
        co_return false;
      }
      if (it.type != reply_item::kind::json) continue;
      auto info = classify_reply(it.text, true);
      if (info.type == reply_info::kind::ret && info.ret_is_int && info.ret_int == ms) co_return true;
      if (info.type == reply_info::kind::ret && info.ret_is_int) ++wrong;
      ++st.stale;  // "Ignoring delayed reply on sync"
    }
  }

  asio::awaitable<void> run_libvirt() {
    auto ex = co_await asio::this_coro::executor;
    agent_conn c(ex);
    asio::steady_timer pacer(ex);
    std::string req;
    int failures = 0;
    bool synced = false;
    while (!run.should_stop()) {
      if (!synced) {
        synced = co_await libvirt_sync(c);
        if (!synced) {
          if (++failures >= 3 || run.should_stop()) break;
          continue;
        }
      }
      if (!(co_await pace(pacer))) break;
      const std::size_t cmd = picker.pick(r);
      std::uint64_t sync_id;
      req.clear();
      render(req, cmd, sync_id, -1);
      const std::int64_t t = now_ns();
      const std::int64_t deadline = t + timeout_ns();
      auto ec = co_await c.write(req, deadline);
      bool after_delim = false;
      while (!ec) {
        reply_item it;
        ec = co_await c.next(it, deadline);
        if (ec) break;
        if (it.type == reply_item::kind::delim) {
          after_delim = true;
          continue;
        }
        if (it.type == reply_item::kind::junk) {
          record_desync_only(cmd);
          continue;
        }
        auto [err, desync] = check(cmd, it.text, after_delim, sync_id, -1);
        record(cmd, now_ns() - t, err, desync);
        failures = 0;
        break;
      }
      if (ec) {
        record_lost(cmd);
        agent.problem(fmt::format("{}: {}", run.o->mix[cmd].command, ec_text(ec)));
        c.close();
        synced = false;  // libvirt: inSync = false after a timeout, sync again
        if (++failures >= 3) break;
      }
    }
    if (failures >= 3) {
      agent.gave_up = true;
      agent.problem("gave up after 3 consecutive failures");
    }
    c.close();
  }

  // ---- proxmox: a connection per command, sync-delimited + command in one write --------
  asio::awaitable<void> run_proxmox() {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer pacer(ex);
    std::string req;
    int failures = 0;
    const int pid = static_cast<int>(::getpid());
    while (failures < 3 && !run.should_stop()) {
      if (!(co_await pace(pacer))) break;
      const std::size_t cmd = picker.pick(r);
      const std::int64_t t = now_ns();
      const std::int64_t deadline = t + timeout_ns();
      agent_conn c(ex);
      if (auto ec = co_await c.connect(agent.socket, connect_deadline())) {
        record_lost(cmd);
        agent.problem(fmt::format("connect: {}", ec_text(ec)));
        ++failures;
        continue;
      }
      ++st.connects;
      const std::uint64_t pve_id = std::stoull(fmt::format("{}0{}", pid % 100000, ++seq % 1000000000));
      req.clear();
      fmt::format_to(std::back_inserter(req), "{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{}}}}}\n", pve_id);
      std::uint64_t sync_id;
      render(req, cmd, sync_id, -1);
      auto ec = co_await c.write(req, deadline);
      // PVE: ^.*\xff(sync line)\n(command line)\n - everything before the 0xFF is stale.
      int stage = 0;  // 0: waiting for 0xFF, 1: sync reply, 2: command reply
      bool after_delim = false;
      bool sync_desync = false;
      while (!ec) {
        reply_item it;
        ec = co_await c.next(it, deadline);
        if (ec) break;
        if (it.type == reply_item::kind::delim) {
          if (stage == 0) stage = 1;
          else after_delim = true;
          continue;
        }
        if (it.type == reply_item::kind::junk) {
          if (stage > 0) sync_desync = true;
          continue;
        }
        if (stage == 0) {
          ++st.stale;
          continue;
        }
        if (stage == 1) {
          auto info = classify_reply(it.text, true);
          if (!(info.type == reply_info::kind::ret && info.ret_is_int)) {
            sync_desync = true;
          } else if (static_cast<std::uint64_t>(info.ret_int) != pve_id) {
            sync_desync = true;  // "got wrong command id"
          }
          stage = 2;
          continue;
        }
        auto [err, desync] = check(cmd, it.text, after_delim, sync_id, -1);
        record(cmd, now_ns() - t, err, desync || sync_desync);
        failures = 0;
        break;
      }
      if (ec) {
        record_lost(cmd);
        agent.problem(fmt::format("{}: {}", run.o->mix[cmd].command, ec_text(ec)));
        ++failures;
      }
      c.close();
    }
    if (failures >= 3) {
      agent.gave_up = true;
      agent.problem("gave up after 3 consecutive failures");
    }
  }

  // ---- pipelined: one connection, a window of requests in flight -----------------------
  struct inflight {
    std::uint32_t cmd;
    std::int64_t sent;
    std::uint64_t sync_id;
    std::int64_t req_id;
  };

  asio::awaitable<void> run_pipelined() {
    auto ex = co_await asio::this_coro::executor;
    int failures = 0;
    while (failures < 3 && !run.should_stop()) {
      agent_conn c(ex);
      if (auto ec = co_await c.connect(agent.socket, connect_deadline())) {
        agent.problem(fmt::format("connect: {}", ec_text(ec)));
        ++failures;
        continue;
      }
      ++st.connects;
      const std::uint64_t stale_before = st.stale;
      if (auto ec = co_await c.sync_delimited(fresh_id(), now_ns() + timeout_ns(), &st.stale)) {
        agent.problem(fmt::format("guest-sync-delimited: {}", ec_text(ec)));
        if (st.stale > stale_before) {
          ++st.handshake_desyncs;
          st.desyncs.add();
          ++agent.desyncs;
        }
        ++failures;
        continue;
      }
      const bool clean = co_await pipelined_session(c);
      c.close();
      if (clean) break;
      ++failures;
    }
    if (failures >= 3) {
      agent.gave_up = true;
      agent.problem("gave up after 3 consecutive failures");
    }
  }

  // One connection's worth of pipelining. True when it ended because the run is over.
  asio::awaitable<bool> pipelined_session(agent_conn& c) {
    auto ex = co_await asio::this_coro::executor;
    std::deque<inflight> q;
    bool writer_done = false, failed_conn = false, waiting = false;
    asio::steady_timer space(ex), pacer(ex), watchdog(ex);
    std::string why;
    const std::size_t depth = static_cast<std::size_t>(std::max(1, run.o->depth));

    auto fail = [&](std::string msg) {
      if (!failed_conn) {
        failed_conn = true;
        why = std::move(msg);
      }
      boost::system::error_code ig;
      c.sock.close(ig);
      space.cancel();
      pacer.cancel();
    };

    auto writer = [&]() -> asio::awaitable<void> {
      std::string batch;
      while (!failed_conn) {
        while (q.size() >= depth && !failed_conn) {
          waiting = true;
          space.expires_at(asio::steady_timer::time_point::max());
          co_await space.async_wait(use_tuple);
          waiting = false;
        }
        if (failed_conn) break;
        long long n = static_cast<long long>(depth - q.size());
        if (interval_ns > 0) {
          if (!(co_await pace(pacer))) break;
          n = 1;
        } else {
          n = run.take(n);
          if (n == 0) break;
        }
        batch.clear();
        const std::int64_t t = now_ns();
        for (long long i = 0; i < n; ++i) {
          const std::size_t cmd = picker.pick(r);
          std::uint64_t sync_id;
          const std::int64_t req_id = run.o->ids ? static_cast<std::int64_t>(++seq) : -1;
          render(batch, cmd, sync_id, req_id);
          q.push_back({static_cast<std::uint32_t>(cmd), t, sync_id, req_id});
        }
        auto [ec, w] = co_await asio::async_write(c.sock, asio::buffer(batch), use_tuple);
        if (ec) {
          fail(fmt::format("write: {}", ec_text(ec)));
          break;
        }
      }
      writer_done = true;
      if (q.empty()) {
        boost::system::error_code ig;
        c.sock.cancel(ig);  // wake the reader: nothing more will come
      }
    };

    auto reader = [&]() -> asio::awaitable<void> {
      bool after_delim = false;
      while (!failed_conn && !(writer_done && q.empty())) {
        reply_item it;
        // The watchdog bounds the wait; no per-read timer on the hot path.
        auto ec = co_await c.next(it, 0);
        if (ec && writer_done && q.empty()) break;
        if (ec) {
          fail(ec_text(ec));
          break;
        }
        if (it.type == reply_item::kind::delim) {
          after_delim = true;
          continue;
        }
        if (q.empty()) {
          // A reply nobody asked for: the reply count no longer matches.
          record_desync_only(sid("(reply nobody asked for)"));
          agent.problem("reply without a request in flight");
          continue;
        }
        inflight f = q.front();
        q.pop_front();
        if (it.type == reply_item::kind::junk) {
          record(f.cmd, now_ns() - f.sent, false, true);
        } else {
          auto [err, desync] = check(f.cmd, it.text, after_delim, f.sync_id, f.req_id);
          record(f.cmd, now_ns() - f.sent, err, desync);
        }
        after_delim = false;
        if (waiting && q.size() < depth) space.cancel();
      }
      boost::system::error_code ig;
      watchdog.cancel();
      space.cancel();
    };

    auto dog = [&]() -> asio::awaitable<void> {
      const std::int64_t tmo = timeout_ns();
      // Checks 20 times per timeout (10 ms .. 250 ms): cheap with thousands of clients.
      const auto period = std::chrono::nanoseconds(std::clamp<std::int64_t>(tmo / 20, 10'000'000, 250'000'000));
      while (!failed_conn && !(writer_done && q.empty())) {
        watchdog.expires_after(period);
        auto [ec] = co_await watchdog.async_wait(use_tuple);
        if (!q.empty() && now_ns() - q.front().sent > tmo) {
          fail(fmt::format("{}: no reply within {} s", run.o->mix[q.front().cmd].command, run.o->timeout));
          break;
        }
        if (ec && ec != asio::error::operation_aborted) break;
      }
    };

    // Three coroutines on this strand (the io_context is single-threaded): wait for all.
    int left = 3;
    asio::steady_timer all_done(ex);
    auto done = [&](std::exception_ptr) {
      if (--left == 0) all_done.cancel();
    };
    asio::co_spawn(ex, writer(), done);
    asio::co_spawn(ex, reader(), done);
    asio::co_spawn(ex, dog(), done);
    while (left > 0) {
      all_done.expires_at(asio::steady_timer::time_point::max());
      co_await all_done.async_wait(use_tuple);
    }
    if (failed_conn) {
      for (auto& f : q) record_lost(f.cmd);
      if (!q.empty()) agent.problem(fmt::format("{} ({} replies lost)", why, q.size()));
      else agent.problem(why);
      co_return false;
    }
    co_return true;
  }

  // ---- scenarios (clients.md §5.3) ----------------------------------------------------
  std::size_t sid(std::string_view name) const {
    for (std::size_t i = 0; i < std::size(scenario_commands); ++i)
      if (scenario_commands[i] == name) return run.o->mix.size() + i;
    return 0;
  }

  // One lock-step command on `c`: write, read its reply, record it under `id`. The reply text
  // goes to `reply` when given. False when the connection failed or the reply did not come.
  asio::awaitable<bool> op(agent_conn& c, std::size_t id, std::string_view command, std::string_view args,
                           std::string* reply = nullptr) {
    std::string req = "{\"execute\":\"";
    req += command;
    req += '"';
    if (!args.empty()) {
      req += ",\"arguments\":";
      req += args;
    }
    req += "}\n";
    const std::int64_t t = now_ns();
    const std::int64_t deadline = t + timeout_ns();
    auto ec = co_await c.write(req, deadline);
    while (!ec) {
      reply_item it;
      ec = co_await c.next(it, deadline);
      if (ec) break;
      if (it.type != reply_item::kind::json) {
        record_desync_only(id);
        continue;
      }
      auto info = classify_reply(it.text, false);
      record(id, now_ns() - t, info.type == reply_info::kind::error, info.type == reply_info::kind::other);
      if (reply) reply->assign(it.text);
      co_return true;
    }
    record_lost(id);
    agent.problem(fmt::format("{}: {}", command, ec_text(ec)));
    co_return false;
  }

  // Connect + 0xFF + guest-sync-delimited, timed as one "reconnect + resync" operation.
  asio::awaitable<bool> open(agent_conn& c) {
    const std::int64_t t = now_ns();
    if (auto ec = co_await c.connect(agent.socket, connect_deadline())) {
      agent.problem(fmt::format("connect: {}", ec_text(ec)));
      record_lost(sid("reconnect + resync"));
      co_return false;
    }
    ++st.connects;
    if (auto ec = co_await c.sync_delimited(fresh_id(), now_ns() + timeout_ns(), &st.stale)) {
      agent.problem(fmt::format("resync after connect: {}", ec_text(ec)));
      record(sid("reconnect + resync"), now_ns() - t, false, true);
      co_return false;
    }
    record(sid("reconnect + resync"), now_ns() - t, false, false);
    co_return true;
  }

  // Scenario replies are {"return": ...} or {"error": ...}, the member first (QEMU's writer).
  static bool is_error_reply(std::string_view reply) { return reply.rfind("{\"error\"", 0) == 0; }
  // `ok`, or else an agent problem naming the scenario's step and the reply it got.
  bool expect(bool ok, std::string_view scen, std::string_view what, std::string_view reply) {
    if (!ok) agent.problem(fmt::format("{}: {} answered {}", scen, what, reply.substr(0, 200)));
    return ok;
  }

  // Sleeps until `when` or the end of the run, in slices of at most 250 ms so that Ctrl-C
  // (run.stop) ends a scenario waiting minutes for its next round.
  asio::awaitable<void> sleep_until(asio::steady_timer& t, std::int64_t when) {
    when = std::min(when, run.stop_at);
    for (std::int64_t now = now_ns(); now < when && !run.should_stop(); now = now_ns()) {
      t.expires_at(to_tp(std::min(when, now + 250'000'000)));
      co_await t.async_wait(use_tuple);
    }
  }

  asio::awaitable<void> run_scenario() {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex);
    agent_conn c(ex);
    int failures = 0;
    long long round = 0, first_bytes = -1;  // file-read, exec-poll
    auto failed = [&]() {
      c.close();
      if (++failures >= 3) {
        agent.gave_up = true;
        agent.problem("gave up after 3 consecutive failures");
        return true;
      }
      return false;
    };
    // Spread the clients' first bursts over a second unless it's a storm.
    if (run.o->scen != scenario::boot_storm) co_await sleep_until(t, now_ns() + static_cast<std::int64_t>(r.uniform() * 1e9));
    while (!run.should_stop() && run.take(1) > 0) {
      switch (run.o->scen) {
        case scenario::boot_storm: {
          // Agent (re)connects: every KubeVirt worker fires at once (one write, 9 commands),
          // then vdsm's guest-info every 5 s and IaC polling interfaces every second, for a
          // "boot" of 10 s; then the guest reboots (disconnect) and it starts again.
          if (!(co_await open(c))) {
            if (failed()) co_return;
            continue;
          }
          static constexpr std::string_view burst[] = {
              "guest-fsfreeze-status", "guest-get-users", "guest-get-host-name", "guest-get-osinfo",
              "guest-get-timezone", "guest-network-get-interfaces", "guest-get-load", "guest-get-fsinfo", "guest-info"};
          std::string req;
          for (auto b : burst) fmt::format_to(std::back_inserter(req), "{{\"execute\":\"{}\"}}\n", b);
          const std::int64_t t0 = now_ns();
          auto ec = co_await c.write(req, t0 + timeout_ns());
          std::size_t got = 0;
          while (!ec && got < std::size(burst)) {
            reply_item it;
            ec = co_await c.next(it, t0 + timeout_ns());
            if (ec) break;
            if (it.type != reply_item::kind::json) continue;
            auto info = classify_reply(it.text, false);
            record(sid(burst[got]), now_ns() - t0, info.type == reply_info::kind::error, info.type == reply_info::kind::other);
            ++got;
          }
          if (ec) {
            for (; got < std::size(burst); ++got) record_lost(sid(burst[got]));
            agent.problem(fmt::format("boot burst: {}", ec_text(ec)));
            if (failed()) co_return;
            continue;
          }
          bool ok_run = true;
          for (int sec = 0; sec < 10 && ok_run && !run.should_stop(); ++sec) {
            co_await sleep_until(t, t0 + (sec + 1) * 1'000'000'000LL);
            if (run.should_stop()) break;
            ok_run = co_await op(c, sid("guest-network-get-interfaces"), "guest-network-get-interfaces", "");
            if (ok_run && sec % 5 == 4) ok_run = co_await op(c, sid("guest-info"), "guest-info", "");
          }
          c.close();
          if (!ok_run && failed()) co_return;
          if (ok_run) failures = 0;
          break;
        }
        case scenario::timeouts: {
          // A client gives up on a reply (timeout mid-reply), then resynchronises on the same
          // connection: 0xFF + guest-sync-delimited must skip the late replies, and the next
          // command must get its own reply.
          if (!c.is_open() && !(co_await open(c))) {
            if (failed()) co_return;
            continue;
          }
          std::string req = "{\"execute\":\"guest-get-fsinfo\"}\n{\"execute\":\"guest-info\"}\n{\"execute\":\"guest-get-fsinfo\"}";
          if (auto ec = co_await c.write(req, now_ns() + timeout_ns())) {
            agent.problem(fmt::format("write: {}", ec_text(ec)));
            if (failed()) co_return;
            continue;
          }
          const std::int64_t t0 = now_ns();
          const std::uint64_t stale_before = st.stale;
          if (auto ec = co_await c.sync_delimited(fresh_id(), t0 + timeout_ns(), &st.stale)) {
            record(sid("resync (0xFF + guest-sync-delimited)"), now_ns() - t0, false, true);
            agent.problem(fmt::format("resync: {}", ec_text(ec)));
            if (failed()) co_return;
            continue;
          }
          // Our 0xFF landed mid-request (the third one, unterminated... it is complete, so all
          // three replies are stale; the 0xFF's own error is not counted by sync_delimited).
          record(sid("resync (0xFF + guest-sync-delimited)"), now_ns() - t0, false, st.stale - stale_before != 3);
          std::string reply;
          if (!(co_await op(c, sid("guest-ping"), "guest-ping", "", &reply))) {
            if (failed()) co_return;
            continue;
          }
          if (reply != "{\"return\": {}}") record_desync_only(sid("guest-ping"));
          failures = 0;
          co_await sleep_until(t, now_ns() + 10'000'000);
          break;
        }
        case scenario::disconnects: {
          // The host disconnects abruptly: after sending (agent still writing), or in the
          // middle of a request (the agent's parser keeps the partial object: the next
          // client's 0xFF must flush it).
          {
            agent_conn d(ex);
            if (auto ec = co_await d.connect(agent.socket, connect_deadline())) {
              agent.problem(fmt::format("connect: {}", ec_text(ec)));
              if (failed()) co_return;
              continue;
            }
            ++st.connects;
            std::string req = (r.next() & 1) ? "{\"execute\":\"guest-info\"}\n{\"execute\":\"guest-get-fsinfo\"}\n"
                                             : "{\"execute\":\"guest-info\"}\n{\"execute\":\"guest-get-hos";
            (void)co_await d.write(req, now_ns() + timeout_ns());
            d.close();
          }
          if (!(co_await open(c))) {
            if (failed()) co_return;
            continue;
          }
          std::string reply;
          bool good = co_await op(c, sid("guest-ping"), "guest-ping", "", &reply);
          if (good && reply != "{\"return\": {}}") record_desync_only(sid("guest-ping"));
          c.close();
          if (!good && failed()) co_return;
          if (good) failures = 0;
          co_await sleep_until(t, now_ns() + 10'000'000);
          break;
        }
        case scenario::exec_poll: {
          // Old Ansible (clients.md 5.3): guest-exec with the output captured, then
          // guest-exec-status in a busy loop with no sleep until it exited. The command writes
          // --output bytes (the size changes every round); the last status must say exit code 0,
          // carry min(size, 16 MiB) bytes of out-data (none for none) and out-truncated exactly
          // when the output was more than the agent keeps (wire spec: 16 MiB, the rest discarded).
          if (!c.is_open() && !(co_await open(c))) {
            if (failed()) co_return;
            continue;
          }
          const long long size = run.o->outputs[static_cast<std::size_t>(round++) % run.o->outputs.size()];
          std::string reply;
          if (!(co_await op(c, sid("guest-exec"), "guest-exec",
                            fmt::format("{{\"path\":\"/bin/sh\",\"arg\":[\"-c\",\"head -c {} /dev/zero\"],"
                                        "\"capture-output\":true}}", size),
                            &reply))) {
            if (failed()) co_return;
            continue;
          }
          simdjson::dom::parser p;
          std::int64_t pid = 0;
          simdjson::dom::element e;
          if (p.parse(reply).get(e) || e["return"]["pid"].get(pid)) {
            // An error reply is counted already (e.g. guest-exec blocked or missing).
            if (reply.find("\"error\"") == std::string::npos)
              agent.problem(fmt::format("guest-exec: unexpected reply {}", reply.substr(0, 200)));
            co_await sleep_until(t, now_ns() + 1'000'000'000);  // e.g. exec blocked: don't spin
            break;
          }
          const std::string args = fmt::format("{{\"pid\":{}}}", pid);
          bool exited = false;
          for (int polls = 0; polls < 100000 && !run.should_stop(); ++polls) {
            if (!(co_await op(c, sid("guest-exec-status"), "guest-exec-status", args, &reply))) break;
            if (is_error_reply(reply)) break;
            exited = reply.find("\"exited\": true") != std::string::npos;
            if (exited) break;
          }
          if (exited) {
            constexpr long long kept_max = 16LL << 20;
            const long long kept = std::min(size, kept_max);
            const auto at = reply.find("\"out-data\": \"");
            long long got = 0;
            if (at != std::string::npos) {
              const auto end = reply.find('"', at + 13);
              const long long b64 = end == std::string::npos ? -1 : static_cast<long long>(end - at - 13);
              got = b64 < 0 ? -1 : b64 / 4 * 3 - (b64 >= 1 && reply[end - 1] == '=') - (b64 >= 2 && reply[end - 2] == '=');
            }
            const bool truncated = reply.find("\"out-truncated\": true") != std::string::npos;
            const bool flagged = reply.find("\"out-truncated\": ") != std::string::npos;  // with any out-data
            const bool exit0 = reply.find("\"exitcode\": 0") != std::string::npos;
            if (exit0 && got == kept && truncated == (size > kept_max) && flagged == (size > 0))
              ++st.rounds;
            else
              agent.problem(fmt::format("exec-poll: a {}-byte output came back as {} bytes (expected {}), out-truncated {}, "
                                        "exit code 0 {}: {}",
                                        size, got, kept, flagged ? (truncated ? "true" : "false") : "absent",
                                        exit0 ? "yes" : "no", reply.substr(0, 120)));
          }
          failures = 0;
          break;
        }
        case scenario::backup_window: {
          // PVE backup (clients.md 5.3): ping, fsfreeze-status, freeze, hold --hold seconds
          // while pollers keep asking fsfreeze-status and users every 0.2 s, thaw; a window
          // every max(10 s, hold + 5 s). A real agent must say "frozen" all through the hold
          // (not e.g. auto-thaw under the backup), answer users or refuse them as disabled, and
          // say "thawed" after the thaw: anything else is an agent problem.
          if (!c.is_open() && !(co_await open(c))) {
            if (failed()) co_return;
            continue;
          }
          const std::int64_t t0 = now_ns();
          const auto hold_ns = static_cast<std::int64_t>(run.o->hold * 1e9);
          std::string reply;
          auto check = [&](bool ok, std::string_view what) { return expect(ok, "backup window", what, reply); };
          auto is_error = [&] { return is_error_reply(reply); };
          auto says = [&](std::string_view state) { return reply == fmt::format("{{\"return\": \"{}\"}}", state); };
          // One co_await per statement: GCC 12 evaluates the operand of a later co_await in an
          // && chain before the earlier one resumes.
          bool good = co_await op(c, sid("guest-ping"), "guest-ping", "");
          if (good) good = co_await op(c, sid("guest-fsfreeze-status"), "guest-fsfreeze-status", "");
          if (good) agent.maybe_frozen = true;
          if (good) good = co_await op(c, sid("guest-fsfreeze-freeze"), "guest-fsfreeze-freeze", "", &reply);
          if (good) good = check(!is_error(), "guest-fsfreeze-freeze");
          // A freeze of nothing (no real filesystem: virtiofs, 9p, NFS root) returns 0 and
          // leaves the agent thawed: then "thawed" during the hold is right.
          const bool froze_some = good && reply != "{\"return\": 0}";
          const std::int64_t frozen_at = now_ns();
          bool held = good;
          while (good && now_ns() < frozen_at + hold_ns) {
            co_await sleep_until(t, std::min(now_ns() + 200'000'000, frozen_at + hold_ns));
            if (run.should_stop()) break;
            good = co_await op(c, sid("guest-fsfreeze-status"), "guest-fsfreeze-status", "", &reply);
            if (good) good = check(!(froze_some && says("thawed")) && !is_error(), "guest-fsfreeze-status while frozen");
            if (good && run.should_stop()) break;
            if (good) good = co_await op(c, sid("guest-get-users"), "guest-get-users", "", &reply);
            if (good)
              good = check(!is_error() || reply.find("\"CommandNotFound\"") != std::string::npos,
                           "guest-get-users while frozen");
          }
          held = held && good && now_ns() >= frozen_at + hold_ns;
          // Always thaw, even after a failure above or when the run ends mid-hold: after a
          // failed request on a fresh connection (0xFF + sync drops the late replies of this
          // one), twice more if the thaw itself fails. What is still frozen after that is
          // thawed once more after the run (agent.maybe_frozen).
          bool thawed = false;
          for (int attempt = 0; attempt < 3 && !thawed; ++attempt) {
            if (!good || attempt > 0) c.close();
            if (!c.is_open() && !(co_await open(c))) continue;
            thawed = co_await op(c, sid("guest-fsfreeze-thaw"), "guest-fsfreeze-thaw", "", &reply);
            if (thawed) thawed = check(!is_error(), "guest-fsfreeze-thaw");
          }
          if (thawed) {
            agent.maybe_frozen = false;
            thawed = co_await op(c, sid("guest-fsfreeze-status"), "guest-fsfreeze-status", "", &reply);
            if (thawed) thawed = check(!says("frozen"), "guest-fsfreeze-status after the thaw");
          }
          good = thawed && good;
          if (!good && failed()) co_return;
          if (good) failures = 0;
          // A window counts when it held the freeze for the whole --hold (not cut by the end).
          if (good && held) ++st.rounds;
          const std::int64_t period = run.o->every > 0 ? static_cast<std::int64_t>(run.o->every * 1e9)
                                                       : std::max<std::int64_t>(10'000'000'000LL, hold_ns + 5'000'000'000LL);
          co_await sleep_until(t, t0 + period);
          break;
        }
        case scenario::credentials: {
          // Credential rotation (clients.md 5.3, KubeVirt's access credentials): a fresh key
          // with reset=true, read back (must be exactly that key), a fresh password; every
          // --every seconds (default 300 s, KubeVirt's period).
          if (!c.is_open() && !(co_await open(c))) {
            if (failed()) co_return;
            continue;
          }
          const std::int64_t t0 = now_ns();
          std::string reply, user_json;
          append_json_string(user_json, run.o->user);
          auto check = [&](bool ok, std::string_view what) { return expect(ok, "credentials", what, reply); };
          auto is_error = [&] { return is_error_reply(reply); };
          const std::string key = fmt::format("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{:016x}{:016x} fleetga-host-rotation",
                                              r.next(), r.next());
          std::string pw, pw_b64;
          // Not from the run's rng: --seed must not make the passwords reproducible.
          protocol::base64_encode(fmt::format("fh-{:016x}{:016x}", random_seed(), random_seed()), pw_b64);
          // One co_await per statement (see backup-window).
          bool good = co_await op(c, sid("guest-ping"), "guest-ping", "");
          if (good)
            good = co_await op(c, sid("guest-ssh-add-authorized-keys"), "guest-ssh-add-authorized-keys",
                               fmt::format("{{\"username\":{},\"keys\":[\"{}\"],\"reset\":true}}", user_json, key), &reply);
          if (good) good = check(!is_error(), "guest-ssh-add-authorized-keys");
          if (good)
            good = co_await op(c, sid("guest-ssh-get-authorized-keys"), "guest-ssh-get-authorized-keys",
                               fmt::format("{{\"username\":{}}}", user_json), &reply);
          // An agent that did not reset (old keys still there) or lost the key fails here; a
          // reply without "keys" (fleetga-host's responder) is only checked for errors.
          if (good)
            good = check(!is_error() && (reply.find("\"keys\"") == std::string::npos ||
                                         reply.find(fmt::format("\"keys\": [\"{}\"]", key)) != std::string::npos),
                         "guest-ssh-get-authorized-keys after the reset");
          if (good)
            good = co_await op(c, sid("guest-set-user-password"), "guest-set-user-password",
                               fmt::format("{{\"username\":{},\"password\":\"{}\",\"crypted\":false}}", user_json, pw_b64),
                               &reply);
          if (good) good = check(!is_error(), "guest-set-user-password");
          if (!good && failed()) co_return;
          if (good) {
            failures = 0;
            ++st.rounds;
          }
          co_await sleep_until(t, t0 + static_cast<std::int64_t>((run.o->every > 0 ? run.o->every : 300) * 1e9));
          break;
        }
        case scenario::file_read: {
          // Automation (clients.md 5.2/5.3: Ansible's 64 KiB, Proxmox's 1 MiB, libvirt's 4 KiB
          // default): open, guest-file-read chunks until eof, close; the chunk size changes
          // every round. Each reply is checked (count = the decoded base64's length) and
          // every round of a client must read as many bytes as its first.
          if (!c.is_open() && !(co_await open(c))) {
            if (failed()) co_return;
            continue;
          }
          const long long chunk = run.o->chunks[static_cast<std::size_t>(round++) % run.o->chunks.size()];
          std::string reply, path_json;
          append_json_string(path_json, run.o->path);
          auto is_error = [&] { return is_error_reply(reply); };
          bool good = co_await op(c, sid("guest-file-open"), "guest-file-open",
                                  fmt::format("{{\"path\":{},\"mode\":\"r\"}}", path_json), &reply);
          long long handle = -1;
          if (good && std::sscanf(reply.c_str(), "{\"return\": %lld}", &handle) != 1) {
            good = expect(false, "file-read", "guest-file-open", reply);
            if (!is_error()) {
              if (failed()) co_return;
              continue;
            }
            // The file can't be opened (an error reply, counted): don't spin on it.
            co_await sleep_until(t, now_ns() + 1'000'000'000);
            break;
          }
          std::uint64_t bytes = 0;
          bool eof = false;
          const std::string args = fmt::format("{{\"handle\":{},\"count\":{}}}", handle, chunk);
          while (good && !eof && !run.should_stop()) {
            good = co_await op(c, sid("guest-file-read"), "guest-file-read", args, &reply);
            if (!good) break;
            long long count = -1;
            const auto cpos = reply.find("\"count\": ");
            const auto bpos = reply.find("\"buf-b64\": \"");
            const auto bend = bpos == std::string::npos ? bpos : reply.find('"', bpos + 12);
            if (cpos != std::string::npos) count = std::atoll(reply.c_str() + cpos + 9);
            if (is_error() || count < 0 || count > chunk || bend == std::string::npos ||
                static_cast<long long>(bend - bpos - 12) != (count + 2) / 3 * 4) {
              good = expect(false, "file-read", fmt::format("guest-file-read (count {})", chunk), reply);
              break;
            }
            bytes += static_cast<std::uint64_t>(count);
            eof = reply.find("\"eof\": true") != std::string::npos;
          }
          // Always close what was opened (fresh connection if this one failed).
          if (!c.is_open() || !good) {
            c.close();
            (void)co_await open(c);
          }
          if (c.is_open())
            (void)co_await op(c, sid("guest-file-close"), "guest-file-close", fmt::format("{{\"handle\":{}}}", handle));
          if (good && eof) {
            if (first_bytes < 0) first_bytes = static_cast<long long>(bytes);
            if (static_cast<long long>(bytes) != first_bytes) {
              agent.problem(fmt::format("file-read: read {} bytes in {}-byte chunks, {} in the first round", bytes, chunk,
                                        first_bytes));
              good = false;
            } else {
              ++st.rounds;
              st.bytes_read += bytes;
            }
          }
          if (!good && failed()) co_return;
          if (good) failures = 0;
          if (run.o->every > 0) co_await sleep_until(t, now_ns() + static_cast<std::int64_t>(run.o->every * 1e9));
          break;
        }
        case scenario::none:
          co_return;
      }
    }
    c.close();
  }

  asio::awaitable<void> run_client() {
    if (run.o->scen != scenario::none) {
      co_await run_scenario();
      co_return;
    }
    switch (sty) {
      case style::libvirt: co_await run_libvirt(); break;
      case style::proxmox: co_await run_proxmox(); break;
      case style::pipelined: co_await run_pipelined(); break;
    }
  }
};

// After the run: connect, 0xFF + guest-sync-delimited, guest-fsfreeze-thaw, within 3 timeouts.
// Returns the line for the agent's problems.
std::string final_thaw(const std::string& socket, double timeout_s) {
  asio::io_context io(1);
  std::string result = "the run ended with a freeze not thawed; fleetga-host's thaw after the run: no answer";
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    agent_conn c(co_await asio::this_coro::executor);
    const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(3 * timeout_s * 1e9);
    auto ec = co_await c.connect(socket, deadline);
    if (!ec) ec = co_await c.sync_delimited(random_seed(), deadline);
    if (!ec) ec = co_await c.write("{\"execute\":\"guest-fsfreeze-thaw\"}\n", deadline);
    reply_item it;
    if (!ec) ec = co_await c.next(it, deadline);
    result = ec ? fmt::format("the run ended with a freeze not thawed; fleetga-host's thaw after the run failed: {}",
                              ec_text(ec))
                : fmt::format("the run ended with a freeze not thawed; fleetga-host thawed it after the run: {}",
                              it.text.substr(0, 200));
    c.close();
  }, asio::detached);
  io.run();
  return result;
}

// ---- spawning agents ------------------------------------------------------------------

std::string substitute(std::string cmd, const std::string& sock, const std::string& dir) {
  auto rep = [&](const std::string& from, const std::string& to) {
    for (std::size_t p = 0; (p = cmd.find(from, p)) != std::string::npos; p += to.size()) cmd.replace(p, from.size(), to);
  };
  rep("{sock}", sock);
  rep("{statedir}", dir);
  return cmd;
}

void spawn_agents(const load_opts& o, std::vector<agent_info>& agents, cpu_cgroups* cg) {
  for (int i = 0; i < o.spawn_count; ++i) {
    // The child joins its group before exec: the agent is throttled from its first instruction.
    const std::string procs = cg ? cg->add_limited(o.cpu_limit) : std::string();
    char tmpl[] = "/tmp/fleetga-host.XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    agent_info a;
    a.statedir = tmpl;
    a.socket = a.statedir + "/sock";
    a.label = fmt::format("agent {} ({})", i, a.socket);
    const std::string cmd = "exec " + substitute(o.spawn, a.socket, a.statedir);
    const std::string log = a.statedir + "/agent.log";
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::setpgid(0, 0);
      FILE* f = std::freopen(log.c_str(), "w", stdout);
      if (f) ::dup2(::fileno(stdout), 2);
      if (cg && !cpu_cgroups::join(procs.c_str())) {
        std::fprintf(stderr, "fleetga-host: cannot join %s\n", procs.c_str());
        ::_exit(126);
      }
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    a.pid = pid;
    agents.push_back(std::move(a));
  }
  // Ready when the socket file exists (the connect itself retries while it starts listening).
  const std::int64_t deadline = now_ns() + 10'000'000'000;
  for (auto& a : agents) {
    struct stat sb;
    while (::stat(a.socket.c_str(), &sb) != 0) {
      int status;
      if (::waitpid(a.pid, &status, WNOHANG) == a.pid) {
        a.pid = -1;
        throw std::runtime_error(fmt::format("{} exited at start (log: {}/agent.log)", a.label, a.statedir));
      }
      if (now_ns() > deadline) throw std::runtime_error(fmt::format("{} did not create its socket in 10 s", a.label));
      ::usleep(10000);
    }
  }
}

void stop_agents(std::vector<agent_info>& agents, bool report) {
  for (auto& a : agents) {
    if (a.pid <= 0) continue;
    int status;
    if (::waitpid(a.pid, &status, WNOHANG) == a.pid) {
      if (report) a.problem(fmt::format("agent process {} died during the run ({})", a.pid,
                                        WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status))
                                                            : fmt::format("exit {}", WEXITSTATUS(status))));
      a.pid = -1;
      continue;
    }
    ::kill(-a.pid, SIGTERM);  // its process group (setpgid in the child): also what it started
  }
  const std::int64_t deadline = now_ns() + 5'000'000'000;
  for (auto& a : agents) {
    if (a.pid <= 0) continue;
    int status;
    while (::waitpid(a.pid, &status, WNOHANG) == 0) {
      if (now_ns() > deadline) {
        ::kill(-a.pid, SIGKILL);
        ::waitpid(a.pid, &status, 0);
        break;
      }
      ::usleep(10000);
    }
    a.pid = -1;
  }
  for (auto& a : agents)
    if (!a.statedir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(a.statedir, ec);
    }
}

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted.store(true); }

// ---- report ---------------------------------------------------------------------------

double us(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }

// ---- options ---------------------------------------------------------------------------

// "N[,N...]", each N in [lo, hi] (else usage_error(range)).
std::vector<long long> parse_counts(const std::string& v, const std::string& opt, long long lo, long long hi,
                                    const std::string& range) {
  std::vector<long long> out;
  for (std::size_t p = 0; p <= v.size();) {
    const auto q = v.find(',', p);
    const long long n = parse_count(v.substr(p, q == std::string::npos ? std::string::npos : q - p), opt);
    if (n < lo || n > hi) throw usage_error(range);
    out.push_back(n);
    if (q == std::string::npos) break;
    p = q + 1;
  }
  return out;
}

}  // namespace

int cmd_load(int argc, char** argv) {
  load_opts o;
  std::string mix_file, command, command_args, scenario_name;
  bool styles_given = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--agent") o.agents.push_back(val());
    else if (a == "--stats") {}  // CPU per reply is always in the report
    else if (a == "--spawn") o.spawn = val();
    else if (a == "--agents") o.spawn_count = static_cast<int>(parse_count(val(), a));
    else if (a == "--style") {
      if (!styles_given) o.styles.clear();
      styles_given = true;
      std::string v = val();
      std::size_t p = 0;
      while (p <= v.size()) {
        auto q = v.find(',', p);
        std::string s = v.substr(p, q == std::string::npos ? std::string::npos : q - p);
        if (s == "libvirt") o.styles.push_back(style::libvirt);
        else if (s == "proxmox" || s == "pve") o.styles.push_back(style::proxmox);
        else if (s == "pipelined" || s == "raw") o.styles.push_back(style::pipelined);
        else throw usage_error("--style: libvirt, proxmox or pipelined, not '" + s + "'");
        if (q == std::string::npos) break;
        p = q + 1;
      }
    } else if (a == "--clients") o.clients = static_cast<int>(parse_count(val(), a));
    else if (a == "--depth") o.depth = static_cast<int>(parse_count(val(), a));
    else if (a == "--rate") o.rate = parse_seconds(val(), a);
    else if (a == "--duration") o.duration = parse_seconds(val(), a);
    else if (a == "--warmup") o.warmup = parse_seconds(val(), a);
    else if (a == "--requests") o.requests = parse_count(val(), a);
    else if (a == "--timeout") o.timeout = parse_seconds(val(), a);
    else if (a == "--max-duration") o.max_duration = parse_seconds(val(), a);
    else if (a == "--mix") mix_file = val();
    else if (a == "--command") command = val();
    else if (a == "--args") command_args = val();
    else if (a == "--json") o.json = true;
    else if (a == "--quiet" || a == "-q") o.quiet = true;
    else if (a == "--threads") o.threads = static_cast<int>(parse_count(val(), a));
    else if (a == "--no-ids") o.ids = false;
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(parse_count(val(), a));
    else if (a == "--allow-unsafe") o.allow_unsafe = true;
    else if (a == "--allow-freeze") o.allow_freeze = true;
    else if (a == "--hold") o.hold = parse_seconds(val(), a);
    else if (a == "--every") o.every = parse_seconds(val(), a);
    else if (a == "--user") o.user = val();
    else if (a == "--cpu-limit") o.cpu_limit = parse_seconds(val(), a);
    else if (a == "--stall-probe") {
      const long long us = parse_count(val(), a);
      if (us < 100 || us > 1'000'000) throw usage_error("--stall-probe: microseconds, 100 to 1000000");
      o.stall_probe_ns = us * 1000;
    }
    else if (a == "--path") o.path = val();
    else if (a == "--output") o.outputs = parse_counts(val(), a, 0, 64ll << 20, "--output: bytes, 0 to 64 MiB");
    else if (a == "--chunk") o.chunks = parse_counts(val(), a, 1, 48ll << 20, "--chunk: guest-file-read counts, 1 to 48 MiB");
    else if (a == "--scenario") {
      std::string s = val();
      scenario_name = s;
      if (s == "boot-storm") o.scen = scenario::boot_storm;
      else if (s == "timeouts") o.scen = scenario::timeouts;
      else if (s == "disconnects") o.scen = scenario::disconnects;
      else if (s == "exec-poll") o.scen = scenario::exec_poll;
      else if (s == "backup-window") o.scen = scenario::backup_window;
      else if (s == "credentials") o.scen = scenario::credentials;
      else if (s == "file-read") o.scen = scenario::file_read;
      else throw usage_error("--scenario: backup-window, boot-storm, credentials, exec-poll, file-read, timeouts or disconnects");
    } else if (a == "-h" || a == "--help") {
      std::cout << load_usage;
      return ok;
    } else throw usage_error("unknown option " + a);
  }
  if (o.agents.empty() == o.spawn.empty()) throw usage_error("give --agent SOCKET (repeatable) or --spawn 'CMD {sock} {statedir}'");
  if (o.clients < 1 || o.threads < 1 || o.depth < 1 || o.spawn_count < 1) throw usage_error("counts must be >= 1");
  if (o.duration == 0 && o.requests == 0) o.duration = 10;
  if (o.duration == 0 || o.duration > o.max_duration) o.duration = o.max_duration;  // hard cap
  if (!command.empty()) {
    std::string args;
    if (!command_args.empty()) {
      simdjson::dom::parser p;
      simdjson::dom::element e;
      if (p.parse(command_args).get(e) || !e.is_object()) throw usage_error("--args must be a JSON object");
      print_json(args, e, false);
    }
    o.mix = {{command, args, 1}};
  } else if (!mix_file.empty()) {
    o.mix = load_mix_file(mix_file);
  } else {
    o.mix = default_mix();
  }
  for (auto& m : o.mix) {
    if (is_no_reply_command(m.command)) throw usage_error(m.command + " answers nothing on success: not usable in a load mix");
    if (is_unsafe_command(m.command) && !o.allow_unsafe)
      throw usage_error(m.command + " changes the system the agent runs on: add --allow-unsafe if you mean it");
    // The name goes into the request as it is: nothing but a command name may pass (a quote
    // would let a second request, of any command, through the checks below).
    if (!protocol::is_plain_command_name(m.command)) throw usage_error(fmt::format("'{}' is not a command name", m.command));
    // A mix ends on any command: a freeze in it may be left standing, so only for agents
    // fleetga-host started (backup-window always thaws, and may run against --agent).
    if (m.command.rfind("guest-fsfreeze-freeze", 0) == 0 && (!o.allow_freeze || o.spawn.empty()))
      throw usage_error("freeze in a mix only runs with --allow-freeze against --spawn'ed agents");
  }
  if (o.scen == scenario::backup_window && !o.allow_freeze)
    throw usage_error("backup-window freezes the agent's filesystems: add --allow-freeze, and point it at a "
                      "test guest or --spawn'ed agents only");
  if (o.hold <= 0 || o.hold > 3600) throw usage_error("--hold: seconds, more than 0 and at most 3600");
  if (o.cpu_limit != 0 && (o.cpu_limit < 1 || o.cpu_limit > 100000))
    throw usage_error("--cpu-limit: percent of one CPU, at least 1 (the kernel's smallest quota is 1 ms per 100 ms)");
  if (o.cpu_limit > 0 && o.spawn.empty())
    throw usage_error("--cpu-limit throttles the agents fleetga-host starts: only with --spawn");
  if ((o.scen == scenario::backup_window || o.scen == scenario::credentials) && o.clients > 1)
    throw usage_error("backup-window and credentials act on the guest's state: one client per agent (--clients 1)");
  if (o.scen == scenario::file_read && (o.path.empty() || !o.allow_unsafe))
    throw usage_error("file-read opens a guest file (read-only) with guest-file-open: give --path PATH and --allow-unsafe");
  if (o.scen == scenario::exec_poll && !o.allow_unsafe)
    throw usage_error("exec-poll runs /bin/true where the agent runs: add --allow-unsafe");
  if (o.scen == scenario::credentials) {
    if (!o.allow_unsafe)
      throw usage_error("credentials replaces a guest account's SSH keys and password: add --allow-unsafe, and "
                        "point it at a test guest or --spawn'ed agents only");
    if (o.user.empty()) throw usage_error("credentials needs --user NAME (the guest account to rotate)");
  }

  // A socket per client plus the spawned agents' files: lift the soft descriptor limit.
  if (struct rlimit rl; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  // Ctrl-C / SIGTERM end the run early, with the report (and spawned agents stopped).
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::optional<cpu_cgroups> cg;  // destroyed after the agents are stopped (below)
  std::vector<agent_info> agents;
  if (!o.spawn.empty()) {
    try {
      if (o.cpu_limit > 0) cg.emplace();
      spawn_agents(o, agents, cg ? &*cg : nullptr);
    } catch (...) {
      stop_agents(agents, false);
      throw;
    }
  } else {
    for (std::size_t i = 0; i < o.agents.size(); ++i) {
      agent_info a;
      a.socket = o.agents[i];
      a.label = o.agents[i];
      agents.push_back(std::move(a));
    }
  }

  shared_run run;
  run.o = &o;
  for (auto& m : o.mix) run.cmd_names.push_back(m.command);
  for (auto n : scenario_commands) run.cmd_names.emplace_back(n);
  run.limited = o.requests > 0;
  run.budget = o.requests;
  const int nthreads = std::min<int>(o.threads, static_cast<int>(agents.size() * static_cast<std::size_t>(o.clients)));
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<std::unique_ptr<thread_stats>> stats;
  for (int t = 0; t < nthreads; ++t) {
    ios.push_back(std::make_unique<asio::io_context>(1));
    stats.push_back(std::make_unique<thread_stats>());
    stats.back()->per_cmd.resize(run.cmd_names.size());
  }
  rng seeder(o.seed ? o.seed : random_seed());
  std::vector<std::unique_ptr<client>> clients;
  for (std::size_t ai = 0; ai < agents.size(); ++ai) {
    const int t = static_cast<int>(ai % static_cast<std::size_t>(nthreads));  // an agent's clients share a thread
    const style sty = o.styles[ai % o.styles.size()];
    for (int k = 0; k < o.clients; ++k) {
      auto c = std::make_unique<client>(run, *stats[t], agents[ai], sty, k, seeder.next());
      if (o.rate > 0) c->interval_ns = static_cast<std::int64_t>(1e9 * o.clients / o.rate);
      clients.push_back(std::move(c));
    }
  }

  std::optional<stall_probe> probe;
  if (o.stall_probe_ns) probe.emplace(o.stall_probe_ns);
  struct rusage ru0;
  ::getrusage(RUSAGE_SELF, &ru0);
  run.t0 = now_ns();
  if (o.warmup > 0) run.record_from = run.t0 + static_cast<std::int64_t>(o.warmup * 1e9);
  run.stop_at = std::max(run.t0, run.record_from) + static_cast<std::int64_t>(o.duration * 1e9);
  for (std::size_t ai = 0, ci = 0; ai < agents.size(); ++ai)
    for (int k = 0; k < o.clients; ++k, ++ci) {
      auto& io = *ios[ai % static_cast<std::size_t>(nthreads)];
      asio::co_spawn(io, clients[ci]->run_client(), asio::detached);
    }
  std::vector<std::thread> threads;
  for (int t = 0; t < nthreads; ++t) threads.emplace_back([&, t] { ios[t]->run(); });

  // Progress, interrupts and the hard stop (the run must end by itself whatever the agents do).
  const std::int64_t hard_stop = run.stop_at + static_cast<std::int64_t>((o.timeout + 3) * 1e9);
  bool hard_stopped = false;
  std::int64_t last_progress = run.t0;
  std::uint64_t last_replies = 0;
  for (;;) {
    bool all_done = true;
    for (auto& io : ios)
      if (!io->stopped()) all_done = false;
    if (all_done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::int64_t now = now_ns();
    if (g_interrupted.load()) run.stop.store(true);
    if (now > hard_stop && !hard_stopped) {
      hard_stopped = true;
      for (auto& io : ios) io->stop();
    }
    if (!o.quiet && now - last_progress >= 1'000'000'000) {
      std::uint64_t rep = 0, err = 0, des = 0, lost = 0;
      for (auto& s : stats) {
        rep += s->replies.get();
        err += s->errors.get();
        des += s->desyncs.get();
        lost += s->lost.get();
      }
      if (now - run.t0 > 2'000'000'000 || o.duration > 2)
        std::cerr << fmt::format("[{:6.1f}s] {} replies, {:.0f}/s, errors {}, desyncs {}, lost {}\n",
                                 static_cast<double>(now - run.t0) / 1e9, rep,
                                 static_cast<double>(rep - last_replies) * 1e9 / static_cast<double>(now - last_progress),
                                 err, des, lost);
      last_progress = now;
      last_replies = rep;
    }
  }
  for (auto& th : threads) th.join();
  const stall_timeline no_stalls;
  const stall_timeline& stalls = probe ? probe->finish() : no_stalls;
  // A backup window cut off by the hard stop (or whose thaws all failed) may have left an
  // agent frozen: thaw it now, on a fresh connection, and say so.
  for (auto& a : agents)
    if (a.maybe_frozen) a.problem(final_thaw(a.socket, o.timeout));
  const std::int64_t elapsed = now_ns() - std::max(run.t0, run.record_from);
  struct rusage ru1;
  ::getrusage(RUSAGE_SELF, &ru1);
  auto secs = [](const timeval& a, const timeval& b) {
    return static_cast<double>(b.tv_sec - a.tv_sec) + static_cast<double>(b.tv_usec - a.tv_usec) / 1e6;
  };
  // Under --stall-probe this includes the probe threads (reported on their own as well).
  const double user_s = secs(ru0.ru_utime, ru1.ru_utime), sys_s = secs(ru0.ru_stime, ru1.ru_stime);
  if (!o.spawn.empty()) stop_agents(agents, true);
  const cpu_throttling throttled = cg ? cg->stats() : cpu_throttling{};

  // Merge.
  std::vector<cmd_stats> per_cmd(run.cmd_names.size());
  cmd_stats total;
  std::uint64_t connects = 0, stale = 0, handshake_desyncs = 0, rounds = 0, bytes_read = 0;
  for (auto& s : stats) {
    handshake_desyncs += s->handshake_desyncs;
    rounds += s->rounds;
    bytes_read += s->bytes_read;
    for (std::size_t i = 0; i < per_cmd.size(); ++i) per_cmd[i].merge(s->per_cmd[i]);
    connects += s->connects;
    stale += s->stale;
  }
  // Mix entries may repeat a command (different arguments): report by command name.
  std::map<std::string, cmd_stats> by_name;
  for (std::size_t i = 0; i < per_cmd.size(); ++i)
    if (per_cmd[i].count || per_cmd[i].lost || per_cmd[i].desyncs) by_name[run.cmd_names[i]].merge(per_cmd[i]);
  for (auto& [n, s] : by_name) total.merge(s);
  total.desyncs += handshake_desyncs;
  // --stall-probe: the same figures without the requests in flight during a CPU stall.
  std::map<std::string, cmd_stats> outside;
  cmd_stats outside_total;
  std::uint64_t in_stalls = 0;
  bool timed_full = false;
  std::int64_t stalled_ns = 0, longest_stall = 0, stalls_recorded = 0;
  if (probe) {
    for (auto& s : stats) {
      timed_full = timed_full || s->timed_full;
      for (const auto& t : s->timed) {
        if (stalls.overlaps(t.from_ns, t.to_ns)) {
          ++in_stalls;
          continue;
        }
        auto& c = outside[run.cmd_names[t.cmd]];
        ++c.count;
        c.lat.add(t.to_ns - t.from_ns);
      }
    }
    for (auto& [n, s] : outside) outside_total.merge(s);
    const std::int64_t from = std::max(run.t0, run.record_from);
    for (const auto& st : stalls.stalls()) {
      if (st.to_ns < from || st.from_ns > run.stop_at) continue;  // the run's recorded part only
      ++stalls_recorded;
      stalled_ns += st.to_ns - st.from_ns;
      longest_stall = std::max(longest_stall, st.to_ns - st.from_ns);
    }
  }
  std::vector<std::string> problems;
  bool any_agent_problem = false;
  for (auto& a : agents)
    for (auto& p : a.problems) {
      problems.push_back(fmt::format("{}: {}", a.label, p));
      any_agent_problem = true;
    }
  if (hard_stopped) problems.push_back("hard stop: clients still busy at duration + timeout + 3 s; report is partial");
  const round_names counted = rounds_of(o.scen);
  if (!counted.json_key.empty() && rounds == 0) {
    problems.emplace_back(counted.none);
    any_agent_problem = true;
  }
  const double el_s = static_cast<double>(elapsed) / 1e9;
  const bool good = total.desyncs == 0 && total.lost == 0 && !any_agent_problem && !hard_stopped && total.count > 0;
  std::string styles;
  for (auto s : o.styles) styles += std::string(styles.empty() ? "" : ",") + std::string(style_name(s));
  if (o.scen != scenario::none) styles = "scenario " + scenario_name;

  std::string out;
  if (o.json) {
    out += "{";
    fmt::format_to(std::back_inserter(out), "\"styles\": \"{}\", \"agents\": {}, \"clients_per_agent\": {}, \"rate_per_agent\": {}, "
                   "\"depth\": {}, \"duration_s\": {:.3f}, \"replies\": {}, \"throughput\": {:.1f}, \"connects\": {}, \"stale_skipped\": {}, \"handshake_desyncs\": {}, ",
                   styles, agents.size(), o.clients, o.rate, o.depth, el_s, total.count,
                   static_cast<double>(total.count) / el_s, connects, stale, handshake_desyncs);
    if (!counted.json_key.empty()) fmt::format_to(std::back_inserter(out), "\"{}\": {}, ", counted.json_key, rounds);
    if (o.scen == scenario::backup_window) fmt::format_to(std::back_inserter(out), "\"hold_s\": {}, ", o.hold);
    if (o.scen == scenario::file_read)
      fmt::format_to(std::back_inserter(out), "\"bytes_read\": {}, \"read_bytes_per_s\": {:.0f}, ", bytes_read,
                     static_cast<double>(bytes_read) / el_s);
    if (cg)
      fmt::format_to(std::back_inserter(out),
                     "\"cpu_limit\": {{\"percent\": {}, \"cgroup\": \"{}\", \"periods\": {}, \"throttled_periods\": {}, "
                     "\"throttled_ms\": {:.1f}}}, ",
                     o.cpu_limit, cg->version(), throttled.periods, throttled.throttled_periods, throttled.throttled_ms);
    auto obj = [&](const cmd_stats& s) {
      return fmt::format("{{\"count\": {}, \"errors\": {}, \"desyncs\": {}, \"lost\": {}, \"p50_us\": {:.2f}, \"p99_us\": {:.2f}, "
                         "\"p999_us\": {:.2f}, \"max_us\": {:.2f}, \"mean_us\": {:.2f}, \"rate\": {:.1f}, "
                         "\"over_1s\": {}, \"over_3s\": {}, \"over_5s\": {}, \"hist_ns\": {}}}",
                         s.count, s.errors, s.desyncs, s.lost, us(s.lat.quantile(0.5)), us(s.lat.quantile(0.99)),
                         us(s.lat.quantile(0.999)), us(s.lat.max()), s.lat.mean() / 1000.0,
                         static_cast<double>(s.count) / el_s, s.lat.count_at_least(1'000'000'000),
                         s.lat.count_at_least(3'000'000'000), s.lat.count_at_least(5'000'000'000), s.lat.json_buckets());
    };
    // "commands": {name: {...}, ...}, "total": {...}
    auto commands_and_total = [&](const std::map<std::string, cmd_stats>& per, const cmd_stats& all) {
      out += "\"commands\": {";
      bool first = true;
      for (auto& [n, s] : per) {
        if (!first) out += ", ";
        first = false;
        append_json_string(out, n);
        out += ": " + obj(s);
      }
      out += "}, \"total\": " + obj(all);
    };
    commands_and_total(by_name, total);
    fmt::format_to(std::back_inserter(out), ", \"cpu\": {{\"user_s\": {:.3f}, \"sys_s\": {:.3f}, \"ns_per_reply\": {:.1f}}}",
                   user_s, sys_s, total.count ? (user_s + sys_s) * 1e9 / static_cast<double>(total.count) : 0.0);
    if (probe) {
      fmt::format_to(std::back_inserter(out),
                     ", \"stall_probe\": {{\"cpus\": {}, \"threshold_us\": {}, \"stalls\": {}, \"stalled_ms\": {:.3f}, "
                     "\"longest_us\": {:.1f}, \"requests_in_stalls\": {}, \"request_log_full\": {}, \"probe_cpu_s\": {:.3f}, "
                     "\"outside_stalls\": {{",
                     probe->cpus(), o.stall_probe_ns / 1000, stalls_recorded, static_cast<double>(stalled_ns) / 1e6,
                     us(longest_stall), in_stalls, timed_full ? "true" : "false", probe->cpu_s());
      commands_and_total(outside, outside_total);
      out += "}}";
    }
    out += ", \"problems\": [";
    for (std::size_t i = 0; i < problems.size(); ++i) {
      if (i) out += ", ";
      append_json_string(out, problems[i]);
    }
    out += "], \"per_agent\": [";
    for (std::size_t i = 0; i < agents.size(); ++i) {
      const auto& a = agents[i];
      if (i) out += ", ";
      out += "{\"agent\": ";
      append_json_string(out, a.socket);
      fmt::format_to(std::back_inserter(out), ", \"replies\": {}, \"lost\": {}, \"desyncs\": {}, \"problems\": {}, \"gave_up\": {}}}",
                     a.replies, a.lost, a.desyncs, a.problems.size(), a.gave_up ? "true" : "false");
    }
    fmt::format_to(std::back_inserter(out), "], \"ok\": {}}}\n", good ? "true" : "false");
  } else {
    fmt::format_to(std::back_inserter(out), "load: {} agent(s), style {}, {} client(s)/agent, {}, {:.2f} s: {} replies, {:.0f}/s\n",
                   agents.size(), styles, o.clients, o.rate > 0 ? fmt::format("{}/s per agent", o.rate) : std::string("flat out"),
                   el_s, total.count, static_cast<double>(total.count) / el_s);
    fmt::format_to(std::back_inserter(out), "{:<30} {:>9} {:>7} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10}\n", "command", "count",
                   "errors", "desyncs", "lost", "p50", "p99", "p999", "max", "rate/s");
    auto row = [&](const std::string& n, const cmd_stats& s) {
      fmt::format_to(std::back_inserter(out), "{:<30} {:>9} {:>7} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10.1f}\n", n, s.count,
                     s.errors, s.desyncs, s.lost, fmt_ns(s.lat.quantile(0.5)), fmt_ns(s.lat.quantile(0.99)),
                     fmt_ns(s.lat.quantile(0.999)), fmt_ns(s.lat.max()), static_cast<double>(s.count) / el_s);
    };
    for (auto& [n, s] : by_name)
      if (s.count || s.lost || s.desyncs) row(n, s);
    row("TOTAL", total);
    fmt::format_to(std::back_inserter(out), "connections {}, stale replies skipped {}, handshake desyncs {}\n", connects, stale,
                   handshake_desyncs);
    if (o.scen == scenario::backup_window)
      fmt::format_to(std::back_inserter(out), "backup windows completed (freeze, {} s frozen, thaw): {}\n", o.hold, rounds);
    if (o.scen == scenario::credentials)
      fmt::format_to(std::back_inserter(out), "credential rotations completed (keys reset and read back, password set): {}\n",
                     rounds);
    if (o.scen == scenario::exec_poll)
      fmt::format_to(std::back_inserter(out), "commands run to the end, exit code and output checked: {}\n", rounds);
    if (o.scen == scenario::file_read)
      fmt::format_to(std::back_inserter(out), "files read to the end: {}, {} bytes, {:.1f} MB/s\n", rounds, bytes_read,
                     static_cast<double>(bytes_read) / el_s / 1e6);
    if (cg)
      fmt::format_to(std::back_inserter(out),
                     "agents limited to {} % of a CPU each ({}): throttled in {} of {} periods, {:.0f} ms in all\n",
                     o.cpu_limit, cg->version(), throttled.throttled_periods, throttled.periods, throttled.throttled_ms);
    if (cg || total.lat.count_at_least(1'000'000'000))
      fmt::format_to(std::back_inserter(out), "replies slower than the clients' deadlines 1 s / 3 s / 5 s: {} / {} / {}\n",
                     total.lat.count_at_least(1'000'000'000), total.lat.count_at_least(3'000'000'000),
                     total.lat.count_at_least(5'000'000'000));
    if (probe) {
      fmt::format_to(std::back_inserter(out),
                     "CPU stalls (a probe thread pinned to each of {} CPUs woke {} or more late): {}, {:.1f} ms in all, "
                     "longest {}; requests in flight during one: {}{}; the probe's CPU: {:.3f} s\n",
                     probe->cpus(), fmt_ns(o.stall_probe_ns), stalls_recorded, static_cast<double>(stalled_ns) / 1e6,
                     fmt_ns(longest_stall), in_stalls, timed_full ? " (request log full: later requests not checked)" : "",
                     probe->cpu_s());
      if (in_stalls) {
        out += "the same without them:\n";
        for (auto& [n, c] : outside) row(n, c);
        row("TOTAL", outside_total);
      }
    }
    fmt::format_to(std::back_inserter(out), "fleetga-host CPU: {:.3f} s user + {:.3f} s sys = {:.0f} ns per reply\n", user_s,
                   sys_s, total.count ? (user_s + sys_s) * 1e9 / static_cast<double>(total.count) : 0.0);
    for (auto& p : problems) out += "problem: " + p + "\n";
    out += good ? "result: OK\n" : "result: FAILED\n";
  }
  std::cout << out << std::flush;
  if (total.count == 0 && total.desyncs == 0 && any_agent_problem) return unreachable;
  return good ? ok : failed;
}

}  // namespace fleetga::host
