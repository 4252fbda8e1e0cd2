#pragma once
// THE command schema: one row per command, everything about a command that is not its code.
// Like QEMU's qga/qapi-schema.json, every consumer reads this one description:
//   - the agent's table (commands/table.hpp pairs each row with its handler, in this order),
//     so dispatch, guest-info's supported_commands, `-b help` / `-a help`, the freeze-safe
//     mask and the gate's support levels;
//   - fleetga-host (tools/common.cpp: which commands act on the guest, answer nothing on
//     success, or answer differently each time) and fleetga-host attach's policy
//     ("level X enables command Y", tools/attach/levels.cpp);
//   - the fuzzer (tests/fuzz/fuzz_dispatch.cpp: the commands that act on the guest must stop
//     at a no-op there) and the documentation checks (tests/unit/commands_core_test.cpp
//     holds the man page's freeze-safe list to the rows).
// Header-only constexpr data: tools include it without linking the handlers.
//
// Row order is registration order = upstream qemu-ga's schema order, because guest-info
// prints the commands in reverse registration order and `-b help` in registration order.
// guest-set-support-level is fleetga's own and sits right after guest-info (it extends
// guest-info's reply).
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "commands/support_level.hpp"

namespace fleetga::commands {

// Properties of a command; combine with |.
enum command_flags : std::uint8_t {
  no_flags = 0,
  // Nothing is sent back on success (QAPI 'success-response': false): the guest goes away.
  no_success_response = 1u << 0,
  // Stays enabled while filesystems are frozen (qemu-ga's ga_command_is_frozen_safe):
  // guest-ping, guest-info, guest-sync, guest-sync-delimited, guest-fsfreeze-status and
  // guest-fsfreeze-thaw. Nothing else, whatever a configuration says.
  freeze_safe = 1u << 1,
  // The reply is prefixed with 0xFF (guest-sync-delimited).
  delimited = 1u << 2,
  // Changes the guest (files, clock, users, devices, power, filesystems, processes):
  // fleetga-host refuses it in load and replay without --allow-unsafe, the fuzzer stops it
  // before the system call.
  acts_on_guest = 1u << 3,
  // The reply differs from call to call on an unchanged guest (clocks, counters, handles,
  // pids, echoes): fleetga-host replay compares its shape, not its bytes.
  volatile_reply = 1u << 4,
};
constexpr command_flags operator|(command_flags a, command_flags b) noexcept {
  return static_cast<command_flags>(static_cast<std::uint8_t>(a) | static_cast<std::uint8_t>(b));
}

struct command_schema {
  std::string_view name;
  std::string_view since;        // the QEMU release that introduced it
  command_flags flags = no_flags;
  support_level needs{1, 0, 0};  // lowest host support level it works with
  std::string_view needs_why{};  // why `needs` is above 1.0.0 (empty when it is not)

