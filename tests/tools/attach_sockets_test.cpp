// fleetga-host attach --sockets: socket_stack against fake agents in this process (threads
// listening on unix sockets in a temporary directory, one client at a time like QEMU's
// chardev) and against the real agent binary; watch_sockets driving a real engine; and
// detect_qemu_level against stand-in qemu-system binaries.
//
// Timeouts are small (200 ms) so that the failure cases are quick; the assertions are on
// outcomes, and on durations only as "returned within the timeout x a generous factor", so a
// loaded machine makes the tests slower, never wrong.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include "protocol/framer.hpp"
#include "tools/attach/sockets.hpp"

extern char** environ;

namespace fleetga::host::attach {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using status = agent_reply::status;

constexpr auto short_timeout = 200ms;
// "Returned within the timeout": the timeout x this, for a machine under load.
constexpr int slack = 25;

struct temp_dir {
  std::string path;
  temp_dir() {
    char t[] = "/tmp/fleetga-attach-sockets.XXXXXX";
    if (!::mkdtemp(t)) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path = t;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

int listen_unix(const std::string& path, int backlog) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, backlog) != 0)
    throw std::system_error(errno, std::generic_category(), "listen " + path);
  return fd;
}

// A client connection the test holds (to fill a backlog, or to be "the other client").
int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // the client went away
    }
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

// How a fake agent behaves once it has accepted a client.
enum class behaviour {
  good,               // sync, set-support-level, guest-info like fleetga
  stale,              // good, after writing stale replies (and a stale delimited sync) first
  hung,               // reads, never answers
  noise,              // answers everything with text that is not JSON (never a 0xFF)
  close_in_sync,      // hangs up when the sync request arrives
  close_after_sync,   // syncs, then hangs up on the next request
  hang_after_sync,    // syncs, then never answers again
  garbage_after_sync, // syncs, then answers text that is not JSON
  not_qmp_after_sync, // syncs, then answers JSON that is not a QMP reply
  qemu_ga,            // qemu-ga 7.2: CommandNotFound for set-support-level, no support_level
};

