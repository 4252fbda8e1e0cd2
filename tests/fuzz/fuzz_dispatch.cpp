// libFuzzer target over the whole request path without Asio: framer -> request parsing ->
// gate -> argument decoding -> handlers (inline offloader) -> writer. Invariants: no crash,
// no sanitizer report, every reply is one line of printable ASCII (plus the 0xFF delimiter),
// no child process is ever started (the sanitizers' symbolizer aside), and the work of an input stays within a budget
// linear in its size (budget.hpp): a quadratic list decoder or reply writer fails the run.
//
// Every command is reachable and decodes its arguments fully (lists, nested structs such as
// `vcpus` and `mem-blks`, `capture-output` as bool or enum, base64). The fuzzer must never
// change the machine that runs it, so each command that acts stops at a no-op:
//   - every system path of the platform layer is under an empty directory of its own: no mounts to
//     freeze or trim (and linux_freezer refuses a fixture root anyway), no passwd for the
//     ssh key writers, no /sys for set-vcpus / set-memory-blocks, no /sys/power/state;
//   - the system object is also the power runner (shutdown, suspend helpers) and the
//     platform::system_effects (set-time's clock and RTC, set-user-password's chpasswd):
//     both record nothing and succeed;
//   - it is also guest-file-open's commands::file_opener: whatever path the client names,
//     the handle is a scratch file in the temporary root, reset before every input, so
//     guest-file-read/-write/-seek/-flush/-close work on a real stream;
//   - guest-exec decodes its arguments and its input-data, then answers "no event loop"
//     (options::reactor is null): it cannot spawn, and the harness checks no child exists;
//   - options::acts_on_system stays false (the safe defaults behind the fakes).
// Each input gets a fresh service (state file, frozen flag, handles, support level reset),
// so an input's outcome does not depend on the ones before it.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "budget.hpp"
#include "common.hpp"
#include "commands/offload.hpp"
#include "commands/power.hpp"
#include "commands/service.hpp"
#include "commands/state.hpp"
#include "platform/clock.hpp"
#include "platform/files.hpp"
#include "platform/system.hpp"
#include "protocol/framer.hpp"

namespace fc = fleetga::commands;
namespace fp = fleetga::platform;

namespace {

// The work budget (budget.hpp), in counted regions: per input byte, per request (a frame
// handed to the service), plus a constant. Measured (FLEETGA_FUZZ_BUDGET_REPORT=1 over a
// fuzzed corpus and hand-made inputs): list decoding costs 60-110 regions per byte (a
// `vcpus` list ~60, an `arg` list of one-letter strings ~106, blanks ~7); the costliest
// single request is guest-info building its list of every command, ~12,000 regions for 24
// bytes. The limits leave a margin of about 3-5x; a list decoder that walks the list again
// for each element exceeds them from about a thousand elements on.
constexpr std::uint64_t budget_per_byte = 500;
constexpr std::uint64_t budget_per_request = 40000;
constexpr std::uint64_t budget_fixed = 50000;

// The fuzzer's own directory, /tmp/fleetga-fuzz-dispatch.<pid>/{root,state}. libFuzzer ends
// with _Exit() (no destructors), so a run cannot remove it: each run removes those of runs
// whose process is gone.
std::string make_work_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/tmp", ec)) {
    const std::string name = e.path().filename().string();
    constexpr std::string_view prefix = "fleetga-fuzz-dispatch.";
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
  }
  const std::string dir = "/tmp/fleetga-fuzz-dispatch." + std::to_string(::getpid());
  fs::remove_all(dir, ec);
  if (::mkdir(dir.c_str(), 0700) != 0 || ::mkdir((dir + "/root").c_str(), 0700) != 0 ||
      ::mkdir((dir + "/state").c_str(), 0700) != 0)
    std::abort();
  return dir;
}

const char scratch_text[] = "fleetga fuzz scratch file\nsecond line\n";

