#include "tools/attach/sockets.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <system_error>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "protocol/framer.hpp"
#include "tools/common.hpp"  // inline parts only: this library does not link common.cpp

extern char** environ;

namespace fleetga::host::attach {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

static_assert(protocol::input_padding >= simdjson::SIMDJSON_PADDING, "framer frames must be parseable in place");

// ---------------------------------------------------------------------------------------------
// Small pieces

struct unique_fd {
  int fd = -1;
  unique_fd() = default;
  explicit unique_fd(int f) : fd(f) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  ~unique_fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Milliseconds left for poll(), rounded up: a wait that ends a fraction of a millisecond
// before the deadline would only go round once more with a zero timeout.
int poll_ms(clock::time_point deadline) {
  auto left = deadline - clock::now();
  if (left <= clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<milliseconds>(left).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

enum class io { ok, timeout, closed, error, aborted };

// Waits until `fd` has one of `events` (or an error/hangup, which the next read or write
// reports: ok), the deadline passes (timeout) or `abort_fd` (-1: none) is readable (aborted).
io wait_fd(int fd, short events, clock::time_point deadline, int abort_fd = -1) {
  for (;;) {
    pollfd p[2] = {{fd, events, 0}, {abort_fd, POLLIN, 0}};
    int r = ::poll(p, abort_fd >= 0 ? 2 : 1, poll_ms(deadline));
    if (r > 0 && abort_fd >= 0 && p[1].revents) return io::aborted;
    if (r > 0) return io::ok;
    if (r == 0 && clock::now() >= deadline) return io::timeout;
    if (r < 0 && errno != EINTR) return io::ok;  // let the read/write report it
  }
}

// The whole of `data` within the deadline. MSG_NOSIGNAL: a peer that hung up is an EPIPE,
// not a SIGPIPE for the daemon.
io write_all(int fd, std::string_view data, clock::time_point deadline, int abort_fd, int& err) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (io w = wait_fd(fd, POLLOUT, deadline, abort_fd); w != io::ok) return w;
      continue;
    }
    err = n < 0 ? errno : EPIPE;
    return err == EPIPE || err == ECONNRESET ? io::closed : io::error;
  }
  return io::ok;
}

// Printable for a log line: control bytes and non-ASCII as \xNN, cut to `max` bytes.
std::string printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\')
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (s.size() > max) out += "...";
  return out;
}

std::uint64_t random_sync_id() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  // Positive and inside int64, so every agent echoes it as a plain integer; never 0.
  return (gen() & 0x3FFFFFFFFFFFFFFFull) | 1;
}

constexpr const char* stopping = "fleetga-host is stopping";

std::string socket_path(const std::string& dir, const std::string& id) { return dir + "/" + id; }

