// The exec family (wire spec §3.2 "guest-exec / guest-exec-status"; qemu-ga's qmp_guest_exec
// and qmp_guest_exec_status in qga/commands.c, 10.2 behaviour). Limits and the event-loop
// design: commands/exec.hpp.
#include "commands/exec.hpp"

#include <poll.h>

#include <cerrno>
#include <optional>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "commands/state.hpp"
#include "platform/exec.hpp"
#include "platform/memory.hpp"
#include "protocol/args.hpp"
#include "protocol/base64.hpp"

namespace fleetga::commands {
namespace {

enum class capture_mode { none, out, err, separated, merged };  // GuestExecCaptureOutputMode
struct capture_alt : protocol::alternate<bool, capture_mode> {
  using alternate::alternate;
};

struct exec_args {
  std::string path;
  std::optional<std::vector<std::string>> arg;
  std::optional<std::vector<std::string>> env;
  std::optional<std::string> input_data;
  std::optional<capture_alt> capture_output;
};
struct status_args {
  std::int64_t pid = 0;
};

}  // namespace
}  // namespace fleetga::commands

namespace fleetga::protocol {
using commands::capture_alt;
using commands::capture_mode;
using commands::exec_args;
using commands::status_args;
template <>
struct enum_schema<capture_mode> {
  static constexpr std::array<std::string_view, 5> names{"none", "stdout", "stderr", "separated", "merged"};
  [[maybe_unused]] static constexpr std::string_view type_name = "GuestExecCaptureOutputMode";
};
template <>
struct alternate_schema<capture_alt> {
  static constexpr std::string_view type_name = "GuestExecCaptureOutput";
};
template <>
struct arg_schema<exec_args> {
  static constexpr auto members = std::make_tuple(
      member("path", &exec_args::path), member("arg", &exec_args::arg), member("env", &exec_args::env),
      member("input-data", &exec_args::input_data), member("capture-output", &exec_args::capture_output));
};
template <>
struct arg_schema<status_args> {
  static constexpr auto members = std::make_tuple(member("pid", &status_args::pid));
};
}  // namespace fleetga::protocol

