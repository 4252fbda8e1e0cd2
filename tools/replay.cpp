// fleetga-host replay FILE --agent SOCKET: plays the host side of a recorded (or hand-written)
// session against an agent and checks every reply against the recorded one: exactly, or by
// shape (same members, same JSON types) for commands whose values change between calls.
#include <deque>
#include <fstream>
#include <iostream>
#include <map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "protocol/base64.hpp"
#include "tools/net.hpp"
#include "tools/session.hpp"
#include "tools/subcommands.hpp"

// GCC 12 false positive on coroutine frames with a class-specific operator new/delete
// (GCC bug 109224), triggered by the coroutine lambdas below.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace fleetga::host {
namespace {

struct request_item {
  int line;
  double t;
  std::string bytes;      // what is sent (sync ids rewritten)
  std::string command;    // execute, or "" for non-JSON bytes
  int expect = 0;         // replies this request should cause (FIFO attribution)
  std::int64_t sync_id = -1;  // rewritten guest-sync id, expected back as `return`
  // guest-file-open handles and guest-exec pids differ from run to run: requests that use one
  // (arguments.handle / arguments.pid) get the value the agent gave this time.
  std::string map_key;        // "handle" or "pid" when the arguments carry one
  std::int64_t map_old = 0;
};

struct reply_expect {
  int line;
  bool is_json;
  std::string bytes;  // minified JSON or raw bytes
  int request = -1;   // index into the connection's requests
};

struct connection {
  int conn;
  std::vector<request_item> reqs;
  std::vector<reply_expect> replies;
};

struct replay_opts {
  std::string file, agent;
  bool pipeline = false;
  double speed = 0;
  double timeout = 5;
  bool shape_all = false;
  bool quiet = false;
  bool allow_unsafe = false, allow_freeze = false;
};

// Replies a non-JSON host item causes in a QEMU agent: one per 0xFF, one per run of other
// non-blank bytes (a stray-byte or invalid-keyword error). Only used to attribute replies.
int garbage_replies(std::string_view b) {
  int n = 0;
  bool in_run = false;
  for (unsigned char c : b) {
    if (c == 0xFF) {
      ++n;
      in_run = false;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      in_run = false;
    } else if (!in_run) {
      ++n;
      in_run = true;
    }
  }
  return n;
}

// Minified JSON of `req` with arguments.<key> replaced (sync ids, handles, pids).
std::string rewrite_arg(simdjson::dom::object req, std::string_view key, std::int64_t id) {
  std::string out = "{";
  bool first = true;
  for (auto [k, v] : req) {
    if (!first) out += ",";
    first = false;
    append_json_string(out, k);
    out += ":";
    simdjson::dom::object args;
    if (k == "arguments" && !v.get(args)) {
      out += "{";
      bool f2 = true;
      for (auto [ak, av] : args) {
        if (!f2) out += ",";
        f2 = false;
        append_json_string(out, ak);
        out += ":";
        if (ak == key) out += fmt::format("{}", id);
        else print_json(out, av, false);
      }
      out += "}";
    } else {
      print_json(out, v, false);
    }
  }
  out += "}";
  return out;
}

std::vector<connection> load_session(const std::string& path, std::vector<std::string>& errors, rng& r) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(fmt::format("{}: cannot open", path));
  std::vector<connection> conns;
  std::map<int, std::size_t> index;
  std::map<int, std::vector<int>> fifo;  // per connection: request indexes still owed replies
  std::map<int, std::vector<int>> left;  // per connection and request: replies still owed
  simdjson::dom::parser p, p2;
  std::string line;
  int no = 0;
  auto bad = [&](const std::string& why) { errors.push_back(fmt::format("{}:{}: {}", path, no, why)); };
  while (std::getline(f, line)) {
    ++no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    simdjson::dom::element e;
    if (p.parse(line).get(e)) {
      bad("not valid JSON");
      continue;
    }
    if (!e.is_object()) {
      bad("not a JSON object");
      continue;
    }
    double t = 0;
    if (simdjson::dom::element te; !e["t"].get(te)) {
      if (!te.is_number()) {
        bad("\"t\" must be a number");
        continue;
      }
      t = te.get<double>().value_unsafe();
    }
    std::int64_t conn = 1;
    if (simdjson::dom::element ce; !e["conn"].get(ce) && ce.get(conn)) {
      bad("\"conn\" must be an integer");
      continue;
    }
    std::string_view dir;
    if (e["dir"].get(dir)) {
      bad("missing \"dir\"");
      continue;
    }
    auto it = index.find(static_cast<int>(conn));
    if (it == index.end()) {
      it = index.emplace(static_cast<int>(conn), conns.size()).first;
      conns.push_back({static_cast<int>(conn), {}, {}});
    }
    connection& c = conns[it->second];
    if (dir == "open" || dir == "close") continue;
    if (dir != "h2a" && dir != "a2h") {
      bad(fmt::format("\"dir\" must be h2a, a2h, open or close, not \"{}\"", dir));
      continue;
    }
    simdjson::dom::element js;
    std::string bytes;
    bool is_json = false;
    if (!e["json"].get(js)) {
      is_json = true;
      print_json(bytes, js, false);
    } else if (std::string_view b64; !e["b64"].get(b64)) {
      auto d = protocol::base64_decode(b64);
      if (!d) {
        bad("\"b64\" is not valid base64");
        continue;
      }
      bytes = std::move(*d);
    } else {
      bad("needs \"json\" or \"b64\"");
      continue;
    }
    auto& owed = fifo[c.conn];
    auto& remaining = left[c.conn];
    if (dir == "h2a") {
      request_item rq{no, t, bytes, "", 0, -1, "", 0};
      if (is_json) {
        std::string_view cmd;
        if (js.is_object() && !js["execute"].get(cmd)) rq.command = std::string(cmd);
        rq.expect = is_no_reply_command(rq.command) ? 0 : 1;
        std::int64_t old_id;
        if ((rq.command == "guest-sync" || rq.command == "guest-sync-delimited") && !js["arguments"]["id"].get(old_id)) {
          rq.sync_id = static_cast<std::int64_t>(r.next() >> 2);
          simdjson::dom::object jo;
          if (!js.get(jo)) rq.bytes = rewrite_arg(jo, "id", rq.sync_id);
        }
        for (std::string_view key : {"handle", "pid"}) {
          std::int64_t old;
          if (!js["arguments"][key].get(old) && rq.command != "guest-file-open" && rq.command != "guest-exec") {
            rq.map_key = std::string(key);
            rq.map_old = old;
          }
        }
        rq.bytes += '\n';
      } else {
        rq.expect = garbage_replies(bytes);
      }
      c.reqs.push_back(std::move(rq));
      remaining.push_back(c.reqs.back().expect);
      if (c.reqs.back().expect > 0) owed.push_back(static_cast<int>(c.reqs.size() - 1));
    } else {
      // FIFO: the agent answers requests in order, so a reply belongs to the oldest request
      // still owed one; the 0xFF delimiter belongs to the reply after it.
      reply_expect rp{no, is_json, bytes, -1};
      const bool delim = !is_json && bytes == "\xff";
      if (!owed.empty()) {
        rp.request = owed.front();
        if (!delim && --remaining[static_cast<std::size_t>(owed.front())] <= 0) owed.erase(owed.begin());
      } else if (!c.reqs.empty()) {
        rp.request = static_cast<int>(c.reqs.size() - 1);
      }
      c.replies.push_back(std::move(rp));
    }
  }
  return conns;
}