bool is_socket(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// ---------------------------------------------------------------------------------------------
// The connection

// One frame of the agent's output.
struct reply_frame {
  enum class kind : std::uint8_t { json, delim, junk } type = kind::junk;
  std::string_view text;  // json: the message (padded); junk: the framer's error
};

class socket_link final : public agent_link {
 public:
  socket_link(unique_fd fd, int abort_fd) : fd_(std::move(fd)), abort_fd_(abort_fd) {}

  // 0xFF + guest-sync-delimited, then everything up to the 0xFF that precedes our own reply is
  // stale (the agent's parse error for our 0xFF, replies a previous client never read, a
  // delimited reply to someone else's sync).
  agent_reply sync(clock::time_point deadline, milliseconds timeout) {
    agent_reply r;
    const std::uint64_t id = random_sync_id();
    std::string req =
        fmt::format("\xff{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{}}}}}\n", id);
    int err = 0;
    switch (write_all(fd_.fd, req, deadline, abort_fd_, err)) {
      case io::ok: break;
      case io::aborted: return fail(r, agent_reply::status::failed, stopping);
      case io::timeout:
        return fail(r, agent_reply::status::busy,
                    fmt::format("guest-sync-delimited could not be sent in {} ms: another client holds the socket", timeout.count()));
      case io::closed:
        return fail(r, agent_reply::status::not_connected, "the agent hung up before guest-sync-delimited");
      case io::error: return fail(r, agent_reply::status::failed, fmt::format("send: {}", std::strerror(err)));
    }
    bool after_delim = false;
    for (;;) {
      reply_frame f;
      switch (next(f, deadline, err)) {
        case io::ok: break;
        case io::aborted: return fail(r, agent_reply::status::failed, stopping);
        case io::timeout:
          // QEMU's chardev serves one client; a second connection waits in the backlog and
          // hears nothing. A chardev with no agent behind it looks the same.
          return fail(r, agent_reply::status::busy,
                      fmt::format("no reply to guest-sync-delimited in {} ms: another client holds the socket, "
                                  "or no agent answers behind it", timeout.count()));
        case io::closed:
          return fail(r, agent_reply::status::not_connected, "the agent hung up during guest-sync-delimited");
        case io::error: return fail(r, agent_reply::status::failed, fmt::format("recv: {}", std::strerror(err)));
      }
      if (f.type == reply_frame::kind::delim) {
        after_delim = true;
        continue;
      }
      if (f.type == reply_frame::kind::json && after_delim && is_sync_reply(f.text, id)) {
        r.st = agent_reply::status::ok;
        return r;
      }
      after_delim = false;
    }
  }

  agent_reply command(const std::string& json, milliseconds timeout) override {
    agent_reply r;
    if (!usable_.empty()) return fail(r, agent_reply::status::failed, usable_);
    const auto deadline = clock::now() + timeout;
    std::string req;
    req.reserve(json.size() + 1);
    req += json;
    req += '\n';
    int err = 0;
    switch (write_all(fd_.fd, req, deadline, abort_fd_, err)) {
      case io::ok: break;
      case io::aborted: return poison(r, agent_reply::status::failed, stopping);
      case io::timeout:
        return poison(r, agent_reply::status::timeout, fmt::format("the command could not be sent in {} ms", timeout.count()));
      case io::closed: return poison(r, agent_reply::status::not_connected, "the agent hung up");
      case io::error: return poison(r, agent_reply::status::failed, fmt::format("send: {}", std::strerror(err)));
    }
    reply_frame f;
    switch (next(f, deadline, err)) {
      case io::ok: break;
      case io::aborted: return poison(r, agent_reply::status::failed, stopping);
      case io::timeout:
        return poison(r, agent_reply::status::timeout, fmt::format("no reply in {} ms", timeout.count()));
      case io::closed: return poison(r, agent_reply::status::not_connected, "the agent hung up before replying");
      case io::error: return poison(r, agent_reply::status::failed, fmt::format("recv: {}", std::strerror(err)));
    }
    if (f.type == reply_frame::kind::delim)
      return poison(r, agent_reply::status::garbage, "a 0xFF delimiter instead of a reply");
    if (f.type == reply_frame::kind::junk)
      return poison(r, agent_reply::status::garbage, "not JSON: " + printable(f.text));
    simdjson::dom::element e;
    if (parser().parse(f.text.data(), f.text.size(), false).get(e) || !e.is_object())
      return poison(r, agent_reply::status::garbage, "not a QMP reply: " + printable(f.text));
    simdjson::dom::element v;
    if (!e["return"].get(v)) {
      r.st = agent_reply::status::ok;
      r.ret = simdjson::minify(v);
      return r;
    }
    if (!e["error"].get(v) && v.is_object()) {
      std::string_view s;
      r.st = agent_reply::status::error_reply;
      if (!v["class"].get(s)) r.error_class = s;
      if (!v["desc"].get(s)) r.desc = s;
      return r;
    }
    return poison(r, agent_reply::status::garbage, "not a QMP reply: " + printable(f.text));
  }

 private:
  static simdjson::dom::parser& parser() {
    thread_local simdjson::dom::parser p;
    return p;
  }

  static agent_reply& fail(agent_reply& r, agent_reply::status st, std::string desc) {
    r.st = st;
    r.desc = std::move(desc);
    return r;
  }

  // After a reply that is not one (or none in time) the stream's position is unknown: a late
  // reply would be taken for the answer to the next command. The link says so instead.
  agent_reply& poison(agent_reply& r, agent_reply::status st, std::string desc) {
    usable_ = fmt::format("the connection is out of step after an earlier {} ({})", to_string(st), desc);
    return fail(r, st, std::move(desc));
  }

  static bool is_sync_reply(std::string_view text, std::uint64_t id) {
    simdjson::dom::element e;
    if (parser().parse(text.data(), text.size(), false).get(e)) return false;
    std::uint64_t got = 0;
    return !e["return"].get(got) && got == id;
  }

  // The next frame, reading as needed until the deadline.
  io next(reply_frame& out, clock::time_point deadline, int& err) {
    for (;;) {
      protocol::frame f;
      if (fr_.next(f)) {
        if (f.type == protocol::frame::kind::message) {
          out = {reply_frame::kind::json, f.text};
        } else if (is_delimiter_error(f.error)) {  // a 0xFF: the framer calls it a stray byte
          out = {reply_frame::kind::delim, {}};
        } else {
          out = {reply_frame::kind::junk, f.error};
        }
        return io::ok;
      }
      auto span = fr_.prepare(16 * 1024);
      ssize_t n = ::recv(fd_.fd, span.data(), span.size(), MSG_DONTWAIT);
      if (n > 0) {
        fr_.commit(static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) return io::closed;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (io w = wait_fd(fd_.fd, POLLIN, deadline, abort_fd_); w != io::ok) return w;
        continue;
      }
      err = errno;
      return err == ECONNRESET ? io::closed : io::error;
    }
  }

  unique_fd fd_;
  int abort_fd_;
  protocol::framer fr_;
  std::string usable_;  // empty while the link is in step
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// socket_stack

bool agent_socket_name(std::string_view name, const std::string& match) {
  if (name.empty() || name == "." || name == "..") return false;
  return ::fnmatch(match.c_str(), std::string(name).c_str(), FNM_PERIOD) == 0;
}

std::vector<std::string> list_agent_sockets(const std::string& dir, const std::string& match) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    if (!agent_socket_name(name, match)) continue;
    if (ent->d_type == DT_SOCK || (ent->d_type == DT_UNKNOWN && is_socket(socket_path(dir, name))))
      out.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

socket_stack::socket_stack(std::string dir, std::optional<support_level> host_level, std::string match)
    : dir_(std::move(dir)), level_(host_level), match_(std::move(match)) {}

std::vector<std::string> socket_stack::connected_domains() { return list_agent_sockets(dir_, match_); }

std::optional<domain_facts> socket_stack::facts(const std::string& id) {
  if (id.find('/') != std::string::npos || !agent_socket_name(id, match_) || !is_socket(socket_path(dir_, id)))
    return std::nullopt;
  domain_facts f;
  f.name = id;
  if (f.name.size() > 4 && f.name.ends_with(".qga")) f.name.resize(f.name.size() - 4);
  return f;
}

std::unique_ptr<agent_link> socket_stack::open(const std::string& id, milliseconds timeout, agent_reply& why) {
  const auto deadline = clock::now() + timeout;
  const int abort_fd = abort_fd_.load();
  auto fail = [&](agent_reply::status st, std::string desc) -> std::unique_ptr<agent_link> {
    why = {};
    why.st = st;
    why.desc = std::move(desc);
    return nullptr;
  };
  const std::string path = socket_path(dir_, id);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path)
    return fail(agent_reply::status::failed,
                fmt::format("{}: the path is too long for a unix socket ({} bytes, at most {})", path, path.size(),
                            sizeof sa.sun_path - 1));
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);

  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.fd < 0) return fail(agent_reply::status::failed, fmt::format("socket: {}", std::strerror(errno)));
  int err = 0;
  if (::connect(fd.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    err = errno;
    // Not what AF_UNIX does today (it never sleeps in connect), but connect(2) allows it.
    if (err == EINPROGRESS) {
      io w = wait_fd(fd.fd, POLLOUT, deadline, abort_fd);
      if (w == io::aborted) return fail(agent_reply::status::failed, stopping);
      if (w == io::timeout)
        return fail(agent_reply::status::busy, fmt::format("connect did not finish in {} ms", timeout.count()));
      socklen_t len = sizeof err;
      if (::getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
  }
  switch (err) {
    case 0: break;
    case ENOENT:
    case ENOTDIR: return fail(agent_reply::status::gone, fmt::format("{}: no such socket", path));
    case ECONNREFUSED:
      return fail(agent_reply::status::not_connected, "connection refused: nobody listens (the VM is not running?)");
    case EAGAIN:
      return fail(agent_reply::status::busy, "the socket's listen backlog is full: another client holds it");
    default: return fail(agent_reply::status::failed, fmt::format("connect: {}", std::strerror(err)));
  }

  auto link = std::make_unique<socket_link>(std::move(fd), abort_fd);
  agent_reply r = link->sync(deadline, timeout);
  if (r.st != agent_reply::status::ok) {
    why = std::move(r);
    return nullptr;
  }
  return link;
}

// ---------------------------------------------------------------------------------------------
// watch_sockets

namespace {

constexpr std::uint32_t dir_mask = IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM |
                                   IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
// Waiting for DIR: anything that could make a deeper part of the path exist, or this one go.
constexpr std::uint32_t ancestor_mask = IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

class dir_watcher {
 public:
  dir_watcher(const std::string& dir, const std::string& match, engine& e)
      : dir_(dir), abs_(std::filesystem::absolute(dir).lexically_normal()), match_(match), e_(e) {
    if (abs_.has_filename() == false && abs_.has_parent_path()) abs_ = abs_.parent_path();  // "dir/" -> "dir"
    fd_.fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_.fd < 0) throw_errno(errno, "inotify_init1");
  }

  int fd() const { return fd_.fd; }

  // Watches DIR when it exists (then the sweep), else its nearest existing ancestor.
  void establish() {
    for (int round = 0;; ++round) {
      int wd = ::inotify_add_watch(fd_.fd, abs_.c_str(), dir_mask);
      if (wd >= 0) {
        dir_wd_ = wd;
        if (anc_wd_ >= 0) ::inotify_rm_watch(fd_.fd, anc_wd_);
        anc_wd_ = -1;
        if (waiting_) spdlog::info("{} is there: watching it for agent sockets", dir_);
        waiting_ = false;
        rescan();
        return;
      }
      if (errno != ENOENT && errno != ENOTDIR) throw_errno(errno, fmt::format("inotify_add_watch {}", dir_));
      watch_ancestor();
      // DIR may have appeared between the two calls; from now on its creation is an event.
      struct stat st{};
      if (round < 10 && ::stat(abs_.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
      if (!waiting_) spdlog::info("{} does not exist (yet): waiting for it", dir_);
      waiting_ = true;
      forget_all();
      return;
    }
  }

  // Every event queued.
  void drain() {
    alignas(inotify_event) char buf[16 * 1024];
    bool lost_dir = false, retry = false, overflow = false;
    for (;;) {
      ssize_t n = ::read(fd_.fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) throw_errno(n < 0 ? errno : EIO, "read inotify");
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        p += sizeof(inotify_event) + ev->len;
        if (ev->mask & IN_Q_OVERFLOW) {
          overflow = true;
        } else if (ev->wd == dir_wd_ && dir_wd_ >= 0) {
          if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT))
            lost_dir = true;
          else if (ev->len > 0)
            entry_event(ev->name, ev->mask);
        } else if (ev->wd == anc_wd_ && anc_wd_ >= 0) {
          retry = true;
        }
      }
    }
    if (lost_dir) {
      spdlog::info("{} went away: waiting for it to come back", dir_);
      ::inotify_rm_watch(fd_.fd, dir_wd_);  // moved away it would still be watched; gone, EINVAL
      dir_wd_ = -1;
      waiting_ = true;
      forget_all();
    }
    if (dir_wd_ < 0 && (lost_dir || retry || overflow)) {
      establish();
    } else if (overflow) {
      spdlog::info("{}: inotify queue overflow: rescanning", dir_);
      rescan();
    }
  }

  // What is there now: sockets that went unnoticed are gone, the rest gets a sweep.
  void rescan() {
    if (dir_wd_ < 0) {
      establish();  // also a second chance should an event have been missed
      return;
    }
    auto now = list_agent_sockets(dir_, match_);
    std::set<std::string> cur(now.begin(), now.end());
    for (auto it = known_.begin(); it != known_.end();) {
      if (!cur.contains(*it)) {
        e_.domain_gone(*it);
        it = known_.erase(it);
      } else {
        ++it;
      }
    }
    known_ = std::move(cur);
    e_.sweep();
  }

 private:
  void entry_event(const char* cname, std::uint32_t mask) {
    std::string name = cname;
    if (!agent_socket_name(name, match_)) return;
    if (mask & (IN_DELETE | IN_MOVED_FROM)) {
      if (known_.erase(name)) {
        spdlog::debug("{}/{}: gone", dir_, name);
        e_.domain_gone(name);
      }
      return;
    }
    if (!(mask & (IN_CREATE | IN_MOVED_TO | IN_ATTRIB))) return;
    if (is_socket(socket_path(dir_, name))) {
      known_.insert(name);
      spdlog::debug("{}/{}: a socket {}", dir_, name, mask & IN_ATTRIB ? "changed" : "appeared");
      e_.agent_connected(name);
    } else if (known_.erase(name)) {  // replaced by something that is not a socket
      e_.domain_gone(name);
    }
  }

  void forget_all() {
    for (const auto& k : known_) e_.domain_gone(k);
    known_.clear();
  }

  void watch_ancestor() {
    std::filesystem::path p = abs_.parent_path();
    for (;;) {
      int wd = ::inotify_add_watch(fd_.fd, p.c_str(), ancestor_mask);
      if (wd >= 0) {
        if (anc_wd_ >= 0 && anc_wd_ != wd) ::inotify_rm_watch(fd_.fd, anc_wd_);
        anc_wd_ = wd;
        return;
      }
      if ((errno != ENOENT && errno != ENOTDIR) || !p.has_parent_path() || p.parent_path() == p)
        throw_errno(errno, fmt::format("inotify_add_watch {}", p.string()));
      p = p.parent_path();
    }
  }

  std::string dir_;
  std::filesystem::path abs_;
  std::string match_;
  engine& e_;
  unique_fd fd_;
  int dir_wd_ = -1, anc_wd_ = -1;
  bool waiting_ = false;
  std::set<std::string> known_;  // the agent sockets in DIR as last seen
};

}  // namespace

