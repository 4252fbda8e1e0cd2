#include "tools/cgroup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace fleetga::host {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
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
    if (list.substr(p, q == std::string_view::npos ? std::string_view::npos : q - p) == word) return true;
    if (q == std::string_view::npos) break;
    p = q + 1;
  }
  return false;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
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
  // Mount points: the cgroup2 mount, and the v1 mount whose options include "cpu".
  std::string v2_mnt, v1_mnt;
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
      if (fstype == "cgroup2" && v2_mnt.empty()) v2_mnt = mnt;
      if (fstype == "cgroup" && v1_mnt.empty() && has_word(super, "cpu", ',')) v1_mnt = mnt;
    }
  }
  const std::string name = fmt::format("fleetga-host.{}", ::getpid());
  std::string why;
  if (!v2_mnt.empty()) {
    const std::string own = v2_mnt + (own_v2 == "/" ? "" : own_v2);
    if (has_word(trim(slurp(own + "/cgroup.controllers")), "cpu", ' ')) {
      try {
        // Let our children (the new group) have the cpu controller, then theirs.
        if (!has_word(trim(slurp(own + "/cgroup.subtree_control")), "cpu", ' ')) write_file(own + "/cgroup.subtree_control", "+cpu");
        parent_ = own + "/" + name;
        if (::mkdir(parent_.c_str(), 0755) != 0)
          throw std::runtime_error(fmt::format("--cpu-limit: mkdir {}: {}", parent_, std::strerror(errno)));
        v2_ = true;
        try {
          write_file(parent_ + "/cgroup.subtree_control", "+cpu");
        } catch (...) {
          ::rmdir(parent_.c_str());
          parent_.clear();
          v2_ = false;
          throw;
        }
        return;
      } catch (const std::exception& e) {
        why = e.what();
      }
    } else {
      why = fmt::format("{}/cgroup.controllers has no cpu controller", own);
    }
  }
  if (!v1_mnt.empty() && have_v1_line) {
    const std::string own = v1_mnt + (own_v1 == "/" ? "" : own_v1);
    parent_ = own + "/" + name;
    if (::mkdir(parent_.c_str(), 0755) == 0) return;
    why += fmt::format("{}mkdir {}: {}", why.empty() ? "" : "; ", parent_, std::strerror(errno));
    parent_.clear();
  }
  throw std::runtime_error("--cpu-limit needs a writable cgroup cpu controller (cgroup v2 with cpu, or the v1 cpu "
                           "hierarchy; as root): " + (why.empty() ? std::string("none mounted") : why));
}

cpu_cgroups::~cpu_cgroups() {
  for (auto& g : groups_) ::rmdir(g.c_str());
  if (!parent_.empty()) ::rmdir(parent_.c_str());
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
