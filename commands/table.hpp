#pragma once
// THE command table. Everything about commands is derived from it: dispatch (a perfect hash
// computed at compile time), guest-info's supported_commands, `-b help` / `-a help`, the
// freeze-safe mask, the gate's support levels, and on the host fleetga-host attach's
// "level X enables command Y" (tools/attach/levels.cpp reads the `needs` column at compile
// time). Adding a command = adding one row (and its handler).
//
// Freeze-safe (allowed while frozen, qemu-ga's ga_command_is_frozen_safe): guest-ping,
// guest-info, guest-sync, guest-sync-delimited, guest-fsfreeze-status and, once it is
// registered, guest-fsfreeze-thaw. Nothing else, whatever the lists say.
//
// Row order is registration order = upstream qemu-ga's schema order (qga/qapi-schema.json),
// because guest-info prints the commands in reverse registration order and `-b help` in
// registration order. Commands not implemented yet are not registered (upstream >= 9.1 does
// the same for commands a build lacks: "has not been found"). guest-set-support-level is
// fleetga's own and sits right after guest-info (it extends guest-info's reply).
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "commands/accounts.hpp"
#include "commands/clock.hpp"
#include "commands/command.hpp"
#include "commands/exec.hpp"
#include "commands/fsfreeze.hpp"
#include "commands/handlers.hpp"
#include "commands/hardware.hpp"
#include "commands/network.hpp"
#include "commands/power.hpp"
#include "commands/storage.hpp"

