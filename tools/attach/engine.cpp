#include "tools/attach/engine.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

namespace fleetga::host::attach {

using clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::microseconds;

const char* to_string(agent_reply::status s) {
  switch (s) {
    case agent_reply::status::ok: return "ok";
    case agent_reply::status::error_reply: return "error";
    case agent_reply::status::not_connected: return "not_connected";
    case agent_reply::status::busy: return "busy";
    case agent_reply::status::timeout: return "timeout";
    case agent_reply::status::gone: return "gone";
    case agent_reply::status::garbage: return "garbage";
    case agent_reply::status::failed: return "failed";
  }
  return "?";
}

const char* to_string(outcome o) {
  switch (o) {
    case outcome::confirmed: return "confirmed";
    case outcome::mismatch: return "mismatch";
    case outcome::unsupported: return "unsupported";
    case outcome::skipped: return "skipped";
    case outcome::not_connected: return "not_connected";
    case outcome::busy: return "busy";
    case outcome::timeout: return "timeout";
    case outcome::gone: return "gone";
    case outcome::garbage: return "garbage";
    case outcome::failed: return "failed";
  }
  return "?";
}

namespace {

constexpr std::size_t outcome_count = 10;
static_assert(outcome_count == static_cast<std::size_t>(outcome::failed) + 1);
static_assert(sizeof(engine_stats::by_outcome) / sizeof(std::uint64_t) == outcome_count);

outcome outcome_of(agent_reply::status s) {
  switch (s) {
    case agent_reply::status::not_connected: return outcome::not_connected;
    case agent_reply::status::busy: return outcome::busy;
    case agent_reply::status::timeout: return outcome::timeout;
    case agent_reply::status::gone: return outcome::gone;
    case agent_reply::status::garbage: return outcome::garbage;
    default: return outcome::failed;
  }
}

std::string describe(const agent_reply& r) {
  if (r.st == agent_reply::status::error_reply)
    return r.error_class.empty() ? r.desc : fmt::format("{}: {}", r.error_class, r.desc);
  if (!r.desc.empty()) return r.desc;
  return to_string(r.st);
}

// What guest-info's reply tells the attach: the agent's version and its support level (absent
// for agents without one, qemu-ga).
struct info_facts {
  bool parsed = false;
  std::string version;
  bool has_level = false;
  std::optional<support_level> level;
};

info_facts parse_info(const std::string& ret) {
  info_facts f;
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string text(ret);
  simdjson::dom::element root;
  if (parser.parse(text).get(root) || !root.is_object()) return f;
  f.parsed = true;
  std::string_view v;
  if (!root["version"].get_string().get(v)) f.version = std::string(v);
  simdjson::dom::object lvl;
  if (!root["support_level"].get_object().get(lvl)) {
    f.has_level = true;
    std::int64_t maj = 0, min = 0, mic = 0;
    bool ok = !lvl["major"].get_int64().get(maj) && !lvl["minor"].get_int64().get(min) &&
              !lvl["micro"].get_int64().get(mic);
    auto fits = [](std::int64_t x) { return x >= 0 && x <= 65535; };
    if (ok && fits(maj) && fits(min) && fits(mic))
      f.level = support_level{static_cast<std::uint16_t>(maj), static_cast<std::uint16_t>(min),
                              static_cast<std::uint16_t>(mic)};
  }
  return f;
}

std::string level_or_dash(const std::optional<support_level>& l) {
  return l ? commands::to_string(*l) : std::string("-");
}

// Log values are key=value; a value with spaces, quotes or control bytes (an agent's version
// or error text is guest-controlled) is quoted and escaped so a line stays one line.
std::string quote_value(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + '"';
}

}  // namespace

bool means_unsupported(const agent_reply& r) {
  if (r.st != agent_reply::status::error_reply) return false;
  if (r.error_class == "CommandNotFound") return true;
  // Through libvirt only the desc survives: "unable to execute QEMU agent command
  // 'guest-set-support-level': The command guest-set-support-level has not been found".
  return r.desc.find("has not been found") != std::string::npos ||
         r.desc.find("has been disabled") != std::string::npos;
}

std::string format_result(const attach_result& r) {
  // Names are mostly plain: unquoted when they need no quoting (easy to grep); the agent's
  // version is always quoted (agent="10.2.0", the documented shape).
  const std::string& name = r.name.empty() ? r.id : r.name;
  bool plain = !name.empty() && std::none_of(name.begin(), name.end(), [](unsigned char c) {
    return c <= 0x20 || c == 0x7f || c == '"' || c == '\\' || c == '=';
  });
  std::string line = fmt::format(
      "attach domain={} uuid={} agent={} asked={} confirmed={} latency_ms={:.1f} since_event_ms={:.1f} "
      "outcome={} attempt={}",
      plain ? name : quote_value(name), r.uuid.empty() ? "-" : r.uuid,
      r.agent_version.empty() ? std::string("-") : quote_value(r.agent_version), level_or_dash(r.asked),
      level_or_dash(r.confirmed), static_cast<double>(r.latency.count()) / 1000.0,
      static_cast<double>(r.since_event.count()) / 1000.0, to_string(r.result), r.attempt);
  if (!r.detail.empty()) line += " detail=" + quote_value(r.detail);
  return line;
}

engine::engine(host_stack& hs, attach_config cfg, engine_options opt)
    : hs_(hs), cfg_(std::move(cfg)), opt_(opt) {
  if (opt_.concurrency == 0) opt_.concurrency = 1;
  try {
    for (unsigned i = 0; i < opt_.concurrency; ++i) workers_.emplace_back([this] { worker(); });
    timer_ = std::thread([this] { timer_loop(); });
  } catch (...) {
    stop();
    throw;
  }
}

engine::~engine() { stop(); }

void engine::set_config(attach_config cfg) {
  std::lock_guard lk(mu_);
  cfg_ = std::move(cfg);
}

void engine::on_result(result_sink s) {
  std::lock_guard lk(mu_);
  sink_ = std::move(s);
}

void engine::enqueue_locked(const std::string& id) {
  auto& d = domains_[id];
  if (d.queued || d.running) return;
  d.queued = true;
  queue_.push_back(id);
  cv_work_.notify_one();
}

void engine::agent_connected(const std::string& id) {
  std::lock_guard lk(mu_);
  if (stopping_) return;
  ++stats_.events;
  auto& d = domains_[id];
  d.forget = false;
  d.attempt = 0;
  d.retry_at.reset();
  d.event_time = clock::now();
  if (d.running)
    d.again = true;
  else
    enqueue_locked(id);
}

void engine::agent_disconnected(const std::string& id) {
  std::lock_guard lk(mu_);
  ++stats_.events;
  auto it = domains_.find(id);
  if (it == domains_.end()) return;
  it->second.retry_at.reset();
  it->second.again = false;
  cv_idle_.notify_all();
}

void engine::domain_gone(const std::string& id) {
  std::lock_guard lk(mu_);
  ++stats_.events;
  auto it = domains_.find(id);
  if (it == domains_.end()) return;
  if (it->second.running) {
    it->second.forget = true;
    it->second.again = false;
    it->second.retry_at.reset();
    return;
  }
  if (it->second.queued) queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
  domains_.erase(it);
  cv_idle_.notify_all();
}

void engine::sweep() {
  auto ids = hs_.connected_domains();  // may throw: the caller reconnects
  for (const auto& id : ids) agent_connected(id);
}

void engine::drop_pending() {
  std::lock_guard lk(mu_);
  for (auto& [id, d] : domains_) d.retry_at.reset();
  cv_idle_.notify_all();
}

bool engine::retried(outcome o) const {
  switch (o) {
    case outcome::busy:
    case outcome::timeout:
    case outcome::garbage:
    case outcome::failed:
    case outcome::mismatch:
      return true;
    case outcome::not_connected:
      return opt_.retry_not_connected;
    default:
      return false;
  }
}

std::chrono::milliseconds engine::backoff(int attempt) const {
  auto d = opt_.retry_first;
  for (int i = 1; i < attempt && d < opt_.retry_max; ++i) d *= 2;
  return std::min(d, opt_.retry_max);
}

attach_result engine::attach_one(const std::string& id, int attempt) {
  attach_result r;
  r.id = id;
  r.attempt = attempt;
  auto t0 = clock::now();
  auto done = [&](outcome o, std::string detail = {}) {
    r.result = o;
    r.detail = std::move(detail);
    r.latency = duration_cast<microseconds>(clock::now() - t0);
    return r;
  };
  // A command that timed out or lost its agent may have lost it to the domain's end (libvirt
  // reports a destroy during a call as "not available"): say gone when it is.
  auto lost = [&](outcome o, std::string detail) {
    try {
      if (!hs_.facts(id)) return done(outcome::gone, detail + " (the domain is gone)");
    } catch (const std::exception&) {
    }
    return done(o, std::move(detail));
  };
  std::optional<domain_facts> facts;
  try {
    facts = hs_.facts(id);
  } catch (const std::exception& e) {
    return done(outcome::failed, e.what());
  }
  if (!facts) return done(outcome::gone, "the domain is gone");
  r.name = facts->name;
  r.uuid = facts->uuid;
  attach_config cfg;
  {
    std::lock_guard lk(mu_);
    cfg = cfg_;
  }
  decision dec = resolve(cfg, hs_.host_level(), *facts);
  if (dec.skip) return done(outcome::skipped, dec.reasons.empty() ? std::string() : dec.reasons.back());
  r.asked = dec.level;

  agent_reply why;
  std::unique_ptr<agent_link> link;
  try {
    link = hs_.open(id, opt_.timeout, why);
  } catch (const std::exception& e) {
    return done(outcome::failed, e.what());
  }
  if (!link) return why.st == agent_reply::status::gone ? done(outcome::gone, describe(why))
                                                          : lost(outcome_of(why.st), describe(why));

  std::string set = fmt::format(
      R"({{"execute":"guest-set-support-level","arguments":{{"major":{},"minor":{},"micro":{}}}}})",
      dec.level.major, dec.level.minor, dec.level.micro);
  agent_reply sr = link->command(set, opt_.timeout);
  if (sr.st != agent_reply::status::ok && sr.st != agent_reply::status::error_reply)
    return lost(outcome_of(sr.st), describe(sr));

  // guest-info confirms the level and names the agent; after an error it also tells an agent
  // without support levels (qemu-ga: no support_level member) from a fleetga that refused
  // for now (frozen, or the command blocked).
  agent_reply ir = link->command(R"({"execute":"guest-info"})", opt_.timeout);
  info_facts info;
  if (ir.st == agent_reply::status::ok) {
    info = parse_info(ir.ret);
    if (!info.parsed) return done(outcome::garbage, "guest-info: the reply is not a JSON object");
    r.agent_version = info.version;
    r.confirmed = info.level;
  }
  if (sr.st == agent_reply::status::error_reply) {
    if (info.parsed && !info.has_level) return done(outcome::unsupported, describe(sr));
    if (!info.parsed && means_unsupported(sr)) return done(outcome::unsupported, describe(sr));
    // A fleetga that refuses the command: frozen (it passes; retried with back-off) or blocked
    // by the guest's own config (-b / -a: the guest's owner said no; left alone like an agent
    // without support levels, no retry loop).
    if (means_unsupported(sr)) {
      agent_reply fr = link->command(R"({"execute":"guest-fsfreeze-status"})", opt_.timeout);
      if (fr.st == agent_reply::status::ok && fr.ret != R"("frozen")")
        return done(outcome::unsupported, "blocked by the guest's configuration: " + describe(sr));
    }
    return done(outcome::failed, "guest-set-support-level: " + describe(sr));
  }
  if (ir.st != agent_reply::status::ok) return lost(outcome_of(ir.st), "guest-info: " + describe(ir));
  if (!info.has_level) return done(outcome::mismatch, "guest-info has no support_level");
  if (info.level != dec.level) return done(outcome::mismatch, "guest-info reports another level");
  return done(outcome::confirmed);
}

void engine::finish(const std::string& id, attach_result r) {
  std::unique_lock lk(mu_);
  auto& d = domains_[id];
  d.running = false;
  --stats_.in_flight;
  ++stats_.attaches;
  ++stats_.by_outcome[static_cast<std::size_t>(r.result)];
  r.since_event = duration_cast<microseconds>(clock::now() - d.event_time);
  auto us = static_cast<std::uint64_t>(r.latency.count());
  stats_.latency_us_sum += us;
  stats_.latency_us_max = std::max(stats_.latency_us_max, us);

  bool quiet = false;
  if (r.result == outcome::unsupported) {
    quiet = d.unsupported_logged;  // once per domain: an old agent is no news after the first
    d.unsupported_logged = true;
  } else if (r.result == outcome::confirmed) {
    d.unsupported_logged = false;  // a new agent was installed: say it again if it goes back
  }
  bool retry = !d.forget && !d.again && retried(r.result) && r.attempt < opt_.max_attempts;
  std::string line = format_result(r);
  if (retry) line += fmt::format(" retry_in_ms={}", backoff(r.attempt).count());
  if (quiet)
    spdlog::debug("{}", line);
  else if (r.result == outcome::confirmed || r.result == outcome::unsupported || r.result == outcome::skipped)
    spdlog::info("{}", line);
  else
    spdlog::warn("{}", line);

  d.last = r;
  if (d.forget) {
    domains_.erase(id);
  } else if (d.again) {
    d.again = false;
    d.attempt = 0;
    enqueue_locked(id);
  } else if (retry) {
    ++stats_.retries;
    d.retry_at = clock::now() + backoff(r.attempt);
    cv_timer_.notify_one();
  }
  auto sink = sink_;
  lk.unlock();
  if (sink) sink(r);
  lk.lock();
  cv_idle_.notify_all();
}

void engine::worker() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_work_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    std::string id = std::move(queue_.front());
    queue_.pop_front();
    auto& d = domains_[id];
    d.queued = false;
    d.running = true;
    int attempt = ++d.attempt;
    ++stats_.in_flight;
    lk.unlock();
    attach_result r;
    try {
      r = attach_one(id, attempt);
    } catch (const std::exception& e) {  // bad_alloc, a host stack bug: one domain, not the daemon
      r.id = id;
      r.attempt = attempt;
      r.result = outcome::failed;
      r.detail = e.what();
    }
    finish(id, std::move(r));
    lk.lock();
  }
}

