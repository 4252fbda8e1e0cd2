#pragma once
// Asio side of fleetga-host: a connection to an agent whose replies are split by the
// protocol framer (the same QEMU-exact framing the agent uses), with deadlines on every
// operation so nothing can hang. A deadline is Asio's `op || timer.async_wait()`: whichever
// finishes first cancels the other, and both have finished when the operation returns, so no
// expiry is ever left queued to reach a connection that is gone or a later operation.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <boost/system/error_code.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "protocol/framer.hpp"
#include "tools/common.hpp"

namespace fleetga::host {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using unix_socket = asio::local::stream_protocol::socket;
inline constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

inline std::chrono::steady_clock::time_point to_tp(std::int64_t ns) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

// One item of agent output: a JSON reply, the 0xFF delimiter, or bytes that are not JSON.
struct reply_item {
  enum class kind : std::uint8_t { json, delim, junk } type = kind::json;
  std::string_view text;  // json: the reply (padded, valid until the next next()); junk: the error
};

class agent_conn {
 public:
  explicit agent_conn(const asio::any_io_executor& ex) : sock(ex) {}
  agent_conn(const agent_conn&) = delete;
  agent_conn& operator=(const agent_conn&) = delete;

  // Deadlines are steady_clock nanoseconds (now_ns()); 0 or less: none. At the deadline the
  // operation is cancelled and returns asio::error::timed_out.
  //
  // Connects, retrying refused/missing sockets every 20 ms (an agent still starting, or a
  // one-client agent busy with someone else) until the deadline.
  asio::awaitable<error_code> connect(const std::string& path, std::int64_t deadline_ns);
  asio::awaitable<error_code> write(std::string_view data, std::int64_t deadline_ns);
  // Next item of agent output; asio::error::timed_out at the deadline, eof when the agent
  // closed the connection.
  asio::awaitable<error_code> next(reply_item& out, std::int64_t deadline_ns);
  // One read of raw bytes into `buf` (n: how many), bypassing the framer; timed_out at the
  // deadline (replay keeps the bytes as the agent split them).
  asio::awaitable<error_code> read_raw(asio::mutable_buffer buf, std::size_t& n, std::int64_t deadline_ns);
  // 0xFF + guest-sync-delimited(random id); skips everything up to the 0xFF and the matching
  // reply (wire spec §1.2). `stale` counts replies skipped on the way.
  asio::awaitable<error_code> sync_delimited(std::uint64_t id, std::int64_t deadline_ns, std::uint64_t* stale = nullptr);
  void close();
  bool is_open() const { return sock.is_open(); }
  // Discards buffered, unread agent output (after a reconnect).
  void reset_framer();

  unix_socket sock;
  std::uint64_t bytes_in = 0;

 private:
  std::unique_ptr<protocol::framer> fr_ = std::make_unique<protocol::framer>();
};

std::string ec_text(const error_code& ec);

}  // namespace fleetga::host
