#include "tools/cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace fleetga::host {
namespace {

// The file's contents; false when it can't be read (distinct from an empty file).
bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

std::string slurp(const std::string& path) {
  std::string s;
  read_file(path, s);
  return s;
}

void write_file(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("--cpu-limit: {}: {}", path, std::strerror(errno)));
  ssize_t n = ::write(fd, data.data(), data.size());
  int e = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(data.size()))
    throw std::runtime_error(fmt::format("--cpu-limit: writing '{}' to {}: {}", data, path, std::strerror(e)));
}

bool has_word(std::string_view list, std::string_view word, char sep) {
  std::size_t p = 0;
  while (p <= list.size()) {
    auto q = list.find(sep, p);
    std::string_view w = list.substr(p, q == std::string_view::npos ? std::string_view::npos : q - p);
    while (!w.empty() && (w.back() == '\n' || w.back() == ' ')) w.remove_suffix(1);
    if (w == word) return true;
    if (q == std::string_view::npos) break;
    p = q + 1;
  }
  return false;
}

// The directory of cgroup `own` (as /proc/self/cgroup names it) on a mount of the hierarchy
// whose root is `root` (mountinfo's 4th field: "/" unless a container mounted a sub-tree).
std::string under_mount(const std::string& mnt, const std::string& root, const std::string& own) {
  std::string rel = own;
  if (root != "/" && rel.rfind(root, 0) == 0) rel = rel.substr(root.size());
  if (rel.empty() || rel == "/") return mnt;
  return mnt + rel;
}

std::vector<pid_t> procs_of(const std::string& group) {
  std::vector<pid_t> out;
  std::istringstream in(slurp(group + "/cgroup.procs"));
  for (long p; in >> p;) out.push_back(static_cast<pid_t>(p));
  return out;
}

}  // namespace

cpu_cgroups::cpu_cgroups() {
  // Our own cgroup per hierarchy: "0::/path" (v2), "N:cpu,cpuacct:/path" (v1).
  std::string own_v2, own_v1;
  bool have_v1_line = false;
  {
    std::istringstream in(slurp("/proc/self/cgroup"));
    for (std::string line; std::getline(in, line);) {
      auto a = line.find(':'), b = line.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      std::string ctrls = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
      if (ctrls.empty()) own_v2 = path;
      else if (has_word(ctrls, "cpu", ',')) {
        own_v1 = path;
        have_v1_line = true;
      }
    }
  }
  // Mount points (and the part of the hierarchy mounted there): the cgroup2 mount, and the
  // v1 mount whose options include "cpu".
  std::string v2_mnt, v2_root, v1_mnt, v1_root;
  {
    std::istringstream in(slurp("/proc/self/mountinfo"));
    for (std::string line; std::getline(in, line);) {
      std::istringstream ls(line);
      std::string id, parent, dev, root, mnt, opts, f;
      ls >> id >> parent >> dev >> root >> mnt >> opts;
      while (ls >> f && f != "-") {
      }
      std::string fstype, source, super;
      ls >> fstype >> source >> super;
      if (fstype == "cgroup2" && v2_mnt.empty()) v2_mnt = mnt, v2_root = root;
      if (fstype == "cgroup" && v1_mnt.empty() && has_word(super, "cpu", ',')) v1_mnt = mnt, v1_root = root;
    }
  }
  const std::string name = fmt::format("fleetga-host.{}", ::getpid());
  std::string why;
  if (!v2_mnt.empty()) {
    // Our group goes under the nearest cgroup, from ours up, whose children have the cpu
    // controller. A cgroup holding processes (ours: fleetga-host, maybe a shell) can't hand
    // controllers to its children, except the root, where +cpu is enabled if need be (and left
    // so: other groups may have come to rely on it).
    std::string at = under_mount(v2_mnt, v2_root, own_v2), list;
    for (;;) {
      if (!read_file(at + "/cgroup.subtree_control", list)) {
        why = fmt::format("{}/cgroup.subtree_control: cannot read", at);
        break;
      }
      if (has_word(list, "cpu", ' ')) break;
      if (at == v2_mnt) {
        if (!has_word(slurp(at + "/cgroup.controllers"), "cpu", ' ')) {
          why = fmt::format("{}/cgroup.controllers has no cpu controller", at);
        } else {
          try {
            write_file(at + "/cgroup.subtree_control", "+cpu");
          } catch (const std::exception& e) {
            why = e.what();
          }
        }
        break;
      }
      at = at.substr(0, at.rfind('/'));
    }
    if (why.empty()) {
      parent_ = at + "/" + name;
      if (::mkdir(parent_.c_str(), 0755) != 0) {
        why = fmt::format("mkdir {}: {}", parent_, std::strerror(errno));
      } else {
        try {
          write_file(parent_ + "/cgroup.subtree_control", "+cpu");
          v2_ = true;
          return;
        } catch (const std::exception& e) {
          why = e.what();
          ::rmdir(parent_.c_str());
        }
      }
      parent_.clear();
    }
  }
  if (!v1_mnt.empty() && have_v1_line) {
    parent_ = under_mount(v1_mnt, v1_root, own_v1) + "/" + name;
    if (::mkdir(parent_.c_str(), 0755) == 0) return;
    why += fmt::format("{}mkdir {}: {}", why.empty() ? "" : "; ", parent_, std::strerror(errno));
    parent_.clear();
  }
  throw std::runtime_error("--cpu-limit needs a writable cgroup cpu controller (cgroup v2 with cpu, or the v1 cpu "
                           "hierarchy; as root): " + (why.empty() ? std::string("none mounted") : why));
}

