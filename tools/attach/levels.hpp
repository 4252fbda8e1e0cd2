#pragma once
// The mapping "support level X enables command Y", read from the agent's own command table
// (commands/table.hpp, the `needs` column) at compile time: the host tool and the agent can
// never disagree on it.
#include <span>
#include <string_view>

#include "commands/support_level.hpp"

namespace fleetga::host::attach {

using commands::support_level;

struct level_rule {
  std::string_view command;
  support_level needs;    // lowest host support level the command works with
  std::string_view why;   // why `needs` is above 1.0.0 (empty when it is not)
};

// Every command of the table, in table order.
std::span<const level_rule> level_rules();

// The highest level at which `command` is still disabled: the greatest `needs` value of the
// table below that command's own `needs` (1.0.0 when there is none). nullopt for an unknown
// command or one every level enables.
std::optional<support_level> highest_level_without(std::string_view command);

}  // namespace fleetga::host::attach
