#include "platform/accounts.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utmpx.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

namespace fleetga::platform {

namespace {

// Most session files ever read (logind's own SessionsMax default) and the size of one.
inline constexpr std::size_t logind_sessions_max = 8192;
inline constexpr std::size_t logind_session_file_max = 64 * 1024;

std::string errno_text(int err) { return std::strerror(err); }

// GLib's “…” quotes around file names in its messages.
std::string quoted(std::string_view path) {
  std::string s = "\xE2\x80\x9C";
  s += path;
  s += "\xE2\x80\x9D";
  return s;
}

int open_retry(const char* path, int flags, mode_t mode = 0) {
  int fd;
  do fd = ::open(path, flags, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

// Reads until EOF or until more than `max` bytes arrived; returns errno (0 on success,
// EFBIG when larger than max).
int read_all(int fd, std::size_t max, std::string& out) {
  out.clear();
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return 0;
    if (out.size() + static_cast<std::size_t>(n) > max) return EFBIG;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

bool parse_u64(std::string_view s, std::uint64_t& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc{} && p == s.data() + s.size();
}

std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Logged-in users

double login_time_of(std::int64_t sec, std::int64_t usec) noexcept {
  double seconds = static_cast<double>(sec);
  double useconds = static_cast<double>(usec);
  useconds /= 1000000;  // QGA_MICRO_SECOND_TO_SECOND
  return seconds + useconds;
}

// Up to this many users a linear scan is cheaper than hashing (the usual case: a handful).
inline constexpr std::size_t linear_users_max = 16;

void user_collector::rehash() {
  std::size_t cap = 64;
  while (cap < users_.size() * 2) cap *= 2;
  index_.assign(cap, SIZE_MAX);
  for (std::size_t i = 0; i < users_.size(); ++i) {
    std::size_t s = fnv1a(users_[i].name) & (cap - 1);
    while (index_[s] != SIZE_MAX) s = (s + 1) & (cap - 1);
    index_[s] = i;
  }
}

void user_collector::add(std::string_view name, double login_time) {
  if (index_.empty()) {
    for (auto& u : users_)
      if (u.name == name) {
        if (login_time < u.login_time) u.login_time = login_time;
        return;
      }
    users_.push_back({std::string(name), login_time});
    if (users_.size() > linear_users_max) rehash();
    return;
  }
  const std::size_t mask = index_.size() - 1;
  std::size_t s = fnv1a(name) & mask;
  for (; index_[s] != SIZE_MAX; s = (s + 1) & mask) {
    guest_user& u = users_[index_[s]];
    if (u.name == name) {
      if (login_time < u.login_time) u.login_time = login_time;
      return;
    }
  }
  users_.push_back({std::string(name), login_time});
  if (users_.size() * 2 > index_.size()) rehash();
  else index_[s] = users_.size() - 1;
}

void collect_utmp(std::string_view records, user_collector& out) {
  constexpr std::size_t rec = sizeof(struct utmpx);
  for (std::size_t off = 0; off + rec <= records.size(); off += rec) {
    struct utmpx u;  // copied: the bytes carry no alignment guarantee
    std::memcpy(&u, records.data() + off, rec);
    if (u.ut_type != USER_PROCESS) continue;
    std::string_view name(u.ut_user, ::strnlen(u.ut_user, sizeof u.ut_user));
    out.add(name, login_time_of(u.ut_tv.tv_sec, u.ut_tv.tv_usec));
  }
}

std::optional<logind_session> parse_logind_session(std::string_view text) {
  logind_session s;
  bool have_user = false, have_time = false;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    std::size_t eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string_view::npos) continue;
    std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "USER") {
      s.user = value;
      have_user = !value.empty();
    } else if (key == "REALTIME") {
      have_time = parse_u64(value, s.realtime) && s.realtime > 0;
    } else if (key == "CLASS") {
      s.cls = value;
    } else if (key == "STATE") {
      s.state = value;
    }
  }
  if (!have_user || !have_time) return std::nullopt;
  return s;
}

bool is_login_session(const logind_session& s) noexcept {
  if (s.state == "closing") return false;  // logged out, processes lingering
  if (s.cls.empty()) return true;          // written by every logind, but be lenient
  return s.cls.starts_with("user") && s.cls != "user-incomplete";
}

namespace {

users_source read_logind(const std::string& dir, std::vector<guest_user>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return users_source::none;
  struct entry {
    std::uint64_t realtime;
    std::string id;
    std::string user;
  };
  std::vector<entry> sessions;
  std::string text;
  const int dfd = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    if (sessions.size() >= logind_sessions_max) break;
    std::string_view name = e->d_name;
    // Session ids are [A-Za-z0-9]; skip ".", "..", "<id>.ref" FIFOs and temporary files.
    if (name.empty() || name.find('.') != std::string_view::npos) continue;
    int fd;
    do fd = ::openat(dfd, e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) continue;
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
              read_all(fd, logind_session_file_max, text) == 0;
    ::close(fd);
    if (!ok) continue;
    auto s = parse_logind_session(text);
    if (!s || !is_login_session(*s)) continue;
    sessions.push_back({s->realtime, std::string(name), std::move(s->user)});
  }
  ::closedir(d);
  std::sort(sessions.begin(), sessions.end(), [](const entry& a, const entry& b) {
    return a.realtime != b.realtime ? a.realtime < b.realtime : a.id < b.id;
  });
  user_collector c;
  for (const auto& s : sessions)
    c.add(s.user, login_time_of(static_cast<std::int64_t>(s.realtime / 1000000),
                                static_cast<std::int64_t>(s.realtime % 1000000)));
  out = std::move(c.users());
  return users_source::logind;
}

}  // namespace

users_source read_users(const std::string& utmp_path, const std::string& sessions_dir,
                        std::vector<guest_user>& out) {
  out.clear();
  // No lock: glibc's getutxent() takes a read lock and waits up to 10 s for a writer.
  // pututxline() writes one whole record with one write(2), so a racing read sees at worst
  // one stale record.
  int fd = open_retry(utmp_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return read_logind(sessions_dir, out);
    return users_source::utmp;  // exists but unreadable: getutxent() finds nothing either
  }
  constexpr std::size_t rec = sizeof(struct utmpx);
  char buf[rec * 16];
  std::size_t have = 0;
  user_collector c;
  for (;;) {
    ssize_t n = ::read(fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<std::size_t>(n);
    std::size_t whole = have - have % rec;
    collect_utmp(std::string_view(buf, whole), c);
    std::memmove(buf, buf + whole, have - whole);
    have -= whole;
  }
  ::close(fd);
  out = std::move(c.users());
  return users_source::utmp;
}

// ---------------------------------------------------------------------------------------
// passwd

std::optional<passwd_entry> find_passwd_entry(std::string_view text, std::string_view name) {
  if (name.empty()) return std::nullopt;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    // name:passwd:uid:gid:gecos:dir[:shell]
    std::string_view f[7];
    std::size_t n = 0;
    while (n < 7) {
      std::size_t c = line.find(':');
      f[n++] = line.substr(0, c);
      if (c == std::string_view::npos) break;
      line.remove_prefix(c + 1);
    }
    if (n < 6 || f[0] != name) continue;
    std::uint64_t uid = 0, gid = 0;
    if (!parse_u64(f[2], uid) || !parse_u64(f[3], gid) || uid > UINT32_MAX || gid > UINT32_MAX) continue;
    return passwd_entry{std::string(f[5]), static_cast<uid_t>(uid), static_cast<gid_t>(gid)};
  }
  return std::nullopt;
}

std::string build_filename(std::string_view dir, std::string_view name) {
  std::string out;
  // First part: keeps its leading slashes, loses its trailing ones (all slashes: "/").
  std::size_t end = dir.find_last_not_of('/');
  if (end == std::string_view::npos) {
    if (!dir.empty()) out = "/";
  } else {
    out.assign(dir.substr(0, end + 1));
  }
  while (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (name.empty()) return out;
  if (!out.empty() && out.back() != '/') out += '/';
  out += name;
  return out;
}

user_lookup linux_accounts::lookup_user(const std::string& name) {
  user_lookup r;
  if (!root_.empty()) {
    std::string text;
    if (auto f = read_text_file(root_ + "/etc/passwd", authorized_keys_max, text)) {
      r.err = f->err;
      return r;
    }
    if (auto e = find_passwd_entry(text, name)) {
      e->home = root_ + e->home;
      r.entry = std::move(e);
    }
    return r;
  }
  // g_unix_get_passwd_entry(): grow the buffer on ERANGE; any other outcome is final.
  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::size_t size = hint > 0 ? static_cast<std::size_t>(hint) : 1024;
  for (;;) {
    std::string buf(size, '\0');
    struct passwd pwd {};
    struct passwd* res = nullptr;
    int ret = ::getpwnam_r(name.c_str(), &pwd, buf.data(), buf.size(), &res);
    if (res) {
      r.entry = passwd_entry{pwd.pw_dir ? pwd.pw_dir : "", pwd.pw_uid, pwd.pw_gid};
      return r;
    }
    if (ret == ERANGE && size < (std::size_t{1} << 20)) {
      size *= 2;
      continue;
    }
    r.err = ret;
    return r;
  }
}

// ---------------------------------------------------------------------------------------
// authorized_keys

namespace {

// g_file_get_contents() after the open and fstat: the read with GLib's texts, cut at the first
// NUL. `fd` stays open (the caller closes it).
std::optional<read_failure> read_opened(int fd, const struct stat& st, const std::string& path, std::size_t max,
                                        std::string& out) {
  // GLib reads a non-empty regular file with read(2), anything else through stdio.
  const bool regular = S_ISREG(st.st_mode) && st.st_size > 0;
  int err = regular && static_cast<std::uint64_t>(st.st_size) > max ? EFBIG : read_all(fd, max, out);
  if (err == EFBIG) {
    out.clear();
    return read_failure{err, "File " + quoted(path) + " is too large"};
  }
  if (err != 0) {
    out.clear();
    return read_failure{err, (regular ? "Failed to read from file " : "Error reading file ") + quoted(path) +
                                 ": " + errno_text(err)};
  }
  if (auto nul = out.find('\0'); nul != std::string::npos) out.resize(nul);
  return std::nullopt;
}

read_failure fstat_failure(const std::string& path, int err) {
  return read_failure{err, "Failed to get attributes of file " + quoted(path) + ": fstat() failed: " + errno_text(err)};
}

}  // namespace

std::optional<read_failure> read_text_file(const std::string& path, std::size_t max, std::string& out) {
  out.clear();
  int fd = open_retry(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return read_failure{err, "Failed to open file " + quoted(path) + ": " + errno_text(err)};
  }
  struct stat st {};
  std::optional<read_failure> r;
  if (::fstat(fd, &st) != 0) r = fstat_failure(path, errno);
  else r = read_opened(fd, st, path, max, out);
  ::close(fd);
  return r;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  if (text.empty()) return lines;
  for (;;) {
    std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      lines.emplace_back(text);
      return lines;
    }
    lines.emplace_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  std::size_t n = 0;
  for (const auto& l : lines) n += l.size() + 1;
  out.reserve(n);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    out += lines[i];
  }
  return out;
}

bool is_directory(const std::string& path) noexcept {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool path_exists(const std::string& path) noexcept { return ::access(path.c_str(), F_OK) == 0; }

std::optional<std::string> mkdir_for_user(const std::string& path, uid_t uid, gid_t gid, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == -1)
    return "failed to create directory '" + path + "': " + errno_text(errno);
  if (::chown(path.c_str(), uid, gid) == -1)
    return "failed to set ownership of directory '" + path + "': " + errno_text(errno);
  if (::chmod(path.c_str(), mode) == -1)
    return "failed to set permissions of directory '" + path + "': " + errno_text(errno);
  return std::nullopt;
}

namespace {

// GLib's g_mkstemp() suffix: six characters from [A-Za-z0-9].
void randomize_suffix(std::string& name) {
  static constexpr char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char rnd[6];
  if (::getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof rnd)) {
    // No entropy yet (early boot): time and pid are unique enough with O_EXCL retries.
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    std::uint64_t v = fnv1a(std::to_string(ts.tv_nsec) + "/" + std::to_string(::getpid()) + name);
    for (auto& b : rnd) { b = static_cast<unsigned char>(v); v >>= 8; }
  }
  for (std::size_t i = 0; i < 6; ++i) name[name.size() - 6 + i] = letters[rnd[i] % 62];
}

struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, std::string_view data, int& err) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

