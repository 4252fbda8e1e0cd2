// fleetga-host record --listen SOCKET --agent SOCKET --out FILE: a transparent proxy that
// forwards bytes unchanged both ways and writes the session as JSON Lines (session.hpp).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "tools/net.hpp"
#include "tools/session.hpp"
#include "tools/subcommands.hpp"

namespace fleetga::host {
namespace {

struct recorder {
  std::FILE* out = nullptr;
  std::int64_t t0 = now_ns();
  std::uint64_t lines = 0;
  void write(int conn, std::string_view dir, const byte_splitter::item& it) {
    std::string l = session_line(static_cast<double>(now_ns() - t0) / 1e9, conn, dir, it);
    l += '\n';
    std::fwrite(l.data(), 1, l.size(), out);
    std::fflush(out);  // a killed recorder still leaves every line it saw
    ++lines;
  }
  void event(int conn, std::string_view what) {
    std::string l = fmt::format("{{\"t\": {:.6f}, \"conn\": {}, \"dir\": \"{}\"}}\n",
                                static_cast<double>(now_ns() - t0) / 1e9, conn, what);
    std::fwrite(l.data(), 1, l.size(), out);
    std::fflush(out);
  }
};

asio::awaitable<void> pump(unix_socket& from, unix_socket& to, recorder& rec, int conn, std::string_view dir) {
  std::vector<char> buf(64 * 1024);
  byte_splitter sp;
  std::vector<byte_splitter::item> items;
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), use_tuple);
    if (ec) break;
    items.clear();
    sp.feed(std::string_view(buf.data(), n), items);
    for (auto& it : items) rec.write(conn, dir, it);
    auto [wec, w] = co_await asio::async_write(to, asio::buffer(buf.data(), n), use_tuple);
    if (wec) break;
  }
  items.clear();
  sp.flush(items);
  for (auto& it : items) rec.write(conn, dir, it);
  boost::system::error_code ig;
  from.close(ig);
  to.close(ig);
}

asio::awaitable<void> proxy(unix_socket host, std::string agent_path, recorder& rec, int conn, double timeout, int* active,
                            bool once, asio::io_context& io) {
  auto ex = co_await asio::this_coro::executor;
  agent_conn agent(ex);
  ++*active;
  rec.event(conn, "open");
  if (auto ec = co_await agent.connect(agent_path, now_ns() + static_cast<std::int64_t>(timeout * 1e9))) {
    std::cerr << fmt::format("fleetga-host record: connection {}: cannot connect to the agent {}: {}\n", conn, agent_path,
                             ec_text(ec));
  } else {
    agent.sock.non_blocking(false);
    int left = 2;
    asio::steady_timer done(ex);
    auto fin = [&](std::exception_ptr) {
      if (--left == 0) done.cancel();
    };
    asio::co_spawn(ex, pump(host, agent.sock, rec, conn, "h2a"), fin);
    asio::co_spawn(ex, pump(agent.sock, host, rec, conn, "a2h"), fin);
    while (left > 0) {
      done.expires_at(asio::steady_timer::time_point::max());
      co_await done.async_wait(use_tuple);
    }
  }
  rec.event(conn, "close");
  boost::system::error_code ig;
  host.close(ig);
  if (--*active == 0 && once) io.stop();
}

}  // namespace

int cmd_record(int argc, char** argv) {
  std::string listen, agent, out;
  double timeout = 5, duration = 0;
  bool once = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--listen") listen = val();
    else if (a == "--agent") agent = val();
    else if (a == "--out") out = val();
    else if (a == "--timeout") timeout = parse_seconds(val(), a);
    else if (a == "--duration") duration = parse_seconds(val(), a);
    else if (a == "--once") once = true;
    else if (a == "-h" || a == "--help") {
      std::cout << "usage: fleetga-host record --listen SOCKET --agent SOCKET --out FILE [--once] [--duration S]\n"
                   "  Listens on SOCKET; every host connection gets its own connection to the agent; bytes\n"
                   "  pass unchanged and each JSON value (or non-JSON run, as b64) is written to FILE as\n"
                   "  {\"t\", \"conn\", \"dir\": \"h2a\"|\"a2h\", \"json\"|\"b64\"} lines, plus open/close events.\n"
                   "  Stops on SIGINT/SIGTERM, after --duration, or (--once) when the first client leaves.\n";
      return ok;
    } else throw usage_error("unknown option " + a);
  }
  if (listen.empty() || agent.empty() || out.empty()) throw usage_error("record needs --listen SOCKET --agent SOCKET --out FILE");
  recorder rec;
  rec.out = std::fopen(out.c_str(), "w");
  if (!rec.out) throw std::runtime_error(fmt::format("{}: cannot write", out));
  asio::io_context io(1);
  ::unlink(listen.c_str());
  asio::local::stream_protocol::acceptor acc(io, asio::local::stream_protocol::endpoint(listen));
  int active = 0;
  int conns = 0;
  asio::signal_set sigs(io, SIGINT, SIGTERM);
  sigs.async_wait([&](boost::system::error_code, int) { io.stop(); });
  asio::steady_timer limit(io);
  if (duration > 0) {
    limit.expires_after(std::chrono::nanoseconds(static_cast<std::int64_t>(duration * 1e9)));
    limit.async_wait([&](boost::system::error_code ec) {
      if (!ec) io.stop();
    });
  }
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    for (;;) {
      auto [ec, s] = co_await acc.async_accept(use_tuple);
      if (ec) co_return;
      asio::co_spawn(io, proxy(std::move(s), agent, rec, ++conns, timeout, &active, once, io), asio::detached);
    }
  }, asio::detached);
  io.run();
  std::fclose(rec.out);
  ::unlink(listen.c_str());
  std::cerr << fmt::format("fleetga-host record: {} connection(s), {} lines written to {}\n", conns, rec.lines, out);
  return ok;
}

}  // namespace fleetga::host