std::string_view type_name(simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: return "object";
    case element_type::ARRAY: return "array";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE: return "number";
    case element_type::STRING: return "string";
    case element_type::BOOL: return "bool";
    case element_type::NULL_VALUE: return "null";
  }
  return "?";
}

std::string show(simdjson::dom::element e) {
  std::string s;
  print_json(s, e, false);
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s;
}

// Empty when equal; else where and how they differ.
std::string compare(simdjson::dom::element exp, simdjson::dom::element got, bool shape, const std::string& path) {
  const auto te = type_name(exp), tg = type_name(got);
  if (te != tg) return fmt::format("at {}: expected a {}, got a {} ({})", path.empty() ? "." : path, te, tg, show(got));
  if (te == "object") {
    simdjson::dom::object eo, go;
    if (exp.get(eo) || got.get(go)) return "internal error";
    std::vector<std::string_view> ek, gk;
    for (auto [k, v] : eo) ek.push_back(k);
    for (auto [k, v] : go) gk.push_back(k);
    for (auto k : ek) {
      simdjson::dom::element gv;
      if (go[k].get(gv)) return fmt::format("at {}: member \"{}\" missing", path.empty() ? "." : path, k);
      simdjson::dom::element ev;
      if (eo[k].get(ev)) return "internal error";
      auto d = compare(ev, gv, shape, path + "." + std::string(k));
      if (!d.empty()) return d;
    }
    for (auto k : gk) {
      simdjson::dom::element ev;
      if (eo[k].get(ev)) return fmt::format("at {}: unexpected member \"{}\"", path.empty() ? "." : path, k);
    }
    if (!shape && ek != gk) return fmt::format("at {}: members in a different order", path.empty() ? "." : path);
    return {};
  }
  if (te == "array") {
    simdjson::dom::array ea, ga;
    if (exp.get(ea) || got.get(ga)) return "internal error";
    if (!shape && ea.size() != ga.size())
      return fmt::format("at {}: expected {} elements, got {}", path.empty() ? "." : path, ea.size(), ga.size());
    if (ea.size() == 0) return {};
    std::size_t i = 0;
    for (auto gv : ga) {
      simdjson::dom::element ev;
      if (ea.at(std::min(i, ea.size() - 1)).get(ev)) return "internal error";
      auto d = compare(ev, gv, shape, fmt::format("{}[{}]", path, i));
      if (!d.empty()) return d;
      ++i;
    }
    return {};
  }
  if (shape) return {};
  std::string a, b;
  print_json(a, exp, false);
  print_json(b, got, false);
  if (a != b) return fmt::format("at {}: expected {}, got {}", path.empty() ? "." : path, a, b);
  return {};
}

