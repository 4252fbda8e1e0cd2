#pragma once
// fleetga-host attach: the part that does not care where agents come from. A host_stack
// (libvirt, or a directory of agent sockets) reports agents that connect; the engine works
// out each domain's level (policy.hpp), sets it, reads guest-info back to confirm it, logs one
// line per attach and keeps counters. Attaches run on worker threads, at most `concurrency`
// at once, so a hung agent costs one worker for at most the agent timeout and never holds
// the others up. No Asio: libvirt's API blocks, sockets are driven with poll() deadlines.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tools/attach/policy.hpp"

namespace fleetga::host::attach {

// The answer to one agent command.
struct agent_reply {
  enum class status : std::uint8_t {
    ok,             // `ret` holds the reply's "return" value as JSON text
    error_reply,    // the agent answered an error: `error_class` (may be empty: libvirt drops
                    // it) and `desc`
    not_connected,  // no agent on the channel right now (a later "connected" will come)
    busy,           // someone else holds the channel (socket mode: a one-client chardev)
    timeout,        // no answer within the agent timeout
    gone,           // the domain (or its socket) no longer exists
    garbage,        // an answer that is not a QMP reply
    failed,         // anything else (`desc` says what)
  } st = status::failed;
  std::string ret;
  std::string error_class;
  std::string desc;
};
const char* to_string(agent_reply::status s);

// One conversation with one domain's agent: set the level, read guest-info, done. Socket mode
// holds its connection only for the life of this object.
class agent_link {
 public:
  virtual ~agent_link() = default;
  // `json`: one QMP command, e.g. {"execute":"guest-info"}; at most `timeout` for the answer.
  virtual agent_reply command(const std::string& json, std::chrono::milliseconds timeout) = 0;
};

// Where domains and agents come from. Called from worker threads, concurrently for different
// domains; implementations are thread-safe.
class host_stack {
 public:
  virtual ~host_stack() = default;
  virtual std::string kind() const = 0;  // "libvirt" | "sockets" | "fake" (log lines)
  // The host's QEMU version as a level (nullopt: unknown).
  virtual std::optional<support_level> host_level() = 0;
  // Domains whose agent may be connected now (the start-up sweep).
  virtual std::vector<std::string> connected_domains() = 0;
  // Facts for the policy; nullopt when the domain is gone.
  virtual std::optional<domain_facts> facts(const std::string& id) = 0;
  // A link to the domain's agent; on failure nullptr with `why` set (its status says whether
  // to retry).
  virtual std::unique_ptr<agent_link> open(const std::string& id, std::chrono::milliseconds timeout,
                                           agent_reply& why) = 0;
};

enum class outcome : std::uint8_t {
  confirmed,      // set, and guest-info reports the level asked for
  mismatch,       // set, but guest-info reports another level (or none)
  unsupported,    // the agent has no support level (qemu-ga: CommandNotFound): left alone
  skipped,        // the config says skip
  not_connected,  // no agent (a "connected" event will bring it back)
  busy,           // the channel was taken (retried)
  timeout,        // the agent did not answer in time (retried)
  gone,           // the domain vanished mid-attach
  garbage,        // an answer that is not QMP (retried)
  failed,         // an error reply to set-support-level, or anything else (retried)
};
const char* to_string(outcome o);

struct attach_result {
  std::string id;
  std::string name, uuid;      // from the facts, when known
  std::string agent_version;   // guest-info's "version", when read
  std::optional<support_level> asked, confirmed;
  outcome result = outcome::failed;
  std::string detail;          // the error text for failures
  std::chrono::microseconds latency{0};     // the attach itself: start to confirmation (or failure)
  std::chrono::microseconds since_event{0}; // from the "connected" event (or sweep) to the end
  int attempt = 1;
};

struct engine_options {
  std::chrono::milliseconds timeout{5000};  // per agent command
  unsigned concurrency = 8;                  // attaches in flight at once
  // Back-off for retried outcomes (busy, timeout, garbage, failed): first, doubled, capped.
  std::chrono::milliseconds retry_first{1000}, retry_max{60000};
  int max_attempts = 6;                      // per connect event, then wait for the next event
  // Retry not_connected too (socket mode: no event says when the agent is back; libvirt mode:
  // the sweep after a libvirtd restart may run before libvirtd reopened its agent connection).
  bool retry_not_connected = false;
};

struct engine_stats {
  std::uint64_t events = 0, attaches = 0;
  std::uint64_t by_outcome[10] = {};
  std::uint64_t retries = 0, in_flight = 0, queued = 0;
  std::uint64_t latency_us_sum = 0, latency_us_max = 0;
};

class engine {
 public:
  using result_sink = std::function<void(const attach_result&)>;
  engine(host_stack& hs, attach_config cfg, engine_options opt);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // An agent connected (libvirt event, a socket appeared, the sweep): attach it. Coalesces:
  // an attach already queued for the domain is not queued twice; one in flight is run once
  // more after it ends. Resets the domain's attempt counter and its pending retry.
  void agent_connected(const std::string& id);
  // The agent went away: a pending retry is dropped (the next connect brings it back).
  void agent_disconnected(const std::string& id);
  // The domain is gone: its state is forgotten.
  void domain_gone(const std::string& id);
  // Every domain the host stack reports as connected.
  void sweep();
  // The host stack's connection was lost: pending retries wait for the next sweep.
  void drop_pending();

  // Blocks until nothing is queued, in flight or waiting for a retry (--once), or until
  // `limit` passes; true when idle.
  bool wait_idle(std::chrono::milliseconds limit);
  engine_stats stats() const;
  std::string stats_line() const;  // one line, key=value
  // SIGHUP: a config read again applies from the next attach on.
  void set_config(attach_config cfg);
  // Called once per attach, after the log line (tests, --once's tally).
  void on_result(result_sink s);
  // Finishes the attaches in flight, drops the rest, joins the workers.
  void stop();

  // The last result per domain (tests, --explain of a live domain).
  std::optional<attach_result> last(const std::string& id) const;

 private:
  struct domain_state {
    bool queued = false, running = false, again = false;
    int attempt = 0;
    bool unsupported_logged = false;
    bool forget = false;  // gone while its attach ran: erased when it ends
    std::chrono::steady_clock::time_point event_time;
    std::optional<std::chrono::steady_clock::time_point> retry_at;
    std::optional<attach_result> last;
  };
  void worker();
  void timer_loop();
  attach_result attach_one(const std::string& id, int attempt);
  void finish(const std::string& id, attach_result r);
  void enqueue_locked(const std::string& id);
  bool retried(outcome o) const;
  std::chrono::milliseconds backoff(int attempt) const;

  host_stack& hs_;
  attach_config cfg_;
  engine_options opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_work_, cv_idle_, cv_timer_;
  std::deque<std::string> queue_;
  std::map<std::string, domain_state> domains_;
  engine_stats stats_;
  result_sink sink_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::thread timer_;
};

// The log line of one attach (spdlog, info for confirmed/unsupported-first-time, warn
// otherwise): attach domain=NAME uuid=UUID agent="VERSION" asked=L confirmed=L latency_ms=N
// since_event_ms=N outcome=WORD attempt=N [detail="..."]
std::string format_result(const attach_result& r);

// Classifies an agent's error reply to guest-set-support-level: true when it means "this
// agent has no support level" (qemu-ga's CommandNotFound "The command ... has not been
// found", a fleetga that blocks it: "has been disabled"), which libvirt passes on as text
// only ("unable to execute QEMU agent command 'guest-set-support-level': ...").
bool means_unsupported(const agent_reply& r);

}  // namespace fleetga::host::attach