class fake_agent {
 public:
  // accept = false: listens and never accepts (connections wait in the backlog).
  fake_agent(std::string path, behaviour b, bool accept = true, int backlog = 8)
      : path_(std::move(path)), b_(b) {
    lfd_ = listen_unix(path_, backlog);
    if (::pipe2(stop_, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    if (accept) t_ = std::thread([this] { run(); });
  }
  ~fake_agent() {
    (void)!::write(stop_[1], "x", 1);
    if (t_.joinable()) t_.join();
    ::close(lfd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  fake_agent(const fake_agent&) = delete;
  fake_agent& operator=(const fake_agent&) = delete;

  int accepted() const { return accepted_.load(); }
  int sets() const { return sets_.load(); }
  int syncs() const { return syncs_.load(); }
  std::optional<support_level> level() const {
    std::lock_guard lk(mu_);
    return level_;
  }
  void forget_level() {
    std::lock_guard lk(mu_);
    level_.reset();
  }
  const std::string& path() const { return path_; }

 private:
  void run() {
    for (;;) {
      pollfd p[2] = {{lfd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents) return;
      int c = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++accepted_;
      bool stop = serve(c);  // one client at a time, like QEMU's chardev
      ::close(c);
      if (stop) return;
    }
  }

  // true: the test is ending.
  bool serve(int c) {
    if (b_ == behaviour::stale)
      write_all(c, "{\"return\": 42}\n\xff{\"return\": 7}\n{\"return\": {}}\n@@ junk\n{\"error\": {\"class\": "
                   "\"GenericError\", \"desc\": \"old\"}}\n");
    protocol::framer fr;
    simdjson::dom::parser parser;
    bool synced = false;
    for (;;) {
      pollfd p[2] = {{c, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents) return true;
      auto span = fr.prepare(4096);
      ssize_t n = ::recv(c, span.data(), span.size(), 0);
      if (n <= 0) return false;
      fr.commit(static_cast<std::size_t>(n));
      protocol::frame f;
      while (fr.next(f)) {
        if (b_ == behaviour::hung) continue;
        if (f.type == protocol::frame::kind::error) {
          // QEMU answers the client's 0xFF flush with a parse error.
          write_all(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n");
          continue;
        }
        simdjson::dom::element req;
        std::string_view cmd;
        if (parser.parse(f.text.data(), f.text.size(), false).get(req) || req["execute"].get(cmd)) continue;
        if (cmd == "guest-sync-delimited") {
          ++syncs_;
          if (b_ == behaviour::close_in_sync) return false;
          if (b_ == behaviour::noise) {
            write_all(c, "@@@ this is no agent @@@\n");
            continue;
          }
          std::uint64_t id = 0;
          if (req["arguments"]["id"].get(id)) id = 0;
          write_all(c, fmt::format("\xff{{\"return\": {}}}\n", id));
          synced = true;
          continue;
        }
        if (synced && b_ == behaviour::close_after_sync) return false;
        if (synced && b_ == behaviour::hang_after_sync) continue;
        if (b_ == behaviour::noise || b_ == behaviour::garbage_after_sync) {
          write_all(c, "this is not JSON\n");
          continue;
        }
        if (b_ == behaviour::not_qmp_after_sync) {
          write_all(c, "{\"hello\": \"world\"}\n");
          continue;
        }
        write_all(c, answer(cmd, req));
      }
    }
  }

  std::string answer(std::string_view cmd, simdjson::dom::element req) {
    if (cmd == "guest-set-support-level" && b_ != behaviour::qemu_ga) {
      std::uint64_t maj = 0, min = 0, mic = 0;
      auto args = req["arguments"];
      if (args["major"].get(maj)) maj = 0;
      if (args["minor"].get(min)) min = 0;
      if (args["micro"].get(mic)) mic = 0;
      std::lock_guard lk(mu_);
      level_ = support_level{static_cast<std::uint16_t>(maj), static_cast<std::uint16_t>(min),
                             static_cast<std::uint16_t>(mic)};
      ++sets_;
      return "{\"return\": {}}\n";
    }
    if (cmd == "guest-info") {
      std::lock_guard lk(mu_);
      std::string lvl;
      if (b_ != behaviour::qemu_ga) {
        auto l = level_.value_or(support_level{});
        lvl = fmt::format(", \"support_level\": {{\"major\": {}, \"minor\": {}, \"micro\": {}}}", l.major, l.minor, l.micro);
      }
      return fmt::format(
          "{{\"return\": {{\"version\": \"{}\", \"supported_commands\": [{{\"enabled\": true, \"name\": "
          "\"guest-info\", \"success-response\": true}}]{}}}}}\n",
          b_ == behaviour::qemu_ga ? "7.2.22" : "10.2.0", lvl);
    }
    return fmt::format("{{\"error\": {{\"class\": \"CommandNotFound\", \"desc\": \"The command {} has not been found\"}}}}\n", cmd);
  }

  std::string path_;
  behaviour b_;
  int lfd_ = -1;
  int stop_[2] = {-1, -1};
  std::thread t_;
  std::atomic<int> accepted_{0}, sets_{0}, syncs_{0};
  mutable std::mutex mu_;
  std::optional<support_level> level_;
};

const std::string set_7_2_0 =
    R"({"execute":"guest-set-support-level","arguments":{"major":7,"minor":2,"micro":0}})";
const std::string guest_info = R"({"execute":"guest-info"})";

// The support_level member of a guest-info return value, as "M.m.u" ("" when there is none).
std::string level_in(const std::string& ret) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  if (p.parse(ret).get(e)) return "not JSON";
  simdjson::dom::object l;
  if (e["support_level"].get(l)) return "";
  std::uint64_t maj = 0, min = 0, mic = 0;
  if (l["major"].get(maj) || l["minor"].get(min) || l["micro"].get(mic)) return "malformed";
  return fmt::format("{}.{}.{}", maj, min, mic);
}

struct timed_open {
  std::unique_ptr<agent_link> link;
  agent_reply why;
  clock_type::duration took{};
};

timed_open open_timed(socket_stack& ss, const std::string& id, std::chrono::milliseconds timeout = short_timeout) {
  timed_open r;
  auto t0 = clock_type::now();
  r.link = ss.open(id, timeout, r.why);
  r.took = clock_type::now() - t0;
  return r;
}

class SocketStack : public ::testing::Test {
 protected:
  temp_dir dir;
  socket_stack ss{dir.path, support_level{7, 2, 0}};
};

TEST_F(SocketStack, SetsTheLevelAndReadsItBack) {
  fake_agent a(dir / "a.qga", behaviour::good);
  agent_reply why;
  auto link = ss.open("a.qga", 5s, why);
  ASSERT_TRUE(link) << to_string(why.st) << ": " << why.desc;
  agent_reply r = link->command(set_7_2_0, 5s);
  ASSERT_EQ(r.st, status::ok) << r.desc;
  EXPECT_EQ(r.ret, "{}");
  r = link->command(guest_info, 5s);
  ASSERT_EQ(r.st, status::ok) << r.desc;
  EXPECT_EQ(level_in(r.ret), "7.2.0") << r.ret;
  EXPECT_EQ(a.level(), (support_level{7, 2, 0}));
  EXPECT_EQ(a.syncs(), 1);
}

TEST_F(SocketStack, TheLinkHoldsTheSocketOnlyWhileItLives) {
  // The fake serves one client at a time: a second link can sync only once the first is gone.
  fake_agent a(dir / "a.qga", behaviour::good);
  agent_reply why;
  auto first = ss.open("a.qga", 5s, why);
  ASSERT_TRUE(first) << why.desc;
  auto second = open_timed(ss, "a.qga");
  EXPECT_FALSE(second.link);
  EXPECT_EQ(second.why.st, status::busy) << second.why.desc;
  first.reset();
  auto third = ss.open("a.qga", 5s, why);
  ASSERT_TRUE(third) << to_string(why.st) << ": " << why.desc;
  EXPECT_EQ(third->command(guest_info, 5s).st, status::ok);
}

TEST_F(SocketStack, SkipsStaleRepliesBeforeItsOwnDelimitedSyncReply) {
  // Replies a previous client never read, junk, and a delimited reply to someone else's sync
  // arrive before ours: none of them is taken for the sync or for the next command's reply.
  fake_agent a(dir / "a.qga", behaviour::stale);
  agent_reply why;
  auto link = ss.open("a.qga", 5s, why);
  ASSERT_TRUE(link) << to_string(why.st) << ": " << why.desc;
  agent_reply r = link->command(set_7_2_0, 5s);
  ASSERT_EQ(r.st, status::ok) << r.desc;
  EXPECT_EQ(r.ret, "{}");
  r = link->command(guest_info, 5s);
  ASSERT_EQ(r.st, status::ok) << r.desc;
  EXPECT_EQ(level_in(r.ret), "7.2.0") << r.ret;
}

TEST_F(SocketStack, QemuGaAnswersCommandNotFound) {
  fake_agent a(dir / "q.qga", behaviour::qemu_ga);
  agent_reply why;
  auto link = ss.open("q.qga", 5s, why);
  ASSERT_TRUE(link) << why.desc;
  agent_reply r = link->command(set_7_2_0, 5s);
  ASSERT_EQ(r.st, status::error_reply);
  EXPECT_EQ(r.error_class, "CommandNotFound");
  EXPECT_EQ(r.desc, "The command guest-set-support-level has not been found");
  EXPECT_TRUE(means_unsupported(r));
  // An error reply is a reply: the link is still in step.
  r = link->command(guest_info, 5s);
  ASSERT_EQ(r.st, status::ok) << r.desc;
  EXPECT_EQ(level_in(r.ret), "");
}

TEST_F(SocketStack, AListenerThatNeverAcceptsIsBusy) {
  // QEMU's chardev serves one client; the next connection waits in the backlog, hears nothing.
  fake_agent a(dir / "a.qga", behaviour::good, /*accept=*/false);
  auto r = open_timed(ss, "a.qga");
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::busy) << r.why.desc;
  EXPECT_LT(r.took, short_timeout * slack);
}

TEST_F(SocketStack, AFullBacklogIsBusyAtOnce) {
  fake_agent a(dir / "a.qga", behaviour::good, /*accept=*/false, /*backlog=*/0);
  std::vector<int> held;
  for (int i = 0; i < 16; ++i) {  // fill it: connect until the kernel says EAGAIN
    int fd = connect_unix(a.path());
    if (fd < 0) {
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      break;
    }
    held.push_back(fd);
  }
  auto r = open_timed(ss, "a.qga", 5s);
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::busy);
  EXPECT_NE(r.why.desc.find("backlog"), std::string::npos) << r.why.desc;
  for (int fd : held) ::close(fd);
}

TEST_F(SocketStack, AnAgentThatNeverAnswersTimesOutAsBusy) {
  fake_agent a(dir / "a.qga", behaviour::hung);
  auto r = open_timed(ss, "a.qga");
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::busy) << r.why.desc;
  EXPECT_LT(r.took, short_timeout * slack);
  EXPECT_EQ(a.accepted(), 1);
}

TEST_F(SocketStack, OutputWithoutADelimiterNeverCompletesTheSync) {
  fake_agent a(dir / "a.qga", behaviour::noise);
  auto r = open_timed(ss, "a.qga");
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::busy) << r.why.desc;
  EXPECT_LT(r.took, short_timeout * slack);
}

TEST_F(SocketStack, ASocketNobodyListensOnIsNotConnected) {
  // A VM that stopped leaves its socket file behind.
  int fd = listen_unix(dir / "dead.qga", 1);
  ::close(fd);
  ASSERT_TRUE(ss.facts("dead.qga"));
  auto r = open_timed(ss, "dead.qga");
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::not_connected) << r.why.desc;
}

TEST_F(SocketStack, AMissingSocketIsGone) {
  auto r = open_timed(ss, "nothing.qga");
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::gone) << r.why.desc;
  EXPECT_FALSE(ss.facts("nothing.qga"));
}