inline constexpr int temp_name_attempts = 100;  // g_mkstemp() gives up after 100 as well

}  // namespace

std::optional<std::string> replace_file_for_user(const std::string& path, std::string_view content,
                                                 uid_t uid, gid_t gid, bool unnamed_first) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  fd_guard d;
  do d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (d.fd < 0 && errno == EINTR);
  if (d.fd < 0) {
    std::string tmp_base = base + ".XXXXXX";
    randomize_suffix(tmp_base);
    return "failed to write to '" + path + "': Failed to create file " + quoted(build_filename(dir, tmp_base)) +
           ": " + errno_text(errno);
  }
  return replace_file_for_user_at(d.fd, path, base, content, uid, gid, unnamed_first);
}

std::optional<std::string> replace_file_for_user_at(int dir_fd, const std::string& path, const std::string& base,
                                                    std::string_view content, uid_t uid, gid_t gid,
                                                    bool unnamed_first) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string tmp_base = base + ".XXXXXX";
  randomize_suffix(tmp_base);
  auto tmp_path = [&] { return build_filename(dir, tmp_base); };
  auto write_error = [&](std::string glib) { return "failed to write to '" + path + "': " + std::move(glib); };
  struct { int fd; } d{dir_fd};

  // An unnamed inode first: nothing to clean up if we die before it is complete.
  fd_guard f;
  bool named = false;
  if (unnamed_first) f.fd = ::openat(d.fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (f.fd < 0) {  // no O_TMPFILE here (NFS, old kernels): a named exclusive temporary file
    for (int i = 0; i < temp_name_attempts; ++i) {
      f.fd = ::openat(d.fd, tmp_base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (f.fd >= 0 || errno != EEXIST) break;
      randomize_suffix(tmp_base);
    }
    if (f.fd < 0) return write_error("Failed to create file " + quoted(tmp_path()) + ": " + errno_text(errno));
    named = true;
  }
  auto discard = [&] {
    if (named) ::unlinkat(d.fd, tmp_base.c_str(), 0);
  };

  int err = 0;
  if (!write_all(f.fd, content, err)) {
    discard();
    return write_error("Failed to write file " + quoted(tmp_path()) + ": write() failed: " + errno_text(err));
  }
  if (::fchown(f.fd, uid, gid) == -1) {
    err = errno;
    discard();
    return "failed to set ownership of directory '" + path + "': " + errno_text(err);
  }
  if (::fchmod(f.fd, 0600) == -1) {
    err = errno;
    discard();
    return "failed to set permissions of '" + path + "': " + errno_text(err);
  }
  if (::fsync(f.fd) == -1) {
    err = errno;
    discard();
    return write_error("Failed to write file " + quoted(tmp_path()) + ": fsync() failed: " + errno_text(err));
  }
  if (!named) {
    // Give the complete inode a temporary name (rename(2) needs one). AT_EMPTY_PATH needs
    // CAP_DAC_READ_SEARCH; the /proc link works without it.
    const std::string proc = "/proc/self/fd/" + std::to_string(f.fd);
    for (int i = 0; i < temp_name_attempts; ++i) {
      int r = ::linkat(f.fd, "", d.fd, tmp_base.c_str(), AT_EMPTY_PATH);
      if (r != 0 && errno != EEXIST) r = ::linkat(AT_FDCWD, proc.c_str(), d.fd, tmp_base.c_str(), AT_SYMLINK_FOLLOW);
      if (r == 0) {
        named = true;
        break;
      }
      if (errno != EEXIST) break;
      randomize_suffix(tmp_base);
    }
    if (!named) return write_error("Failed to create file " + quoted(tmp_path()) + ": " + errno_text(errno));
  }
  if (::renameat(d.fd, tmp_base.c_str(), d.fd, base.c_str()) == -1) {
    err = errno;
    const std::string tp = tmp_path();
    discard();
    return write_error("Failed to rename file " + quoted(tp) + " to " + quoted(path) + ": g_rename() failed: " +
                       errno_text(err));
  }
  ::fsync(d.fd);  // the rename itself durable; nothing to undo if this fails
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// ~/.ssh/authorized_keys without following planted links

authorized_keys_file::authorized_keys_file(const passwd_entry& user)
    : user_(user),
      dir_path_(build_filename(user.home, ".ssh")),
      path_(build_filename(dir_path_, "authorized_keys")) {}

authorized_keys_file::~authorized_keys_file() {
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

std::optional<std::string> authorized_keys_file::open_dir(bool create) {
  fd_guard home;
  home.fd = open_retry(user_.home.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (home.fd < 0) {
    dir_err_ = errno;
    // mkdir(~/.ssh) would have met the same error.
    if (create) return "failed to create directory '" + dir_path_ + "': " + errno_text(dir_err_);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstatat(home.fd, ".ssh", &st, AT_SYMLINK_NOFOLLOW) != 0) {
    dir_err_ = errno;
    if (!create || dir_err_ != ENOENT) {
      if (create) return "failed to create directory '" + dir_path_ + "': " + errno_text(dir_err_);
      return std::nullopt;
    }
    // mkdir_for_user(), with chown and chmod through the new directory's descriptor: a link
    // swapped in after the mkdir is refused by O_NOFOLLOW instead of being chowned.
    if (::mkdirat(home.fd, ".ssh", 0700) != 0)
      return "failed to create directory '" + dir_path_ + "': " + errno_text(errno);
    dir_fd_ = ::openat(home.fd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd_ < 0) return "failed to create directory '" + dir_path_ + "': " + errno_text(errno);
    if (::fchown(dir_fd_, user_.uid, user_.gid) != 0)
      return "failed to set ownership of directory '" + dir_path_ + "': " + errno_text(errno);
    if (::fchmod(dir_fd_, 0700) != 0)
      return "failed to set permissions of directory '" + dir_path_ + "': " + errno_text(errno);
    dir_err_ = 0;
    return std::nullopt;
  }
  if (S_ISLNK(st.st_mode)) return "'" + dir_path_ + "' is a symbolic link; fleetga does not follow it";
  if (!S_ISDIR(st.st_mode)) {
    dir_err_ = ENOTDIR;
    // qemu-ga's is_directory() test fails, and so does its mkdir().
    if (create) return "failed to create directory '" + dir_path_ + "': " + errno_text(EEXIST);
    return std::nullopt;
  }
  dir_fd_ = ::openat(home.fd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd_ < 0) {
    int err = errno;
    if (err == ELOOP || err == ENOTDIR)  // replaced between the stat and the open
      return "'" + dir_path_ + "' is a symbolic link; fleetga does not follow it";
    dir_err_ = err;
    return std::nullopt;
  }
  if (::fstat(dir_fd_, &st) != 0 || !S_ISDIR(st.st_mode))
    return "'" + dir_path_ + "' is not a directory";
  if (st.st_uid != user_.uid && st.st_uid != 0)
    return "'" + dir_path_ + "' is owned by uid " + std::to_string(st.st_uid) + ", not by the user (uid " +
           std::to_string(user_.uid) + ") or root";
  return std::nullopt;
}

std::optional<read_failure> authorized_keys_file::read(std::size_t max, std::string& out, bool& refused) {
  out.clear();
  refused = false;
  if (dir_fd_ < 0) {
    int err = dir_err_ ? dir_err_ : ENOENT;
    return read_failure{err, "Failed to open file " + quoted(path_) + ": " + errno_text(err)};
  }
  auto refuse = [&](std::string why) {
    refused = true;
    return read_failure{EPERM, "'" + path_ + "' " + std::move(why)};
  };
  fd_guard f;
  do f.fd = ::openat(dir_fd_, "authorized_keys", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  while (f.fd < 0 && errno == EINTR);
  if (f.fd < 0) {
    int err = errno;
    if (err == ELOOP) return refuse("is a symbolic link; fleetga does not follow it");
    return read_failure{err, "Failed to open file " + quoted(path_) + ": " + errno_text(err)};
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return fstat_failure(path_, errno);
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return refuse("is not a regular file");
  if (S_ISREG(st.st_mode)) {
    if (st.st_uid != user_.uid && st.st_uid != 0)
      return refuse("is owned by uid " + std::to_string(st.st_uid) + ", not by the user (uid " +
                    std::to_string(user_.uid) + ") or root");
    // A root-owned name with other links may be a hard link to a file such as /etc/shadow.
    if (st.st_uid != user_.uid && st.st_nlink > 1) return refuse("is owned by root and has other hard links");
  }
  return read_opened(f.fd, st, path_, max, out);  // read_text_file()'s reading and texts
}

bool authorized_keys_file::exists() const noexcept {
  struct stat st {};
  return dir_fd_ >= 0 && ::fstatat(dir_fd_, "authorized_keys", &st, AT_SYMLINK_NOFOLLOW) == 0;
}

std::optional<std::string> authorized_keys_file::replace(std::string_view content) {
  if (dir_fd_ < 0) {  // only after open_dir(false) found no ~/.ssh: the write fails as qemu-ga's
    int err = dir_err_ ? dir_err_ : ENOENT;
    return "failed to write to '" + path_ + "': Failed to create file " +
           quoted(build_filename(dir_path_, "authorized_keys.XXXXXX")) + ": " + errno_text(err);
  }
  return replace_file_for_user_at(dir_fd_, path_, "authorized_keys", content, user_.uid, user_.gid);
}

}  // namespace fleetga::platform
