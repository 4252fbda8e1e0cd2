#pragma once
// What every fuzz target shares: FUZZ_CHECK (abort, so libFuzzer keeps the input) and the
// check of the agent's replies.
#include <cstdio>
#include <cstdlib>
#include <string>

#define FUZZ_CHECK(cond)  \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

namespace fleetga::fuzz {

// Replies are whole lines of printable ASCII, each optionally led by the 0xFF of
// guest-sync-delimited.
inline void check_reply_lines(const std::string& out) {
  bool line_start = true;
  for (unsigned char c : out) {
    if (line_start && c == 0xFF) {
      line_start = false;
      continue;
    }
    line_start = c == '\n';
    if (c == '\n') continue;
    if (c < 0x20 || c > 0x7E) {
      std::fprintf(stderr, "non-ASCII byte 0x%02x in a reply\n", c);
      std::abort();
    }
  }
  if (!out.empty() && out.back() != '\n') std::abort();
}

}  // namespace fleetga::fuzz
