#include "agent/channel.hpp"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "protocol/framer.hpp"

namespace asio = boost::asio;

namespace fleetga::agent {
namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// virtio_console raises SIGIO when the host opens its end, so the timer is only a safety net
// (qemu-ga polls at 10 Hz instead); once a second keeps an idle fleet of guests quiet.
constexpr auto host_wait_fallback = std::chrono::seconds(1);
// -r: qemu-ga waits QGA_RETRY_INTERVAL (5 s) between attempts; fleetga starts faster (a
// driver reload or hot-plug is usually over quickly) and never polls more often than 1 Hz.
// For a device path it also watches the path's directory (inotify): when udev creates the
// port's link again, the channel is reopened at once instead of at the next attempt.
constexpr std::chrono::seconds retry_backoff_first{1};
constexpr std::chrono::seconds retry_backoff_max{5};
// A failing accept() (EMFILE, ENOBUFS) is retried after this pause, not in a loop.
constexpr auto accept_error_pause = std::chrono::milliseconds(100);

std::string errno_text(const std::string& what, int e) { return what + ": " + std::strerror(e); }

// QEMU's qemu_strtoui(str, NULL, 10, ...): strtoull, a '-' wraps, > UINT_MAX and trailing
// characters are errors.
bool parse_uint(const std::string& s, unsigned& out) {
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (end == s.c_str() || *end) return false;
  if (errno == ERANGE) return false;
  bool neg = std::find(s.c_str(), static_cast<const char*>(end), '-') != end;
  if (neg) v = -v;
  if (v > UINT_MAX) return false;
  out = static_cast<unsigned>(neg ? -v : v);
  return true;
}

// vsock_parse(): sscanf("%32[^:]:%32[^,]%n").
bool parse_vsock(const std::string& str, std::string& cid, std::string& port, std::string& err) {
  std::size_t i = 0;
  while (i < str.size() && i < 32 && str[i] != ':') ++i;
  if (i == 0 || i >= str.size() || str[i] != ':') {
    err = "error parsing address '" + str + "'";
    return false;
  }
  cid = str.substr(0, i);
  std::size_t p = i + 1, j = p;
  while (j < str.size() && j - p < 32 && str[j] != ',') ++j;
  if (j == p) {
    err = "error parsing address '" + str + "'";
    return false;
  }
  port = str.substr(p, j - p);
  if (j != str.size()) {
    err = "trailing characters in address '" + str + "'";
    return false;
  }
  return true;
}

open_result open_vsock(const std::string& path) {
  std::string cid_s, port_s, err;
  if (!parse_vsock(path, cid_s, port_s, err)) return {-1, err};
  unsigned cid = 0, port = 0;
  if (!parse_uint(cid_s, cid)) return {-1, "Failed to parse cid '" + cid_s + "'"};
  if (!parse_uint(port_s, port)) return {-1, "Failed to parse port '" + port_s + "'"};
  int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {-1, errno_text("Failed to create socket", errno)};
  sockaddr_vm svm{};
  svm.svm_family = AF_VSOCK;
  svm.svm_cid = cid;
  svm.svm_port = port;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&svm), sizeof svm) != 0) {
    int e = errno;
    ::close(fd);
    return {-1, errno_text("Failed to bind socket", e)};
  }
  if (::listen(fd, 1) != 0) {
    int e = errno;
    ::close(fd);
    return {-1, errno_text("Failed to listen on socket", e)};
  }
  return {fd, {}};
}

// unix_listen_saddr() with qemu-ga's backlog of 1.
open_result open_unix(const std::string& path) {
  sockaddr_un un{};
  if (path.size() >= sizeof un.sun_path) return {-1, "UNIX socket path '" + path + "' is too long"};
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {-1, errno_text("Failed to create Unix socket", errno)};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
    int e = errno;
    ::close(fd);
    return {-1, errno_text("Failed to unlink socket " + path, e)};
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof un) != 0) {
    int e = errno;
    ::close(fd);
    return {-1, errno_text("Failed to bind socket to " + path, e)};
  }
  if (::listen(fd, 1) != 0) {
    int e = errno;
    ::close(fd);
    return {-1, errno_text("Failed to listen on socket", e)};
  }
  return {fd, {}};
}