struct replay_state {
  explicit replay_state(const replay_opts& opts) : o(opts) {}
  const replay_opts& o;
  std::vector<std::string> problems;
  // (handle|pid, recorded value) -> this run's value; agent-wide, so kept across connections.
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> ids;
  bool fatal = false;  // the agent stopped answering: don't try the remaining connections
  std::size_t checked = 0, by_shape = 0, mismatches = 0, missing = 0, extra = 0, sent = 0;
  simdjson::dom::parser pe, pg;

  void problem(std::string s) {
    if (!o.quiet) std::cerr << "replay: " << s << '\n';
    problems.push_back(std::move(s));
  }

  std::string where(const connection& c, const reply_expect& rp) {
    if (rp.request < 0) return fmt::format("{}:{}", o.file, rp.line);
    const auto& rq = c.reqs[static_cast<std::size_t>(rp.request)];
    return fmt::format("{}:{} (reply to the request at line {}{})", o.file, rp.line, rq.line,
                       rq.command.empty() ? std::string() : ", " + rq.command);
  }

  void check(const connection& c, const reply_expect& rp, const byte_splitter::item& got) {
    ++checked;
    if (!rp.is_json || !got.is_json) {
      if (rp.is_json != got.is_json || rp.bytes != got.bytes) {
        ++mismatches;
        problem(fmt::format("{}: expected {}, got {}", where(c, rp), rp.is_json ? rp.bytes : "non-JSON bytes",
                            got.is_json ? got.bytes : fmt::format("non-JSON bytes ({})", got.bytes.size())));
      }
      return;
    }
    simdjson::dom::element e, g;
    if (pe.parse(rp.bytes).get(e) || pg.parse(got.bytes).get(g)) {
      ++mismatches;
      problem(fmt::format("{}: reply is not valid JSON: {}", where(c, rp), got.bytes.substr(0, 120)));
      return;
    }
    const request_item* rq = rp.request >= 0 ? &c.reqs[static_cast<std::size_t>(rp.request)] : nullptr;
    bool shape = o.shape_all;
    if (rq && is_volatile_command(rq->command)) shape = true;
    // Error replies are never volatile; a sync reply must carry the rewritten id exactly.
    if (simdjson::dom::element x; !e["error"].get(x)) shape = false;
    std::string diff;
    if (rq && rq->sync_id >= 0) {
      std::int64_t v;
      if (g["return"].get(v) || v != rq->sync_id)
        diff = fmt::format("expected the sync id {} back, got {}", rq->sync_id, got.bytes.substr(0, 120));
    } else {
      diff = compare(e, g, shape, "");
      if (shape) ++by_shape;
    }
    if (!diff.empty()) {
      ++mismatches;
      problem(fmt::format("{}: reply differs{}: {}", where(c, rp), shape ? " (by shape)" : "", diff));
    }
  }
};

