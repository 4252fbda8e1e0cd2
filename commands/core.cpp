// The core family: guest-sync, guest-sync-delimited, guest-ping, guest-info and fleetga's
// guest-set-support-level.
#include <array>
#include <cstring>
#include <string>

#include "commands/handlers.hpp"
#include "commands/state.hpp"
#include "commands/table.hpp"
#include "protocol/args.hpp"
#include "fleetga/version.hpp"

#ifndef FLEETGA_QEMU_VERSION
#error "FLEETGA_QEMU_VERSION must be defined by the build"
#endif

namespace fleetga::commands {
namespace {

struct sync_args {
  std::int64_t id = 0;
};

struct set_level_args {
  std::int64_t major = 0;
  std::int64_t minor = 0;
  std::optional<std::int64_t> micro;
};

}  // namespace
}  // namespace fleetga::commands

template <>
struct fleetga::protocol::arg_schema<fleetga::commands::sync_args> {
  static constexpr auto members = std::make_tuple(member("id", &fleetga::commands::sync_args::id));
};
template <>
struct fleetga::protocol::arg_schema<fleetga::commands::set_level_args> {
  using A = fleetga::commands::set_level_args;
  static constexpr auto members =
      std::make_tuple(member("major", &A::major), member("minor", &A::minor), member("micro", &A::micro));
};

namespace fleetga::commands {

namespace {

// GuestAgentInfo: QEMU prints version, supported_commands in hash order; support_level is
// fleetga's and is appended after supported_commands (issue #2) so that the bytes up to it
// are what qemu-ga sends.
static_assert(protocol::in_qemu_order(std::array<std::string_view, 2>{"version", "supported_commands"},
                                      std::array<std::string_view, 2>{"version", "supported_commands"}));
// GuestAgentCommandInfo (schema: name, enabled, success-response).
static_assert(protocol::in_qemu_order(std::array<std::string_view, 3>{"name", "enabled", "success-response"},
                                      std::array<std::string_view, 3>{"enabled", "name", "success-response"}));
// GuestAgentSupportLevel (schema: major, minor, micro).
static_assert(protocol::in_qemu_order(std::array<std::string_view, 3>{"major", "minor", "micro"},
                                      std::array<std::string_view, 3>{"micro", "minor", "major"}));


void build_info(agent_state& st, std::uint64_t word) {
  std::string& s = st.info_cache;
  s.clear();
  protocol::json_writer w(s);
  w.begin_object();
  w.key("version");
  w.string(FLEETGA_QEMU_VERSION);
  w.key("supported_commands");
  w.begin_array();
  for (std::size_t i = command_count; i-- > 0;) {  // reverse registration order
    const descriptor& d = command_table[i];
    w.begin_object();
    w.key("enabled");
    w.boolean(st.gate.check(i, d.needs, word) == verdict::enabled);
    w.key("name");
    w.string(d.name);
    w.key("success-response");
    w.boolean(d.success_response);
    w.end_object();
  }
  w.end_array();
  const support_level l = gate::level(word);
  w.key("support_level");
  w.begin_object();
  w.key("micro");
  w.integer(l.micro);
  w.key("minor");
  w.integer(l.minor);
  w.key("major");
  w.integer(l.major);
  w.end_object();
  w.end_object();
  st.info_cache_word = word;
}

}  // namespace

namespace handlers {

task<handler_result> guest_sync(call& c) {
  sync_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  c.out.integer(a.id);
  co_return std::nullopt;
}

// The 0xFF in front of the reply comes from the table row (descriptor::delimited).
task<handler_result> guest_sync_delimited(call& c) { return guest_sync(c); }

task<handler_result> guest_ping(call& c) {
  if (auto e = no_args(c)) co_return e;
  c.out.begin_object();
  c.out.end_object();
  co_return std::nullopt;
}

task<handler_result> guest_info(call& c) {
  if (auto e = no_args(c)) co_return e;
  agent_state& st = c.state;
  // The reply depends only on the gate word (the lists are fixed): cache it per word.
  const std::uint64_t word = st.gate.load();
  if (word != st.info_cache_word) build_info(st, word);
  c.out.raw(st.info_cache);
  co_return std::nullopt;
}

task<handler_result> guest_set_support_level(call& c) {
  set_level_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  // QEMU's QERR_INVALID_PARAMETER_VALUE shape: "Parameter '%s' expects %s".
  auto check = [](std::string_view name, std::int64_t v) -> handler_result {
    if (v >= 0 && v <= 65535) return std::nullopt;
    std::string d = "Parameter '";
    d += name;
    d += "' expects a value between 0 and 65535";
    return protocol::generic(std::move(d));
  };
  if (auto e = check("major", a.major)) co_return e;
  if (auto e = check("minor", a.minor)) co_return e;
  if (a.micro)
    if (auto e = check("micro", *a.micro)) co_return e;
  const support_level wanted = clamp_to_minimum(
      {static_cast<std::uint16_t>(a.major), static_cast<std::uint16_t>(a.minor),
       static_cast<std::uint16_t>(a.micro.value_or(0))});

  agent_state& st = c.state;
  persistent_state next = st.pstate;
  next.level = wanted;
  // Persist first: the level only changes once it survives a restart.
  std::string text = serialize(next);
  int err = co_await offload(st.pool, [&st, &text] {
    return platform::replace_file(st.statedir, state_file_name, text);
  });
  if (err != 0) co_return protocol::generic("failed to commit persistent state to disk");
  st.pstate = next;
  st.gate.set_level(wanted);
  c.out.begin_object();
  c.out.end_object();
  co_return std::nullopt;
}

}  // namespace handlers
}  // namespace fleetga::commands

namespace fleetga::commands {

std::optional<protocol::error> no_args(const call& c) {
  if (c.args.empty()) return std::nullopt;
  protocol::no_args a;
  return protocol::decode_args(c.args, a);
}

protocol::error errno_error(std::string_view text, int err) {
  std::string d(text);
  if (err != 0) {
    d += ": ";
    d += std::strerror(err);
  }
  return protocol::generic(std::move(d));
}

}  // namespace fleetga::commands
