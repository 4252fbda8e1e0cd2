#pragma once
// commands::fd_reactor on the agent's io_context (guest-exec's pipes and pidfds): one
// non-owning posix::stream_descriptor per watched fd, released (never closed) on cancel.
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

#include "commands/reactor.hpp"

namespace boost::asio { class io_context; }

namespace fleetga::agent {

class asio_reactor final : public commands::fd_reactor {
 public:
  explicit asio_reactor(boost::asio::io_context& io);
  ~asio_reactor() override;
  asio_reactor(const asio_reactor&) = delete;
  asio_reactor& operator=(const asio_reactor&) = delete;

  void wait_readable(int fd, std::function<void()> ready) override;
  void wait_writable(int fd, std::function<void()> ready) override;
  void cancel(int fd) noexcept override;

 private:
  struct entry;
  void wait(int fd, int dir, std::function<void()> ready);
  void fire(int fd, int dir, std::uint64_t id);

  boost::asio::io_context& io_;
  std::unordered_map<int, std::unique_ptr<entry>> fds_;
  std::uint64_t next_id_ = 0;
};

}  // namespace fleetga::agent
