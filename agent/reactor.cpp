#include "agent/reactor.hpp"

#include <poll.h>

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

namespace asio = boost::asio;

namespace fleetga::agent {

// Asio registers descriptors edge-triggered and its async_wait is not speculative: a wait
// started while data is already pending (a reader that stopped before EAGAIN to be fair to
// others, or a stream resumed after backpressure) would never fire. So every wait first asks
// poll() and posts the callback at once when the fd is ready: level-triggered for the caller.
struct asio_reactor::entry {
  explicit entry(asio::io_context& io, int fd) : sd(io, fd) {}
  asio::posix::stream_descriptor sd;
  struct pending {
    std::uint64_t id = 0;  // 0: none
    std::function<void()> ready;
  } waits[2];  // 0 read, 1 write
};

asio_reactor::asio_reactor(asio::io_context& io) : io_(io) {}

asio_reactor::~asio_reactor() {
  for (auto& [fd, e] : fds_) {
    boost::system::error_code ignored;
    e->sd.cancel(ignored);
    (void)e->sd.release();  // the owner closes the fd
  }
}

void asio_reactor::wait_readable(int fd, std::function<void()> ready) { wait(fd, 0, std::move(ready)); }
void asio_reactor::wait_writable(int fd, std::function<void()> ready) { wait(fd, 1, std::move(ready)); }

void asio_reactor::wait(int fd, int dir, std::function<void()> ready) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) it = fds_.emplace(fd, std::make_unique<entry>(io_, fd)).first;
  entry& e = *it->second;
  const std::uint64_t id = ++next_id_;
  e.waits[dir] = {id, std::move(ready)};
  pollfd p{fd, static_cast<short>(dir == 0 ? POLLIN : POLLOUT), 0};
  if (::poll(&p, 1, 0) > 0 && p.revents != 0) {
    asio::post(io_, [this, fd, dir, id] { fire(fd, dir, id); });
    return;
  }
  e.sd.async_wait(dir == 0 ? asio::posix::stream_descriptor::wait_read : asio::posix::stream_descriptor::wait_write,
                  [this, fd, dir, id](const boost::system::error_code& ec) {
                    if (!ec) fire(fd, dir, id);
                  });
}

void asio_reactor::fire(int fd, int dir, std::uint64_t id) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return;  // cancelled (the fd may even be a new one by now: ids differ)
  auto& w = it->second->waits[dir];
  if (w.id != id) return;
  auto ready = std::move(w.ready);
  w = {};
  ready();  // may cancel(fd): nothing of the entry is touched afterwards
}

void asio_reactor::cancel(int fd) noexcept {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return;
  boost::system::error_code ignored;
  it->second->sd.cancel(ignored);
  (void)it->second->sd.release();  // deregisters from epoll without closing
  fds_.erase(it);
}

}  // namespace fleetga::agent
