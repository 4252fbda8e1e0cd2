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

const stall_timeline& stall_probe::finish() {
  if (finished_) return all_;
  finished_ = true;
  stop_.store(true);
  for (auto& t : threads_) t.join();
  std::vector<cpu_stall> all;
  for (auto& v : per_cpu_) all.insert(all.end(), v.begin(), v.end());
  all_ = stall_timeline(std::move(all));
  return all_;
}

stall_timeline::stall_timeline(std::vector<cpu_stall> stalls) : stalls_(std::move(stalls)) {
  std::sort(stalls_.begin(), stalls_.end(), [](const cpu_stall& a, const cpu_stall& b) { return a.from_ns < b.from_ns; });
  reach_.reserve(stalls_.size());
  for (const auto& st : stalls_) reach_.push_back(reach_.empty() ? st.to_ns : std::max(reach_.back(), st.to_ns));
}

bool stall_timeline::overlaps(std::int64_t from_ns, std::int64_t to_ns) const {
  // The stalls that start before to_ns; one of them overlaps iff the latest end among them is
  // after from_ns.
  const auto n = std::lower_bound(stalls_.begin(), stalls_.end(), to_ns,
                                  [](const cpu_stall& s, std::int64_t t) { return s.from_ns < t; }) -
                 stalls_.begin();
  return n > 0 && reach_[static_cast<std::size_t>(n - 1)] > from_ns;
}

}  // namespace fleetga::host