open_result open_serial(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return {-1, errno_text("error opening channel '" + path + "'", errno)};
  termios tio{};
  ::tcgetattr(fd, &tio);
  // Non-canonical, dumb byte streaming: no input translation, no output processing, no
  // line discipline, as qemu-ga sets it up.
  tio.c_iflag &= ~(IGNBRK | BRKINT | IGNPAR | PARMRK | INPCK | ISTRIP | INLCR | IGNCR | ICRNL | IXON |
                   IXOFF | IXANY | IMAXBEL);
  tio.c_oflag = 0;
  tio.c_lflag = 0;
  ::cfsetispeed(&tio, B38400);
  ::cfsetospeed(&tio, B38400);
  tio.c_cc[VMIN] = 1;
  tio.c_cc[VTIME] = 0;
  // Whatever waits in the input queue is garbage from before the agent ran.
  ::tcflush(fd, TCIFLUSH);
  ::tcsetattr(fd, TCSANOW, &tio);
  return {fd, {}};
}

enum class channel_end { closed, error };

// One client at a time; clients that leave (EOF, reset, a write error) are dropped and the
// next one is accepted, whatever qemu-ga does on ECONNRESET (spec §2).
asio::awaitable<channel_end> serve_listen(int fd, session_io io) {
  auto ex = co_await asio::this_coro::executor;
  asio::posix::stream_descriptor listener(ex, fd);
  asio::steady_timer pause(ex);
  for (;;) {
    auto [wec] = co_await listener.async_wait(asio::posix::stream_descriptor::wait_read, use_tuple);
    if (wec) co_return channel_end::closed;  // the agent is stopping
    int cfd = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      int e = errno;
      if (e == EAGAIN || e == EINTR || e == ECONNABORTED) continue;
      spdlog::warn("error accepting connection: {}", std::strerror(e));
      pause.expires_after(accept_error_pause);
      co_await pause.async_wait(use_tuple);
      continue;
    }
    spdlog::debug("client connected");
    asio::posix::stream_descriptor client(ex, cfd);
    co_await serve(client, io);
    spdlog::debug("client disconnected");
  }
}

