#pragma once
// The work budget of a fuzz input: a deterministic count of the code under test that ran
// for it, checked against a bound linear in the input, so that a quadratic walk (a list
// decoder that rescans, a parser that re-splits) fails the run like a crash does.
//
// How it counts: fleetga_protocol, fleetga_platform and fleetga_commands are compiled in the
// fuzz build with clang's front-end profile instrumentation (-fprofile-instr-generate): one
// 64-bit counter per code region (function entry, loop body, branch), kept in the
// __llvm_prf_cnts section. budget::start() zeroes that section, budget::used() sums it. The
// counts do not depend on the machine, its load or its hardware (this VM has no hardware
// performance counters), only on the input; libFuzzer's own inline 8-bit counters are
// separate. The profile runtime's write-at-exit is disabled (budget.cpp defines
// __llvm_profile_runtime), so no default.profraw appears.
//
// A target calls start() before the work it wants to bound and check(size, ...) after it.
// FLEETGA_FUZZ_BUDGET_REPORT=1 prints "budget: bytes=N units=U count=C" for every input
// (used to measure the ratios quoted in the targets' comments).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" {
extern std::uint64_t __start___llvm_prf_cnts[];
extern std::uint64_t __stop___llvm_prf_cnts[];
}

namespace fleetga::fuzz::budget {

inline void start() noexcept {
  for (std::uint64_t* p = __start___llvm_prf_cnts; p < __stop___llvm_prf_cnts; ++p) *p = 0;
}

inline std::uint64_t used() noexcept {
  std::uint64_t s = 0;
  for (const std::uint64_t* p = __start___llvm_prf_cnts; p < __stop___llvm_prf_cnts; ++p) s += *p;
  return s;
}

// Aborts when the count since start() exceeds per_byte * bytes + per_unit * units + fixed.
// `units` is what a target wants charged separately from bytes (fuzz_dispatch: requests).
inline void check(std::size_t bytes, std::size_t units, std::uint64_t per_byte, std::uint64_t per_unit,
                  std::uint64_t fixed) {
  const std::uint64_t n = used();
  static const bool report = std::getenv("FLEETGA_FUZZ_BUDGET_REPORT") != nullptr;
  if (report)
    std::fprintf(stderr, "budget: bytes=%zu units=%zu count=%llu\n", bytes, units, static_cast<unsigned long long>(n));
  const std::uint64_t limit = per_byte * bytes + per_unit * units + fixed;
  if (n > limit) {
    std::fprintf(stderr,
                 "work budget exceeded: %llu counted regions for %zu bytes (%zu units), limit %llu "
                 "(%llu per byte + %llu per unit + %llu)\n",
                 static_cast<unsigned long long>(n), bytes, units, static_cast<unsigned long long>(limit),
                 static_cast<unsigned long long>(per_byte), static_cast<unsigned long long>(per_unit),
                 static_cast<unsigned long long>(fixed));
    std::abort();
  }
}

}  // namespace fleetga::fuzz::budget