namespace fleetga::commands {
namespace {

// GuestExecStatus: schema order -> the order QEMU prints it (checked against 7.2's output:
// `exitcode, err-data, out-data, err-truncated, signal, out-truncated, exited`).
constexpr std::array<std::string_view, 7> status_schema{"exited",   "exitcode",      "signal",       "out-data",
                                                        "err-data", "out-truncated", "err-truncated"};
static_assert(protocol::in_qemu_order(status_schema,
                                      std::array<std::string_view, 7>{"exitcode", "err-data", "out-data",
                                                                      "err-truncated", "signal", "out-truncated",
                                                                      "exited"}));

// Base64 work up to this size stays on the I/O thread; bigger goes to the pool.
constexpr std::size_t inline_base64_max = std::size_t{64} << 10;

platform::exec_capture to_platform(const std::optional<capture_alt>& c) {
  using pc = platform::exec_capture;
  if (!c) return pc::none;
  if (const bool* b = std::get_if<bool>(&*c)) return *b ? pc::separated : pc::none;
  switch (std::get<capture_mode>(*c)) {
    case capture_mode::none: return pc::none;
    case capture_mode::out: return pc::out;
    case capture_mode::err: return pc::err;
    case capture_mode::separated: return pc::separated;
    case capture_mode::merged: return pc::merged;
  }
  return pc::none;
}

// Standard base64 of a stream's blocks as one piece of data (blocks are not multiples of 3).
void encode_stream(const exec_stream& s, std::string& out) {
  char carry[3];
  std::size_t ncarry = 0;
  std::size_t left = s.size;
  for (const auto& b : s.blocks) {
    std::string_view v(b.get(), std::min(left, exec_block_size));
    left -= v.size();
    while (ncarry > 0 && ncarry < 3 && !v.empty()) {
      carry[ncarry++] = v.front();
      v.remove_prefix(1);
    }
    if (ncarry == 3) {
      protocol::base64_encode(std::string_view(carry, 3), out);
      ncarry = 0;
    }
    const std::size_t aligned = v.size() / 3 * 3;
    protocol::base64_encode(v.substr(0, aligned), out);
    for (char ch : v.substr(aligned)) carry[ncarry++] = ch;
    if (left == 0) break;
  }
  if (ncarry) protocol::base64_encode(std::string_view(carry, ncarry), out);
}

void write_status(protocol::json_writer& w, const exec_record& r) {
  std::string& out = w.buffer();
  out.reserve(out.size() + (r.out.size + r.err.size) / 3 * 4 + 160);
  w.begin_object();
  if (r.reaped && !r.signaled && !r.lost) {
    w.key("exitcode");
    w.integer(r.code);
  }
  // qemu-ga >= 10.2: data (and its truncated flag, true or false) only when non-empty.
  if (r.err.size) {
    w.key("err-data");
    w.raw("\"");
    encode_stream(r.err, out);
    out += '"';
  }
  if (r.out.size) {
    w.key("out-data");
    w.raw("\"");
    encode_stream(r.out, out);
    out += '"';
  }
  if (r.err.size) {
    w.key("err-truncated");
    w.boolean(r.err.truncated);
  }
  if (r.reaped && r.signaled) {
    w.key("signal");
    w.integer(r.code);
  }
  if (r.out.size) {
    w.key("out-truncated");
    w.boolean(r.out.truncated);
  }
  w.key("exited");
  w.boolean(true);
  w.end_object();
}

std::size_t blocks_bytes(const exec_record& r) { return (r.out.blocks.size() + r.err.blocks.size()) * exec_block_size; }

}  // namespace

namespace exec_detail {
std::string table_full_text(std::size_t limit) {
  return "guest-exec: too many processes (" + std::to_string(limit) +
         " started and not yet collected with guest-exec-status)";
}
std::string budget_text(std::size_t limit) {
  return "guest-exec: input-data does not fit in the memory left for processes (" + std::to_string(limit) +
         " bytes of output and input at most; collect finished ones with guest-exec-status)";
}
}  // namespace exec_detail

// ---- exec_context ---------------------------------------------------------------------------

exec_context::~exec_context() {
  for (auto& [pid, r] : records_) close_all(*r);
  paused_.clear();
  if (child_exit_fd_ >= 0) {
    if (reactor) reactor->cancel(child_exit_fd_);
    platform::close_fd(child_exit_fd_);
  }
}

exec_record* exec_context::find(std::int64_t pid) noexcept {
  auto it = records_.find(pid);
  return it == records_.end() ? nullptr : it->second.get();
}

exec_record& exec_context::add(std::unique_ptr<exec_record> rec) {
  if (auto it = records_.find(rec->pid); it != records_.end()) {
    // The pid was reaped, reused by the kernel, and its old record never collected: the new
    // child wins (the old data is unreachable by pid anyway).
    auto old = take(rec->pid);
    release(blocks_bytes(*old));
  }
  exec_record& r = *rec;
  records_.emplace(r.pid, std::move(rec));
  retained_ += r.input.size();
  if (r.pidfd >= 0) {
    watch_pidfd(r);
  } else {
    ++without_pidfd_;
    watch_child_exits();
  }
  if (r.out.captured) watch_stream(r, r.out);
  if (r.err.captured) watch_stream(r, r.err);
  if (r.in_fd >= 0) {
    if (r.input.empty()) close_input(r);
    else watch_input(r);
  }
  return r;
}

std::unique_ptr<exec_record> exec_context::take(std::int64_t pid) {
  auto it = records_.find(pid);
  if (it == records_.end()) return nullptr;
  std::unique_ptr<exec_record> r = std::move(it->second);
  records_.erase(it);
  if (r->in_fd >= 0) close_input(*r);
  if (!r->reaped && r->pidfd < 0) --without_pidfd_;
  std::erase_if(paused_, [&](const auto& p) { return p.first == r.get(); });
  close_all(*r);
  return r;
}

void exec_context::release(std::size_t bytes) {
  retained_ -= std::min(bytes, retained_);
  resume_paused();
}

bool exec_context::reap(exec_record& r) {
  if (r.reaped) return true;
  const platform::exec_wait w = platform::reap_child(static_cast<int>(r.pid), r.pidfd);
  if (w.how == platform::exec_wait::state::running) return false;
  r.reaped = true;
  r.lost = w.how == platform::exec_wait::state::lost;
  r.signaled = w.how == platform::exec_wait::state::signaled;
  r.code = w.value;
  if (r.pidfd >= 0) {
    if (reactor) reactor->cancel(r.pidfd);
    platform::close_fd(r.pidfd);
  } else {
    --without_pidfd_;
  }
  return true;
}

void exec_context::reap_without_pidfd() {
  if (without_pidfd_ == 0) return;
  for (auto& [pid, r] : records_)
    if (!r->reaped && r->pidfd < 0) reap(*r);
}

// Kernels without pidfd_open: reaped on SIGCHLD rather than when the host next asks, so an
// exited child is not left a zombie (docs/protocol.md §3.2). Watched while such children are
// tracked; a notification that arrives while nobody watches stays readable for the next one.
void exec_context::watch_child_exits() {
  if (!reactor || child_exit_watched_) return;
  if (child_exit_fd_ < 0) child_exit_fd_ = platform::open_child_exit_fd();
  if (child_exit_fd_ < 0) return;
  child_exit_watched_ = true;
  reactor->wait_readable(child_exit_fd_, [this] {
    child_exit_watched_ = false;
    platform::drain_child_exit_fd(child_exit_fd_);
    reap_without_pidfd();
    if (without_pidfd_ > 0) watch_child_exits();
  });
}

void exec_context::watch_pidfd(exec_record& r) {
  reactor->wait_readable(r.pidfd, [this, &r] {
    if (!reap(r)) watch_pidfd(r);
  });
}

void exec_context::watch_stream(exec_record& r, exec_stream& s) {
  reactor->wait_readable(s.fd, [this, &r, &s] { on_readable(r, s); });
}

void exec_context::watch_input(exec_record& r) {
  reactor->wait_writable(r.in_fd, [this, &r] { on_writable(r); });
}

void exec_context::on_readable(exec_record& r, exec_stream& s) {
  bool fresh = false;  // the last block was allocated for the read in progress
  for (std::size_t burst = 0;; ++burst) {
    if (burst == exec_read_burst) {  // let other children and the host have the thread
      watch_stream(r, s);
      return;
    }
    char* dst;
    std::size_t room;
    const bool discard = s.size >= exec_stream_max;
    if (discard) {
      if (!scratch_) scratch_ = std::make_unique<char[]>(exec_block_size);
      dst = scratch_.get();
      room = exec_block_size;
    } else {
      std::size_t tail = s.blocks.size() * exec_block_size - s.size;
      if (tail == 0) {
        if (retained_ + exec_block_size > retained_max) {
          // A pipe at EOF needs no memory to be finished with.
          pollfd p{s.fd, POLLIN, 0};
          if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) && !(p.revents & POLLIN)) break;
          // Backpressure: the pipe fills up and the child blocks until a record is read.
          s.paused = true;
          paused_.emplace_back(&r, &s);
          return;
        }
        s.blocks.push_back(std::make_unique_for_overwrite<char[]>(exec_block_size));
        retained_ += exec_block_size;
        tail = exec_block_size;
        fresh = true;
      }
      dst = s.blocks.back().get() + (exec_block_size - tail);
      room = tail;
    }
    const ssize_t n = ::read(s.fd, dst, room);
    if (n > 0) {
      if (discard) s.truncated = true;
      else s.size += static_cast<std::size_t>(n);
      fresh = false;
      continue;
    }
    if (fresh) {  // nothing landed in the block just allocated: give it back
      s.blocks.pop_back();
      retained_ -= exec_block_size;
      fresh = false;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch_stream(r, s);
      return;
    }
    break;  // EOF (or a read error, which qemu-ga's channel treats the same way)
  }
  reactor->cancel(s.fd);
  platform::close_fd(s.fd);
  s.eof = true;
  resume_paused();  // a block may have been given back
}

