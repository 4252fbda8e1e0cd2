#pragma once
// The worker pool behind commands::offload(): blocking work runs on its threads, the
// handler resumes on the I/O thread.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/thread_pool.hpp>

#include "commands/offload.hpp"

namespace fleetga::agent {

class pool_offloader final : public commands::offloader {
 public:
  pool_offloader(boost::asio::any_io_executor io, std::size_t threads);
  ~pool_offloader() override;
  void run(std::function<void()> work, std::coroutine_handle<> resume) override;
  // Waits for running work (at exit).
  void join();

 private:
  boost::asio::any_io_executor io_;
  boost::asio::thread_pool pool_;
};

}  // namespace fleetga::agent
