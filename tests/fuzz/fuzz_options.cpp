// libFuzzer target over the command line: agent::parse_options() (getopt_long with qemu-ga's
// options, the config file's merge, the defaults, socket activation's variables, -D's dump)
// on an argv taken from the input (arguments separated by NUL bytes, argv[0] "fleetga").
// Invariants: no crash, no sanitizer report, an exit status of 0 or 1 when parsing says to
// exit, and work within a budget linear in the input (budget.hpp).
//
// The config file is the one file parsing reads: $QGA_CONF points at a missing file (as on a
// guest without one), and inputs that name another one (-c, --config and its getopt
// abbreviations, or a short-option cluster holding c) are skipped, so no input can make the
// fuzzer open an arbitrary path (a FIFO there would block it). fuzz_config covers the file's
// parser. Help, version and the dump go to stdout, which libFuzzer leaves alone.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "agent/options.hpp"
#include "budget.hpp"
#include "common.hpp"

namespace {

// Per argv byte (getopt's scan, the dump, list options split on commas), per argument, fixed.
// Measured over a 30 s corpus (FLEETGA_FUZZ_BUDGET_REPORT=1): at most ~7,100 regions for an
// input, ~90 per byte for inputs of 64 bytes and more.
constexpr std::uint64_t budget_per_byte = 400;
constexpr std::uint64_t budget_per_arg = 2000;
constexpr std::uint64_t budget_fixed = 20000;

bool names_a_config_file(std::string_view a) {
  if (a.size() < 2 || a[0] != '-') return false;
  if (a[1] == '-') return a.size() >= 3 && a[2] == 'c';  // --c, --co, ... --config
  return a.find('c') != std::string_view::npos;          // -c, -vc, -Dc... (over-careful)
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool env = [] {
    ::setenv("QGA_CONF", "/nonexistent/fleetga-fuzz/qemu-ga.conf", 1);
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    return true;
  }();
  (void)env;
  std::vector<std::string> args{"fleetga"};
  std::string cur;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(std::move(cur));
      cur.clear();
      if (args.size() > 256) return 0;
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  if (size > 0) args.push_back(std::move(cur));
  for (std::size_t i = 1; i < args.size(); ++i)
    if (names_a_config_file(args[i])) return 0;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  fleetga::fuzz::budget::start();
  fleetga::agent::options o;
  auto r = fleetga::agent::parse_options(static_cast<int>(args.size()), argv.data(), o);
  fleetga::fuzz::budget::check(size, args.size(), budget_per_byte, budget_per_arg, budget_fixed);
  if (r.act == fleetga::agent::parse_result::action::exit) FUZZ_CHECK(r.status == 0 || r.status == 1);
  std::fflush(stdout);
  return 0;
}
