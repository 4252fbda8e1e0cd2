// fleetga-host call SOCKET COMMAND [ARGS-JSON]: one command with the documented handshake,
// like `virsh qemu-agent-command`.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

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

// Text from the guest on its way to the operator's terminal: C0 controls, DEL and the C1
// controls (U+0080..U+009F, C2 80..C2 9F in UTF-8) become \uXXXX, a byte that is not part of
// well-formed UTF-8 becomes \xNN; the rest (printable ASCII, other UTF-8) stays. Always, not
// only when stdout/stderr is a tty: the output is the same in a pipe, a log or a terminal
// viewer (less -R, tmux scrollback), and only --raw prints the agent's bytes. `keep_newline`:
// a '\n' stays (the pretty reply's own layout; a newline inside a string is already \n).
std::string for_terminal(std::string_view s, bool keep_newline = false) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      if ((c < 0x20 && !(keep_newline && c == '\n')) || c == 0x7F) out += fmt::format("\\u{:04X}", c);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence (no overlong forms, surrogates or values above U+10FFFF)?
    std::size_t len = 0;
    std::uint32_t cp = 0, min = 0;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1Fu, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0Fu, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07u, min = 0x10000;
    bool ok = len != 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xC0u) != 0x80u) ok = false;
      else cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!ok) {
      out += fmt::format("\\x{:02X}", c);
      ++i;
    } else if (cp <= 0x9F) {  // C1
      out += fmt::format("\\u{:04X}", cp);
      i += len;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

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
      std::cerr << fmt::format("fleetga-host: {}: reply is not a JSON object: {}\n", o.socket,
                               for_terminal(it.text));
      co_return failed;
    }
    simdjson::dom::element err;
    if (!e["error"].get(err)) {
      std::string_view cls = "?", desc = "";
      if (err["class"].get(cls)) cls = "?";
      if (err["desc"].get(desc)) desc = "";
      std::cerr << fmt::format("fleetga-host: {}: {}: {}\n", for_terminal(o.command), for_terminal(cls),
                               for_terminal(desc));
      if (o.raw) std::cout << it.text << '\n';
      co_return failed;
    }
    if (o.raw) {
      std::cout << it.text << '\n';
    } else {
      std::string out;
      print_json(out, e, true);  // C0 inside strings is escaped already; DEL and C1 are not
      std::cout << for_terminal(out, true) << '\n';
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