asio::awaitable<void> play(connection& c, replay_state& st, const replay_opts& o, std::int64_t t0, double t_base) {
  auto ex = co_await asio::this_coro::executor;
  agent_conn conn(ex);
  const std::int64_t tmo = static_cast<std::int64_t>(o.timeout * 1e9);
  if (auto ec = co_await conn.connect(o.agent, now_ns() + tmo)) {
    st.problem(fmt::format("connection {}: cannot connect to {}: {}", c.conn, o.agent, ec_text(ec)));
    st.missing += c.replies.size();
    st.fatal = true;
    co_return;
  }
  std::vector<char> buf(64 * 1024);
  byte_splitter sp;
  std::deque<byte_splitter::item> got;
  std::vector<byte_splitter::item> tmp;
  std::size_t next_reply = 0;
  asio::steady_timer pacer(ex);
  auto& ids = st.ids;
  simdjson::dom::parser mp;
  // The handle (guest-file-open) or pid (guest-exec) the reply `json` gives, for a reply to
  // one of those two; "" as the key otherwise.
  auto taught = [&](const reply_expect& rp, std::string_view json) -> std::pair<std::string_view, std::int64_t> {
    if (rp.request < 0 || !rp.is_json) return {};
    const auto& rq = c.reqs[static_cast<std::size_t>(rp.request)];
    const bool open = rq.command == "guest-file-open", exec = rq.command == "guest-exec";
    if (!open && !exec) return {};
    std::int64_t v;
    simdjson::dom::element e;
    if (mp.parse(json).get(e) || (open ? e["return"].get(v) : e["return"]["pid"].get(v))) return {};
    return {open ? "handle" : "pid", v};
  };
  // A file-open/exec reply teaches the new handle/pid for the recorded one.
  auto learn = [&](const reply_expect& rp, const byte_splitter::item& g) {
    if (!g.is_json) return;
    const auto [key, old_v] = taught(rp, rp.bytes);
    if (key.empty()) return;
    const auto [key2, new_v] = taught(rp, g.bytes);
    if (key2.empty()) return;
    ids[{std::string(key), old_v}] = new_v;
  };
  auto outgoing = [&](const request_item& rq) -> std::string {
    if (rq.map_key.empty()) return rq.bytes;
    auto it = ids.find({rq.map_key, rq.map_old});
    if (it == ids.end() || it->second == rq.map_old) return rq.bytes;
    simdjson::dom::element e;
    simdjson::dom::object obj;
    if (mp.parse(rq.bytes).get(e) || e.get(obj)) return rq.bytes;
    return rewrite_arg(obj, rq.map_key, it->second) + "\n";
  };

  // Reads until `n` items are buffered or the deadline passes. False on timeout/EOF.
  auto fill = [&](std::size_t n, std::int64_t deadline) -> asio::awaitable<boost::system::error_code> {
    while (got.size() < n) {
      // Read raw: replies are split like the recorder split them, keeping the exact bytes.
      std::size_t nread = 0;
      auto ec = co_await conn.read_raw(asio::buffer(buf), nread, deadline);
      if (ec) co_return ec;
      tmp.clear();
      sp.feed(std::string_view(buf.data(), nread), tmp);
      for (auto& i : tmp) got.push_back(std::move(i));
    }
    co_return boost::system::error_code{};
  };

  auto report_missing = [&](std::size_t upto, const std::string& why) {
    for (; next_reply < upto; ++next_reply) {
      ++st.missing;
      st.problem(fmt::format("{}: no reply ({})", st.where(c, c.replies[next_reply]), why));
    }
  };
  // After a timeout: a new connection and 0xFF + guest-sync-delimited, so a late reply is not
  // taken for the next one. False (the rest reported missing, the agent unreachable) when
  // that fails. One co_await per statement: GCC 12 mis-sequences co_await inside ||.
  auto resync = [&]() -> asio::awaitable<bool> {
    got.clear();
    sp = byte_splitter();
    conn.close();
    auto e2 = co_await conn.connect(o.agent, now_ns() + tmo);
    if (!e2) e2 = co_await conn.sync_delimited(random_seed(), now_ns() + tmo);
    if (!e2) co_return true;
    st.problem(fmt::format("connection {}: cannot resynchronise: {}", c.conn, ec_text(e2)));
    st.fatal = true;
    report_missing(c.replies.size(), "connection lost");
    co_return false;
  };

  if (!o.pipeline) {
    for (std::size_t i = 0; i < c.reqs.size(); ++i) {
      auto& rq = c.reqs[i];
      if (o.speed > 0) {
        pacer.expires_at(to_tp(t0 + static_cast<std::int64_t>((rq.t - t_base) / o.speed * 1e9)));
        co_await pacer.async_wait(use_tuple);
      }
      if (auto ec = co_await conn.write(outgoing(rq), now_ns() + tmo)) {
        st.problem(fmt::format("{}:{}: write failed: {}", o.file, rq.line, ec_text(ec)));
        report_missing(c.replies.size(), "connection lost");
        co_return;
      }
      ++st.sent;
      // Every recorded reply up to the last one attributed to this request.
      std::size_t upto = next_reply;
      for (std::size_t k = next_reply; k < c.replies.size(); ++k)
        if (c.replies[k].request >= 0 && static_cast<std::size_t>(c.replies[k].request) <= i) upto = k + 1;
      auto ec = co_await fill(upto - next_reply, now_ns() + tmo);
      while (next_reply < upto && !got.empty()) {
        learn(c.replies[next_reply], got.front());
        st.check(c, c.replies[next_reply++], got.front());
        got.pop_front();
      }
      if (ec) {
        report_missing(upto, ec_text(ec));
        if (ec != asio::error::timed_out) {
          report_missing(c.replies.size(), "connection lost");
          co_return;
        }
        if (!co_await resync()) co_return;
      }
    }
  } else {
    // Write everything (paced) while reading. A request whose recorded handle/pid is taught by
    // a file-open/exec of this connection is held back until that reply has been taken (the
    // reply index in teacher[i]); everything else goes out without waiting.
    std::vector<std::ptrdiff_t> teacher(c.reqs.size(), -1);
    {
      // (handle|pid, recorded value) -> (request, reply) of the latest file-open/exec so far.
      std::map<std::pair<std::string, std::int64_t>, std::pair<int, std::size_t>> latest;
      std::size_t k = 0;
      for (std::size_t i = 0; i < c.reqs.size(); ++i) {
        // Replies are attributed in request order: take in those of the requests before i.
        for (; k < c.replies.size() && c.replies[k].request < static_cast<int>(i); ++k) {
          const auto [key, old_v] = taught(c.replies[k], c.replies[k].bytes);
          if (key.empty()) continue;
          auto [it, fresh] = latest.try_emplace({std::string(key), old_v}, c.replies[k].request, k);
          if (!fresh && it->second.first != c.replies[k].request) it->second = {c.replies[k].request, k};
        }
        const auto& rq = c.reqs[i];
        if (rq.map_key.empty()) continue;
        if (auto it = latest.find({rq.map_key, rq.map_old}); it != latest.end())
          teacher[i] = static_cast<std::ptrdiff_t>(it->second.second);
      }
    }
    bool write_failed = false, reading_done = false, resyncing = false;
    std::ptrdiff_t held = -1;  // the request the writer holds back for its handle/pid
    int left = 1;
    asio::steady_timer done(ex), taken(ex), p2(ex);
    asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
      for (std::size_t i = 0; i < c.reqs.size() && !reading_done; ++i) {
        auto& rq = c.reqs[i];
        if (o.speed > 0) {
          p2.expires_at(to_tp(t0 + static_cast<std::int64_t>((rq.t - t_base) / o.speed * 1e9)));
          co_await p2.async_wait(use_tuple);
        }
        // The reader wakes this after every reply it takes and when it stops, and its reads
        // have deadlines: this wait ends.
        while (!reading_done &&
               (resyncing || (teacher[i] >= 0 && next_reply <= static_cast<std::size_t>(teacher[i])))) {
          held = static_cast<std::ptrdiff_t>(i);
          taken.expires_at(asio::steady_timer::time_point::max());
          co_await taken.async_wait(use_tuple);
        }
        held = -1;
        if (reading_done) break;
        const std::string bytes = outgoing(rq);
        auto [ec, n] = co_await asio::async_write(conn.sock, asio::buffer(bytes), use_tuple);
        if (ec) {
          write_failed = true;
          break;
        }
        ++st.sent;
      }
    }, [&](std::exception_ptr) {
      if (--left == 0) done.cancel();
    });
    // Replies: wait while they keep coming (the deadline restarts with every read).
    boost::system::error_code ec;
    const double span = c.reqs.empty() ? 0 : (o.speed > 0 ? (c.reqs.back().t - t_base) / o.speed : 0);
    std::int64_t deadline = now_ns() + tmo + static_cast<std::int64_t>(span * 1e9);
    while (next_reply < c.replies.size()) {
      ec = co_await fill(1, deadline);
      if (!got.empty()) {
        while (next_reply < c.replies.size() && !got.empty()) {
          learn(c.replies[next_reply], got.front());
          st.check(c, c.replies[next_reply++], got.front());
          got.pop_front();
        }
        taken.cancel();
      }
      if (ec == asio::error::timed_out && held >= 0) {
        // The writer waits for a handle/pid that did not come: as lock-step does, the replies
        // of what was sent are missing, the connection is re-synchronised, and the held-back
        // request goes on with its recorded value.
        resyncing = true;
        std::size_t upto = next_reply;
        for (std::size_t k = next_reply; k < c.replies.size(); ++k)
          if (c.replies[k].request >= 0 && c.replies[k].request < held) upto = k + 1;
        report_missing(upto, ec_text(ec));
        if (!co_await resync()) break;
        resyncing = false;
        deadline = std::max(deadline, now_ns() + tmo);
        taken.cancel();
        continue;
      }
      if (ec) break;
      deadline = std::max(deadline, now_ns() + tmo);
    }
    if (next_reply == c.replies.size() && !ec && left > 0) {
      // Every expected reply is in, but requests that answer nothing (a last guest-shutdown)
      // may still be waiting for their recorded time: let the writer send them, within the
      // same deadline (it wakes this timer when it ends).
      done.expires_at(to_tp(std::max(deadline, now_ns() + tmo)));
      co_await done.async_wait(use_tuple);
    }
    reading_done = true;
    taken.cancel();
    p2.cancel();
    if (next_reply < c.replies.size()) report_missing(c.replies.size(), write_failed ? "write failed" : ec_text(ec));
    conn.close();
    while (left > 0) {
      done.expires_at(asio::steady_timer::time_point::max());
      co_await done.async_wait(use_tuple);
    }
  }
  // Anything the agent sent beyond the recording (already read, or arriving at once).
  if (got.empty() && conn.is_open()) (void)co_await fill(1, now_ns() + 50'000'000);
  for (auto& g : got) {
    ++st.extra;
    st.problem(fmt::format("connection {}: unexpected extra reply: {}", c.conn,
                           g.is_json ? g.bytes.substr(0, 120) : fmt::format("{} non-JSON bytes", g.bytes.size())));
  }
  conn.close();
}

}  // namespace

