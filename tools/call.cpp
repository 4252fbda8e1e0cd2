// fleetga-host call SOCKET COMMAND [ARGS-JSON]: one command with the documented handshake,
// like `virsh qemu-agent-command`.
#include <cstdio>
#include <iostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <fmt/format.h>

#include "tools/net.hpp"
#include "tools/subcommands.hpp"

namespace fleetga::host {
namespace {

struct call_opts {
  std::string socket, command, args;
  double timeout = 5;
  bool raw = false;
  bool no_reply = false;
  bool no_sync = false;
  bool unsafe_ok = true;
};

asio::awaitable<int> run_call(const call_opts& o) {
  auto ex = co_await asio::this_coro::executor;
  agent_conn c(ex);
  const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(o.timeout * 1e9);
  if (auto ec = co_await c.connect(o.socket, deadline)) {
    std::cerr << fmt::format("fleetga-host: {}: cannot connect: {}\n", o.socket, ec_text(ec));
    co_return unreachable;
  }
  if (!o.no_sync) {
    if (auto ec = co_await c.sync_delimited(random_seed(), deadline)) {
      std::cerr << fmt::format("fleetga-host: {}: guest-sync-delimited failed: {}\n", o.socket, ec_text(ec));
      co_return unreachable;
    }
  }
  std::string req = "{\"execute\": ";
  append_json_string(req, o.command);
  if (!o.args.empty()) {
    req += ", \"arguments\": ";
    req += o.args;
  }
  req += "}\n";
  if (auto ec = co_await c.write(req, deadline)) {
    std::cerr << fmt::format("fleetga-host: {}: write failed: {}\n", o.socket, ec_text(ec));
    co_return unreachable;
  }
  const bool expect_none = o.no_reply || is_no_reply_command(o.command);
  // A command that answers nothing on success still answers an error: wait a little for one.
  const std::int64_t wait_until = expect_none ? std::min(deadline, now_ns() + 1'000'000'000) : deadline;
  for (;;) {
    reply_item it;
    auto ec = co_await c.next(it, wait_until);
    if (ec && expect_none && (ec == asio::error::timed_out || ec == asio::error::eof ||
                              ec == asio::error::connection_reset)) {
      std::cerr << fmt::format("fleetga-host: {}: no reply ({} sends none on success)\n", o.command, o.command);
      co_return ok;
    }
    if (ec) {
      std::cerr << fmt::format("fleetga-host: {}: no reply to {}: {}\n", o.socket, o.command, ec_text(ec));
      co_return unreachable;
    }
    if (it.type != reply_item::kind::json) continue;  // a delimiter or noise: not our reply
    simdjson::dom::parser p;
    simdjson::dom::element e;
    if (p.parse(it.text.data(), it.text.size(), true).get(e) || !e.is_object()) {
      std::cerr << fmt::format("fleetga-host: {}: reply is not a JSON object: {}\n", o.socket, it.text);
      co_return failed;
    }
    simdjson::dom::element err;
    if (!e["error"].get(err)) {
      std::string_view cls = "?", desc = "";
      if (err["class"].get(cls)) cls = "?";
      if (err["desc"].get(desc)) desc = "";
      std::cerr << fmt::format("fleetga-host: {}: {}: {}\n", o.command, cls, desc);
      if (o.raw) std::cout << it.text << '\n';
      co_return failed;
    }
    if (o.raw) {
      std::cout << it.text << '\n';
    } else {
      std::string out;
      print_json(out, e, true);
      std::cout << out << '\n';
    }
    co_return ok;
  }
}

}  // namespace

int cmd_call(int argc, char** argv) {
  call_opts o;
  std::vector<std::string> pos;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--timeout") o.timeout = parse_seconds(val(), a);
    else if (a == "--raw") o.raw = true;
    else if (a == "--pretty") o.raw = false;
    else if (a == "--no-reply") o.no_reply = true;
    else if (a == "--no-sync") o.no_sync = true;
    else if (a == "-h" || a == "--help") {
      std::cout << call_usage;
      return ok;
    } else if (a.size() > 1 && a[0] == '-' && pos.size() < 2) throw usage_error("unknown option " + a);
    else pos.push_back(a);
  }
  if (pos.size() < 2 || pos.size() > 3) throw usage_error("call needs SOCKET COMMAND [ARGS-JSON]");
  o.socket = pos[0];
  o.command = pos[1];
  if (pos.size() == 3) {
    simdjson::dom::parser p;
    simdjson::dom::element e;
    if (p.parse(pos[2]).get(e) || !e.is_object()) throw usage_error("ARGS-JSON must be a JSON object");
    print_json(o.args, e, false);
  }
  asio::io_context io;
  int rc = failed;
  asio::co_spawn(io, run_call(o), [&](std::exception_ptr ep, int r) {
    if (ep) std::rethrow_exception(ep);
    rc = r;
  });
  io.run();
  return rc;
}

}  // namespace fleetga::host
