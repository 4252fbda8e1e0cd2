#include "agent/offloader.hpp"

#include <boost/asio/post.hpp>

namespace fleetga::agent {

pool_offloader::pool_offloader(boost::asio::any_io_executor io, std::size_t threads)
    : io_(std::move(io)), pool_(threads) {}

pool_offloader::~pool_offloader() { join(); }

void pool_offloader::run(std::function<void()> work, std::coroutine_handle<> resume) {
  boost::asio::post(pool_, [this, work = std::move(work), resume]() mutable {
    work();
    boost::asio::post(io_, [resume] { resume.resume(); });
  });
}

void pool_offloader::join() {
  pool_.join();
}

}  // namespace fleetga::agent
