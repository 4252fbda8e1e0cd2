#pragma once
// Channels (wire spec §2). The framer and service are the agent's, so parser state, file
// handles and frozen state survive reconnects and reopened channels.
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "agent/session.hpp"

namespace fleetga::agent {

struct channel_config {
  std::string method;                // virtio-serial, isa-serial, unix-listen, vsock-listen
  std::optional<std::string> path;   // device, socket path or "<cid>:<port>"
  int listen_fd = -1;                // systemd socket activation: the listening socket
  bool retry = false;                // -r: reopen a channel that failed or vanished
};

struct open_result {
  int fd = -1;        // the device or the listening socket
  std::string error;  // qemu-ga's text when fd < 0 (e.g. "error opening channel '...': ...")
};

// ga_channel_open(), synchronously (before daemonizing: the parent must see a failure):
// virtio-serial O_RDWR|O_NONBLOCK; isa-serial O_RDWR|O_NOCTTY|O_NONBLOCK, raw termios at
// 38400, VMIN=1/VTIME=0, pending input flushed; unix-listen replaces a stale socket file
// (which stays behind at exit); vsock-listen parses "<cid>:<port>" like QEMU's
// vsock_parse(). Listening sockets have a backlog of 1. An inherited listen_fd is used as is.
open_result open_channel(const channel_config& cfg);

// Serves the channel until the agent stops, starting with `fd` from open_channel() (or -1
// when the first open failed and cfg.retry is set). Unix and vsock serve one client at a time
// and survive clients that leave or reset. virtio-serial waits for a host without spinning
// (SIGIO + read probe). A read error (hot-unplug: ENODEV, a pty whose master closed: EIO)
// ends the channel: without -r the agent then stops (qemu-ga exits 0), with -r it is closed
// and reopened with a back-off (1, 2, 4, then every 5 s, qemu-ga's interval), also when it
// can't be opened at all. EOF on isa-serial leaves the agent idle as in qemu-ga (with -r:
// reopened).
boost::asio::awaitable<void> run_channel(channel_config cfg, int fd, session_io io);

}  // namespace fleetga::agent
