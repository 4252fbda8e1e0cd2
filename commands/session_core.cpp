#include "commands/session_core.hpp"

#include <cassert>
#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>

namespace fleetga::commands {

// The request's task `t` is done. Returns true when its reply must go out before the next
// frame (the high-water mark). Inlined: it runs for every request.
[[gnu::always_inline]] inline bool session_core::complete(task<bool>& t) {
  try {
    (void)t.take();
  } catch (const std::exception& e) {
    // service::handle answers every request itself; reaching here is a bug (or memory
    // exhaustion). The request gets no reply, the agent and its other clients live on.
    log(session_log_level::error, "request dropped: ", e.what());
  }
  if (after_request_ && *after_request_) (*after_request_)();
  if (peer_gone_) {
    // Like qemu-ga, every request already received is still executed; its reply has nowhere
    // to go.
    out_.clear();
    return false;
  }
  return out_.size() >= output_high_water;
}

// No complete frame left: what is ready goes out in one write, then more input.
session_action session_core::flush() {
  if (peer_gone_) return close(stream_end::eof);
  if (!out_.empty()) return write(state::flushing);
  return read_first();
}

session_action session_core::dispatch() {
  state_ = state::idle;
  while (framer_.next(frame_)) {
    // A local task: a handler that completes at once (most) never touches the member, and its
    // frame goes back to the free list before the next request takes one.
    auto t = service_.handle(frame_, out_, this);
    if (!t.start()) {
      task_ = std::move(t);
      return suspended();
    }
    if (complete(t)) return write(state::writing_high);
  }
  return flush();
}

// The handler task suspended: either service::handle() asked for a drain (always before the
// handler runs, so inside start()) or the handler offloaded work.
session_action session_core::suspended() {
  if (drain_waiter_) return write(state::draining);
  state_ = state::in_handler;
  return session_action::wait_handler;
}

session_action session_core::handler_done() {
  bool high;
  {
    auto t = std::move(task_);
    high = complete(t);
  }  // the frame is freed before the next request's
  if (high) return write(state::writing_high);
  return dispatch();
}

session_action session_core::write_done_slow(bool ok) {
  if (ok) {
    out_.clear();
    if (out_.capacity() > output_keep_capacity) std::string().swap(out_);
  } else {
    peer_gone_ = true;
    out_.clear();
  }
  switch (state_) {
    case state::draining:
      state_ = state::in_handler;
      std::exchange(drain_waiter_, {}).resume();
      if (!task_.done()) return suspended();
      return handler_done();
    case state::writing_high:
      return dispatch();
    default:  // flushing
      return flush();
  }
}

session_action session_core::read_done_slow(long n, int err) {
  if (n > 0) {  // the last of `fair_reads` reads in a row
    framer_.commit(static_cast<std::size_t>(n));
    reads_in_row_ = 0;
    state_ = state::idle;
    return session_action::yield;
  }
  if (n < 0) {
    if (err == EINTR) return session_action::read;  // the same buffer again
    if (err != ECONNRESET) {
      log(session_log_level::debug, "channel read error: ", std::strerror(err));
      return close(stream_end::error);
    }
  }
  return close(stream_end::eof);
}

session_action session_core::wait_failed(std::string_view why) {
  log(session_log_level::debug, "channel wait: ", why);
  return close(stream_end::error);
}

void session_core::drain(std::coroutine_handle<> h) {
  // Only inside start() (service::handle() drains before the handler runs): the caller is
  // not waiting for the task then, so the write action reaches it.
  assert(!handler_pending() && !drain_waiter_);
  drain_waiter_ = h;
}

session_action session_core::close(stream_end e) {
  out_.clear();
  state_ = state::closed;
  end_ = e;
  return session_action::close;
}

void session_core::log(session_log_level level, std::string_view what, std::string_view detail) {
  if (!log_) return;
  std::string text(what);
  text += detail;
  log_->line(level, text);
}

}  // namespace fleetga::commands
