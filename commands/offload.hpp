#pragma once
// Blocking work (file I/O, ioctls, statvfs, spawning) never runs on the I/O thread. A handler
// co_awaits offload(pool, fn): fn runs on a worker thread, the handler resumes on the I/O
// thread. The agent implements `offloader` with Asio; tests use an inline fake.
#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace fleetga::commands {

class offloader {
 public:
  virtual ~offloader() = default;
  // Runs `work` on a worker thread, then resumes `resume` on the I/O thread. An inline
  // implementation may run both before returning.
  virtual void run(std::function<void()> work, std::coroutine_handle<> resume) = 0;
};

template <class F>
auto offload(offloader& pool, F fn) {
  using R = std::invoke_result_t<F&>;
  struct awaiter {
    offloader& pool;
    F fn;
    std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> result;
    std::exception_ptr error;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      pool.run(
          [this] {
            // Thrown on a worker (e.g. bad_alloc): carried back and rethrown in the handler,
            // where dispatch turns it into a GenericError.
            try {
              if constexpr (std::is_void_v<R>) { fn(); result.emplace(true); }
              else result.emplace(fn());
            } catch (...) {
              error = std::current_exception();
            }
          },
          h);
    }
    R await_resume() {
      if (error) std::rethrow_exception(error);
      if constexpr (!std::is_void_v<R>) return std::move(*result);
    }
  };
  return awaiter{pool, std::move(fn), std::nullopt, nullptr};
}

// Runs everything inline: for unit tests and the fuzzer.
class inline_offloader final : public offloader {
 public:
  void run(std::function<void()> work, std::coroutine_handle<> resume) override {
    work();
    resume.resume();
  }
};

}  // namespace fleetga::commands