void exec_context::on_writable(exec_record& r) {
  for (;;) {
    const std::size_t left = r.input.size() - r.input_off;
    const long n = platform::write_no_sigpipe(r.in_fd, r.input.data() + r.input_off,
                                              std::min(left, exec_block_size));
    if (n > 0) {
      r.input_off += static_cast<std::size_t>(n);
      if (r.input_off == r.input.size()) break;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch_input(r);
      return;
    }
    break;  // EPIPE: the child closed its stdin; the rest is dropped like qemu-ga does
  }
  close_input(r);
}

void exec_context::close_input(exec_record& r) {
  if (reactor) reactor->cancel(r.in_fd);
  platform::close_fd(r.in_fd);
  const std::size_t n = r.input.size();
  std::string().swap(r.input);
  r.input_off = 0;
  release(n);
}

void exec_context::close_all(exec_record& r) {
  for (int* fd : {&r.pidfd, &r.in_fd, &r.out.fd, &r.err.fd}) {
    if (*fd < 0) continue;
    if (reactor) reactor->cancel(*fd);
    platform::close_fd(*fd);
  }
}

void exec_context::resume_paused() {
  std::size_t room = retained_ >= retained_max ? 0 : (retained_max - retained_) / exec_block_size;
  while (room > 0 && !paused_.empty()) {
    auto [r, s] = paused_.front();
    paused_.pop_front();
    s->paused = false;
    watch_stream(*r, *s);
    --room;
  }
}

