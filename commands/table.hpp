#pragma once
// The agent's command table: each row of the schema (commands/schema.hpp: name, since, flags,
// level needed and why) joined with its handler. Everything the agent does with commands is
// derived from it: dispatch (a perfect hash computed at compile time), guest-info's
// supported_commands, `-b help` / `-a help`, the freeze-safe mask and the gate's support
// levels. Adding a command = a schema row + its handler here (and the handler itself).
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
#include "commands/schema.hpp"
#include "commands/storage.hpp"

namespace fleetga::commands {

namespace table_detail {
struct handler_row {
  std::string_view name;
  handler_fn handler;
};

// Handlers by command name, in any order; every schema row needs exactly one.
// clang-format off
inline constexpr handler_row handler_rows[] = {
  {"guest-sync-delimited",   handlers::guest_sync_delimited},
  {"guest-sync",             handlers::guest_sync},
  {"guest-ping",             handlers::guest_ping},
  {"guest-get-time",         handlers::guest_get_time},
  {"guest-set-time",         handlers::guest_set_time},
  {"guest-info",             handlers::guest_info},
  {"guest-set-support-level", handlers::guest_set_support_level},
  {"guest-shutdown",         handlers::guest_shutdown},
  {"guest-file-open",        handlers::guest_file_open},
  {"guest-file-close",       handlers::guest_file_close},
  {"guest-file-read",        handlers::guest_file_read},
  {"guest-file-write",       handlers::guest_file_write},
  {"guest-file-seek",        handlers::guest_file_seek},
  {"guest-file-flush",       handlers::guest_file_flush},
  {"guest-fsfreeze-status",  handlers::guest_fsfreeze_status},
  {"guest-fsfreeze-freeze",  handlers::guest_fsfreeze_freeze},
  {"guest-fsfreeze-freeze-list", handlers::guest_fsfreeze_freeze_list},
  {"guest-fsfreeze-thaw",    handlers::guest_fsfreeze_thaw},
  {"guest-fstrim",           handlers::guest_fstrim},
  {"guest-suspend-disk",     handlers::guest_suspend_disk},
  {"guest-suspend-ram",      handlers::guest_suspend_ram},
  {"guest-suspend-hybrid",   handlers::guest_suspend_hybrid},
  {"guest-network-get-interfaces", handlers::guest_network_get_interfaces},
  {"guest-get-vcpus",        handlers::guest_get_vcpus},
  {"guest-set-vcpus",        handlers::guest_set_vcpus},
  {"guest-get-disks",        handlers::guest_get_disks},
  {"guest-get-fsinfo",       handlers::guest_get_fsinfo},
  {"guest-set-user-password", handlers::guest_set_user_password},
  {"guest-get-memory-blocks", handlers::guest_get_memory_blocks},
  {"guest-set-memory-blocks", handlers::guest_set_memory_blocks},
  {"guest-get-memory-block-info", handlers::guest_get_memory_block_info},
  {"guest-exec-status",      handlers::guest_exec_status},
  {"guest-exec",             handlers::guest_exec},
  {"guest-get-host-name",    handlers::guest_get_host_name},
  {"guest-get-users",        handlers::guest_get_users},
  {"guest-get-timezone",     handlers::guest_get_timezone},
  {"guest-get-osinfo",       handlers::guest_get_osinfo},
  {"guest-ssh-get-authorized-keys",    handlers::guest_ssh_get_authorized_keys},
  {"guest-ssh-add-authorized-keys",    handlers::guest_ssh_add_authorized_keys},
  {"guest-ssh-remove-authorized-keys", handlers::guest_ssh_remove_authorized_keys},
  {"guest-get-diskstats",    handlers::guest_get_diskstats},
  {"guest-get-cpustats",     handlers::guest_get_cpustats},
  {"guest-get-load",         handlers::guest_get_load},
  {"guest-network-get-route", handlers::guest_network_get_route},
};
// clang-format on

// How many handler rows are called `name`, and the index of the last one.
struct handler_match {
  std::size_t count = 0, index = 0;
};
constexpr handler_match match_handler(std::string_view name) {
  handler_match m;
  for (std::size_t i = 0; i < std::size(handler_rows); ++i)
    if (handler_rows[i].name == name) m = {m.count + 1, i};
  return m;
}
constexpr bool every_row_has_one_handler() {
  for (const auto& s : command_schemas)
    if (match_handler(s.name).count != 1) return false;
  return std::size(handler_rows) == command_schemas.size();
}
static_assert(every_row_has_one_handler(), "each schema row needs exactly one handler, and each handler a row");
}  // namespace table_detail

inline constexpr auto command_table = [] {
  std::array<descriptor, command_count> t{};
  for (std::size_t i = 0; i < command_count; ++i) {
    const command_schema& s = command_schemas[i];
    t[i] = descriptor{.name = s.name,
                      .handler = table_detail::handler_rows[table_detail::match_handler(s.name).index].handler,
                      .since = s.since,
                      .success_response = !s.has(no_success_response),
                      .freeze_safe = s.has(freeze_safe),
                      .delimited = s.has(delimited),
                      .needs = s.needs,
                      .needs_why = s.needs_why};
  }
  return t;
}();

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
static_assert(names_unique());
static_assert(all_found());
static_assert(!find_command("guest-foo") && !find_command(""));
}  // namespace table_detail

}  // namespace fleetga::commands
