// The file family: guest-file-open/-close/-read/-write/-seek/-flush (qemu-ga's
// qga/commands.c + commands-posix.c semantics). Every stdio call, and the base64 work of a
// read or write (up to 48 MiB), runs on the worker pool; handles and the table stay on the
// I/O thread.
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "commands/handlers.hpp"
#include "commands/state.hpp"
#include "protocol/args.hpp"
#include "protocol/base64.hpp"

namespace fleetga::commands {
namespace {

inline constexpr std::int64_t read_count_default = 4096;                    // QGA_READ_COUNT_DEFAULT
inline constexpr std::int64_t read_count_max = std::int64_t{48} << 20;      // GUEST_FILE_READ_COUNT_MAX

enum class seek_name { set, cur, end };  // QGASeek: values match QGA_SEEK_*
struct whence_alt : protocol::alternate<std::int64_t, seek_name> {
  using alternate::alternate;
};

struct open_args {
  std::string path;
  std::optional<std::string> mode;
};
struct handle_args {
  std::int64_t handle = 0;
};
struct read_args {
  std::int64_t handle = 0;
  std::optional<std::int64_t> count;
};
struct write_args {
  std::int64_t handle = 0;
  std::string buf_b64;
  std::optional<std::int64_t> count;
};
struct seek_args {
  std::int64_t handle = 0;
  std::int64_t offset = 0;
  whence_alt whence;
};

}  // namespace
}  // namespace fleetga::commands

namespace fleetga::protocol {
using commands::handle_args;
using commands::open_args;
using commands::read_args;
using commands::seek_args;
using commands::seek_name;
using commands::whence_alt;
using commands::write_args;
template <>
struct enum_schema<seek_name> {
  static constexpr std::array<std::string_view, 3> names{"set", "cur", "end"};
  [[maybe_unused]] static constexpr std::string_view type_name = "QGASeek";
};
template <>
struct alternate_schema<whence_alt> {
  static constexpr std::string_view type_name = "GuestFileWhence";
};
template <>
struct arg_schema<open_args> {
  static constexpr auto members = std::make_tuple(member("path", &open_args::path), member("mode", &open_args::mode));
};
template <>
struct arg_schema<handle_args> {
  static constexpr auto members = std::make_tuple(member("handle", &handle_args::handle));
};
template <>
struct arg_schema<read_args> {
  static constexpr auto members =
      std::make_tuple(member("handle", &read_args::handle), member("count", &read_args::count));
};
template <>
struct arg_schema<write_args> {
  static constexpr auto members = std::make_tuple(member("handle", &write_args::handle),
                                                  member("buf-b64", &write_args::buf_b64),
                                                  member("count", &write_args::count));
};
template <>
struct arg_schema<seek_args> {
  static constexpr auto members = std::make_tuple(member("handle", &seek_args::handle),
                                                  member("offset", &seek_args::offset),
                                                  member("whence", &seek_args::whence));
};
}  // namespace fleetga::protocol

