#include "tools/attach/levels.hpp"

#include <array>

#include "commands/schema.hpp"

namespace fleetga::host::attach {

namespace {
// The agent's command schema (header-only data: no handler reaches the host tool).
constexpr auto rules = [] {
  std::array<level_rule, commands::command_count> r{};
  for (std::size_t i = 0; i < commands::command_count; ++i)
    r[i] = {commands::command_schemas[i].name, commands::command_schemas[i].needs,
            commands::command_schemas[i].needs_why};
  return r;
}();
}  // namespace

std::span<const level_rule> level_rules() { return rules; }

std::optional<support_level> highest_level_without(std::string_view command) {
  const level_rule* self = nullptr;
  for (const auto& r : rules)
    if (r.command == command) self = &r;
  if (!self || self->needs <= commands::minimum_support_level) return std::nullopt;
  support_level best = commands::minimum_support_level;
  for (const auto& r : rules)
    if (r.needs < self->needs && r.needs > best) best = r.needs;
  return best;
}

}  // namespace fleetga::host::attach
