#pragma once
// The session loop: read into the framer's buffer, dispatch every complete frame in order,
// write the replies that are ready together in one write. One coroutine per connected
// stream; the framer and the service outlive it (parser state survives reconnects, as in
// qemu-ga).
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "commands/session_core.hpp"

namespace fleetga::agent {

// The decisions (batching, the high-water mark, drains, peer gone, read errors, fairness)
// are commands::session_core's (sans-I/O, tested with scripted chunks); serve() only performs
// its actions with system calls and Asio.
using commands::output_high_water;
using commands::output_keep_capacity;
using commands::read_chunk;
using commands::stream_end;

struct session_io {
  protocol::framer& framer;
  commands::service& service;
  std::string& out;  // reused across sessions (capacity kept)
  // Runs on the I/O thread after every handled request (the agent watches for the end of a
  // freeze there: deferred log file and pidfile). May be null.
  const std::function<void()>* after_request = nullptr;
};

// Stream is boost::asio::local::stream_protocol::socket or posix::stream_descriptor
// (explicitly instantiated in session.cpp).
template <class Stream>
boost::asio::awaitable<stream_end> serve(Stream& stream, session_io io);

}  // namespace fleetga::agent
