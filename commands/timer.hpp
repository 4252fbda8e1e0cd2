#pragma once
// A one-shot timer for commands/ (which has no Asio): the fsfreeze auto-thaw watchdog. The
// agent implements it with an asio::steady_timer on the I/O context; tests use a fake that
// fires on demand.
#include <chrono>
#include <functional>
#include <string_view>

namespace fleetga::commands {

class timer_service {
 public:
  virtual ~timer_service() = default;
  // Arms the timer, replacing any armed one: `fire` runs once on the I/O thread after `after`
  // unless cancel() or arm() comes first. (A `fire` that was already queued when cancel()
  // ran may still run: callers tolerate stale fires.)
  virtual void arm(std::chrono::seconds after, std::function<void()> fire) = 0;
  virtual void cancel() noexcept = 0;
  // One line for the agent's log at warning level (commands/ has no logger). May be called
  // from a worker thread. Default: dropped.
  virtual void warn(std::string_view /*message*/) {}
};

}  // namespace fleetga::commands
