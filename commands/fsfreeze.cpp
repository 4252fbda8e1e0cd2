// The fsfreeze family. This issue: guest-fsfreeze-status only; freeze/freeze-list/thaw come
// with the platform FIFREEZE code (they store into the gate's frozen bit).
#include "commands/handlers.hpp"
#include "commands/state.hpp"
#include "protocol/args.hpp"

namespace fleetga::commands::handlers {

// "frozen" iff the agent's own frozen flag is set (not the kernel's state), wire spec §3.2.
task<handler_result> guest_fsfreeze_status(call& c) {
  if (!c.args.empty()) {
    protocol::no_args a;
    if (auto e = protocol::decode_args(c.args, a)) co_return e;
  }
  c.out.string(gate::frozen(c.state.gate.load()) ? "frozen" : "thawed");
  co_return std::nullopt;
}

}  // namespace fleetga::commands::handlers
