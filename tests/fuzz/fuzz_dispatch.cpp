// libFuzzer target over the whole request path without Asio: framer -> request parsing ->
// gate -> argument decoding -> handlers (inline offloader) -> writer. Invariants: no crash,
// no sanitizer report, every reply is one line of printable ASCII (plus the 0xFF delimiter),
// and the output stays bounded.
//
// The fuzzer must never change the machine that runs it. Every system path of the platform
// layer goes under an empty temporary root, and, belt and braces, every command that writes
// or acts on a device is blocked: guest-file-open (its paths are the client's), the fsfreeze
// ioctls, fstrim, the ssh key writers, set-vcpus, set-memory-blocks, shutdown and suspend, guest-exec (it spawns), set-time and
// set-user-password. Blocked commands still
// go through the framer, the request checks and the gate.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "commands/offload.hpp"
#include "commands/service.hpp"
#include "platform/system.hpp"
#include "protocol/framer.hpp"

namespace {

std::string make_temp_dir(const char* pattern) {
  std::string t = pattern;
  if (!mkdtemp(t.data())) std::abort();
  return t;
}

struct fixture {
  fleetga::commands::inline_offloader pool;
  std::string root = make_temp_dir("/tmp/fleetga-fuzz-root.XXXXXX");
  fleetga::platform::linux_system sys{root};
  std::string statedir;
  fleetga::commands::service* svc = nullptr;

  fixture() {
    statedir = make_temp_dir("/tmp/fleetga-fuzz.XXXXXX");
    fleetga::commands::options o;
    o.statedir = statedir;
    o.block_rpcs = {"guest-file-open", "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list",
                    "guest-fsfreeze-thaw", "guest-fstrim", "guest-ssh-add-authorized-keys",
                    "guest-ssh-remove-authorized-keys", "guest-set-vcpus", "guest-set-memory-blocks",
                    "guest-shutdown", "guest-suspend-disk", "guest-suspend-ram",
                    "guest-suspend-hybrid", "guest-exec", "guest-set-time",
                    "guest-set-user-password"};
    svc = new fleetga::commands::service(o, pool, sys);
    if (auto err = svc->init()) {
      std::fprintf(stderr, "init: %s\n", err->c_str());
      std::abort();
    }
  }
  ~fixture() {
    delete svc;
    std::string state = statedir + "/qga.state";
    ::unlink(state.c_str());
    ::rmdir(statedir.c_str());
    ::rmdir(root.c_str());
  }
};

void check_replies(const std::string& out) {
  bool line_start = true;
  for (unsigned char c : out) {
    if (line_start && c == 0xFF) { line_start = false; continue; }
    line_start = c == '\n';
    if (c == '\n') continue;
    if (c < 0x20 || c > 0x7E) {
      std::fprintf(stderr, "non-ASCII byte 0x%02x in reply\n", c);
      std::abort();
    }
  }
  if (!out.empty() && out.back() != '\n') std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fixture fx;
  fleetga::protocol::framer framer;
  std::string out;
  std::size_t pos = 0;
  std::size_t chunk = size ? (data[0] % 64) + 1 : 1;
  while (pos < size) {
    std::size_t n = std::min(chunk, size - pos);
    auto space = framer.prepare(n);
    std::memcpy(space.data(), data + pos, n);
    framer.commit(n);
    pos += n;
    fleetga::protocol::frame f;
    while (framer.next(f)) {
      auto t = fx.svc->handle(f, out);
      if (!t.start()) std::abort();  // the inline offloader never leaves a handler pending
      t.take();
      check_replies(out);
      out.clear();
    }
  }
  return 0;
}