asio::awaitable<channel_end> serve_virtio(int fd, session_io io) {
  auto ex = co_await asio::this_coro::executor;
  asio::posix::stream_descriptor port(ex, fd);
  // The handler must exist before O_ASYNC can raise SIGIO (its default action kills).
  asio::signal_set sigio(ex, SIGIO);
  ::fcntl(fd, F_SETOWN, ::getpid());
  asio::steady_timer timer(ex);
  for (;;) {
    auto end = co_await serve(port, io);
    if (end == stream_end::error) co_return channel_end::error;
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

asio::awaitable<channel_end> serve_serial(int fd, session_io io, bool retry) {
  auto ex = co_await asio::this_coro::executor;
  asio::posix::stream_descriptor port(ex, fd);
  auto end = co_await serve(port, io);
  if (end == stream_end::error || retry) co_return channel_end::error;
  // qemu-ga closes the channel on EOF and has nothing to replace it: it idles until stopped.
  spdlog::debug("received EOF");
  port.close();
  asio::steady_timer idle(ex, asio::steady_timer::time_point::max());
  co_await idle.async_wait(use_tuple);
  co_return channel_end::closed;
}

void log_open_failure(const std::string& error) {
  spdlog::critical("{}", error);
  spdlog::critical("failed to create guest agent channel");
}

}  // namespace

open_result open_channel(const channel_config& cfg) {
  const std::string path = cfg.path.value_or("");
  if (cfg.method == "virtio-serial") {
    int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return {-1, errno_text("error opening channel '" + path + "'", errno)};
    return {fd, {}};
  }
  if (cfg.method == "isa-serial") return open_serial(path);
  if (cfg.method == "unix-listen") {
    if (cfg.listen_fd >= 0) return {cfg.listen_fd, {}};
    return open_unix(path);
  }
  if (cfg.method == "vsock-listen") {
    if (cfg.listen_fd >= 0) return {cfg.listen_fd, {}};
    return open_vsock(path);
  }
  return {-1, "unsupported channel method/type: " + cfg.method};
}

// -r, a device path: something appearing in the path's directory (udev linking the port
// again after a hot-plug or a driver reload) ends the wait between attempts early.
class path_watch {
 public:
  path_watch(const asio::any_io_executor& ex, const std::string& path) : sd_(ex) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return;
    dir_ = slash == 0 ? "/" : path.substr(0, slash);
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0) sd_.assign(fd);
  }
  // Arms the watch (the directory itself may only appear later, e.g. /dev/virtio-ports with
  // the first port); `changed` runs once on the I/O thread when an entry is created or moved
  // in. False when the directory can't be watched (then the wait is the timer alone).
  template <class F>
  bool arm(F changed) {
    if (!sd_.is_open() || (wd_ < 0 && (wd_ = ::inotify_add_watch(sd_.native_handle(), dir_.c_str(),
                                                                   IN_CREATE | IN_MOVED_TO)) < 0)) {
      return false;
    }
    char buf[4096];
    while (::read(sd_.native_handle(), buf, sizeof buf) > 0) {
    }  // events of earlier waits
    sd_.async_wait(asio::posix::stream_descriptor::wait_read, [changed](const boost::system::error_code& ec) {
      if (!ec) changed();
    });
    return true;
  }
  void disarm() {
    boost::system::error_code ignored;
    sd_.cancel(ignored);
  }

 private:
  asio::posix::stream_descriptor sd_;
  std::string dir_;
  int wd_ = -1;
};

asio::awaitable<void> run_channel(channel_config cfg, int fd, session_io io) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer wait(ex);
  const bool device = cfg.method == "virtio-serial" || cfg.method == "isa-serial";
  path_watch watch(ex, device && cfg.retry ? cfg.path.value_or("") : std::string());
  bool changed = false;  // in the frame: a late `changed` callback may still set it
  auto backoff = retry_backoff_first;
  for (;;) {
    if (fd < 0) {
      auto r = open_channel(cfg);
      fd = r.fd;
      if (fd < 0) {
        log_open_failure(r.error);
        spdlog::critical("failed to initialize guest agent channel");
      }
    }
    if (fd >= 0) {
      channel_end end;
      if (cfg.method == "virtio-serial") {
        end = co_await serve_virtio(fd, io);
      } else if (cfg.method == "isa-serial") {
        end = co_await serve_serial(fd, io, cfg.retry);
      } else {
        end = co_await serve_listen(fd, io);
      }
      fd = -1;  // closed by its stream_descriptor
      cfg.listen_fd = -1;  // an inherited socket can't be had again: reopen by path
      if (end == channel_end::closed) co_return;
      // qemu-ga: g_warning("error reading channel"), then the main loop stops.
      spdlog::warn("error reading channel");
      if (!cfg.retry) co_return;
      spdlog::warn("agent stopped unexpectedly, restarting...");
      backoff = retry_backoff_first;
    }
    spdlog::warn("waiting for channel path...");
    wait.expires_after(backoff);
    // A late callback (the event and the timer together) only cuts the next wait short.
    changed = false;
    const bool watching = device && cfg.retry && watch.arm([&wait, &changed] {
      changed = true;
      wait.cancel();
    });
    auto [ec] = co_await wait.async_wait(use_tuple);
    if (watching) watch.disarm();
    if (ec && !changed) co_return;  // the agent is stopping
    backoff = changed ? retry_backoff_first : std::min(backoff * 2, retry_backoff_max);
  }
}

}  // namespace fleetga::agent
