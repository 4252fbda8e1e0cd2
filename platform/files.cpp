#include "platform/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace fleetga::platform {

std::optional<int> open_flags_for_mode(std::string_view mode) noexcept {
  // qemu-ga's guest_file_open_modes[]; O_BINARY is 0 on POSIX.
  struct row { std::string_view a, b; int flags; };
  static constexpr row modes[] = {
      {"r", {}, O_RDONLY},
      {"rb", {}, O_RDONLY},
      {"w", {}, O_WRONLY | O_CREAT | O_TRUNC},
      {"wb", {}, O_WRONLY | O_CREAT | O_TRUNC},
      {"a", {}, O_WRONLY | O_CREAT | O_APPEND},
      {"ab", {}, O_WRONLY | O_CREAT | O_APPEND},
      {"r+", {}, O_RDWR},
      {"rb+", "r+b", O_RDWR},
      {"w+", {}, O_RDWR | O_CREAT | O_TRUNC},
      {"wb+", "w+b", O_RDWR | O_CREAT | O_TRUNC},
      {"a+", {}, O_RDWR | O_CREAT | O_APPEND},
      {"ab+", "a+b", O_RDWR | O_CREAT | O_APPEND},
  };
  for (const auto& m : modes)
    if (mode == m.a || (!m.b.empty() && mode == m.b)) return m.flags | O_NOCTTY | O_NONBLOCK;
  return std::nullopt;
}

stdio_file::open_step stdio_file::open(const char* path, const char* mode, int flags,
                                       stdio_file& out, int& err, int& fd_out) noexcept {
  int fd = ::open(path, flags | ((flags & O_CREAT) ? O_EXCL : 0) | O_CLOEXEC, 0);
  if (fd == -1 && errno == EEXIST) {
    // Exists already: open it as is; its mode bits are not ours to change.
    flags &= ~O_CREAT;
    fd = ::open(path, flags | O_CLOEXEC, 0);
  }
  if (fd == -1) {
    err = errno;
    return open_step::open;
  }
  open_step step = open_step::ok;
  if ((flags & O_CREAT) && ::fchmod(fd, 0666) == -1) {
    err = errno;
    step = open_step::chmod;
  } else if (std::FILE* f = ::fdopen(fd, mode)) {
    out = stdio_file{};
    out.f_ = f;
    out.op_ = last_op::none;
    return open_step::ok;
  } else {
    err = errno;
    fd_out = fd;
    step = open_step::fdopen;
  }
  ::close(fd);
  if (flags & O_CREAT) ::unlink(path);
  return step;
}

stdio_file& stdio_file::operator=(stdio_file&& o) noexcept {
  if (this != &o) {
    if (f_) std::fclose(f_);
    f_ = o.f_;
    op_ = o.op_;
    o.f_ = nullptr;
  }
  return *this;
}

stdio_file::~stdio_file() {
  if (f_) std::fclose(f_);
}

stdio_file::io_result stdio_file::read(std::size_t count, std::string& buf) noexcept {
  io_result r;
  if (op_ == last_op::writing) {
    if (std::fflush(f_) == EOF) {
      r.step = io_step::flush;
      r.err = errno;
      return r;
    }
    op_ = last_op::none;
  }
  buf.resize(count);
  errno = 0;
  std::size_t n = std::fread(buf.data(), 1, count, f_);
  if (std::ferror(f_)) {
    r.step = io_step::read;
    r.err = errno;
    buf.clear();
  } else {
    buf.resize(n);
    r.count = n;
    r.eof = std::feof(f_) != 0;
    op_ = last_op::reading;
  }
  std::clearerr(f_);
  return r;
}

stdio_file::io_result stdio_file::prepare_write() noexcept {
  io_result r;
  if (op_ == last_op::reading) {
    if (std::fseek(f_, 0, SEEK_CUR) == -1) {
      r.step = io_step::seek;
      r.err = errno;
      return r;
    }
    op_ = last_op::none;
  }
  return r;
}

stdio_file::io_result stdio_file::write(const char* data, std::size_t count) noexcept {
  io_result r = prepare_write();
  if (r.step != io_step::ok) return r;
  errno = 0;
  std::size_t n = std::fwrite(data, 1, count, f_);
  if (std::ferror(f_)) {
    r.step = io_step::write;
    r.err = errno;
  } else {
    r.count = n;
    r.eof = std::feof(f_) != 0;
    op_ = last_op::writing;
  }
  std::clearerr(f_);
  return r;
}

stdio_file::io_result stdio_file::seek(std::int64_t offset, int whence) noexcept {
  io_result r;
  if (std::fseek(f_, static_cast<long>(offset), whence) == -1) {
    r.step = io_step::seek;
    r.err = errno;
    // Non-seekable: stdio shouldn't be buffering anyway (qemu-ga resets the state too).
    if (r.err == ESPIPE) op_ = last_op::none;
  } else {
    r.position = std::ftell(f_);
    r.eof = std::feof(f_) != 0;
    op_ = last_op::none;
  }
  std::clearerr(f_);
  return r;
}

stdio_file::io_result stdio_file::flush() noexcept {
  io_result r;
  if (std::fflush(f_) == EOF) {
    r.step = io_step::flush;
    r.err = errno;
  } else {
    op_ = last_op::none;
  }
  return r;
}

stdio_file::io_result stdio_file::close() noexcept {
  io_result r;
  std::FILE* f = f_;
  f_ = nullptr;
  if (f && std::fclose(f) == EOF) {
    r.step = io_step::close;
    r.err = errno;
  }
  return r;
}

int replace_file(const std::string& dir, std::string_view name, std::string_view content) noexcept {
  static std::atomic<unsigned> seq{0};
  std::string final_path = dir;
  final_path += '/';
  final_path += name;
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = final_path;
    tmp += ".tmp.";
    tmp += std::to_string(::getpid());
    tmp += '.';
    tmp += std::to_string(seq.fetch_add(1, std::memory_order_relaxed));
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
    if (fd < 0 && errno != EEXIST) return errno;
  }
  if (fd < 0) return EEXIST;
  const char* p = content.data();
  std::size_t left = content.size();
  int err = 0;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  // No fsync, like qemu-ga's fopen/fwrite/fclose; rename-over-existing makes ext4/xfs flush
  // the data before the rename is committed, and a lost update only costs handle numbers.
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), final_path.c_str()) != 0) err = errno;
  if (err != 0) ::unlink(tmp.c_str());
  return err;
}

bool file_exists(const std::string& path) noexcept { return ::access(path.c_str(), F_OK) == 0; }

}  // namespace fleetga::platform
