// commands::session_core, the session's decisions without I/O: scripted input chunks (a byte
// at a time, many messages in one chunk, a message split across reads), replies over the
// high-water mark, a write failure injected after `fail_count` good writes (Boost.MySQL's
// test_stream), peer gone mid-reply, read errors, a cancelled wait, handlers that offload and
// the drain before guest-shutdown. Each test compares the exact sequence of actions (Boost.Redis'
// reader FSM tests) and the log lines.
#include "commands/session_core.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <coroutine>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/commands_harness.hpp"

namespace {

using fleetga::commands::fair_reads;
using fleetga::commands::output_high_water;
using fleetga::commands::output_keep_capacity;
using fleetga::commands::read_chunk;
using fleetga::commands::session_action;
using fleetga::commands::session_core;
using fleetga::commands::session_log;
using fleetga::commands::session_log_level;
using fleetga::commands::stream_end;
namespace test = fleetga::test;

// Jobs wait until the script runs them (a worker that is still busy), or run at once.
class deferred_offloader final : public fleetga::commands::offloader {
 public:
  bool defer = true;
  std::deque<std::pair<std::function<void()>, std::coroutine_handle<>>> jobs;
  void run(std::function<void()> work, std::coroutine_handle<> resume) override {
    if (!defer) {
      work();
      resume.resume();
      return;
    }
    jobs.emplace_back(std::move(work), resume);
  }
  // What the worker and then the I/O thread do.
  void finish_one() {
    auto [work, resume] = std::move(jobs.front());
    jobs.pop_front();
    work();
    resume.resume();
  }
};

struct vector_log final : session_log {
  std::vector<std::string> lines;
  void line(session_log_level level, std::string_view text) override {
    lines.push_back((level == session_log_level::error ? "error: " : "debug: ") + std::string(text));
  }
};

// One read(2) result: bytes (at most the buffer's size go in; the rest stays for the next
// read), or -1 with an errno, or 0 (EOF).
struct step {
  std::string bytes;
  int err = 0;  // EAGAIN, EINTR, EIO, ECONNRESET; 0 with empty bytes = EOF
  static step data(std::string b) { return {std::move(b), 0}; }
  static step fail(int e) { return {{}, e}; }
  static step eof() { return {{}, 0}; }
};

struct harness {
  test::temp_dir state;
  test::fake_system sys;
  deferred_offloader pool;
  std::unique_ptr<fleetga::commands::service> svc;
  fleetga::protocol::framer framer;
  std::string out;
  int requests = 0;
  std::function<void()> after = [this] { ++requests; };
  vector_log log;

  // The script: read results in order; a read past the end waits (EAGAIN) and the wait is then
  // cancelled (the agent stopping), so every script ends.
  std::deque<step> reads;
  std::size_t fail_count = SIZE_MAX;  // writes from this one on fail (the peer is gone)
  std::size_t writes = 0;
  std::string wire;  // what the peer received
  // Before each handler_done(): the jobs the script lets finish (all by default).
  std::function<void(session_core&)> on_wait_handler;

  harness() {
    fleetga::commands::options o;
    o.statedir = state.path;
    svc = std::make_unique<fleetga::commands::service>(std::move(o), pool, sys);
    auto err = svc->init();
    EXPECT_FALSE(err) << *err;
  }