int cmd_replay(int argc, char** argv) {
  replay_opts o;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--agent") o.agent = val();
    else if (a == "--pipeline") o.pipeline = true;
    else if (a == "--lockstep") o.pipeline = false;
    else if (a == "--speed") o.speed = parse_seconds(val(), a);
    else if (a == "--timeout") o.timeout = parse_seconds(val(), a);
    else if (a == "--shape") o.shape_all = true;
    else if (a == "--allow-unsafe") o.allow_unsafe = true;
    else if (a == "--allow-freeze") o.allow_freeze = true;
    else if (a == "--quiet" || a == "-q") o.quiet = true;
    else if (a == "-h" || a == "--help") {
      std::cout << "usage: fleetga-host replay FILE --agent SOCKET [--lockstep|--pipeline] [--speed X] [--timeout S] [--shape]\n"
                   "  Sends the h2a lines of FILE (sync ids rewritten) and checks the agent's replies against\n"
                   "  the a2h lines: exactly, or by shape for volatile commands (time, load, stats, users, pids,\n"
                   "  interfaces, fsinfo; --shape: all). Lock-step (default) waits for each request's replies;\n"
                   "  --pipeline sends without waiting for replies, except that a request using a file handle\n"
                   "  or exec pid waits for the file-open/exec reply that gives it. --speed X keeps the\n"
                   "  recorded timing X times faster (default: no delays). Exit: 0 all replies match,\n"
                   "  1 mismatch/missing/extra, 2 bad file, 3 agent unreachable.\n"
                   "  A session with commands that change the guest (file-open/write, exec, set-*, ssh-*,\n"
                   "  fstrim, shutdown, suspend, freeze/thaw) is refused without --allow-unsafe; a freeze\n"
                   "  also needs --allow-freeze. Point those at a test guest only.\n";
      return ok;
    } else if (a.size() > 1 && a[0] == '-') throw usage_error("unknown option " + a);
    else if (o.file.empty()) o.file = a;
    else throw usage_error("one FILE only");
  }
  if (o.file.empty() || o.agent.empty()) throw usage_error("replay needs FILE --agent SOCKET");
  std::vector<std::string> errors;
  rng r(random_seed());
  auto conns = load_session(o.file, errors, r);
  if (!errors.empty()) {
    for (auto& e : errors) std::cerr << "fleetga-host replay: " << e << '\n';
    std::cerr << fmt::format("fleetga-host replay: {} bad line(s), nothing replayed\n", errors.size());
    return usage;
  }
  // Nothing that changes the system the agent runs on is sent unless asked in so many words.
  for (const auto& c : conns)
    for (const auto& rq : c.reqs) {
      if (is_unsafe_command(rq.command) && !o.allow_unsafe)
        throw usage_error(fmt::format("{}:{}: {} changes the system the agent runs on: add --allow-unsafe if you mean it",
                                      o.file, rq.line, rq.command));
      if (rq.command.rfind("guest-fsfreeze-freeze", 0) == 0 && !o.allow_freeze)
        throw usage_error(fmt::format("{}:{}: {} freezes the agent's filesystems: add --allow-freeze too (a test guest only)",
                                      o.file, rq.line, rq.command));
    }
  replay_state st{o};
  asio::io_context io(1);
  bool unreachable_agent = false;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    const std::int64_t t0 = now_ns();
    const double t_base = conns.empty() || conns[0].reqs.empty() ? 0 : conns[0].reqs[0].t;
    for (std::size_t i = 0; i < conns.size(); ++i) {
      const auto before = st.problems.size();
      co_await play(conns[i], st, o, t0, t_base);
      if (st.fatal) {
        unreachable_agent = st.problems.size() > before && st.problems[before].find("cannot connect") != std::string::npos;
        for (std::size_t k = i + 1; k < conns.size(); ++k) st.missing += conns[k].replies.size();
        st.problem(fmt::format("stopped after connection {}: the agent is unreachable", conns[i].conn));
        break;
      }
    }
  }, [&](std::exception_ptr ep) {
    if (ep) std::rethrow_exception(ep);
  });
  io.run();
  std::size_t expected = 0;
  for (auto& c : conns) expected += c.replies.size();
  std::cout << fmt::format("replay {}: {} connection(s), {} request(s) sent, {} of {} replies checked ({} by shape): "
                           "{} mismatch(es), {} missing, {} extra -> {}\n",
                           o.file, conns.size(), st.sent, st.checked, expected, st.by_shape, st.mismatches, st.missing,
                           st.extra, st.problems.empty() ? "OK" : "FAILED");
  if (unreachable_agent) return unreachable;
  return st.problems.empty() ? ok : failed;
}

}  // namespace fleetga::host