TEST_F(SocketStack, AnAgentThatHangsUpDuringTheSyncIsNotConnected) {
  fake_agent a(dir / "a.qga", behaviour::close_in_sync);
  auto r = open_timed(ss, "a.qga", 5s);
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::not_connected) << r.why.desc;
}

TEST_F(SocketStack, CommandOutcomes) {
  struct tc {
    behaviour b;
    status want;
  };
  for (auto [b, want] : {tc{behaviour::close_after_sync, status::not_connected},
                         tc{behaviour::hang_after_sync, status::timeout},
                         tc{behaviour::garbage_after_sync, status::garbage},
                         tc{behaviour::not_qmp_after_sync, status::garbage}}) {
    SCOPED_TRACE(static_cast<int>(b));
    std::string id = fmt::format("c{}.qga", static_cast<int>(b));
    fake_agent a(dir / id, b);
    agent_reply why;
    auto link = ss.open(id, 5s, why);
    ASSERT_TRUE(link) << why.desc;
    auto t0 = clock_type::now();
    agent_reply r = link->command(set_7_2_0, short_timeout);
    EXPECT_LT(clock_type::now() - t0, short_timeout * slack);
    EXPECT_EQ(r.st, want) << r.desc;
    EXPECT_FALSE(r.desc.empty());
    // After a non-reply the stream is out of step: the link says so instead of taking a late
    // reply for the next command's.
    r = link->command(guest_info, short_timeout);
    EXPECT_EQ(r.st, status::failed) << r.desc;
  }
}