  // Runs a session to its end and returns its actions, one word (and size) each.
  std::vector<std::string> run() {
    std::vector<std::string> t;
    session_core core(framer, *svc, out, &after, &log);
    std::size_t offset = 0;  // into reads.front().bytes
    for (auto a = core.start();;) {
      switch (a) {
        case session_action::write:
          t.push_back("write " + std::to_string(core.output().size()));
          if (writes++ >= fail_count) {
            a = core.write_done(false);
          } else {
            wire.append(core.output());
            a = core.write_done(true);
          }
          break;
        case session_action::wait_handler:
          t.push_back("wait_handler");
          EXPECT_TRUE(core.handler_pending());
          core.set_continuation(std::noop_coroutine());
          if (on_wait_handler) on_wait_handler(core);
          while (!pool.jobs.empty()) pool.finish_one();
          a = core.handler_done();
          break;
        case session_action::read: {
          const auto buffer = core.read_buffer();
          EXPECT_GE(buffer.size(), read_chunk);
          if (reads.empty()) {
            t.push_back("read EAGAIN");
            a = core.read_done(-1, EAGAIN);
            break;
          }
          step& s = reads.front();
          if (s.bytes.empty()) {
            t.push_back(s.err ? "read " + std::string(s.err == EAGAIN  ? "EAGAIN"
                                                      : s.err == EINTR ? "EINTR"
                                                      : s.err == EIO   ? "EIO"
                                                                       : "ECONNRESET")
                              : "read EOF");
            int e = s.err;
            reads.pop_front();
            a = core.read_done(e ? -1 : 0, e);
            break;
          }
          std::size_t n = std::min(buffer.size(), s.bytes.size() - offset);
          s.bytes.copy(buffer.data(), n, offset);
          t.push_back("read " + std::to_string(n));
          offset += n;
          if (offset == s.bytes.size()) {
            reads.pop_front();
            offset = 0;
          }
          a = core.read_done(static_cast<long>(n), 0);
          break;
        }
        case session_action::wait_read:
          if (reads.empty()) {
            t.push_back("wait_read cancelled");
            a = core.wait_failed("Operation canceled");
          } else {
            t.push_back("wait_read");
            a = core.readable();
          }
          break;
        case session_action::yield:
          t.push_back("yield");
          a = core.yielded();
          break;
        case session_action::close:
          t.push_back(core.end() == stream_end::eof ? "close eof" : "close error");
          EXPECT_FALSE(core.handler_pending());
          EXPECT_TRUE(out.empty());
          return t;
      }
    }
  }