namespace fleetga::commands {

namespace table_detail {
inline constexpr support_level base{1, 0, 0};  // every host that ever had qemu-ga (0.15, 1.0)

constexpr descriptor row(std::string_view name, handler_fn h, std::string_view since,
                         bool freeze_safe = false, support_level needs = base,
                         std::string_view why = {}) {
  return {name, h, since, true, freeze_safe, false, needs, why};
}
}  // namespace table_detail

// clang-format off
inline constexpr auto command_table = [] {
  using namespace handlers;
  using table_detail::row;
  constexpr bool frozen_ok = true;
  std::array t{
    descriptor{"guest-sync-delimited", guest_sync_delimited, "1.1", true, true, true, table_detail::base, {}},
    row("guest-sync",              guest_sync,              "0.15", frozen_ok),
    row("guest-ping",              guest_ping,              "0.15", frozen_ok),
    row("guest-get-time",          guest_get_time,          "1.5"),
    row("guest-set-time",          guest_set_time,          "1.5"),
    row("guest-info",              guest_info,              "0.15", frozen_ok),
    // fleetga extension (wire spec §5); writes qga.state, so not freeze-safe.
    row("guest-set-support-level", guest_set_support_level, "1.1"),
    descriptor{"guest-shutdown",       guest_shutdown,          "0.15", false, false, false, table_detail::base, {}},
    row("guest-file-open",         guest_file_open,         "0.15"),
    row("guest-file-close",        guest_file_close,        "0.15"),
    row("guest-file-read",         guest_file_read,         "0.15"),
    row("guest-file-write",        guest_file_write,        "0.15"),
    row("guest-file-seek",         guest_file_seek,         "0.15"),
    row("guest-file-flush",        guest_file_flush,        "0.15"),
    row("guest-fsfreeze-status",   guest_fsfreeze_status,   "0.15", frozen_ok),
    row("guest-fsfreeze-freeze",   guest_fsfreeze_freeze,   "0.15"),
    row("guest-fsfreeze-freeze-list", guest_fsfreeze_freeze_list, "2.2"),
    row("guest-fsfreeze-thaw",     guest_fsfreeze_thaw,     "0.15", frozen_ok),
    row("guest-fstrim",            guest_fstrim,            "1.2"),
    // S4 resumes through a normal boot: any host.
    descriptor{"guest-suspend-disk",   guest_suspend_disk,      "1.1", false, false, false, table_detail::base, {}},
    descriptor{"guest-suspend-ram",    guest_suspend_ram,       "1.1", false, false, false, {1, 1, 0},
               "older QEMU cannot wake a suspended guest (S3 wakeup arrived in QEMU 1.1)"},
    descriptor{"guest-suspend-hybrid", guest_suspend_hybrid,    "1.1", false, false, false, {1, 1, 0},
               "older QEMU cannot wake a suspended guest (S3 wakeup arrived in QEMU 1.1)"},
    row("guest-network-get-interfaces", guest_network_get_interfaces, "1.1"),
    row("guest-get-vcpus",         guest_get_vcpus,         "1.5"),
    row("guest-set-vcpus",         guest_set_vcpus,         "1.5"),
    row("guest-get-disks",         guest_get_disks,         "5.2"),
    row("guest-get-fsinfo",        guest_get_fsinfo,        "2.2"),
    row("guest-set-user-password", guest_set_user_password, "2.3"),
    row("guest-get-memory-blocks", guest_get_memory_blocks, "2.3"),
    row("guest-set-memory-blocks", guest_set_memory_blocks, "2.3"),
    row("guest-get-memory-block-info", guest_get_memory_block_info, "2.3"),
    row("guest-exec-status",       guest_exec_status,       "2.5"),
    row("guest-exec",              guest_exec,              "2.5"),
    row("guest-get-host-name",     guest_get_host_name,     "2.10"),
    row("guest-get-users",         guest_get_users,         "2.10"),
    row("guest-get-timezone",      guest_get_timezone,      "2.10"),
    row("guest-get-osinfo",        guest_get_osinfo,        "2.10"),
    row("guest-ssh-get-authorized-keys",    guest_ssh_get_authorized_keys,    "5.2"),
    row("guest-ssh-add-authorized-keys",    guest_ssh_add_authorized_keys,    "5.2"),
    row("guest-ssh-remove-authorized-keys", guest_ssh_remove_authorized_keys, "5.2"),
    row("guest-get-diskstats",     guest_get_diskstats,     "7.1"),
    row("guest-get-cpustats",      guest_get_cpustats,      "7.1"),
    row("guest-get-load",          guest_get_load,          "10.0"),
    row("guest-network-get-route", guest_network_get_route, "9.1"),
  };
  return t;
}();
// clang-format on

inline constexpr std::size_t command_count = command_table.size();
static_assert(command_count <= 64, "the gate's per-command masks are 64-bit");

namespace table_detail {

constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

inline constexpr unsigned slot_bits = 8;
inline constexpr std::size_t slot_count = std::size_t{1} << slot_bits;
constexpr std::size_t slot_of(std::uint64_t h, std::uint64_t mult) noexcept {
  return static_cast<std::size_t>((h * mult) >> (64 - slot_bits));
}

// Multiplier under which every name lands in its own slot (searched at compile time).
inline constexpr std::uint64_t multiplier = [] {
  for (std::uint64_t m = 0x9E3779B97F4A7C15ull;; m += 2) {
    std::array<bool, slot_count> used{};
    bool ok = true;
    for (const auto& d : command_table) {
      auto s = slot_of(fnv1a(d.name), m);
      if (used[s]) { ok = false; break; }
      used[s] = true;
    }
    if (ok) return m;
  }
}();

inline constexpr auto slots = [] {
  std::array<std::uint8_t, slot_count> s{};  // index + 1, 0 = empty
  for (std::size_t i = 0; i < command_table.size(); ++i)
    s[slot_of(fnv1a(command_table[i].name), multiplier)] = static_cast<std::uint8_t>(i + 1);
  return s;
}();

constexpr std::uint64_t mask_of(bool (*pred)(const descriptor&)) {
  std::uint64_t m = 0;
  for (std::size_t i = 0; i < command_table.size(); ++i)
    if (pred(command_table[i])) m |= std::uint64_t{1} << i;
  return m;
}

}  // namespace table_detail

// Index of the command called `name`: one hash, one table probe, one compare.
constexpr std::optional<std::size_t> find_command(std::string_view name) noexcept {
  auto idx = table_detail::slots[table_detail::slot_of(table_detail::fnv1a(name), table_detail::multiplier)];
  if (idx == 0 || command_table[idx - 1].name != name) return std::nullopt;
  return idx - 1;
}

inline constexpr std::uint64_t freeze_safe_mask =
    table_detail::mask_of([](const descriptor& d) { return d.freeze_safe; });
inline constexpr std::uint64_t all_commands_mask =
    command_count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << command_count) - 1;

// Compile-time checks of the table itself.
namespace table_detail {
constexpr bool names_unique() {
  for (std::size_t i = 0; i < command_table.size(); ++i)
    for (std::size_t j = i + 1; j < command_table.size(); ++j)
      if (command_table[i].name == command_table[j].name) return false;
  return true;
}
constexpr bool all_found() {
  for (std::size_t i = 0; i < command_table.size(); ++i)
    if (find_command(command_table[i].name) != i) return false;
  return true;
}
constexpr bool levels_explained() {
  for (const auto& d : command_table)
    if (d.needs != base && d.needs_why.empty()) return false;
  return true;
}
static_assert(names_unique());
static_assert(all_found());
static_assert(levels_explained(), "a row above 1.0.0 must say why");
static_assert(!find_command("guest-foo") && !find_command(""));
}  // namespace table_detail

}  // namespace fleetga::commands