class fuzz_system final : public fp::linux_system,
                          public fc::power_runner,
                          public fp::system_effects,
                          public fc::file_opener {
 public:
  explicit fuzz_system(std::string root) : linux_system(root), scratch_(root + "/scratch") {}

  // Before every input: the scratch file with its known content.
  void reset_scratch() {
    int fd = ::open(scratch_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::write(fd, scratch_text, sizeof scratch_text - 1) != sizeof scratch_text - 1) std::abort();
    ::close(fd);
  }

  // power_runner: shutdown and suspend helpers.
  fp::helper_result run(const std::vector<std::string>&) override { return {}; }

  // system_effects: the clock, the RTC, chpasswd.
  int set_realtime(std::int64_t, std::int64_t) override { return 0; }
  void get_realtime(std::int64_t& sec, std::int64_t& nsec) override {
    sec = 1700000000;
    nsec = 0;
  }
  fp::rtc_status rtc_read(const std::string&, fp::rtc_fields& out) override {
    out = {};
    return {fp::rtc_status::step::open, ENOENT};
  }
  fp::rtc_status rtc_write(const std::string&, const fp::rtc_fields&) override {
    return {fp::rtc_status::step::open, ENOENT};
  }
  fp::helper_result run(const std::vector<std::string>&, std::optional<std::string_view>) override { return {}; }
  void sleep_ns(std::int64_t) override {}

  // file_opener: the scratch file whatever the client asked for (its mode and flags kept).
  fp::stdio_file::open_step open(const char*, const char* mode, int flags, fp::stdio_file& out, int& err,
                                 int& fd_out) override {
    return fp::stdio_file::open(scratch_.c_str(), mode, flags, out, err, fd_out);
  }

 private:
  std::string scratch_;
};

struct fixture {
  fc::inline_offloader pool;
  std::string dir = make_work_dir();
  std::string root = dir + "/root";
  std::string statedir = dir + "/state";
  fuzz_system sys{root};
  std::unique_ptr<fc::service> svc;

  void fresh_service() {
    svc.reset();
    ::unlink((statedir + "/qga.state").c_str());
    ::unlink((statedir + "/qga.state.isfrozen").c_str());
    sys.reset_scratch();
    fc::options o;
    o.statedir = statedir;
    svc = std::make_unique<fc::service>(o, pool, sys);
    if (auto err = svc->init()) {
      std::fprintf(stderr, "init: %s\n", err->c_str());
      std::abort();
    }
  }
  ~fixture() {
    svc.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

// No child process, except the sanitizers' own llvm-symbolizer (started by libFuzzer's leak
// check or a report, and kept running).
void check_no_child() {
  int status = 0;
  if (::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD) return;
  std::string kids;
  if (FILE* f = std::fopen("/proc/thread-self/children", "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, f)) kids += buf;
    std::fclose(f);
  }
  bool ours = false;
  for (std::size_t p = 0; p < kids.size();) {
    std::size_t e = kids.find(' ', p);
    std::string pid = kids.substr(p, e - p);
    std::string cmd;
    if (FILE* f = std::fopen(("/proc/" + pid + "/cmdline").c_str(), "r")) {
      int c;
      while ((c = std::fgetc(f)) != EOF) cmd += c ? static_cast<char>(c) : ' ';
      std::fclose(f);
    }
    if (!pid.empty() && cmd.find("llvm-symbolizer") == std::string::npos) {
      std::fprintf(stderr, "a child process was started: %s: %s\n", pid.c_str(), cmd.c_str());
      ours = true;
    }
    if (e == std::string::npos) break;
    p = e + 1;
  }
  if (ours) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fixture fx;
  fx.fresh_service();
  fleetga::protocol::framer framer;
  std::string out;
  std::size_t pos = 0;
  std::size_t requests = 0;
  std::size_t chunk = size ? (data[0] % 64) + 1 : 1;
  fleetga::fuzz::budget::start();
  while (pos < size) {
    std::size_t n = std::min(chunk, size - pos);
    auto space = framer.prepare(n);
    std::memcpy(space.data(), data + pos, n);
    framer.commit(n);
    pos += n;
    fleetga::protocol::frame f;
    while (framer.next(f)) {
      ++requests;
      auto t = fx.svc->handle(f, out);
      if (!t.start()) std::abort();  // the inline offloader never leaves a handler pending
      t.take();
      fleetga::fuzz::check_reply_lines(out);
      out.clear();
    }
  }
  fleetga::fuzz::budget::check(size, requests, budget_per_byte, budget_per_request, budget_fixed);
  check_no_child();
  return 0;
}