// ---- handlers -------------------------------------------------------------------------------

namespace handlers {

task<handler_result> guest_exec_status(call& c) {
  status_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  // Busy pollers call this many times a second: no log line, one hash lookup, at most one
  // waitid(WNOHANG).
  exec_context& ex = c.state.exec;
  exec_record* r = ex.find(a.pid);
  // Upstream >= 8.2's text, format-string bug included ("PID " PRId64 " does not exist").
  if (!r) co_return protocol::generic("PID ld does not exist");
  ex.reap(*r);
  if (!r->finished()) {
    c.out.begin_object();
    c.out.key("exited");
    c.out.boolean(false);
    c.out.end_object();
    co_return std::nullopt;
  }
  std::unique_ptr<exec_record> rec = ex.take(a.pid);
  const std::size_t held = blocks_bytes(*rec);
  protocol::json_writer& w = c.out;
  if (rec->out.size + rec->err.size <= inline_base64_max) {
    write_status(w, *rec);
  } else {
    // Up to 2 x 16 MiB of output: base64 on a worker, straight into the reply buffer (the
    // session leaves it alone until this handler completes).
    const exec_record* p = rec.get();
    co_await offload(c.state.pool, [&w, p] { write_status(w, *p); });
  }
  rec.reset();
  ex.release(held);
  if (held >= platform::trim_after_bytes) platform::return_free_heap_memory();
  co_return std::nullopt;
}

task<handler_result> guest_exec(call& c) {
  exec_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  agent_state& st = c.state;
  exec_context& ex = st.exec;

  std::optional<std::string> input;
  if (a.input_data) {
    if (a.input_data->size() <= inline_base64_max) {
      input = protocol::base64_decode(*a.input_data);
    } else {
      const std::string* text = &*a.input_data;
      input = co_await offload(st.pool, [text] { return protocol::base64_decode(*text); });
    }
    if (!input) co_return protocol::generic("Base64 data contains invalid characters");
  }
  if (!ex.reactor) co_return protocol::generic(std::string(exec_detail::no_reactor_text));
  ex.reap_without_pidfd();
  if (ex.size() >= ex.children_max) co_return protocol::generic(exec_detail::table_full_text(ex.children_max));
  if (input && input->size() > ex.retained_max - std::min(ex.retained(), ex.retained_max))
    co_return protocol::generic(exec_detail::budget_text(ex.retained_max));

  platform::exec_request req;
  req.argv.reserve(1 + (a.arg ? a.arg->size() : 0));
  req.argv.push_back(std::move(a.path));
  if (a.arg)
    for (auto& s : *a.arg) req.argv.push_back(std::move(s));
  req.env = std::move(a.env);
  req.with_input = input.has_value();
  req.capture = to_platform(a.capture_output);

  // qemu-ga's slog() in guest_exec_get_args(): path and arguments joined by spaces.
  std::string line = "guest-exec called: \"";
  for (std::size_t i = 0; i < req.argv.size(); ++i) {
    if (i) line += ' ';
    line += req.argv[i];
  }
  line += '"';
  st.audit(line);

  platform::exec_spawn_result sp = co_await offload(st.pool, [&req] { return platform::spawn_child(req); });
  if (sp.errnum != 0) co_return protocol::generic(std::move(sp.error));

  auto rec = std::make_unique<exec_record>();
  rec->pid = sp.child.pid;
  rec->pidfd = sp.child.pidfd;
  rec->in_fd = sp.child.in;
  if (input) rec->input = std::move(*input);
  rec->out.fd = sp.child.out;
  rec->out.captured = rec->out.fd >= 0;
  rec->out.eof = !rec->out.captured;
  rec->err.fd = sp.child.err;
  rec->err.captured = rec->err.fd >= 0;
  rec->err.eof = !rec->err.captured;
  ex.add(std::move(rec));

  c.out.begin_object();
  c.out.key("pid");
  c.out.integer(sp.child.pid);
  c.out.end_object();
  co_return std::nullopt;
}

}  // namespace handlers
}  // namespace fleetga::commands