  constexpr bool has(command_flags f) const noexcept { return (flags & f) == f; }
};

namespace schema_detail {
inline constexpr support_level s3_wakeup{1, 1, 0};
inline constexpr std::string_view s3_wakeup_why =
    "older QEMU cannot wake a suspended guest (S3 wakeup arrived in QEMU 1.1)";
}  // namespace schema_detail

// clang-format off
inline constexpr std::array command_schemas{
  command_schema{.name = "guest-sync-delimited", .since = "1.1", .flags = freeze_safe | delimited | volatile_reply},
  command_schema{.name = "guest-sync",           .since = "0.15", .flags = freeze_safe | volatile_reply},
  command_schema{.name = "guest-ping",           .since = "0.15", .flags = freeze_safe},
  command_schema{.name = "guest-get-time",       .since = "1.5",  .flags = volatile_reply},
  command_schema{.name = "guest-set-time",       .since = "1.5",  .flags = acts_on_guest},
  command_schema{.name = "guest-info",           .since = "0.15", .flags = freeze_safe},
  // fleetga's extension (docs/protocol.md §5); writes qga.state, so not freeze-safe.
  command_schema{.name = "guest-set-support-level", .since = "1.1", .flags = acts_on_guest},
  command_schema{.name = "guest-shutdown",       .since = "0.15", .flags = no_success_response | acts_on_guest},
  command_schema{.name = "guest-file-open",      .since = "0.15", .flags = acts_on_guest | volatile_reply},
  command_schema{.name = "guest-file-close",     .since = "0.15"},
  command_schema{.name = "guest-file-read",      .since = "0.15"},
  command_schema{.name = "guest-file-write",     .since = "0.15", .flags = acts_on_guest},
  command_schema{.name = "guest-file-seek",      .since = "0.15"},
  command_schema{.name = "guest-file-flush",     .since = "0.15"},
  command_schema{.name = "guest-fsfreeze-status", .since = "0.15", .flags = freeze_safe},
  command_schema{.name = "guest-fsfreeze-freeze", .since = "0.15", .flags = acts_on_guest},
  command_schema{.name = "guest-fsfreeze-freeze-list", .since = "2.2", .flags = acts_on_guest},
  command_schema{.name = "guest-fsfreeze-thaw",  .since = "0.15", .flags = freeze_safe | acts_on_guest},
  command_schema{.name = "guest-fstrim",         .since = "1.2",  .flags = acts_on_guest},
  // S4 resumes through a normal boot: any host.
  command_schema{.name = "guest-suspend-disk",   .since = "1.1",  .flags = no_success_response | acts_on_guest},
  command_schema{.name = "guest-suspend-ram",    .since = "1.1",  .flags = no_success_response | acts_on_guest,
                 .needs = schema_detail::s3_wakeup, .needs_why = schema_detail::s3_wakeup_why},
  command_schema{.name = "guest-suspend-hybrid", .since = "1.1",  .flags = no_success_response | acts_on_guest,
                 .needs = schema_detail::s3_wakeup, .needs_why = schema_detail::s3_wakeup_why},
  command_schema{.name = "guest-network-get-interfaces", .since = "1.1", .flags = volatile_reply},
  command_schema{.name = "guest-get-vcpus",      .since = "1.5"},
  command_schema{.name = "guest-set-vcpus",      .since = "1.5",  .flags = acts_on_guest},
  command_schema{.name = "guest-get-disks",      .since = "5.2"},
  command_schema{.name = "guest-get-fsinfo",     .since = "2.2",  .flags = volatile_reply},
  command_schema{.name = "guest-set-user-password", .since = "2.3", .flags = acts_on_guest},
  command_schema{.name = "guest-get-memory-blocks", .since = "2.3", .flags = volatile_reply},
  command_schema{.name = "guest-set-memory-blocks", .since = "2.3", .flags = acts_on_guest},
  command_schema{.name = "guest-get-memory-block-info", .since = "2.3", .flags = volatile_reply},
  command_schema{.name = "guest-exec-status",    .since = "2.5",  .flags = volatile_reply},
  command_schema{.name = "guest-exec",           .since = "2.5",  .flags = acts_on_guest | volatile_reply},
  command_schema{.name = "guest-get-host-name",  .since = "2.10"},
  command_schema{.name = "guest-get-users",      .since = "2.10", .flags = volatile_reply},
  command_schema{.name = "guest-get-timezone",   .since = "2.10"},
  command_schema{.name = "guest-get-osinfo",     .since = "2.10"},
  command_schema{.name = "guest-ssh-get-authorized-keys",    .since = "5.2"},
  command_schema{.name = "guest-ssh-add-authorized-keys",    .since = "5.2", .flags = acts_on_guest},
  command_schema{.name = "guest-ssh-remove-authorized-keys", .since = "5.2", .flags = acts_on_guest},
  command_schema{.name = "guest-get-diskstats",  .since = "7.1",  .flags = volatile_reply},
  command_schema{.name = "guest-get-cpustats",   .since = "7.1",  .flags = volatile_reply},
  command_schema{.name = "guest-get-load",       .since = "10.0", .flags = volatile_reply},
  command_schema{.name = "guest-network-get-route", .since = "9.1"},
};
// clang-format on

inline constexpr std::size_t command_count = command_schemas.size();
static_assert(command_count <= 64, "the gate's per-command masks are 64-bit");

// The row called `name` (a linear scan: for tools and compile-time use; the agent dispatches
// through table.hpp's perfect hash).
constexpr const command_schema* find_schema(std::string_view name) noexcept {
  for (const auto& s : command_schemas)
    if (s.name == name) return &s;
  return nullptr;
}

namespace schema_detail {
constexpr bool levels_explained() {
  for (const auto& s : command_schemas)
    if ((s.needs != support_level{1, 0, 0}) != !s.needs_why.empty()) return false;
  return true;
}
constexpr bool names_unique() {
  for (std::size_t i = 0; i < command_schemas.size(); ++i)
    for (std::size_t j = i + 1; j < command_schemas.size(); ++j)
      if (command_schemas[i].name == command_schemas[j].name) return false;
  return true;
}
static_assert(levels_explained(), "a row above 1.0.0 must say why, and only such a row");
static_assert(names_unique());
}  // namespace schema_detail

}  // namespace fleetga::commands
