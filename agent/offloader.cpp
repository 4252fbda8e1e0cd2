#include "agent/offloader.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace fleetga::agent {

namespace {
int make_eventfd() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}
}  // namespace

pool_offloader::pool_offloader(boost::asio::any_io_executor io, std::size_t threads)
    : wake_fd_(make_eventfd()), wake_(std::move(io), wake_fd_) {
  wait_for_done();
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { worker(); });
}

pool_offloader::~pool_offloader() { join(); }

void pool_offloader::run(std::function<void()> work, std::coroutine_handle<> resume) {
  {
    std::lock_guard lock(jobs_mutex_);
    jobs_.push_back(job{std::move(work), resume});
  }
  jobs_ready_.notify_one();
}

void pool_offloader::worker() {
  std::unique_lock lock(jobs_mutex_);
  while (true) {
    jobs_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and nothing left to run
    job j = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    j.work();  // offload()'s work catches what it throws
    finished(j.resume);
    j = {};
    lock.lock();
  }
}

void pool_offloader::finished(std::coroutine_handle<> resume) {
  bool first;
  {
    std::lock_guard lock(done_mutex_);
    first = done_.empty();
    done_.push_back(resume);
  }
  if (first) {
    // Only the first completion of a batch wakes the I/O thread; it takes the whole list.
    // A full counter (EAGAIN) is already a wake-up.
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
}

void pool_offloader::wait_for_done() {
  wake_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;  // closed at exit: `this` may be gone
    resume_done();
    wait_for_done();
  });
}

void pool_offloader::resume_done() {
  // Clear the counter before taking the list: a completion after this read writes again and
  // is seen by the next wait; one before it is in the list taken below.
  std::uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
  {
    std::lock_guard lock(done_mutex_);
    resuming_.swap(done_);
  }
  for (std::coroutine_handle<> h : resuming_) h.resume();
  resuming_.clear();
}

void pool_offloader::join() {
  {
    std::lock_guard lock(jobs_mutex_);
    stopping_ = true;
  }
  jobs_ready_.notify_all();
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

}  // namespace fleetga::agent