TEST_F(SocketStack, TheAbortFdEndsWaitsAtOnce) {
  // The daemon's stop eventfd: SIGTERM does not wait out the timeout of a hung agent.
  fake_agent hung(dir / "h.qga", behaviour::hung);
  fake_agent later(dir / "l.qga", behaviour::hang_after_sync);
  int stop[2];
  ASSERT_EQ(::pipe2(stop, O_CLOEXEC), 0);
  ss.abort_on(stop[0]);
  agent_reply why;
  auto link = ss.open("l.qga", 60s, why);
  ASSERT_TRUE(link) << why.desc;
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    (void)!::write(stop[1], "x", 1);
  });
  auto r = open_timed(ss, "h.qga", 60s);
  stopper.join();
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::failed);
  EXPECT_EQ(r.why.desc, "fleetga-host is stopping");
  EXPECT_LT(r.took, 30s);
  auto t0 = clock_type::now();
  agent_reply c = link->command(guest_info, 60s);
  EXPECT_EQ(c.st, status::failed);
  EXPECT_LT(clock_type::now() - t0, 30s);
  ss.abort_on(-1);
  ::close(stop[0]);
  ::close(stop[1]);
}

TEST_F(SocketStack, ListsOnlyAgentSocketsAndNamesThemWithoutQga) {
  fake_agent b(dir / "101.qga", behaviour::good, false);
  fake_agent a(dir / "100.qga", behaviour::good, false);
  fake_agent qmp(dir / "100.qmp", behaviour::good, false);        // QEMU's monitor
  fake_agent serial(dir / "100.serial0", behaviour::good, false);  // a guest's console
  fake_agent hidden(dir / ".tmp.qga", behaviour::good, false);
  std::ofstream(dir / "102.qga") << "not a socket";
  std::filesystem::create_directory(dir / "103.qga");
  EXPECT_EQ(ss.connected_domains(), (std::vector<std::string>{"100.qga", "101.qga"}));
  auto f = ss.facts("100.qga");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->name, "100");
  EXPECT_EQ(f->uuid, "");
  EXPECT_FALSE(ss.facts("100.qmp"));
  EXPECT_FALSE(ss.facts("102.qga"));
  EXPECT_FALSE(ss.facts("../x/100.qga"));
  // Another pattern, for directories that hold nothing but agent sockets.
  socket_stack all(dir.path, std::nullopt, "*");
  EXPECT_EQ(all.connected_domains(), (std::vector<std::string>{"100.qga", "100.qmp", "100.serial0", "101.qga"}));
  EXPECT_EQ(all.facts("100.qmp")->name, "100.qmp");
}

