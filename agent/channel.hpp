#pragma once
// Channels (wire spec §2). Each runs until the agent stops; the framer and service are the
// agent's, so parser state, file handles and frozen state survive reconnects.
#include <string>

#include <boost/asio/awaitable.hpp>

#include "agent/session.hpp"

namespace fleetga::agent {

// unix-listen: one client at a time; a stale socket file is replaced; the socket file is
// left behind at exit, as qemu-ga does. Throws std::system_error when it cannot listen.
boost::asio::awaitable<void> run_unix_listen(std::string path, session_io io);

// virtio-serial: the port is opened once and never closed. Without a host attached reads
// return EOF (and poll() reports HUP, so the reactor cannot wait on it): the agent then arms
// O_ASYNC and sleeps until the kernel's SIGIO for the host's port-open (virtio_console
// sends one), with a slow timer as a fallback. It never spins and answers within
// milliseconds of the host attaching.
boost::asio::awaitable<void> run_virtio_serial(std::string path, session_io io);

}  // namespace fleetga::agent