  // A reply as the service writes it (inline, for expected sizes).
  std::string reply(std::string_view json) {
    bool defer = std::exchange(pool.defer, false);
    std::string r = test::run(*svc, json);
    pool.defer = defer;
    return r;
  }
};

using actions = std::vector<std::string>;
const std::string ping = R"({"execute":"guest-ping"})";
const std::string pong = "{\"return\": {}}\n";
const actions cancelled = {"read EAGAIN", "wait_read cancelled", "close error"};
const std::vector<std::string> cancelled_log = {"debug: channel wait: Operation canceled"};

actions cat(actions a, const actions& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(SessionCore, NothingToReadWaitsThenStopsWhenCancelled) {
  harness h;
  EXPECT_EQ(h.run(), cancelled);
  EXPECT_EQ(h.log.lines, cancelled_log);
  EXPECT_EQ(h.requests, 0);
}

TEST(SessionCore, OneRequestOneWriteThenEof) {
  harness h;
  h.reads = {step::data(ping), step::fail(EAGAIN), step::eof()};
  EXPECT_EQ(h.run(), (actions{"read 24", "write 15", "read EAGAIN", "wait_read", "read EOF", "close eof"}));
  EXPECT_EQ(h.wire, pong);
  EXPECT_EQ(h.requests, 1);
  EXPECT_TRUE(h.log.lines.empty());  // EOF is not worth a line
}

TEST(SessionCore, ByteAtATimeYieldsEverySixteenReads) {
  harness h;
  for (char c : ping) h.reads.push_back(step::data(std::string(1, c)));
  actions want;
  for (std::size_t i = 1; i <= ping.size(); ++i) {
    want.push_back("read 1");
    if (i % fair_reads == 0) want.push_back("yield");
  }
  want.push_back("write 15");
  EXPECT_EQ(h.run(), cat(want, cancelled));
  EXPECT_EQ(h.wire, pong);
  EXPECT_EQ(h.requests, 1);
}

TEST(SessionCore, EagainResetsTheFairnessCount) {
  harness h;
  for (int i = 0; i < fair_reads - 1; ++i) h.reads.push_back(step::data(" "));
  h.reads.push_back(step::fail(EAGAIN));
  for (int i = 0; i < fair_reads; ++i) h.reads.push_back(step::data(" "));
  actions want(fair_reads - 1, "read 1");
  want.push_back("read EAGAIN");
  want.push_back("wait_read");
  for (int i = 0; i < fair_reads; ++i) want.push_back("read 1");
  want.push_back("yield");
  EXPECT_EQ(h.run(), cat(want, cancelled));
}

TEST(SessionCore, ManyMessagesInOneChunkGoOutInOneWrite) {
  harness h;
  const std::string sync = R"({"execute":"guest-sync-delimited","arguments":{"id":42}})";
  h.reads = {step::data(ping + ping + "\n" + sync + ping)};
  const std::string want = pong + pong + "\xFF{\"return\": 42}\n" + pong;
  EXPECT_EQ(h.run(),
            cat({"read " + std::to_string(ping.size() * 3 + 1 + sync.size()), "write " + std::to_string(want.size())},
                cancelled));
  EXPECT_EQ(h.wire, want);
  EXPECT_EQ(h.requests, 4);
}

TEST(SessionCore, MessageSplitAcrossReadsIsAnsweredOnceComplete) {
  harness h;
  h.reads = {step::data(ping.substr(0, 10)), step::fail(EAGAIN), step::data(ping.substr(10) + ping.substr(0, 3)),
             step::data(ping.substr(3))};
  // Each read's complete frames are answered before the next read: batching never delays a
  // reply behind input that may not come.
  EXPECT_EQ(h.run(),
            cat({"read 10", "read EAGAIN", "wait_read", "read 17", "write 15", "read 21", "write 15"}, cancelled));
  EXPECT_EQ(h.wire, pong + pong);
}

TEST(SessionCore, EintrRetriesTheSameBuffer) {
  harness h;
  h.reads = {step::fail(EINTR), step::data(ping)};
  EXPECT_EQ(h.run(), cat({"read EINTR", "read 24", "write 15"}, cancelled));
}

TEST(SessionCore, ReadErrorsAndReset) {
  {
    harness h;
    h.reads = {step::data(ping), step::fail(EIO)};
    EXPECT_EQ(h.run(), (actions{"read 24", "write 15", "read EIO", "close error"}));
    EXPECT_EQ(h.log.lines, (std::vector<std::string>{"debug: channel read error: Input/output error"}));
  }
  {
    harness h;
    h.reads = {step::data(ping), step::fail(ECONNRESET)};
    EXPECT_EQ(h.run(), (actions{"read 24", "write 15", "read ECONNRESET", "close eof"}));
    EXPECT_TRUE(h.log.lines.empty());
  }
}

TEST(SessionCore, RepliesPastTheHighWaterMarkGoOutBeforeTheNextRequest) {
  harness h;
  const std::string info = R"({"execute":"guest-info"})";
  const std::size_t one = h.reply(info).size();
  const std::size_t per_write = (output_high_water + one - 1) / one;  // the write that crosses it
  const std::size_t n = per_write + 3;
  std::string chunk;
  for (std::size_t i = 0; i < n; ++i) chunk += info;
  ASSERT_LE(chunk.size(), read_chunk);
  h.reads = {step::data(chunk)};
  EXPECT_EQ(h.run(), cat({"read " + std::to_string(chunk.size()), "write " + std::to_string(per_write * one),
                          "write " + std::to_string(3 * one)},
                         cancelled));
  EXPECT_EQ(h.wire.size(), n * one);
  EXPECT_EQ(h.requests, static_cast<int>(n));
}

TEST(SessionCore, HugeReplyIsWrittenAloneAndItsBufferGivenBack) {
  harness h;
  const std::string id(2 * output_keep_capacity, 'x');
  const std::string big = R"({"execute":"guest-ping","id":")" + id + "\"}";
  const std::string big_reply = h.reply(big);
  ASSERT_GT(big_reply.size(), 2 * output_keep_capacity);
  h.reads = {step::data(big + ping)};
  const actions t = h.run();
  // Reads of at most the framer's space each, a yield every 16, then the big reply on its own
  // (past the high-water mark) and the pong after it: the last read held both.
  actions writes;
  std::size_t reads = 0, yields = 0, bytes = 0;
  for (const auto& a : t) {
    if (a.starts_with("write ")) writes.push_back(a);
    if (a.starts_with("read ") && a != "read EAGAIN") {
      ++reads;
      bytes += std::stoul(a.substr(5));
      EXPECT_TRUE(writes.empty());
    }
    if (a == "yield") ++yields;
  }
  EXPECT_EQ(bytes, big.size() + ping.size());
  EXPECT_EQ(yields, reads / fair_reads);
  EXPECT_EQ(writes, (actions{"write " + std::to_string(big_reply.size()), "write 15"}));
  EXPECT_EQ(actions(t.end() - 5, t.end()), cat({"write " + std::to_string(big_reply.size()), "write 15"}, cancelled));
  EXPECT_EQ(h.wire, big_reply + pong);
  EXPECT_LE(h.out.capacity(), output_keep_capacity);  // given back, not kept for the process' life
}

TEST(SessionCore, OffloadingHandlerSuspendsTheSessionInOrder) {
  harness h;
  const std::string level = R"({"execute":"guest-set-support-level","arguments":{"major":1,"minor":0}})";
  // The EOF is already there, but nothing is read while the handler runs.
  h.reads = {step::data(ping + level + ping), step::eof()};
  int pending_seen = 0;
  h.on_wait_handler = [&](session_core& core) {
    EXPECT_TRUE(core.handler_pending());
    EXPECT_EQ(h.pool.jobs.size(), 1u);
    // The reply before it waits in the buffer, in order; the handler's own is begun after it.
    EXPECT_EQ(h.out, pong + "{\"return\": ");
    ++pending_seen;
  };
  EXPECT_EQ(h.run(), (actions{"read " + std::to_string(2 * ping.size() + level.size()), "wait_handler", "write 45",
                              "read EOF", "close eof"}));
  EXPECT_EQ(pending_seen, 1);
  EXPECT_EQ(h.wire, pong + pong + pong);
  EXPECT_EQ(h.requests, 3);
}

TEST(SessionCore, DrainBeforeShutdownWritesEarlierRepliesFirst) {
  harness h;
  const std::string shutdown = R"({"execute":"guest-shutdown","arguments":{"mode":"sleep"}})";
  const std::string err = h.reply(shutdown);
  h.reads = {step::data(ping + ping + shutdown + ping)};
  // The two pongs leave before the shutdown runs (Proxmox's sync + shutdown in one write);
  // its error and the last pong go out together.
  EXPECT_EQ(h.run(), cat({"read " + std::to_string(3 * ping.size() + shutdown.size()), "write 30",
                          "write " + std::to_string(err.size() + pong.size())},
                         cancelled));
  EXPECT_EQ(h.wire, pong + pong + err + pong);
  EXPECT_EQ(h.requests, 4);
}

TEST(SessionCore, PeerGoneDuringDrainStillRunsTheShutdown) {
  harness h;
  const std::string shutdown = R"({"execute":"guest-shutdown"})";
  h.reads = {step::data(ping + shutdown + ping)};
  h.fail_count = 0;
  int ran = 0;
  h.on_wait_handler = [&](session_core&) { ran += static_cast<int>(h.pool.jobs.size()); };
  // The drain's write fails: the shutdown still runs on a worker, the ping after it is still
  // handled, their replies are dropped and the session ends without reading again.
  EXPECT_EQ(h.run(), (actions{"read " + std::to_string(2 * ping.size() + shutdown.size()), "write 15", "wait_handler",
                              "close eof"}));
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(h.requests, 3);
  EXPECT_EQ(h.wire, "");
  EXPECT_TRUE(h.log.lines.empty());
}

TEST(SessionCore, WriteFailureAfterFailCountDropsTheRestAndEnds) {
  // fail_count 1: the first reply reaches the peer, the second write fails.
  harness h;
  h.reads = {step::data(ping), step::fail(EAGAIN), step::data(ping + ping), step::data(ping)};
  h.fail_count = 1;
  EXPECT_EQ(h.run(), (actions{"read 24", "write 15", "read EAGAIN", "wait_read", "read 48", "write 30", "close eof"}));
  EXPECT_EQ(h.wire, pong);
  EXPECT_EQ(h.requests, 3);  // the last ping was never read
  EXPECT_EQ(h.reads.size(), 1u);
}

TEST(SessionCore, PeerGoneMidReplyStillExecutesWhatWasReceived) {
  // The high-water write fails: every request already read is still executed, nothing more
  // is written, nothing more is read.
  harness h;
  const std::string info = R"({"execute":"guest-info"})";
  const std::size_t one = h.reply(info).size();
  const std::size_t per_write = (output_high_water + one - 1) / one;
  std::string chunk;
  for (std::size_t i = 0; i < per_write + 5; ++i) chunk += info;
  h.reads = {step::data(chunk), step::data(ping)};
  h.fail_count = 0;
  EXPECT_EQ(h.run(),
            (actions{"read " + std::to_string(chunk.size()), "write " + std::to_string(per_write * one), "close eof"}));
  EXPECT_EQ(h.requests, static_cast<int>(per_write + 5));
  EXPECT_EQ(h.wire, "");
  EXPECT_EQ(h.reads.size(), 1u);
}

TEST(SessionCore, FramesLeftInTheFramerAreHandledBeforeReading) {
  // The virtio channel reads a host's first bytes itself before serve() starts.
  harness h;
  auto space = h.framer.prepare(read_chunk);
  ping.copy(space.data(), ping.size());
  h.framer.commit(ping.size());
  h.reads = {step::eof()};
  EXPECT_EQ(h.run(), (actions{"write 15", "read EOF", "close eof"}));
  EXPECT_EQ(h.wire, pong);
}

TEST(SessionCore, ParserStateSurvivesTheNextSession) {
  // The framer outlives a session: half a message from a peer that left is completed by the
  // next one (qemu-ga keeps its parser across reconnects).
  harness h;
  h.reads = {step::data(ping.substr(0, 5)), step::eof()};
  EXPECT_EQ(h.run(), (actions{"read 5", "read EOF", "close eof"}));
  h.reads = {step::data(ping.substr(5))};
  EXPECT_EQ(h.run(), cat({"read 19", "write 15"}, cancelled));
  EXPECT_EQ(h.wire, pong);
}

TEST(SessionCore, LexerErrorsAreAnsweredLikeRequests) {
  harness h;
  h.reads = {step::data("}" + ping)};
  const std::string want = R"({"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}})"
                           "\n" +
                           pong;
  EXPECT_EQ(h.run(), cat({"read 25", "write " + std::to_string(want.size())}, cancelled));
  EXPECT_EQ(h.wire, want);
}

}  // namespace

