#include "platform/statvfs_runner.hpp"

#include <sys/statvfs.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

namespace fleetga::platform {

struct statvfs_runner::shared {
  std::shared_ptr<fs_stat> backend;
  mutable std::mutex m;
  std::set<std::string> busy;
  // Threads are reused: one that finished waits `linger` for the next call's work before it
  // exits, so a poller asking every few seconds doesn't pay a thread start per mount.
  std::deque<std::function<void()>> jobs;
  std::size_t idle = 0;
  bool closing = false;  // the runner is gone: idle threads exit at once
  std::condition_variable work;
};

int linux_fs_stat::statvfs(const std::string& path, fs_sizes& out) {
  struct statvfs b;
  if (::statvfs(path.c_str(), &b) != 0) return errno;
  out.blocks = b.f_blocks;
  out.bfree = b.f_bfree;
  out.bavail = b.f_bavail;
  out.frsize = b.f_frsize;
  return 0;
}

statvfs_runner::statvfs_runner(std::shared_ptr<fs_stat> backend, std::size_t max_in_flight)
    : s_(std::make_shared<shared>()), max_(max_in_flight) {
  s_->backend = std::move(backend);
}

statvfs_runner::~statvfs_runner() {
  std::lock_guard l(s_->m);
  s_->closing = true;
  s_->work.notify_all();
}

std::size_t statvfs_runner::in_flight() const {
  std::lock_guard l(s_->m);
  return s_->busy.size();
}

// A stuck statvfs keeps its thread (busy, never idle), so the one-stuck-thread-per-mount bound
// holds: new work goes to idle threads or to a new one.
void statvfs_runner::worker(std::shared_ptr<shared> s) {
  constexpr auto linger = std::chrono::seconds(30);
  std::unique_lock l(s->m);
  for (;;) {
    if (s->jobs.empty()) {
      ++s->idle;
      const bool got = s->work.wait_for(l, linger, [&] { return !s->jobs.empty() || s->closing; });
      --s->idle;
      if (!got || s->jobs.empty()) return;
    }
    auto job = std::move(s->jobs.front());
    s->jobs.pop_front();
    l.unlock();
    job();
    l.lock();
  }
}

bool statfs_in_memory(std::string_view type) noexcept {
  for (std::string_view t : {"ext4", "xfs", "btrfs", "ext3", "ext2", "f2fs", "vfat", "msdos", "exfat", "iso9660", "udf",
                             "squashfs", "erofs"})
    if (type == t) return true;
  return false;
}

std::vector<std::optional<fs_sizes>> statvfs_runner::run(const std::vector<std::string>& paths,
                                                         const std::vector<bool>& direct,
                                                         std::chrono::milliseconds deadline) {
  std::vector<std::string> slow;
  std::vector<std::size_t> slow_at;
  std::vector<std::optional<fs_sizes>> out(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (i < direct.size() && direct[i]) {
      fs_sizes z;
      if (s_->backend->statvfs(paths[i], z) == 0) out[i] = z;
    } else {
      slow.push_back(paths[i]);
      slow_at.push_back(i);
    }
  }
  if (!slow.empty()) {
    auto r = run(slow, deadline);
    for (std::size_t k = 0; k < slow.size(); ++k) out[slow_at[k]] = std::move(r[k]);
  }
  return out;
}

std::vector<std::optional<fs_sizes>> statvfs_runner::run(const std::vector<std::string>& paths,
                                                         std::chrono::milliseconds deadline) {
  struct batch {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::optional<fs_sizes>> res;
    std::size_t pending = 0;
  };
  auto b = std::make_shared<batch>();
  b->res.resize(paths.size());
  const auto until = std::chrono::steady_clock::now() + deadline;
  std::map<std::string_view, std::size_t> first;  // a path twice in one batch: one call
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (!first.emplace(paths[i], i).second) continue;
    {
      std::lock_guard l(s_->m);
      if (s_->busy.contains(paths[i]) || s_->busy.size() >= max_) continue;  // stuck earlier / cap
      s_->busy.insert(paths[i]);
    }
    {
      std::lock_guard l(b->m);
      ++b->pending;
    }
    auto job = [s = s_.get(), b, i, path = paths[i]] {
      fs_sizes z;
      int e = s->backend->statvfs(path, z);
      {
        std::lock_guard l(s->m);
        s->busy.erase(path);
      }
      {
        std::lock_guard l(b->m);
        if (e == 0) b->res[i] = z;
        --b->pending;
      }
      b->cv.notify_all();
    };
    std::unique_lock l(s_->m);
    s_->jobs.push_back(std::move(job));
    if (s_->idle >= s_->jobs.size()) {
      s_->work.notify_one();  // a lingering thread takes it
      continue;
    }
    try {
      std::thread(worker, s_).detach();
    } catch (const std::system_error&) {  // no thread: report without sizes
      s_->jobs.pop_back();
      s_->busy.erase(paths[i]);
      l.unlock();
      std::lock_guard l2(b->m);
      --b->pending;
    }
  }
  std::unique_lock l(b->m);
  b->cv.wait_until(l, until, [&] { return b->pending == 0; });
  std::vector<std::optional<fs_sizes>> out = b->res;
  l.unlock();
  for (std::size_t i = 0; i < paths.size(); ++i) {
    auto it = first.find(paths[i]);
    if (it->second != i) out[i] = out[it->second];
  }
  return out;
}

}  // namespace fleetga::platform
