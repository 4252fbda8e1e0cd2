#include "tools/stall_probe.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

#include <algorithm>

#include "tools/common.hpp"

namespace fleetga::host {

stall_probe::stall_probe(std::int64_t threshold_ns) : threshold_(threshold_ns) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  if (cpus.empty()) cpus.push_back(-1);
  per_cpu_.resize(cpus.size());
  for (std::size_t i = 0; i < cpus.size(); ++i)
    threads_.emplace_back([this, c = cpus[i], &out = per_cpu_[i]] { probe(c, out); });
}

stall_probe::~stall_probe() { finish(); }

void stall_probe::probe(int cpu, std::vector<cpu_stall>& out) {
  if (cpu >= 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ::pthread_setaffinity_np(::pthread_self(), sizeof one, &one);
  }
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // the default 50 us slack is not a stall
  std::int64_t next = now_ns();
  while (!stop_.load(std::memory_order_relaxed)) {
    next += threshold_;
    timespec ts{static_cast<time_t>(next / 1'000'000'000), static_cast<long>(next % 1'000'000'000)};
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    const std::int64_t woke = now_ns();
    if (woke - next >= threshold_) {
      if (out.size() < 1'000'000) out.push_back({cpu, next, woke});
      next = woke;  // deadlines missed during the stall are not stalls of their own
    }
  }
  timespec used{};
  if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used) == 0) cpu_ns_ += used.tv_sec * 1000000000LL + used.tv_nsec;
}

const std::vector<cpu_stall>& stall_probe::finish() {
  if (finished_) return all_;
  finished_ = true;
  stop_.store(true);
  for (auto& t : threads_) t.join();
  cpu_s_ = static_cast<double>(cpu_ns_.load()) / 1e9;
  for (auto& v : per_cpu_) all_.insert(all_.end(), v.begin(), v.end());
  std::sort(all_.begin(), all_.end(), [](const cpu_stall& a, const cpu_stall& b) { return a.from_ns < b.from_ns; });
  return all_;
}

bool overlaps_stall(const std::vector<cpu_stall>& stalls, std::int64_t from_ns, std::int64_t to_ns) {
  // Stalls are short and sorted by start: the candidates start before `to_ns`; a stall that
  // started more than the longest stall before `from_ns` cannot reach it. Linear from the
  // first stall starting after to_ns backwards is enough for these sizes (a few per second).
  auto it = std::lower_bound(stalls.begin(), stalls.end(), to_ns,
                             [](const cpu_stall& s, std::int64_t t) { return s.from_ns < t; });
  while (it != stalls.begin()) {
    --it;
    if (it->to_ns > from_ns) return true;
    if (from_ns - it->from_ns > 10'000'000'000LL) break;  // no stall lasts 10 s
  }
  return false;
}

}  // namespace fleetga::host
