// libFuzzer target over the session layer: commands::session_core (the session's decisions
// without its I/O) driving the framer and the service, with every read and write result
// chosen by the input. Invariants: no crash, no sanitizer report; every run reaches `close`
// with the output buffer empty and no handler pending; the replies a peer that never fails
// receives are the same bytes whatever sizes the input is cut into (compared with one run that
// reads the whole input at once); every reply line is printable ASCII; and the work stays
// within a budget linear in the input (budget.hpp).
//
// Input: the first byte is a seed for the script, the rest is the byte stream of a client.
// The script (a small xorshift generator from the seed) decides for each read how many bytes
// arrive (1..4096) or whether it fails with EAGAIN, EINTR, EIO or ECONNRESET, and for each
// write whether it fails. Commands that act on the guest or answer differently each time are
// blocked (-b) here: the service path itself is fuzz_dispatch's business; this target is about
// the session's state machine.
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "budget.hpp"
#include "common.hpp"
#include "commands/offload.hpp"
#include "commands/schema.hpp"
#include "commands/service.hpp"
#include "commands/session_core.hpp"
#include "platform/system.hpp"
#include "protocol/framer.hpp"

namespace fc = fleetga::commands;

namespace {

constexpr std::uint64_t budget_per_byte = 600;
constexpr std::uint64_t budget_per_request = 40000;
constexpr std::uint64_t budget_fixed = 80000;

std::string make_temp_dir(const char* pattern) {
  std::string t = pattern;
  if (!::mkdtemp(t.data())) std::abort();
  return t;
}

struct fixture {
  fc::inline_offloader pool;
  std::string root = make_temp_dir("/tmp/fleetga-fuzz-session-root.XXXXXX");
  std::string statedir = make_temp_dir("/tmp/fleetga-fuzz-session.XXXXXX");
  fleetga::platform::linux_system sys{root};
};

fixture& fx() {
  static fixture f;
  return f;
}

struct script {
  std::uint64_t s;
  explicit script(std::uint8_t seed, bool failures) : s(0x9E3779B97F4A7C15ull ^ seed), failures(failures) {}
  bool failures;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// One session over `input`; returns what the peer received. `whole`: one read of everything,
// no failures.
std::string run(std::string_view input, std::uint8_t seed, bool whole, std::size_t& requests) {
  fc::options o;
  o.statedir = fx().statedir;
  // Blocked: what acts on the guest, and what answers differently from one run to the next
  // (clocks, counters) — except the syncs, whose echo is the input's.
  for (const auto& s : fc::command_schemas)
    if (s.has(fc::acts_on_guest) ||
        (s.has(fc::volatile_reply) && s.name != "guest-sync" && s.name != "guest-sync-delimited"))
      o.block_rpcs.emplace_back(s.name);
  fc::service svc(o, fx().pool, fx().sys);
  if (auto err = svc.init()) {
    std::fprintf(stderr, "init: %s\n", err->c_str());
    std::abort();
  }
  fleetga::protocol::framer framer;
  std::string out;
  std::function<void()> after = [&requests] { ++requests; };
  fc::session_core core(framer, svc, out, &after, nullptr);
  script sc(seed, !whole);
  std::string peer;
  std::size_t pos = 0;
  int steps = 0;
  fc::session_action a = core.start();
  for (;;) {
    if (++steps > 10'000'000) std::abort();  // no progress
    switch (a) {
      case fc::session_action::write: {
        const bool fail = sc.failures && sc.next() % 16 == 0;
        if (!fail) peer.append(core.output());
        a = core.write_done(!fail);
        break;
      }
      case fc::session_action::wait_handler:
        // The inline offloader completes every job at once; a handler that still suspends
        // is waiting for the drain, which the core resolves with a write action.
        std::fprintf(stderr, "wait_handler with an inline offloader\n");
        std::abort();
      case fc::session_action::read: {
        auto space = core.read_buffer();
        if (pos == input.size()) {
          a = core.read_done(0, 0);
          break;
        }
        if (sc.failures) {
          const std::uint64_t r = sc.next();
          switch (r % 32) {
            case 0:
              a = core.read_done(-1, EAGAIN);
              continue;
            case 1:
              a = core.read_done(-1, EINTR);
              continue;
            case 2:
              if (r % 4 == 2) {
                a = core.read_done(-1, EIO);
                continue;
              }
              break;
            case 3:
              if (r % 4 == 3) {
                a = core.read_done(-1, ECONNRESET);
                continue;
              }
              break;
            default:
              break;
          }
        }
        std::size_t n = input.size() - pos;
        if (!whole) n = std::min<std::size_t>(n, 1 + sc.next() % 4096);
        n = std::min(n, space.size());
        std::memcpy(space.data(), input.data() + pos, n);
        pos += n;
        a = core.read_done(static_cast<long>(n), 0);
        break;
      }
      case fc::session_action::wait_read:
        a = core.readable();
        break;
      case fc::session_action::yield:
        a = core.yielded();
        break;
      case fc::session_action::close:
        if (!core.output().empty() || core.handler_pending()) std::abort();
        return peer;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t seed = data[0];
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  fx();  // the fixture's set-up is not the input's work
  fleetga::fuzz::budget::start();
  std::size_t requests = 0;
  const std::string cut = run(input, seed, false, requests);
  std::size_t requests_whole = 0;
  const std::string whole = run(input, seed, true, requests_whole);
  // Both runs: 2 x the input's bytes, 2 x its requests.
  fleetga::fuzz::budget::check(2 * input.size(), requests + requests_whole, budget_per_byte, budget_per_request,
                               budget_fixed);
  fleetga::fuzz::check_reply_lines(whole);
  // Without injected failures the replies must not depend on how the input was cut; with
  // them, what arrived is a prefix of the full replies (a failed write or a read error ends
  // the session early; nothing is reordered, duplicated or made up).
  if (whole.compare(0, cut.size(), cut) != 0) {
    std::fprintf(stderr, "the replies of a session cut into pieces differ from the whole input's\n");
    std::abort();
  }
  return 0;
}
