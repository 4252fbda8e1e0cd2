// fleetga-host's agent_conn: a deadline that expires in the same turn of the event loop as the
// operation it guards completes. The reply wins (it completed first), and the expiry, already
// queued, must touch neither a connection that is gone (the connection lives in a coroutine
// frame that may have ended: a heap-use-after-free under ASan, seen in CI with the hand-made
// timer this replaced) nor the next operation on a connection still in use (cancelled as
// "timed out"). `op || timer.async_wait()` waits for both, so the expiry is consumed before
// the operation returns.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "tools/net.hpp"

namespace fleetga::host {
namespace {

using namespace std::chrono_literals;

// Until the client waits for its reply with the deadline armed.
void run_until_waiting(asio::io_context& io) {
  io.restart();
  io.poll();
}

// The first read's deadline, from before the loop's first turn. Long enough that it cannot
// pass before the test has written the reply, however slowly a busy machine runs that turn:
// it was 10 ms, and on a loaded CI machine it expired during the turn, the coroutine ended and
// the test's write hit a closed socket ("write: Broken pipe").
constexpr std::int64_t first_deadline_ns = 1'000'000'000;

// The reply arrives and the deadline passes while the loop is not running: both complete in
// the next turn, the read first.
void reply_at_the_deadline(asio::io_context& io, unix_socket& peer, std::string_view reply,
                           std::int64_t deadline_ns = 0) {
  asio::write(peer, asio::buffer(reply.data(), reply.size()));
  std::this_thread::sleep_for(30ms);
  while (now_ns() < deadline_ns + 30'000'000) std::this_thread::sleep_for(10ms);
  io.restart();
  io.run_for(300ms);
}

TEST(HostConnection, AnExpiryQueuedWithTheReplyDoesNotReachAConnectionThatIsGone) {
  asio::io_context io(1);
  unix_socket peer(io);
  int replies = 0;
  std::string first;
  const std::int64_t deadline = now_ns() + first_deadline_ns;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        agent_conn c(io.get_executor());  // in this frame, gone when the coroutine ends
        asio::local::connect_pair(c.sock, peer);
        c.sock.non_blocking(true);  // as agent_conn::connect() leaves it
        reply_item item;
        if (!co_await c.next(item, deadline)) {
          first = std::string(item.text);
          ++replies;
        }
      },
      asio::detached);
  run_until_waiting(io);
  ASSERT_EQ(replies, 0);
  reply_at_the_deadline(io, peer, "{\"return\": {}}\n", deadline);
  EXPECT_EQ(replies, 1);
  EXPECT_EQ(first.substr(0, 14), "{\"return\": {}}");
}

TEST(HostConnection, AnExpiryQueuedWithTheReplyDoesNotCancelTheNextRead) {
  asio::io_context io(1);
  unix_socket peer(io);
  agent_conn c(io.get_executor());
  asio::local::connect_pair(c.sock, peer);
  c.sock.non_blocking(true);  // as agent_conn::connect() leaves it
  int replies = 0;
  std::string problem;
  const std::int64_t first_deadline = now_ns() + first_deadline_ns;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        reply_item item;
        for (int i = 0; i < 2; ++i) {
          // The second read has all the time it needs.
          const std::int64_t deadline = i == 0 ? first_deadline : now_ns() + 5'000'000'000;
          if (auto ec = co_await c.next(item, deadline)) {
            problem = ec_text(ec);
            co_return;
          }
          ++replies;
        }
      },
      asio::detached);
  run_until_waiting(io);
  reply_at_the_deadline(io, peer, "{\"return\": {}}\n", first_deadline);  // the first reply, the second read starts
  EXPECT_EQ(problem, "");
  EXPECT_EQ(replies, 1);
  reply_at_the_deadline(io, peer, "{\"return\": 2}\n");
  EXPECT_EQ(problem, "");
  EXPECT_EQ(replies, 2);
}

TEST(HostConnection, ADeadlineWithoutAReplyTimesOutAndTheConnectionGoesOn) {
  asio::io_context io(1);
  unix_socket peer(io);
  agent_conn c(io.get_executor());
  asio::local::connect_pair(c.sock, peer);
  c.sock.non_blocking(true);  // as agent_conn::connect() leaves it
  std::string first, second;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        reply_item item;
        first = ec_text(co_await c.next(item, now_ns() + 20'000'000));  // nothing comes
        if (auto ec = co_await c.next(item, now_ns() + 5'000'000'000)) {
          second = ec_text(ec);
        } else {
          second = std::string(item.text);
        }
      },
      asio::detached);
  io.run_for(1s);
  EXPECT_EQ(first, "timed out");
  EXPECT_EQ(second, "");
  asio::write(peer, asio::buffer(std::string_view("{\"return\": 3}\n")));
  io.restart();
  io.run_for(1s);
  EXPECT_EQ(second.substr(0, 13), "{\"return\": 3}");
}

}  // namespace
}  // namespace fleetga::host
