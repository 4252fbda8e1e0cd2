#pragma once
// The awaitable every handler returns. A lazily started coroutine with symmetric transfer;
// no Asio here so commands/ stays testable without an io_context. A handler that never
// suspends (guest-ping, guest-info, ...) runs to completion inside start() and costs no
// scheduling at all; one that offloads work suspends and is resumed by the agent's
// offloader on the I/O thread.
//
// Frames are recycled through a small per-thread free list: handlers run one at a time per
// session, so a request normally reuses the previous request's frame instead of malloc.
#include <cassert>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <optional>
#include <utility>

namespace fleetga::commands {

namespace detail {
// Frames up to 1 KiB are recycled; bigger ones go straight to the heap.
inline constexpr std::size_t frame_block = 1024;
inline constexpr std::size_t frame_cache_max = 8;

struct frame_cache {
  void* items[frame_cache_max];
  std::size_t count = 0;
  ~frame_cache() {
    while (count) ::operator delete(items[--count]);
  }
};
inline thread_local frame_cache tl_frames;

inline void* alloc_frame(std::size_t n) {
  if (n <= frame_block) {
    if (tl_frames.count) return tl_frames.items[--tl_frames.count];
    return ::operator new(frame_block);
  }
  return ::operator new(n);
}
inline void free_frame(void* p, std::size_t n) noexcept {
  if (n <= frame_block && tl_frames.count < frame_cache_max) {
    tl_frames.items[tl_frames.count++] = p;
    return;
  }
  ::operator delete(p);
}

struct promise_base {
  std::coroutine_handle<> continuation;
  std::exception_ptr exception;

  static void* operator new(std::size_t n) { return alloc_frame(n); }
  static void operator delete(void* p, std::size_t n) noexcept { free_frame(p, n); }

  std::suspend_always initial_suspend() noexcept { return {}; }
  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      auto c = h.promise().continuation;
      return c ? c : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
};
}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  struct promise_type : detail::promise_base {
    std::optional<T> value;
    task get_return_object() noexcept {
      return task{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    template <class U>
    void return_value(U&& v) { value.emplace(std::forward<U>(v)); }
  };

  task() = default;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) { destroy(); h_ = std::exchange(o.h_, {}); }
    return *this;
  }
  ~task() { destroy(); }

  // co_await from another coroutine.
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> cont) noexcept {
    h_.promise().continuation = cont;
    return h_;
  }
  T await_resume() { return take(); }

  // Driving from outside a coroutine (the agent's session, tests): start() runs until the
  // first suspension or completion; `on_done` (may be empty) is resumed at completion if the
  // task suspended. Returns done().
  bool start(std::coroutine_handle<> on_done = {}) {
    h_.promise().continuation = on_done;
    h_.resume();
    return h_.done();
  }
  // After start() returned false: who to resume when the task completes. Safe as long as
  // the task can only complete on the caller's thread after the caller yields (the
  // offloader resumes on the I/O thread).
  void set_continuation(std::coroutine_handle<> on_done) noexcept {
    h_.promise().continuation = on_done;
  }
  bool done() const noexcept { return h_ && h_.done(); }
  T take() {
    assert(h_ && h_.done());
    if (h_.promise().exception) std::rethrow_exception(h_.promise().exception);
    return std::move(*h_.promise().value);
  }

 private:
  void destroy() noexcept {
    if (h_) h_.destroy();
    h_ = {};
  }
  std::coroutine_handle<promise_type> h_;
};

}  // namespace fleetga::commands
