#pragma once
// The session's decisions without its I/O (issue 15, point 4): which frame is handled next,
// when replies go out (batching, the high-water mark, the drain before a no-reply command),
// what a failed write, a peer that is gone, a read error or a cancelled wait mean, and when a
// pipelining client must let the rest of the I/O thread run. No Asio, no system calls: the
// caller (agent/session.cpp's serve(), a test, a fuzzer) performs each returned action and
// reports its outcome through the matching method, which returns the next action.
//
//   action       the caller does                                    then calls
//   write        write all of output() (the output buffer)           write_done(ok)
//   wait_handler resume when the handler task completes:              handler_done()
//                set_continuation(h) with the coroutine to resume
//   read         read(2) into read_buffer() (the framer's space)      read_done(n, errno)
//   wait_read    wait until the stream is readable                    readable() / wait_failed(why)
//   yield        let other work on the thread run once                yielded()
//   close        stop; end() says why (the output buffer is empty)    -
//
// The core drives commands::service::handle() itself and is the service's output_drain: a
// drain before guest-shutdown & co comes out as a write action. Input goes straight into the
// framer's buffer (read_buffer() is framer::prepare()'s span), so nothing is copied.
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "commands/service.hpp"
#include "commands/task.hpp"
#include "protocol/framer.hpp"

namespace fleetga::commands {

// Replies are appended to one buffer; past this many bytes the session stops dispatching
// (and so stops reading) until the buffer has been written, so a client that sends without
// reading cannot make the agent grow. A single reply may exceed it (guest-file-read of
// 48 MiB encodes to 64 MiB): it is written on its own.
inline constexpr std::size_t output_high_water = 256 * 1024;
// After a big reply (a 48 MiB guest-file-read is 64 MiB of base64) the output buffer is
// given back instead of being kept for the life of the process.
inline constexpr std::size_t output_keep_capacity = 1024 * 1024;
// Bytes asked of each read (qemu-ga reads 4 KiB at a time; bigger reads batch pipelines).
inline constexpr std::size_t read_chunk = 64 * 1024;
// Reads in a row (each followed by the frames it completed) before the session yields, so a
// pipelining client cannot starve exec pipes, timers and finished offloaded commands.
inline constexpr int fair_reads = 16;

// eof: the peer left (EOF, ECONNRESET, a failed write); error: a read error or a cancelled
// wait (the agent is stopping).
enum class stream_end { eof, error };

enum class session_log_level { debug, error };

// Where the core's log lines go (the agent: spdlog; tests: a vector). Lines are complete
// texts, without the level.
class session_log {
 public:
  virtual ~session_log() = default;
  virtual void line(session_log_level level, std::string_view text) = 0;
};

// What the caller does next; the operands are the core's (output(), read_buffer(), end()).
// One byte, returned in a register, and the per-request transitions inline: the split costs
// serve() about 17 instructions per request over the old single loop (guest-ping, callgrind).
enum class session_action : unsigned char { write, wait_handler, read, wait_read, yield, close };

class session_core final : public output_drain {
 public:
  // `framer`, `service` and `out` outlive the core (they outlive sessions: the parser state
  // and the buffer's capacity survive reconnects). `after_request` (may be null or empty) runs
  // after every handled request. `log` may be null (lines dropped).
  session_core(protocol::framer& framer, service& svc, std::string& out, const std::function<void()>* after_request,
               session_log* log) noexcept
      : framer_(framer), service_(svc), out_(out), after_request_(after_request), log_(log) {}
  session_core(const session_core&) = delete;
  session_core& operator=(const session_core&) = delete;
  // A core must not be destroyed while its handler task is suspended (wait_handler): offloaded
  // work refers to the task's frame. serve() never leaves while one is pending.
  ~session_core() override = default;

  // The first action of a session: frames already in the framer are handled first (the
  // channel may hand over input it read itself).
  session_action start() { return dispatch(); }

  // The operands of the last action: write's bytes (all of them, every time: the caller may
  // write them in parts), read's buffer, close's reason.
  std::string_view output() const noexcept { return out_; }
  std::span<char> read_buffer() const noexcept { return space_; }
  stream_end end() const noexcept { return end_; }

  // After wait_handler: the coroutine to resume when the handler task completes. The task
  // completes only on the caller's thread after the caller yields (the offloader resumes on the
  // I/O thread), so setting it after the task suspended loses nothing.
  void set_continuation(std::coroutine_handle<> h) noexcept { task_.set_continuation(h); }
  session_action handler_done();

  // The common cases are inline (serve() runs them for every request); the rest is in the .cpp.
  session_action write_done(bool ok) {
    if (ok && state_ == state::flushing && out_.capacity() <= output_keep_capacity) {
      out_.clear();
      return read_first();
    }
    return write_done_slow(ok);
  }
  // `n` is read(2)'s result; `err` its errno when n < 0.
  session_action read_done(long n, int err) {
    if (n > 0 && reads_in_row_ + 1 < fair_reads) {
      ++reads_in_row_;
      framer_.commit(static_cast<std::size_t>(n));
      return dispatch();
    }
    // Read first, wait only on EAGAIN: the reactor is edge-triggered, and between the read
    // and the wait nothing runs the reactor, so no edge can be lost.
    if (n < 0 && err == EAGAIN) {
      reads_in_row_ = 0;
      return session_action::wait_read;
    }
    return read_done_slow(n, err);
  }
  session_action readable() noexcept { return session_action::read; }
  session_action wait_failed(std::string_view why);
  session_action yielded() { return dispatch(); }

  // Whether a handler task is suspended (the core must not go away now).
  bool handler_pending() const noexcept { return state_ == state::in_handler || state_ == state::draining; }

  // output_drain, called by service::handle() inside the task (before a no-reply command).
  void drain(std::coroutine_handle<> h) override;

 private:
  enum class state : unsigned char { idle, in_handler, draining, writing_high, flushing, reading, closed };

  session_action dispatch();
  session_action suspended();
  bool complete(task<bool>& t);
  session_action flush();
  session_action read_first() {
    space_ = framer_.prepare(read_chunk);
    state_ = state::reading;
    return session_action::read;
  }
  session_action write(state s) noexcept {
    state_ = s;
    return session_action::write;
  }
  session_action write_done_slow(bool ok);
  session_action read_done_slow(long n, int err);
  session_action close(stream_end e);
  void log(session_log_level level, std::string_view what, std::string_view detail);

  protocol::framer& framer_;
  service& service_;
  std::string& out_;
  const std::function<void()>* after_request_;
  session_log* log_;
  protocol::frame frame_;
  task<bool> task_;
  std::coroutine_handle<> drain_waiter_;
  std::span<char> space_;
  int reads_in_row_ = 0;
  bool peer_gone_ = false;
  state state_ = state::idle;
  stream_end end_ = stream_end::eof;
};

}  // namespace fleetga::commands
