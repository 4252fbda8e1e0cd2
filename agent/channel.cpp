#include "agent/channel.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "protocol/framer.hpp"

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace fleetga::agent {
namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// virtio_console raises SIGIO when the host opens its end, so the timer is only a safety net
// (qemu-ga polls at 10 Hz instead); once a second keeps an idle fleet of guests quiet.
constexpr auto host_wait_fallback = std::chrono::seconds(1);

}  // namespace

asio::awaitable<void> run_unix_listen(std::string path, session_io io) {
  auto ex = co_await asio::this_coro::executor;
  ::unlink(path.c_str());  // qemu-ga replaces a stale socket file
  stream_protocol::acceptor acceptor(ex);
  acceptor.open();
  acceptor.bind(stream_protocol::endpoint(path));
  acceptor.listen(1);
  for (;;) {
    auto [ec, client] = co_await acceptor.async_accept(use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      spdlog::warn("error accepting connection: {}", ec.message());
      continue;
    }
    spdlog::debug("client connected");
    co_await serve(client, io);
    spdlog::debug("client disconnected");
    boost::system::error_code ignored;
    client.close(ignored);
  }
}

asio::awaitable<void> run_virtio_serial(std::string path, session_io io) {
  auto ex = co_await asio::this_coro::executor;
  int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    throw std::system_error(errno, std::generic_category(), "error opening channel '" + path + "'");
  asio::posix::stream_descriptor port(ex, fd);
  // The handler must exist before O_ASYNC can raise SIGIO (its default action kills).
  asio::signal_set sigio(ex, SIGIO);
  ::fcntl(fd, F_SETOWN, ::getpid());
  asio::steady_timer timer(ex);
  for (;;) {
    auto end = co_await serve(port, io);
    if (end == stream_end::error) {
      // qemu-ga: a read error stops the agent (status 0) unless -r is given.
      spdlog::critical("error reading channel");
      co_return;
    }
    // EOF: no host attached. Sleep until SIGIO (virtio_console sends one when the host opens
    // its end and when input arrives) or the fallback timer, then probe with a read, which
    // tells the three cases apart exactly: 0 = no host and nothing buffered, EAGAIN = a host
    // is attached, > 0 = input a host wrote before it left (executed, as qemu-ga does; serve()
    // dispatches it first). poll() can't: with the host closed it reports POLLIN|POLLHUP
    // whether or not input is buffered (a read "would not block": it returns EOF).
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_ASYNC);
    for (bool first = true;; first = false) {
      if (!first) {
        timer.expires_after(host_wait_fallback);
        sigio.async_wait([&timer](const boost::system::error_code& ec, int) {
          if (!ec) timer.cancel();
        });
        co_await timer.async_wait(use_tuple);
        sigio.cancel();
      }
      auto space = io.framer.prepare(read_chunk);
      ssize_t n = ::read(fd, space.data(), space.size());
      if (n > 0) {
        io.framer.commit(static_cast<std::size_t>(n));
        break;
      }
      if (n < 0 && errno != EINTR) break;  // EAGAIN: attached; anything else: serve() sees it
    }
    ::fcntl(fd, F_SETFL, flags & ~O_ASYNC);
  }
}

}  // namespace fleetga::agent