TEST_F(SocketStack, ATooLongPathFailsCleanly) {
  std::string id(200, 'x');
  auto r = open_timed(ss, id);
  EXPECT_FALSE(r.link);
  EXPECT_EQ(r.why.st, status::failed);
}

// ---------------------------------------------------------------------------------------------
// The real agent

struct spawned {
  pid_t pid = -1;
  ~spawned() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st;
      ::waitpid(pid, &st, 0);
    }
  }
};

TEST(SocketStackRealAgent, SetsAndConfirmsTheLevelOfTheFleetgaBinary) {
  const std::string bin = FLEETGA_BIN;
  if (::access(bin.c_str(), X_OK) != 0) GTEST_SKIP() << bin << " is not built";
  temp_dir dir;
  std::filesystem::create_directory(dir / "state");
  std::vector<std::string> args = {bin, "-m", "unix-listen", "-p", dir / "vm1.qga", "-t", dir / "state"};
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, (dir / "agent.log").c_str(), O_WRONLY | O_CREAT, 0600);
  spawned agent;
  ASSERT_EQ(::posix_spawn(&agent.pid, bin.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);

  socket_stack ss(dir.path, support_level{7, 2, 0});
  // The socket file appears at bind(), a moment before listen(): refused until then.
  std::unique_ptr<agent_link> link;
  agent_reply why;
  for (auto until = clock_type::now() + 20s; !link && clock_type::now() < until;) {
    link = ss.open("vm1.qga", 5s, why);
    if (!link) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(link) << to_string(why.st) << ": " << why.desc;
  agent_reply r = link->command(set_7_2_0, 5s);
  ASSERT_EQ(r.st, status::ok) << r.error_class << ": " << r.desc;
  EXPECT_EQ(r.ret, "{}");
  r = link->command(guest_info, 5s);
  ASSERT_EQ(r.st, status::ok) << r.desc;
  EXPECT_EQ(level_in(r.ret), "7.2.0");
  link.reset();

  // The link let go of the one-client socket: the next client gets in at once, and the level
  // is the agent's (not the connection's).
  link = ss.open("vm1.qga", 5s, why);
  ASSERT_TRUE(link) << to_string(why.st) << ": " << why.desc;
  r = link->command(guest_info, 5s);
  ASSERT_EQ(r.st, status::ok) << r.desc;
  EXPECT_EQ(level_in(r.ret), "7.2.0");
  r = link->command(R"({"execute":"guest-set-support-level","arguments":{"major":"x","minor":0}})", 5s);
  EXPECT_EQ(r.st, status::error_reply);
  EXPECT_EQ(r.error_class, "GenericError") << r.desc;
}

// ---------------------------------------------------------------------------------------------
// watch_sockets with a real engine

class WatchSockets : public ::testing::Test {
 protected:
  void start(const std::string& watched, std::chrono::seconds rescan = 0s) {
    ss_ = std::make_unique<socket_stack>(watched, support_level{7, 2, 0});
    engine_options o;
    o.timeout = 2s;
    o.concurrency = 4;
    o.retry_first = 50ms;
    o.retry_max = 200ms;
    o.max_attempts = 20;
    o.retry_not_connected = true;  // socket mode: bind() comes a moment before listen()
    e_ = std::make_unique<engine>(*ss_, attach_config{}, o);
    ASSERT_EQ(::pipe2(stop_, O_CLOEXEC), 0);
    t_ = std::thread([this, watched, rescan] {
      try {
        watch_sockets(watched, *e_, stop_[0], rescan);
      } catch (const std::exception& ex) {
        std::lock_guard lk(mu_);
        error_ = ex.what();
      }
      returned_ = true;
    });
  }
  void TearDown() override {
    if (t_.joinable()) {
      (void)!::write(stop_[1], "x", 1);
      t_.join();
    }
    if (e_) e_->stop();
    for (int fd : stop_)
      if (fd >= 0) ::close(fd);
  }

  // Waits (generously) until `pred` holds.
  static bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = 20s) {
    for (auto until = clock_type::now() + limit; clock_type::now() < until;) {
      if (pred()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return pred();
  }
  bool confirmed(const std::string& id) {
    auto r = e_->last(id);
    return r && r->result == outcome::confirmed;
  }
  std::string error() {
    std::lock_guard lk(mu_);
    return error_;
  }

  temp_dir dir;
  std::unique_ptr<socket_stack> ss_;
  std::unique_ptr<engine> e_;
  int stop_[2] = {-1, -1};
  std::thread t_;
  std::atomic<bool> returned_{false};
  std::mutex mu_;
  std::string error_;
};

TEST_F(WatchSockets, SweepsAtStartThenFollowsSocketsThatComeAndGo) {
  auto a = std::make_unique<fake_agent>(dir / "a.qga", behaviour::good);
  fake_agent qmp(dir / "a.qmp", behaviour::good);
  std::ofstream(dir / "notes.qga") << "not a socket";
  start(dir.path);
  EXPECT_TRUE(eventually([&] { return confirmed("a.qga"); }));
  EXPECT_EQ(a->level(), (support_level{7, 2, 0}));

  fake_agent b(dir / "b.qga", behaviour::good);  // appears later
  EXPECT_TRUE(eventually([&] { return confirmed("b.qga"); }));
  EXPECT_EQ(b.level(), (support_level{7, 2, 0}));

  // Moved in under its final name (how a tool swapping sockets atomically does it).
  {
    fake_agent c(dir / ".c.tmp", behaviour::good);
    std::filesystem::rename(dir / ".c.tmp", dir / "c.qga");
    EXPECT_TRUE(eventually([&] { return confirmed("c.qga"); }));
    EXPECT_EQ(c.level(), (support_level{7, 2, 0}));
  }

  a.reset();
  std::filesystem::remove(dir / "a.qga");
  EXPECT_TRUE(eventually([&] { return !e_->last("a.qga"); })) << "domain_gone forgets it";
  EXPECT_EQ(qmp.accepted(), 0) << "the monitor socket is not an agent";
  EXPECT_FALSE(e_->last("notes.qga"));
  EXPECT_FALSE(e_->last("a.qmp"));
  EXPECT_EQ(error(), "");
}

TEST_F(WatchSockets, WaitsForADirectoryThatDoesNotExistAndForItsReturn) {
  const std::string watched = dir / "run/qemu-server";
  start(watched);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(returned_.load()) << error();
  std::filesystem::create_directories(watched);
  {
    fake_agent a(watched + "/100.qga", behaviour::good);
    EXPECT_TRUE(eventually([&] { return confirmed("100.qga"); }));
    EXPECT_EQ(a.level(), (support_level{7, 2, 0}));
  }
  // Removed with everything in it, then back with a new VM.
  std::filesystem::remove_all(dir / "run");
  EXPECT_TRUE(eventually([&] { return !e_->last("100.qga"); }));
  std::filesystem::create_directories(watched);
  fake_agent b(watched + "/101.qga", behaviour::good);
  EXPECT_TRUE(eventually([&] { return confirmed("101.qga"); }));
  EXPECT_EQ(b.level(), (support_level{7, 2, 0}));
  // Moved away and another one put in its place.
  std::filesystem::rename(watched, dir / "run/old");
  std::filesystem::create_directories(watched);
  fake_agent c(watched + "/102.qga", behaviour::good);
  EXPECT_TRUE(eventually([&] { return confirmed("102.qga"); }));
  EXPECT_EQ(error(), "");
}

TEST_F(WatchSockets, TheRescanGivesALostLevelBack) {
  fake_agent a(dir / "a.qga", behaviour::good);
  start(dir.path, 1s);
  EXPECT_TRUE(eventually([&] { return a.sets() >= 1; }));
  a.forget_level();  // the guest's agent was reinstalled with an empty state dir
  EXPECT_TRUE(eventually([&] { return a.level().has_value(); }));
  EXPECT_EQ(a.level(), (support_level{7, 2, 0}));
}

TEST_F(WatchSockets, ReturnsWhenTheStopFdIsReadable) {
  start(dir.path);
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(returned_.load());
  (void)!::write(stop_[1], "x", 1);
  EXPECT_TRUE(eventually([&] { return returned_.load(); }, 10s));
  t_.join();
  EXPECT_EQ(error(), "");
}

// ---------------------------------------------------------------------------------------------
// detect_qemu_level

class DetectQemuLevel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* p = std::getenv("PATH")) old_path_ = p;
    ::setenv("PATH", bin.path.c_str(), 1);
  }
  void TearDown() override { ::setenv("PATH", old_path_.c_str(), 1); }
  void fake_qemu(const std::string& arch, const std::string& body) {
    std::string path = bin / ("qemu-system-" + arch);
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path.c_str(), 0755);
  }
  temp_dir bin;
  std::string old_path_;
};

