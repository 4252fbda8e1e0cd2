#pragma once
// Drives commands::service the way the agent does: one padded frame at a time, inline
// offloader, a fake platform and a fresh temporary statedir per fixture.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "commands/offload.hpp"
#include "commands/service.hpp"
#include "platform/system.hpp"
#include "protocol/framer.hpp"

namespace fleetga::test {

// linux_system on a fixture root with the volatile parts pinned.
class fake_system : public platform::linux_system {
 public:
  explicit fake_system(std::string root = {}) : linux_system(std::move(root)) {}

  std::int64_t now_ns = 1700000000123456000;
  std::string host = "vm-1";
  int host_err = 0;
  platform::uname_info un{"6.1.0-test", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0", "x86_64"};
  platform::timezone_info tz{std::string("CET"), 3600};
  platform::load_average load{1.5, 0.25, 0.5};
  int load_err = 0;
  std::map<std::string, std::string> env;
  int stats = 0;  // identity() calls (cache tests)

  std::int64_t realtime_ns() override { return now_ns; }
  int hostname(std::string& out) override {
    out = host;
    return host_err;
  }
  int uname(platform::uname_info& out) override {
    out = un;
    return 0;
  }
  platform::timezone_info timezone() override { return tz; }
  int loadavg(platform::load_average& out) override {
    out = load;
    return load_err;
  }
  std::optional<std::string> getenv(const char* name) override {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  }
  std::optional<platform::file_identity> identity(const std::string& path) override {
    ++stats;
    return linux_system::identity(path);
  }
  std::vector<std::string> small_reads;  // read_small_file() paths (cache tests)
  int read_small_file(const std::string& path, std::size_t max, std::string& out) override {
    small_reads.push_back(path);
    return linux_system::read_small_file(path, max, out);
  }
};

// An offloader whose run() throws: the handler coroutine sees the exception at co_await.
class throwing_offloader final : public commands::offloader {
 public:
  void run(std::function<void()>, std::coroutine_handle<>) override { throw std::runtime_error("pool is gone"); }
};

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/fleetga-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(std::string_view name) const { return path + "/" + std::string(name); }
  std::set<std::string> list() const {
    std::set<std::string> s;
    for (auto& e : std::filesystem::directory_iterator(path)) s.insert(e.path().filename().string());
    return s;
  }
};

inline std::string slurp(const std::string& path) {
  std::string s;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
  }
  return s;
}

inline void spit(const std::string& path, std::string_view content) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  std::fwrite(content.data(), 1, content.size(), f);
  std::fclose(f);
}

// Runs one message (already-framed JSON text) or framer error through service::handle.
inline std::string run(commands::service& svc, std::string_view json, bool* replied = nullptr) {
  std::string buf(json);
  buf.append(protocol::input_padding, '\0');
  protocol::frame f;
  f.type = protocol::frame::kind::message;
  f.text = protocol::padded_view::for_tests(buf);
  std::string out;
  auto t = svc.handle(f, out);
  bool done = t.start();
  EXPECT_TRUE(done) << "handle() did not complete with an inline offloader";
  if (!done) return out;
  bool r = t.take();
  if (replied) *replied = r;
  return out;
}

struct service_fixture {
  temp_dir state;
  fake_system sys;
  commands::inline_offloader pool;
  std::unique_ptr<commands::service> svc;

  explicit service_fixture(commands::options o = {}, bool do_init = true) { start(std::move(o), do_init); }

  void start(commands::options o = {}, bool do_init = true) {
    o.statedir = state.path;
    svc.reset();
    svc = std::make_unique<commands::service>(std::move(o), pool, sys);
    if (do_init) {
      auto err = svc->init();
      EXPECT_FALSE(err) << *err;
    }
  }
  std::string operator()(std::string_view json) { return run(*svc, json); }
};

}  // namespace fleetga::test
