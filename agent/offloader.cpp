#include "agent/offloader.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
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
// At least n, doubling (reserve(n) alone would reallocate at every new job in flight).
void room(std::vector<std::coroutine_handle<>>& v, std::size_t n) {
  if (v.capacity() < n) v.reserve(std::max(n, 2 * v.capacity()));
}
}  // namespace

pool_offloader::pool_offloader(boost::asio::any_io_executor io, std::size_t threads)
    : wake_fd_(make_eventfd()), wake_(std::move(io), wake_fd_) {
  wait_for_done();
  try {
    threads_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { worker(); });
  } catch (...) {
    join();  // the threads already started (a joinable std::thread destroyed terminates)
    throw;
  }
}

pool_offloader::~pool_offloader() { join(); }

void pool_offloader::run(std::function<void()> work, std::coroutine_handle<> resume) {
  // Room in both completion lists for every job in flight, made here on the I/O thread, where
  // a bad_alloc reaches the handler (offload() rethrows it there): a worker's push_back then
  // never allocates, and a completion is never lost to an exception on a worker.
  ++in_flight_;
  try {
    room(resuming_, in_flight_);
    {
      std::lock_guard lock(done_mutex_);
      room(done_, in_flight_);
    }
    std::lock_guard lock(jobs_mutex_);
    jobs_.push_back(job{std::move(work), resume});
  } catch (...) {
    --in_flight_;
    throw;
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
  in_flight_ -= resuming_.size();
  // By index: a resumed handler that offloads again reserves this list (never past what it
  // holds, as nothing is added to it here, but an iterator would not survive a reallocation).
  for (std::size_t i = 0; i < resuming_.size(); ++i) resuming_[i].resume();
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
