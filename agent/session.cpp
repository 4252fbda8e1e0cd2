#include "agent/session.hpp"

#include <unistd.h>

#include <cerrno>
#include <coroutine>
#include <cstring>
#include <exception>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "commands/service.hpp"
#include "protocol/framer.hpp"

namespace asio = boost::asio;

namespace fleetga::agent {
namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A coroutine that, when resumed, runs a callback once and frees itself: the bridge from a
// commands::task completing (symmetric transfer to a coroutine_handle) to an Asio handler.
struct resume_hook {
  struct promise_type {
    resume_hook get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

template <class F>
resume_hook make_resume_hook(F f) {
  f();
  co_return;
}

// Waits (without blocking the I/O thread) for a handler task that suspended.
template <class Task>
asio::awaitable<void> wait_for(Task& t) {
  auto ex = co_await asio::this_coro::executor;
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&t, ex](auto handler) {
        auto hook = make_resume_hook([h = std::move(handler), ex]() mutable {
          // Post, don't resume inline: we are inside the task's final suspend.
          asio::post(ex, std::move(h));
        });
        t.set_continuation(hook.handle);
      },
      asio::use_awaitable);
}

// Writes all of `out`: first a non-blocking attempt (a reply normally fits the socket
// buffer, so no reactor round trip), then asynchronously for the rest.
template <class Stream>
asio::awaitable<bool> write_all(Stream& stream, std::string& out) {
  boost::system::error_code ec;
  std::size_t done = stream.write_some(asio::buffer(out), ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return false;
  if (done < out.size()) {
    auto [wec, n] = co_await asio::async_write(
        stream, asio::buffer(out.data() + done, out.size() - done), use_tuple);
    (void)n;
    if (wec) co_return false;
  }
  out.clear();
  if (out.capacity() > output_keep_capacity) std::string().swap(out);
  co_return true;
}

// commands::output_drain over the session's stream: writes the pending replies, then resumes
// the handler task. Only used while the session waits for that task, so the stream and the
// buffer are free.
template <class Stream>
class stream_drain final : public commands::output_drain {
 public:
  stream_drain(Stream& s, std::string& out, bool& gone) : s_(s), out_(out), gone_(gone) {}
  void drain(std::coroutine_handle<> h) override {
    asio::co_spawn(s_.get_executor(), write_all(s_, out_), [this, h](std::exception_ptr e, bool ok) {
      if (e || !ok) {
        gone_ = true;
        out_.clear();
      }
      h.resume();
    });
  }

 private:
  Stream& s_;
  std::string& out_;
  bool& gone_;
};

}  // namespace

template <class Stream>
asio::awaitable<stream_end> serve(Stream& stream, session_io io) {
  boost::system::error_code ec;
  stream.non_blocking(true, ec);
  protocol::frame f;
  constexpr int fair_reads = 16;
  int reads_in_row = 0;
  for (;;) {
    // Frames already in the framer first: the channel may hand over input it read itself.
    bool peer_gone = false;
    stream_drain<Stream> drain(stream, io.out, peer_gone);
    while (io.framer.next(f)) {
      auto t = io.service.handle(f, io.out, &drain);
      if (!t.start()) co_await wait_for(t);
      try {
        t.take();
      } catch (const std::exception& e) {
        // service::handle answers every request itself; reaching here is a bug (or memory
        // exhaustion). The request gets no reply, the agent and its other clients live on.
        spdlog::error("request dropped: {}", e.what());
      }
      if (io.after_request && *io.after_request) (*io.after_request)();
      if (peer_gone) {
        // Like qemu-ga, every request already received is still executed; its reply has
        // nowhere to go.
        io.out.clear();
      } else if (io.out.size() >= output_high_water && !co_await write_all(stream, io.out)) {
        peer_gone = true;
        io.out.clear();
      }
    }
    if (!peer_gone && !io.out.empty() && !co_await write_all(stream, io.out)) peer_gone = true;
    if (peer_gone) {
      io.out.clear();
      co_return stream_end::eof;
    }
    // Read first, wait only on EAGAIN: the reactor is edge-triggered, and between this read
    // and the wait nothing runs the reactor, so no edge can be lost. A pipelining client
    // keeps the loop here; every `fair_reads` reads in a row it yields to the rest of the
    // I/O thread (exec pipes, timers, finished offloaded commands).
    auto space = io.framer.prepare(read_chunk);
    ssize_t n;
    for (;;) {
      n = ::read(stream.native_handle(), space.data(), space.size());
      if (n >= 0) break;
      if (errno == EINTR) continue;
      if (errno != EAGAIN) break;
      reads_in_row = 0;
      auto [wec] = co_await stream.async_wait(Stream::wait_read, use_tuple);
      if (wec) {  // cancelled: the agent is stopping
        io.out.clear();
        spdlog::debug("channel wait: {}", wec.message());
        co_return stream_end::error;
      }
    }
    if (n <= 0) {
      io.out.clear();
      if (n < 0 && errno != ECONNRESET) {
        spdlog::debug("channel read error: {}", std::strerror(errno));
        co_return stream_end::error;
      }
      co_return stream_end::eof;
    }
    io.framer.commit(static_cast<std::size_t>(n));
    if (++reads_in_row == fair_reads) {
      reads_in_row = 0;
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
  }
}

template asio::awaitable<stream_end> serve(asio::local::stream_protocol::socket&, session_io);
template asio::awaitable<stream_end> serve(asio::posix::stream_descriptor&, session_io);

}  // namespace fleetga::agent
