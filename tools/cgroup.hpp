#pragma once
// CPU starvation for `load --cpu-limit` (clients.md 5.3: "cgroup-throttle the agent to 5 %"):
// a cgroup per spawned agent with a CFS bandwidth limit, on cgroup v2 (cpu.max) or the v1 cpu
// hierarchy (cpu.cfs_quota_us). Everything fleetga-host creates lives in fleetga-host.<pid>/
// under its own cgroup (v1), or under the nearest cgroup from its own up whose children have
// the cpu controller (v2; at the root, +cpu is enabled if it wasn't), and is removed at the
// end, with whatever process is still in it.
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fleetga::host {

struct cpu_throttling {
  std::uint64_t periods = 0;            // CFS periods in which the agent was runnable
  std::uint64_t throttled_periods = 0;  // ... and ran out of quota
  double throttled_ms = 0;              // time spent throttled
};

class cpu_cgroups {
 public:
  // Finds a writable cpu controller and creates the parent group; throws std::runtime_error
  // saying what is missing (no cgroup cpu controller, read-only cgroupfs, not root).
  cpu_cgroups();
  ~cpu_cgroups();  // removes the groups (best effort; their processes must be gone)
  cpu_cgroups(const cpu_cgroups&) = delete;
  cpu_cgroups& operator=(const cpu_cgroups&) = delete;

  // A new group limited to `percent` of one CPU (100 ms period); returns the path of its
  // cgroup.procs, into which a process writes its pid to join (see join()).
  std::string add_limited(double percent);
  // Moves the calling process into the group behind `procs_path`; only async-signal-safe
  // calls, so a forked child can use it before exec. False on failure.
  static bool join(const char* procs_path) noexcept;
  // Sum of cpu.stat over the groups created.
  cpu_throttling stats() const;
  const char* version() const { return v2_ ? "cgroup v2" : "cgroup v1"; }

 private:
  bool v2_ = false;
  std::string parent_;
  std::vector<std::string> groups_;
};

}  // namespace fleetga::host