cpu_cgroups::~cpu_cgroups() {
  // The agents were stopped, but what they started (exec'd commands) may still be in their
  // groups: kill it, wait up to a second, remove the groups; say so if one stays.
  for (auto& g : groups_)
    for (pid_t p : procs_of(g)) ::kill(p, SIGKILL);
  for (int i = 0; i < 100; ++i) {
    bool empty = true;
    for (auto& g : groups_) empty = empty && procs_of(g).empty();
    if (empty) break;
    ::usleep(10000);
  }
  for (auto& g : groups_)
    if (::rmdir(g.c_str()) != 0 && errno != ENOENT)
      std::fprintf(stderr, "fleetga-host: cannot remove cgroup %s: %s\n", g.c_str(), std::strerror(errno));
  if (!parent_.empty() && ::rmdir(parent_.c_str()) != 0 && errno != ENOENT)
    std::fprintf(stderr, "fleetga-host: cannot remove cgroup %s: %s\n", parent_.c_str(), std::strerror(errno));
}

std::string cpu_cgroups::add_limited(double percent) {
  const std::string g = fmt::format("{}/agent{}", parent_, groups_.size());
  if (::mkdir(g.c_str(), 0755) != 0) throw std::runtime_error(fmt::format("--cpu-limit: mkdir {}: {}", g, std::strerror(errno)));
  groups_.push_back(g);
  constexpr long period_us = 100000;
  long quota_us = static_cast<long>(percent / 100.0 * static_cast<double>(period_us));
  if (quota_us < 1000) quota_us = 1000;  // the kernel's minimum quota is 1 ms
  if (v2_) {
    write_file(g + "/cpu.max", fmt::format("{} {}", quota_us, period_us));
  } else {
    write_file(g + "/cpu.cfs_period_us", std::to_string(period_us));
    write_file(g + "/cpu.cfs_quota_us", std::to_string(quota_us));
  }
  return g + "/cgroup.procs";
}

bool cpu_cgroups::join(const char* procs_path) noexcept {
  int fd = ::open(procs_path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // "0" is the writing process itself, in v1 and v2 alike.
  bool ok = ::write(fd, "0", 1) == 1;
  ::close(fd);
  return ok;
}

cpu_throttling cpu_cgroups::stats() const {
  cpu_throttling t;
  for (auto& g : groups_) {
    std::istringstream in(slurp(g + "/cpu.stat"));
    std::string key;
    std::uint64_t v;
    while (in >> key >> v) {
      if (key == "nr_periods") t.periods += v;
      else if (key == "nr_throttled") t.throttled_periods += v;
      else if (key == "throttled_usec") t.throttled_ms += static_cast<double>(v) / 1e3;  // v2
      else if (key == "throttled_time") t.throttled_ms += static_cast<double>(v) / 1e6;  // v1, ns
    }
  }
  return t;
}

}  // namespace fleetga::host
