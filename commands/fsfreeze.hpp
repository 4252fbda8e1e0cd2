#pragma once
// The fsfreeze family: guest-fsfreeze-freeze, -freeze-list, -thaw, guest-fstrim (status is in
// handlers.hpp), the hook, the isfrozen file and the auto-thaw watchdog.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "commands/command.hpp"
#include "commands/timer.hpp"
#include "platform/freeze.hpp"

namespace fleetga::commands {

struct options;  // commands/service.hpp

// qemu-ga has none; fleetga thaws by itself when no thaw came within this (wire spec §3.2,
// issue 3). 0 disables.
inline constexpr std::chrono::seconds fsfreeze_timeout_default{600};
// FITHAW is repeated until it fails (nested freezes); a filesystem that never fails it
// (broken driver, fake) stops here instead of spinning forever.
inline constexpr int thaw_attempts_max = 1024;
inline constexpr std::string_view fsfreeze_hook_action = "execute fsfreeze hook";

// The fsfreeze part of agent_state. Fields are set at start-up; `op` serialises the
// offloaded freeze / thaw / auto-thaw jobs (they run on workers, and an auto-thaw may race
// a host's thaw).
struct fsfreeze_context {
  explicit fsfreeze_context(std::string r) : root(r), default_freezer(std::move(r)) {}

  std::string root;  // the mount table and device paths are read under it (like `sys`)
  platform::linux_freezer default_freezer;
  platform::freezer* freezer = &default_freezer;  // tests repoint it to a fake
  std::optional<std::string> hook;                 // -F / fsfreeze-hook=; nullopt: no hook
  std::chrono::seconds timeout = fsfreeze_timeout_default;
  timer_service* timer = nullptr;                  // nullptr: no watchdog
  std::uint64_t watchdog_generation = 0;           // I/O thread only; stale fires are ignored
  std::mutex op;
};

struct agent_state;
// service.cpp: copies options::fsfreeze_* into st.fsfreeze (before init()).
void configure_fsfreeze(agent_state& st, const options& o);
// service.cpp: the agent started frozen (qga.state.isfrozen): arm the watchdog.
void fsfreeze_started_frozen(agent_state& st);
// Thaw everything now, blocking (FITHAW on every mount, leave frozen state, hook `thaw`);
// for an agent that exits while frozen. Returns the count or -1 (mount table unreadable).
std::int64_t fsfreeze_thaw_blocking(agent_state& st, std::string* error = nullptr);

}  // namespace fleetga::commands

namespace fleetga::commands::handlers {
task<handler_result> guest_fsfreeze_freeze(call&);
task<handler_result> guest_fsfreeze_freeze_list(call&);
task<handler_result> guest_fsfreeze_thaw(call&);
task<handler_result> guest_fstrim(call&);
}  // namespace fleetga::commands::handlers
