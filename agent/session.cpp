#include "agent/session.hpp"

#include <unistd.h>

#include <cerrno>
#include <coroutine>
#include <exception>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "commands/session_core.hpp"

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

// Waits (without blocking the I/O thread) for the core's handler task that suspended.
asio::awaitable<void> wait_for(commands::session_core& core) {
  auto ex = co_await asio::this_coro::executor;
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&core, ex](auto handler) {
        auto hook = make_resume_hook([h = std::move(handler), ex]() mutable {
          // Post, don't resume inline: we are inside the task's final suspend.
          asio::post(ex, std::move(h));
        });
        core.set_continuation(hook.handle);
      },
      asio::use_awaitable);
}

// Writes all of `bytes`: first a non-blocking attempt (a reply normally fits the socket
// buffer, so no reactor round trip), then asynchronously for the rest.
template <class Stream>
asio::awaitable<bool> write_all(Stream& stream, std::string_view bytes) {
  boost::system::error_code ec;
  std::size_t done = stream.write_some(asio::buffer(bytes), ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return false;
  if (done < bytes.size()) {
    auto [wec, n] =
        co_await asio::async_write(stream, asio::buffer(bytes.data() + done, bytes.size() - done), use_tuple);
    (void)n;
    if (wec) co_return false;
  }
  co_return true;
}

class spdlog_sink final : public commands::session_log {
 public:
  void line(commands::session_log_level level, std::string_view text) override {
    if (level == commands::session_log_level::error) spdlog::error("{}", text);
    else spdlog::debug("{}", text);
  }
};

}  // namespace

template <class Stream>
asio::awaitable<stream_end> serve(Stream& stream, session_io io) {
  using action = commands::session_action;
  boost::system::error_code ec;
  stream.non_blocking(true, ec);
  spdlog_sink sink;
  commands::session_core core(io.framer, io.service, io.out, io.after_request, &sink);
  for (action a = core.start();;) {
    switch (a) {
      case action::write:
        a = core.write_done(co_await write_all(stream, core.output()));
        break;
      case action::wait_handler:
        co_await wait_for(core);
        a = core.handler_done();
        break;
      case action::read: {
        auto space = core.read_buffer();
        ssize_t n = ::read(stream.native_handle(), space.data(), space.size());
        a = core.read_done(n, n < 0 ? errno : 0);
        break;
      }
      case action::wait_read: {
        auto [wec] = co_await stream.async_wait(Stream::wait_read, use_tuple);
        a = wec ? core.wait_failed(wec.message()) : core.readable();  // cancelled: the agent is stopping
        break;
      }
      case action::yield:
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        a = core.yielded();
        break;
      case action::close:
        co_return core.end();
    }
  }
}

template asio::awaitable<stream_end> serve(asio::local::stream_protocol::socket&, session_io);
template asio::awaitable<stream_end> serve(asio::posix::stream_descriptor&, session_io);

}  // namespace fleetga::agent
