#pragma once
// What a handler sees, and the shape of one row of the command table.
#include <cstdint>
#include <optional>
#include <string_view>

#include "commands/support_level.hpp"
#include "commands/task.hpp"
#include "protocol/error.hpp"
#include "protocol/json_writer.hpp"

namespace fleetga::commands {

struct agent_state;  // commands/state.hpp

// One request as a handler sees it. `out` is positioned after `{"return": `: a handler
// writes exactly one JSON value on success (nothing for success-response=false commands)
// and returns std::nullopt, or returns the error (whatever it wrote is rolled back).
struct call {
  std::string_view args;  // raw arguments object text (padded), empty when absent
  protocol::json_writer& out;
  agent_state& state;
};

using handler_result = std::optional<protocol::error>;
using handler_fn = task<handler_result> (*)(call&);

struct descriptor {
  std::string_view name;
  handler_fn handler;
  std::string_view since;
  bool success_response;   // false: nothing is sent on success
  bool freeze_safe;        // stays enabled while frozen
  bool delimited;          // reply prefixed with 0xFF (guest-sync-delimited)
  support_level needs;     // lowest host support level it works with
  std::string_view needs_why;  // why `needs` is above 1.0.0 (empty when it is not)
};

// Argument-free commands skip the decoder entirely when there are no arguments (the common
// case, and the guest-ping hot path); anything given is "Parameter 'x' is unexpected".
std::optional<protocol::error> no_args(const call& c);

// QEMU's error_setg_errno(): "<text>: <strerror(err)>", nothing appended for errno 0.
protocol::error errno_error(std::string_view text, int err);

}  // namespace fleetga::commands