namespace fleetga::commands {
namespace {

// Reply member orders (schema order -> QEMU's print order).
static_assert(protocol::in_qemu_order(std::array<std::string_view, 3>{"count", "buf-b64", "eof"},
                                      std::array<std::string_view, 3>{"count", "buf-b64", "eof"}));
static_assert(protocol::in_qemu_order(std::array<std::string_view, 2>{"count", "eof"},
                                      std::array<std::string_view, 2>{"count", "eof"}));
static_assert(protocol::in_qemu_order(std::array<std::string_view, 2>{"position", "eof"},
                                      std::array<std::string_view, 2>{"eof", "position"}));


protocol::error not_found(std::int64_t handle) {
  return protocol::generic("handle '" + std::to_string(handle) + "' has not been found");
}

protocol::error bad_count(std::int64_t count) {
  return protocol::generic("value '" + std::to_string(count) + "' is invalid for argument count");
}

void empty_object(call& c) {
  c.out.begin_object();
  c.out.end_object();
}

}  // namespace

namespace handlers {

task<handler_result> guest_file_open(call& c) {
  open_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  agent_state& st = c.state;
  // QEMU keeps a NUL inside a JSON string as the overlong pair C0 80 (so C strings stay
  // whole): open(2) gets those two bytes, messages print \u0000, and a mode containing a
  // NUL matches no mode (checked against qemu-ga 7.2).
  const std::string path = std::move(a.path);
  const std::string mode = a.mode ? std::move(*a.mode) : std::string("r");
  std::string os_path;
  os_path.reserve(path.size());
  for (char ch : path) {
    if (ch == '\0') os_path += "\xC0\x80";
    else os_path += ch;
  }
  auto flags = platform::open_flags_for_mode(mode);
  if (!flags) co_return protocol::generic("invalid file open mode '" + mode + "'");

  // The state file is rewritten with the next counter before the handle is handed out.
  persistent_state next = st.pstate;
  next.fd_counter = next_fd_counter(next.fd_counter);
  const std::string state_text = serialize(next);

  struct outcome {
    std::unique_ptr<platform::stdio_file> file;
    platform::stdio_file::open_step step = platform::stdio_file::open_step::ok;
    int err = 0;
    int fd = -1;
    int persist_err = 0;
  };
  outcome r = co_await offload(st.pool, [&] {
    outcome o;
    o.file = std::make_unique<platform::stdio_file>();
    o.step = st.opener ? st.opener->open(os_path.c_str(), mode.c_str(), *flags, *o.file, o.err, o.fd)
                       : platform::stdio_file::open(os_path.c_str(), mode.c_str(), *flags, *o.file, o.err, o.fd);
    if (o.step == platform::stdio_file::open_step::ok) {
      o.persist_err = platform::replace_file(st.statedir, state_file_name, state_text);
      if (o.persist_err != 0) o.file.reset();  // fclose, like qemu-ga
    }
    return o;
  });

  using step = platform::stdio_file::open_step;
  switch (r.step) {
    case step::ok: break;
    case step::open:
      co_return errno_error("failed to open file '" + path + "' (mode: '" + mode + "')", r.err);
    case step::chmod:
      co_return errno_error("failed to set permission 0666 on new file '" + path + "' (mode: '" + mode + "')", r.err);
    case step::fdopen:
      co_return errno_error("failed to associate stdio stream with file descriptor " + std::to_string(r.fd) +
                                ", file '" + path + "' (mode: '" + mode + "')",
                            r.err);
  }
  // qemu-ga consumes the number even when the commit fails.
  const std::int64_t handle = st.pstate.fd_counter;
  st.pstate.fd_counter = next.fd_counter;
  if (r.persist_err != 0) co_return protocol::generic("failed to commit persistent state to disk");
  st.files.add(handle, std::move(r.file));
  c.out.integer(handle);
  co_return std::nullopt;
}

task<handler_result> guest_file_close(call& c) {
  handle_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  agent_state& st = c.state;
  platform::stdio_file* f = st.files.find(a.handle);
  if (!f) co_return not_found(a.handle);
  auto r = co_await offload(st.pool, [f] { return f->close(); });
  // The FILE* is gone either way (qemu-ga would keep a dangling handle here).
  st.files.remove(a.handle);
  if (r.step != platform::stdio_file::io_step::ok) co_return errno_error("failed to close handle", r.err);
  empty_object(c);
  co_return std::nullopt;
}

task<handler_result> guest_file_read(call& c) {
  read_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  agent_state& st = c.state;
  platform::stdio_file* f = st.files.find(a.handle);
  if (!f) co_return not_found(a.handle);
  const std::int64_t count = a.count.value_or(read_count_default);
  if (count < 0 || count > read_count_max) co_return bad_count(count);

  // The GuestFileRead value is written into the reply buffer by the worker, base64 and all:
  // a 48 MiB read becomes 64 MiB of text that the I/O thread never copies. The session leaves
  // its output buffer alone until this handler completes, and the resume is posted after the
  // worker finished, so the buffer has one user at a time.
  protocol::json_writer& w = c.out;
  auto r = co_await offload(st.pool, [f, count, &w] {
    std::string buf;
    auto res = f->read(static_cast<std::size_t>(count), buf);
    if (res.step == platform::stdio_file::io_step::ok) {
      std::string& out = w.buffer();
      out.reserve(out.size() + buf.size() / 3 * 4 + 64);
      w.begin_object();
      w.key("count");
      w.uinteger(res.count);
      w.key("buf-b64");
      w.raw("\"");
      protocol::base64_encode(buf, out);  // "" when nothing was read
      out += '"';
      w.key("eof");
      w.boolean(res.eof);
      w.end_object();
    }
    return res;
  });
  using io = platform::stdio_file::io_step;
  if (r.step == io::flush) co_return errno_error("failed to flush file", r.err);
  if (r.step != io::ok) co_return errno_error("failed to read file", r.err);
  co_return std::nullopt;
}

task<handler_result> guest_file_write(call& c) {
  write_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  agent_state& st = c.state;
  platform::stdio_file* f = st.files.find(a.handle);
  if (!f) co_return not_found(a.handle);

  handler_result err;
  platform::stdio_file::io_result r;
  co_await offload(st.pool, [&] {
    r = f->prepare_write();
    if (r.step != platform::stdio_file::io_step::ok) {
      err = errno_error("failed to seek file", r.err);
      return;
    }
    std::optional<std::string> data = protocol::base64_decode(a.buf_b64);
    if (!data) {
      err = protocol::generic("Base64 data contains invalid characters");
      return;
    }
    std::int64_t count = a.count.value_or(static_cast<std::int64_t>(data->size()));
    if (count < 0 || static_cast<std::uint64_t>(count) > data->size()) {
      err = bad_count(count);
      return;
    }
    r = f->write(data->data(), static_cast<std::size_t>(count));
    if (r.step != platform::stdio_file::io_step::ok) err = errno_error("failed to write to file", r.err);
  });
  if (err) co_return err;
  c.out.begin_object();
  c.out.key("count");
  c.out.uinteger(r.count);
  c.out.key("eof");
  c.out.boolean(r.eof);
  c.out.end_object();
  co_return std::nullopt;
}

task<handler_result> guest_file_seek(call& c) {
  seek_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  agent_state& st = c.state;
  platform::stdio_file* f = st.files.find(a.handle);
  if (!f) co_return not_found(a.handle);
  // ga_parse_whence(): the enum's values are the numeric codes.
  std::int64_t code = 0;
  if (auto* n = std::get_if<std::int64_t>(&a.whence)) code = *n;
  else code = static_cast<std::int64_t>(std::get<seek_name>(a.whence));
  int whence;
  switch (code) {
    case 0: whence = SEEK_SET; break;
    case 1: whence = SEEK_CUR; break;
    case 2: whence = SEEK_END; break;
    default: co_return protocol::generic("invalid whence code " + std::to_string(code));
  }
  const std::int64_t offset = a.offset;
  auto r = co_await offload(st.pool, [f, offset, whence] { return f->seek(offset, whence); });
  if (r.step != platform::stdio_file::io_step::ok) co_return errno_error("failed to seek file", r.err);
  c.out.begin_object();
  c.out.key("eof");
  c.out.boolean(r.eof);
  c.out.key("position");
  c.out.integer(r.position);
  c.out.end_object();
  co_return std::nullopt;
}

task<handler_result> guest_file_flush(call& c) {
  handle_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  agent_state& st = c.state;
  platform::stdio_file* f = st.files.find(a.handle);
  if (!f) co_return not_found(a.handle);
  auto r = co_await offload(st.pool, [f] { return f->flush(); });
  if (r.step != platform::stdio_file::io_step::ok) co_return errno_error("failed to flush file", r.err);
  empty_object(c);
  co_return std::nullopt;
}

}  // namespace handlers
}  // namespace fleetga::commands
