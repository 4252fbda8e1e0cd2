#include "commands/handlers.hpp"
#include "commands/service.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <string>

#include "commands/fsfreeze.hpp"
#include "commands/gate.hpp"
#include "commands/state.hpp"
#include "commands/table.hpp"
#include "platform/files.hpp"
#include "platform/mounts.hpp"
#include "platform/system.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/request.hpp"
#include "protocol/response.hpp"

namespace fleetga::commands {

namespace {

// §4.1 (9.1+): allowed unless an allow list exists and lacks it; blocked if block-listed.
// Unknown names are ignored.
std::uint64_t list_allowed_mask(const options& o) {
  std::uint64_t m = all_commands_mask;
  if (!o.allow_rpcs.empty()) {
    m = 0;
    for (const auto& n : o.allow_rpcs)
      if (auto i = find_command(n)) m |= std::uint64_t{1} << *i;
  }
  for (const auto& n : o.block_rpcs)
    if (auto i = find_command(n)) m &= ~(std::uint64_t{1} << *i);
  return m;
}

std::optional<support_level> default_level(const options& o, bool& bad) {
  bad = false;
  if (!o.support_level) return minimum_support_level;
  auto l = parse_support_level(*o.support_level);
  if (!l) {
    bad = true;
    return minimum_support_level;
  }
  return clamp_to_minimum(*l);
}

}  // namespace

struct service::impl {
  impl(options o, offloader& pool, platform::system& sys, bool bad_level, support_level dflt)
      : opts(std::move(o)),
        bad_default_level(bad_level),
        st(pool, sys, opts.statedir, list_allowed_mask(opts), dflt) {
    configure_fsfreeze(st, opts);
    st.power.default_runner.armed = opts.acts_on_system;
    st.clock.default_effects.armed = opts.acts_on_system;
    st.audit_sink = opts.audit;
    st.exec.reactor = opts.reactor;
  }

