#pragma once
// stdio streams for guest-file-* (qemu-ga's qga/commands-posix.c semantics) and the atomic
// replace used for qga.state. Blocking calls: commands/ runs them on the worker pool.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace fleetga::platform {

// open(2) flags for an fopen mode, or nullopt for a mode qemu-ga rejects
// ("r rb w wb a ab r+ rb+ r+b w+ wb+ w+b a+ ab+ a+b"), O_NOCTTY|O_NONBLOCK included.
std::optional<int> open_flags_for_mode(std::string_view mode) noexcept;

// One open guest file: a FILE* plus the last operation, because C stdio needs a flush or a
// seek between a write and a read on the same stream (qemu-ga's RW_STATE_*).
class stdio_file {
 public:
  enum class last_op : std::uint8_t { none, reading, writing };
  enum class open_step : std::uint8_t { ok, open, chmod, fdopen };

  // safe_open_or_create(): when the mode may create, first create exclusively and fchmod
  // 0666 (umask ignored), else open the existing file; O_CLOEXEC always. `flags` from
  // open_flags_for_mode(). On failure returns the step and sets `err` (errno) and, for
  // fdopen, `fd_out`. A file created by a failed attempt is unlinked.
  static open_step open(const char* path, const char* mode, int flags, stdio_file& out, int& err,
                        int& fd_out) noexcept;

  stdio_file() = default;
  stdio_file(stdio_file&& o) noexcept : f_(o.f_), op_(o.op_) { o.f_ = nullptr; }
  stdio_file& operator=(stdio_file&& o) noexcept;
  ~stdio_file();

  enum class io_step : std::uint8_t { ok, flush, read, seek, write, close };
  struct io_result {
    io_step step = io_step::ok;  // which call failed
    int err = 0;                 // its errno
    std::size_t count = 0;       // bytes read / written
    std::int64_t position = 0;   // seek: ftell()
    bool eof = false;            // feof() after the call
  };

  // fread up to `count` bytes into `buf` (resized to what was read). write->read flushes.
  io_result read(std::size_t count, std::string& buf) noexcept;
  // The read->write switch: fseek(0, SEEK_CUR) when the last operation was a read (done
  // before guest-file-write even decodes its data, like qemu-ga).
  io_result prepare_write() noexcept;
  // fwrite (call prepare_write() first).
  io_result write(const char* data, std::size_t count) noexcept;
  io_result seek(std::int64_t offset, int whence) noexcept;
  io_result flush() noexcept;
  // fclose; the stream is gone afterwards whatever the result.
  io_result close() noexcept;

  bool is_open() const noexcept { return f_ != nullptr; }

 private:
  std::FILE* f_ = nullptr;
  last_op op_ = last_op::none;
};

// Replaces dir/name with `content` atomically: a unique temporary file in `dir` (mode 0666
// minus umask, like fopen(path, "w")), written, renamed over. The temporary is unlinked on
// every failure path. Returns errno (0 on success).
int replace_file(const std::string& dir, std::string_view name, std::string_view content) noexcept;

// access(path, F_OK) == 0
bool file_exists(const std::string& path) noexcept;

}  // namespace fleetga::platform
