// libFuzzer target for qemu-ga's config file (agent/config.cpp, compiled into this target:
// it needs no Asio): load_config() on the input written to a memfd, then
// --dump-conf's text of what was loaded. Invariants: no crash or sanitizer report; the dump
// of a loaded file loads again (a dump must always be a valid config file) with the same
// scalars; keyfile_unescape(keyfile_escape(x)) == x; the work stays within the budget.
// Option parsing (agent/options.cpp: getopt_long, -c, --dump-conf) is not fuzzed here: it
// needs agent/log.cpp (spdlog) and reads whatever file -c names.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/config.hpp"
#include "budget.hpp"
#include "common.hpp"

namespace fa = fleetga::agent;

namespace {

// The file load_config() reads: a memfd (no disk I/O), by its /proc/self/fd path.
struct temp_file {
  int fd = ::memfd_create("fleetga-fuzz-config", MFD_CLOEXEC);
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  temp_file() {
    if (fd < 0) std::abort();
  }
  ~temp_file() { ::close(fd); }
  void set(std::string_view text) {
    if (::ftruncate(fd, 0) != 0) std::abort();
    std::size_t off = 0;
    while (off < text.size()) {
      ssize_t n = ::pwrite(fd, text.data() + off, text.size() - off, static_cast<off_t>(off));
      if (n <= 0) std::abort();
      off += static_cast<std::size_t>(n);
    }
  }
};

bool same_scalars(const fa::options& a, const fa::options& b) {
  return a.method == b.method && a.path == b.path && a.logfile == b.logfile && a.pidfile == b.pidfile &&
         a.statedir == b.statedir && a.daemonize == b.daemonize && a.verbose == b.verbose &&
         a.retry_path == b.retry_path && a.support_level == b.support_level && a.fsfreeze_hook == b.fsfreeze_hook &&
         a.fsfreeze_timeout == b.fsfreeze_timeout;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static temp_file file;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  file.set(text);
  fleetga::fuzz::budget::start();
  fa::options o;
  if (!fa::load_config(file.path, true, o)) {
    const std::string dump = fa::dump_config(o);
    file.set(dump);
    fa::options again;
    auto err = fa::load_config(file.path, true, again);
    FUZZ_CHECK(!err);
    FUZZ_CHECK(same_scalars(o, again));
  }
  auto back = fa::keyfile_unescape(fa::keyfile_escape(text));
  FUZZ_CHECK(back && *back == text);
  std::vector<std::string> list;
  fa::append_rpc_list(list, text.substr(0, 4096));
  // Each ',' of a list key is an element loaded, dumped, loaded again and split once more
  // above: up to ~560 regions for one byte (measured), hence the larger per-byte bound.
  fleetga::fuzz::budget::check(size, 0, 2000, 0, 30000);
  return 0;
}