TEST_F(DetectQemuLevel, ReadsTheBanner) {
  fake_qemu("x86_64", "echo 'QEMU emulator version 8.1.3 (Debian 1:8.1.3+ds-1)'; echo 'Copyright (c) 2003-2023'");
  fake_qemu("aarch64", "echo 'QEMU emulator version 9.0.0'");
  auto l = detect_qemu_level(10s);
  ASSERT_TRUE(l);
  // The machine's own arch first; on anything but aarch64 that is (or falls back to) x86_64.
  utsname u{};
  ::uname(&u);
  EXPECT_EQ(*l, std::string_view(u.machine) == "aarch64" ? (support_level{9, 0, 0}) : (support_level{8, 1, 3}));
}

TEST_F(DetectQemuLevel, NothingWhenNoneRunsOrAnswers) {
  EXPECT_FALSE(detect_qemu_level(2s));  // none in PATH
  fake_qemu("x86_64", "exit 1");
  fake_qemu("aarch64", "echo 'something else entirely'");
  EXPECT_FALSE(detect_qemu_level(2s));
}

TEST_F(DetectQemuLevel, AHungBinaryIsKilledInTime) {
  fake_qemu("x86_64", "exec /bin/sleep 60");
  fake_qemu("aarch64", "exec /bin/sleep 60");
  auto t0 = clock_type::now();
  EXPECT_FALSE(detect_qemu_level(short_timeout));
  EXPECT_LT(clock_type::now() - t0, short_timeout * slack);
}

TEST(DetectQemuLevelHost, TheInstalledQemuIfAny) {
  if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0) GTEST_SKIP() << "no qemu-system-x86_64";
  auto l = detect_qemu_level();
  ASSERT_TRUE(l);
  EXPECT_GE(*l, (support_level{1, 0, 0}));
}

}  // namespace
}  // namespace fleetga::host::attach