void engine::timer_loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    if (stopping_) return;
    std::optional<clock::time_point> next;
    auto now = clock::now();
    for (auto& [id, d] : domains_) {
      if (!d.retry_at) continue;
      if (*d.retry_at <= now) {
        d.retry_at.reset();
        enqueue_locked(id);
      } else if (!next || *d.retry_at < *next) {
        next = d.retry_at;
      }
    }
    if (next)
      cv_timer_.wait_until(lk, *next);
    else
      cv_timer_.wait(lk);
  }
}

bool engine::wait_idle(std::chrono::milliseconds limit) {
  std::unique_lock lk(mu_);
  return cv_idle_.wait_for(lk, limit, [&] {
    if (!queue_.empty() || stats_.in_flight) return false;
    return std::none_of(domains_.begin(), domains_.end(),
                        [](const auto& kv) { return kv.second.retry_at.has_value() || kv.second.running; });
  });
}

engine_stats engine::stats() const {
  std::lock_guard lk(mu_);
  engine_stats s = stats_;
  s.queued = queue_.size();
  return s;
}

std::string engine::stats_line() const {
  engine_stats s = stats();
  std::string line = fmt::format("stats events={} attaches={}", s.events, s.attaches);
  for (std::size_t i = 0; i < outcome_count; ++i)
    line += fmt::format(" {}={}", to_string(static_cast<outcome>(i)), s.by_outcome[i]);
  line += fmt::format(" retries={} in_flight={} queued={} latency_ms_mean={:.1f} latency_ms_max={:.1f}", s.retries,
                      s.in_flight, s.queued,
                      s.attaches ? static_cast<double>(s.latency_us_sum) / static_cast<double>(s.attaches) / 1000.0 : 0.0,
                      static_cast<double>(s.latency_us_max) / 1000.0);
  return line;
}

std::optional<attach_result> engine::last(const std::string& id) const {
  std::lock_guard lk(mu_);
  auto it = domains_.find(id);
  if (it == domains_.end()) return std::nullopt;
  return it->second.last;
}

void engine::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_ && workers_.empty() && !timer_.joinable()) return;
    stopping_ = true;
    queue_.clear();
    for (auto& [id, d] : domains_) {
      d.queued = false;
      d.retry_at.reset();
    }
  }
  cv_work_.notify_all();
  cv_timer_.notify_all();
  cv_idle_.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
  if (timer_.joinable()) timer_.join();
}

}  // namespace fleetga::host::attach
