// agent::pool_offloader: work runs on a worker thread, every handler resumes on the I/O thread,
// none is lost or resumed twice when many finish at once, and join() runs what was handed over.
#include "agent/offloader.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using fleetga::commands::offload;
using fleetga::commands::offloader;
// The agent's io_context runs with this hint (agent/run.cpp): no locking in the reactor, so
// workers must never touch it - they only write the eventfd.
constexpr int agent_hint = BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO;

// A fire-and-forget coroutine, enough to co_await offload() outside the agent's task type.
struct detached {
  struct promise_type {
    detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
};

struct record {
  std::thread::id worker, resumed_on;
  int value = 0;
  int resumes = 0;
};

detached one(offloader& pool, record& r, int v, std::atomic<int>& left) {
  r.value = co_await offload(pool, [&r, v] {
    r.worker = std::this_thread::get_id();
    return v * 2;
  });
  r.resumed_on = std::this_thread::get_id();
  ++r.resumes;
  --left;
}

detached failing(offloader& pool, std::string& what, std::atomic<int>& left) {
  try {
    co_await offload(pool, []() -> int { throw std::runtime_error("from the worker"); });
  } catch (const std::exception& e) {
    what = e.what();
  }
  --left;
}

// Runs `io` until `left` is 0 (or a deadline passes: the test then fails, it does not hang).
void run_until_done(asio::io_context& io, const std::atomic<int>& left) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (left.load() > 0 && std::chrono::steady_clock::now() < deadline) io.run_one_for(50ms);
}

TEST(PoolOffloader, WorkOnAWorkerEveryHandlerResumedOnceOnTheIOThread) {
  asio::io_context io(agent_hint);
  fleetga::agent::pool_offloader pool(io.get_executor(), 2);
  const auto io_thread = std::this_thread::get_id();
  constexpr int n = 20000;  // many finish together: batches of completions, one wake-up each
  std::vector<record> recs(n);
  std::atomic<int> left = n;
  for (int i = 0; i < n; ++i) one(pool, recs[i], i, left);
  run_until_done(io, left);
  ASSERT_EQ(left.load(), 0) << "handlers never resumed";
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(recs[i].value, 2 * i) << i;
    ASSERT_EQ(recs[i].resumes, 1) << i;
    ASSERT_EQ(recs[i].resumed_on, io_thread) << i;
    ASSERT_NE(recs[i].worker, io_thread) << i;
  }
}

TEST(PoolOffloader, SpacedOutRequestsEachWakeTheIOThread) {
  // One at a time with pauses, so that the I/O thread sleeps between them: a lost wake-up
  // (a completion written while nothing waited) would leave a handler unresumed.
  asio::io_context io(agent_hint);
  fleetga::agent::pool_offloader pool(io.get_executor(), 2);
  for (int i = 0; i < 200; ++i) {
    record r;
    std::atomic<int> left = 1;
    one(pool, r, i, left);
    if (i % 3 == 0) std::this_thread::sleep_for(200us);  // the work is done before we wait
    run_until_done(io, left);
    ASSERT_EQ(left.load(), 0) << "request " << i << " never resumed";
    ASSERT_EQ(r.value, 2 * i);
  }
}

TEST(PoolOffloader, AnExceptionOnTheWorkerReachesTheHandler) {
  asio::io_context io(agent_hint);
  fleetga::agent::pool_offloader pool(io.get_executor(), 1);
  std::string what;
  std::atomic<int> left = 1;
  failing(pool, what, left);
  run_until_done(io, left);
  EXPECT_EQ(what, "from the worker");
}

TEST(PoolOffloader, JoinRunsTheWorkHandedOver) {
  asio::io_context io(agent_hint);
  std::atomic<int> ran = 0;
  {
    fleetga::agent::pool_offloader pool(io.get_executor(), 1);
    for (int i = 0; i < 50; ++i) {
      pool.run([&ran] {
        std::this_thread::sleep_for(1ms);
        ++ran;
      }, std::noop_coroutine());
    }
    pool.join();
    EXPECT_EQ(ran.load(), 50);
  }
  io.run_for(10ms);  // what the closed eventfd left behind must not touch the pool
}

// Handlers that offload again as soon as they are resumed, many at once: the resumed list is
// being walked while they hand over new work (and make room for its completion).
detached chain(offloader& pool, int& value, std::atomic<int>& left) {
  for (int step = 0; step < 3; ++step) value = co_await offload(pool, [value] { return value + 1; });
  --left;
}

TEST(PoolOffloader, HandlersThatOffloadAgainWhenResumedAllFinish) {
  asio::io_context io(agent_hint);
  fleetga::agent::pool_offloader pool(io.get_executor(), 2);
  constexpr int n = 5000;
  std::vector<int> values(n, 0);
  std::atomic<int> left = n;
  for (int i = 0; i < n; ++i) {
    values[i] = i;
    chain(pool, values[i], left);
  }
  run_until_done(io, left);
  ASSERT_EQ(left.load(), 0) << "handlers never resumed";
  for (int i = 0; i < n; ++i) ASSERT_EQ(values[i], i + 3) << i;
}

TEST(PoolOffloader, AThreadThatCannotStartIsAnErrorNotATermination) {
  // In a child under a uid of its own with room for one more thread (RLIMIT_NPROC 2): the
  // first worker starts, the second can't. The constructor must throw std::system_error
  // after joining the first (a joinable std::thread destroyed calls std::terminate).
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    rlimit lim{2, 2};
    if (::setrlimit(RLIMIT_NPROC, &lim) != 0 || ::setgid(54321) != 0 || ::setuid(54321) != 0) ::_exit(77);
    asio::io_context io(agent_hint);
    try {
      fleetga::agent::pool_offloader pool(io.get_executor(), 4);
      ::_exit(10);  // all four started: the limit did not hold
    } catch (const std::system_error&) {
      ::_exit(0);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) GTEST_SKIP() << "can't change uid here (not root?)";
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: the thread limit did not hold";
}

}  // namespace
