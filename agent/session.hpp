#pragma once
// The session loop: read into the framer's buffer, dispatch every complete frame in order,
// write the replies that are ready together in one write. One coroutine per connected
// stream; the framer and the service outlive it (parser state survives reconnects, as in
// qemu-ga).
#include <cstddef>
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

namespace fleetga::protocol { class framer; }
namespace fleetga::commands { class service; }

namespace fleetga::agent {

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

enum class stream_end { eof, error };

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
