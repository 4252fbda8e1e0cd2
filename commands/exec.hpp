#pragma once
// The exec family (exec.cpp): guest-exec and guest-exec-status, wire spec §3.2.
//
// A started child is tracked in a record keyed by pid until guest-exec-status reports it
// exited (then the record is gone). Its output pipes, its stdin pipe and its pidfd are
// watched by the agent's event loop through fd_reactor (commands/reactor.hpp): reads never
// block, there is no thread per child, and every child is reaped as soon as it exits (with
// the pidfd; on kernels without pidfd_open by waitpid(WNOHANG) when the host asks or the
// next guest-exec starts). Children are never killed, and outlive the agent.
//
// Limits (memory stays bounded whatever hosts do):
//   * exec_children_max = 1024 tracked records (running, or exited and not read yet);
//     one more guest-exec fails with exec_detail::table_full_text.
//   * exec_stream_max = 16 MiB captured per stream (qemu-ga's GUEST_EXEC_MAX_OUTPUT); the rest
//     is read and dropped and out-truncated / err-truncated is true.
//   * exec_retained_max = 256 MiB for all records together: captured output (counted in
//     64 KiB blocks as allocated) plus input-data not yet written to a child. When it is used
//     up, pipes are simply not read any more (the children block in write(2): backpressure,
//     nothing is dropped) until guest-exec-status hands out a finished record; a stream that
//     reached its 16 MiB keeps being drained (that needs no memory). An input-data larger
//     than what is left fails with exec_detail::budget_text. Caveat: children that keep
//     running while together holding the whole budget stay blocked until one of them exits.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "commands/command.hpp"
#include "commands/reactor.hpp"

namespace fleetga::commands {

inline constexpr std::size_t exec_children_max = 1024;
inline constexpr std::size_t exec_stream_max = std::size_t{16} << 20;     // GUEST_EXEC_MAX_OUTPUT
inline constexpr std::size_t exec_retained_max = std::size_t{256} << 20;
inline constexpr std::size_t exec_block_size = std::size_t{64} << 10;     // allocation unit
inline constexpr std::size_t exec_read_burst = 4;  // blocks read per wake-up before yielding
static_assert(exec_stream_max % exec_block_size == 0);

namespace exec_detail {
inline constexpr std::string_view no_reactor_text = "guest-exec is not available: the agent has no event loop for child processes";
// "%zu" = the limit in force.
std::string table_full_text(std::size_t limit);
std::string budget_text(std::size_t limit);
}  // namespace exec_detail

// One captured stream: 64 KiB blocks, so memory is what was read (rounded up to a block).
struct exec_stream {
  int fd = -1;
  bool captured = false;
  bool eof = true;        // true when not captured
  bool truncated = false;
  bool paused = false;    // waiting for budget
  std::size_t size = 0;
  std::vector<std::unique_ptr<char[]>> blocks;
};

struct exec_record {
  std::int64_t pid = 0;
  int pidfd = -1;
  bool reaped = false;
  bool signaled = false;  // else exited with `code` (neither when lost)
  bool lost = false;      // ECHILD: someone else reaped it
  int code = 0;
  int in_fd = -1;
  std::string input;      // input-data not written yet
  std::size_t input_off = 0;
  exec_stream out, err;
  bool finished() const noexcept { return reaped && out.eof && err.eof; }
};

// The exec part of agent_state (I/O thread only).
class exec_context {
 public:
  exec_context() = default;
  exec_context(const exec_context&) = delete;
  exec_context& operator=(const exec_context&) = delete;
  // Stops watching every fd and closes the agent's ends; the children keep running.
  ~exec_context();

  fd_reactor* reactor = nullptr;  // options::reactor; nullptr: guest-exec answers an error
  // The limits in force (tests lower them).
  std::size_t children_max = exec_children_max;
  std::size_t retained_max = exec_retained_max;

  std::size_t retained() const noexcept { return retained_; }
  std::size_t size() const noexcept { return records_.size(); }
  exec_record* find(std::int64_t pid) noexcept;

  // Takes a freshly spawned child into the table and starts watching it.
  exec_record& add(std::unique_ptr<exec_record> rec);
  // Removes a finished record (the caller took its data), releases its budget and lets
  // paused streams go on.
  std::unique_ptr<exec_record> take(std::int64_t pid);
  void release(std::size_t bytes);
  // Reaps children that have no pidfd (old kernels); no-op otherwise. Besides the calls of
  // guest-exec and guest-exec-status, a SIGCHLD signalfd on the reactor runs it as soon as a
  // child exits while any such child is tracked (platform::open_child_exit_fd()).
  void reap_without_pidfd();
  bool reap(exec_record& r);  // true when it is reaped now

 private:
  void watch_pidfd(exec_record& r);
  void watch_child_exits();
  void watch_stream(exec_record& r, exec_stream& s);
  void watch_input(exec_record& r);
  void on_readable(exec_record& r, exec_stream& s);
  void on_writable(exec_record& r);
  void close_input(exec_record& r);
  void close_all(exec_record& r);
  void resume_paused();

  std::unordered_map<std::int64_t, std::unique_ptr<exec_record>> records_;
  std::size_t retained_ = 0;
  std::size_t without_pidfd_ = 0;
  int child_exit_fd_ = -1;  // SIGCHLD signalfd, opened for the first child without a pidfd
  bool child_exit_watched_ = false;
  std::deque<std::pair<exec_record*, exec_stream*>> paused_;
  std::unique_ptr<char[]> scratch_;  // reads past the 16 MiB cap land here
};

}  // namespace fleetga::commands

namespace fleetga::commands::handlers {
task<handler_result> guest_exec_status(call&);
task<handler_result> guest_exec(call&);
}  // namespace fleetga::commands::handlers