void watch_sockets(const std::string& dir, engine& e, int stop_fd, std::chrono::seconds rescan,
                   const std::string& match) {
  dir_watcher w(dir, match, e);
  w.establish();
  auto next_rescan = clock::now() + rescan;
  for (;;) {
    pollfd p[2] = {{stop_fd, POLLIN, 0}, {w.fd(), POLLIN, 0}};
    int r = ::poll(p, 2, rescan.count() > 0 ? poll_ms(next_rescan) : -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "poll");
    }
    if (p[0].revents) return;  // readable, or closed (POLLHUP/POLLNVAL): either way, stop
    if (p[1].revents & (POLLERR | POLLNVAL)) throw_errno(EIO, "inotify");
    if (p[1].revents & POLLIN) w.drain();
    if (rescan.count() > 0 && clock::now() >= next_rescan) {
      w.rescan();
      next_rescan = clock::now() + rescan;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// detect_qemu_level

namespace {

// uname's machine as QEMU names its system emulators.
std::string qemu_arch(std::string m) {
  if (m.size() == 4 && m[0] == 'i' && m.substr(2) == "86") return "i386";
  if (m.starts_with("armv")) return "arm";
  if (m == "ppc64le") return "ppc64";
  return m;
}

// Runs argv[0] (PATH search) with stdout captured (at most 64 KiB) until it exits or the
// deadline passes (then it is killed). nullopt: it did not start, failed or ran out of time.
std::optional<std::string> run_capture(const std::vector<std::string>& args, clock::time_point deadline) {
  int pfd[2];
  if (::pipe2(pfd, O_CLOEXEC) != 0) return std::nullopt;
  unique_fd rd(pfd[0]), wr(pfd[1]);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, wr.fd, STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_init(&at);
  // The daemon blocks its signals for its signal thread; the child must not inherit that.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &defaults);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &fa, &at, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc != 0) return std::nullopt;
  ::close(std::exchange(wr.fd, -1));
  ::fcntl(rd.fd, F_SETFL, ::fcntl(rd.fd, F_GETFL) | O_NONBLOCK);

  // Output until EOF (the child exited, or closed its stdout), the cap or the deadline.
  std::string out;
  bool eof = false;
  while (!eof && out.size() < 64 * 1024) {
    char buf[4096];
    ssize_t n = ::read(rd.fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      eof = true;
    } else if (errno == EAGAIN) {
      if (wait_fd(rd.fd, POLLIN, deadline) != io::ok) break;
    } else if (errno != EINTR) {
      break;
    }
  }
  // Then its exit, within what is left of the deadline (a child that closed its stdout and
  // kept running must not hold the daemon's start-up).
  int status = 0;
  bool reaped = false;
  while (eof) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      reaped = true;
      break;
    }
    if (w < 0 && errno == ECHILD) return out;  // SIGCHLD is ignored: the kernel reaped it
    if (w < 0 && errno != EINTR) break;
    if (clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  if (!reaped) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return std::nullopt;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::optional<support_level> detect_qemu_level(milliseconds limit) {
  const auto deadline = clock::now() + limit;
  utsname u{};
  std::vector<std::string> archs;
  if (::uname(&u) == 0) archs.push_back(qemu_arch(u.machine));
  for (const char* a : {"x86_64", "aarch64"})
    if (std::find(archs.begin(), archs.end(), a) == archs.end()) archs.push_back(a);
  for (const auto& a : archs) {
    if (clock::now() >= deadline) break;
    std::string bin = "qemu-system-" + a;
    auto out = run_capture({bin, "--version"}, deadline);
    if (!out) continue;
    if (auto l = level_from_qemu_banner(*out)) {
      spdlog::debug("{} --version: {}", bin, printable(out->substr(0, out->find('\n'))));
      return l;
    }
  }
  return std::nullopt;
}

}  // namespace fleetga::host::attach
