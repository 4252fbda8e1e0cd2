#pragma once
// CPU stalls for `load --stall-probe US`: a latency figure taken on a shared machine mixes
// the agent's time with moments when a CPU could not run anything woken on it - a kernel
// thread running for milliseconds without a preemption point (this machine's DAMON thread,
// kdamond, takes a CPU for 1-4 ms about twice a second on a PREEMPT_NONE kernel), or the
// hypervisor not running the vCPU. Such moments are measured, not guessed: one probe thread
// pinned to each CPU the process may use sleeps to an absolute deadline every US microseconds
// and records a stall when it wakes US or more late. A request in flight during a stall on any
// CPU is "in a stall"; `load` reports the figures with and without those requests, both.
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace fleetga::host {

struct cpu_stall {
  int cpu = -1;
  std::int64_t from_ns = 0, to_ns = 0;  // steady clock: the missed deadline, the late wake-up
};

// The stalls of all CPUs sorted by start, and for each the latest end among it and the ones
// before it (stalls of different CPUs overlap): whether a span of time overlaps a stall is one
// binary search.
class stall_timeline {
 public:
  stall_timeline() = default;
  explicit stall_timeline(std::vector<cpu_stall> stalls);
  const std::vector<cpu_stall>& stalls() const { return stalls_; }
  bool overlaps(std::int64_t from_ns, std::int64_t to_ns) const;

 private:
  std::vector<cpu_stall> stalls_;
  std::vector<std::int64_t> reach_;
};

class stall_probe {
 public:
  // Starts the threads at once. Threads that cannot be pinned (a CPU gone offline) probe
  // unpinned; the report says how many CPUs were covered.
  explicit stall_probe(std::int64_t threshold_ns);
  ~stall_probe();
  stall_probe(const stall_probe&) = delete;
  stall_probe& operator=(const stall_probe&) = delete;

  // Stops and joins the threads; the stalls. Idempotent.
  const stall_timeline& finish();
  int cpus() const { return static_cast<int>(threads_.size()); }
  std::int64_t threshold_ns() const { return threshold_; }
  // The probe threads' own CPU time (complete after finish()).
  double cpu_s() const { return static_cast<double>(cpu_ns_.load()) / 1e9; }

 private:
  void probe(int cpu, std::vector<cpu_stall>& out);
  std::int64_t threshold_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::vector<std::vector<cpu_stall>> per_cpu_;
  stall_timeline all_;
  std::atomic<std::int64_t> cpu_ns_{0};
  bool finished_ = false;
};

}  // namespace fleetga::host
