#pragma once
// The worker pool behind commands::offload(): blocking work runs on its threads, the
// handler resumes on the I/O thread.
//
// The way back is a completion list and an eventfd the I/O thread waits on, not a post to the
// io_context: a worker's post takes the scheduler's lock and interrupts epoll_wait while
// holding it, so the woken I/O thread found the lock taken and slept again on it - a second
// wake-up and four more syscalls per offloaded request, which on a virtual machine are tens
// of microseconds each. Here a worker appends to the list under a lock of its own (held for
// a push_back) and writes the eventfd only when the list was empty.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "commands/offload.hpp"

namespace fleetga::agent {

class pool_offloader final : public commands::offloader {
 public:
  // `io` must be the executor of the (single) I/O thread; the pool is built on that thread.
  // Throws std::system_error when a thread can't be started (those started are joined first).
  pool_offloader(boost::asio::any_io_executor io, std::size_t threads);
  ~pool_offloader() override;
  pool_offloader(const pool_offloader&) = delete;
  pool_offloader& operator=(const pool_offloader&) = delete;
  // On the I/O thread (handlers offload from there). Throws (bad_alloc) only before the job
  // is handed over.
  void run(std::function<void()> work, std::coroutine_handle<> resume) override;
  // Runs the work already handed over, then stops the threads (at exit). Handlers whose work
  // finished are resumed only if the I/O thread still runs.
  void join();

 private:
  struct job {
    std::function<void()> work;
    std::coroutine_handle<> resume;
  };
  void worker();
  void finished(std::coroutine_handle<> resume);
  void wait_for_done();
  void resume_done();

  // To the workers.
  std::mutex jobs_mutex_;
  std::condition_variable jobs_ready_;
  std::deque<job> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  // Back to the I/O thread.
  std::mutex done_mutex_;
  // Both hold room for in_flight_ handles (reserved by run()); resuming_ and in_flight_
  // belong to the I/O thread.
  std::vector<std::coroutine_handle<>> done_, resuming_;
  std::size_t in_flight_ = 0;
  int wake_fd_ = -1;  // owned by wake_
  boost::asio::posix::stream_descriptor wake_;
};

}  // namespace fleetga::agent