namespace {

TEST(SessionCore, HowTheInputIsCutNeverChangesTheWire) {
  // The property a fuzzer of the core would check at scale: without failures, the bytes the
  // peer gets depend on the input bytes only, not on how reads cut them.
  const std::string input = ping + "  \n" + R"({"execute":"guest-sync-delimited","arguments":{"id":7}})" + "}" +
                            R"({"execute":"guest-info"})" + ping + R"({"execute":"guest-nope","id":1})" + "\xFF" + ping;
  std::string reference;
  for (std::size_t cut : {input.size(), std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{23}}) {
    harness h;
    for (std::size_t i = 0; i < input.size(); i += cut) {
      h.reads.push_back(step::data(input.substr(i, cut)));
      if (cut == 7) h.reads.push_back(step::fail(EAGAIN));
      if (cut == 23) h.reads.push_back(step::fail(EINTR));
    }
    h.reads.push_back(step::eof());
    const actions t = h.run();
    EXPECT_EQ(t.back(), "close eof") << cut;
    if (reference.empty()) reference = h.wire;
    else EXPECT_EQ(h.wire, reference) << "reads of " << cut << " bytes";
    EXPECT_TRUE(h.log.lines.empty());
  }
  EXPECT_NE(reference.find("\xFF{\"return\": 7}\n"), std::string::npos);
}

}  // namespace