  options opts;
  bool bad_default_level;
  agent_state st;
  protocol::request_parser parser;
};

service::service(options opts, offloader& pool, platform::system& sys) {
  bool bad = false;
  support_level dflt = *default_level(opts, bad);
  p_ = std::make_unique<impl>(std::move(opts), pool, sys, bad, dflt);
}

service::~service() = default;

std::optional<std::string> service::init() {
  agent_state& st = p_->st;
  if (p_->bad_default_level)
    return "invalid support level '" + *p_->opts.support_level + "' (expected MAJOR.MINOR[.MICRO])";

  // An agent that died frozen restarts frozen (qemu-ga: qga.state.isfrozen), and then must
  // not write to the statedir: creation of a missing qga.state is deferred.
  const bool frozen = platform::file_exists(st.statedir + "/" + std::string(frozen_file_name));
  st.gate.set_frozen(frozen);
  fsfreeze_started_frozen(st);  // auto-thaw watchdog for a guest a crashed agent left frozen

  // Failures name the file and the reason with qemu-ga's texts (read_persistent_state()),
  // one line each, ending with its "failed to load persistent state".
  const std::string path = st.statedir + "/" + std::string(state_file_name);
  const auto load_failed = [&path](std::string_view why) {
    return "error loading persistent state from path: " + path + ", " + std::string(why) +
           "\nfailed to load persistent state";
  };
  std::string text;
  int err = st.sys.read_small_file(path, state_file_max, text);
  if (err == ENOENT) {
    st.pstate = persistent_state{};
    // Created now so that a bad statedir is caught at start-up, as qemu-ga does.
    if (!frozen) {
      if (int werr = platform::replace_file(st.statedir, state_file_name, serialize(st.pstate)); werr != 0)
        return "failed to write persistent state to " + path + ": " + std::strerror(werr) +
               "\nunable to create state file at path " + path + "\nfailed to load persistent state";
    }
  } else if (err == EISDIR || err == ESPIPE) {
    // GLib's text. qemu-ga blocks in open() on a FIFO before GLib can say it; fleetga does not.
    return load_failed("Not a regular file");
  } else if (err == EFBIG) {
    return load_failed("larger than " + std::to_string(state_file_max >> 20) + " MiB");
  } else if (err != 0) {
    return load_failed(std::strerror(err));
  } else {
    std::string why;
    auto parsed = parse_state(text, why);
    if (!parsed) return load_failed(why);
    st.pstate = *parsed;
  }
  st.gate.set_level(st.effective_level());
  if (st.pstate.bad_level && p_->opts.warn)
    p_->opts.warn("ignoring support_level '" + *st.pstate.bad_level + "' in " + path +
                  ": not MAJOR.MINOR[.MICRO] with each part 0..65535 (kept in the file; level " +
                  to_string(st.effective_level()) + " in force until guest-set-support-level)");
  // Files the read-only commands would otherwise read at their first call, each agent of a
  // fleet paying a disk read where the page was reclaimed: os-release, and /etc/localtime
  // (glibc reads the zone once, then only stats the file).
  warm_osinfo(st);
  st.sys.timezone();
  return std::nullopt;
}

void service::open_watches() {
  // The interface list is kept until the kernel announces a change (platform/net), the mount
  // table until it flags one (platform/mounts): take both now.
  std::vector<platform::if_address> interfaces;
  p_->st.net->list_addresses(interfaces);
  if (p_->st.fsfreeze.root.empty()) {
    std::string table;
    platform::own_mountinfo(table);
  }
}

bool service::frozen() const noexcept { return gate::frozen(p_->st.gate.load()); }

void service::thaw_for_exit() {
  if (frozen()) fsfreeze_thaw_blocking(p_->st);
}

std::vector<std::string_view> service::command_names() {
  std::vector<std::string_view> v;
  v.reserve(command_count);
  for (const auto& d : command_table) v.push_back(d.name);
  return v;
}

namespace {
struct drained {
  output_drain& d;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { d.drain(h); }
  void await_resume() const noexcept {}
};
}  // namespace

task<bool> service::handle(const protocol::frame& f, std::string& out, output_drain* drain) {
  impl& p = *p_;
  if (f.type == protocol::frame::kind::error) {
    protocol::write_error(out, protocol::error_class::generic_error, f.error, {});
    co_return true;
  }
  protocol::request req;
  protocol::error perr;
  if (!p.parser.parse(f, req, perr)) {
    protocol::write_error(out, perr, req.id);
    co_return true;
  }
  const auto idx = find_command(req.execute);
  if (!idx) {
    std::string d = "The command ";
    d += req.execute;
    d += " has not been found";
    protocol::write_error(out, {protocol::error_class::command_not_found, std::move(d)}, req.id);
    co_return true;
  }
  const descriptor& cmd = command_table[*idx];
  const std::uint64_t word = p.st.gate.load();
  if (const verdict v = p.st.gate.check(*idx, cmd.needs, word); v != verdict::enabled) {
    protocol::write_error(out,
                          {protocol::error_class::command_not_found,
                           disabled_text(cmd.name, v, gate::level(word), cmd.needs)},
                          req.id);
    co_return true;
  }

  // Nothing is written while a handler runs (workers may append to `out`), so replies
  // waiting in the buffer leave before a command that may take the guest down.
  if (!cmd.success_response && drain && !out.empty()) co_await drained{*drain};

  const std::size_t mark = protocol::begin_return(out, cmd.delimited);
  protocol::json_writer w(out);
  call c{req.arguments, w, p.st};
  handler_result result;
  try {
    result = co_await cmd.handler(c);
  } catch (const std::exception& e) {
    // A handler that throws has a bug; the client still gets an answer and the agent lives.
    std::string d = "internal error in ";
    d += cmd.name;
    d += ": ";
    d += e.what();
    result = protocol::generic(std::move(d));
  } catch (...) {
    result = protocol::generic("internal error in " + std::string(cmd.name));
  }
  if (result) {
    out.resize(mark);
    protocol::write_error(out, *result, req.id);
    co_return true;
  }
  if (!cmd.success_response) {  // guest-shutdown & co: nothing at all on success
    out.resize(mark);
    co_return false;
  }
  protocol::end_return(out, req.id);
  co_return true;
}

}  // namespace fleetga::commands
