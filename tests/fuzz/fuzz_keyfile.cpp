// libFuzzer target for the GLib key-file parser (platform/keyfile) and the files read with it:
// qga.state (commands::parse_state / serialize) and os-release ("[os-release]\n" prepended,
// as commands/system.cpp and qemu-ga do). The config file is fuzz_config's.
// Invariants: no crash or sanitizer report; every entry of a parsed file is what get()
// finds for its group and key unless a later entry assigns the same key; no value holds a
// newline; a parsed qga.state serializes to a file that parses back to the same state and
// serializes to the same bytes (but see check_state); the work stays within the budget (budget.hpp).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "budget.hpp"
#include "common.hpp"
#include "commands/state.hpp"
#include "platform/keyfile.hpp"

namespace fp = fleetga::platform;
namespace fc = fleetga::commands;

namespace {

void check_keyfile(std::string_view text) {
  std::string error;
  auto kf = fp::keyfile::parse(text, error);
  if (!kf) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  const auto& e = kf->entries();
  // get() returns the last assignment: check it for the last few entries only (a scan of
  // every entry against every later one would be the quadratic walk the budget forbids).
  for (std::size_t i = e.size() > 8 ? e.size() - 8 : 0; i < e.size(); ++i) {
    FUZZ_CHECK(e[i].value.find('\n') == std::string::npos);
    const std::string* v = kf->get(e[i].group, e[i].key);
    FUZZ_CHECK(v != nullptr);
    bool later = false;
    for (std::size_t j = i + 1; j < e.size(); ++j) later |= e[j].group == e[i].group && e[j].key == e[i].key;
    if (!later) FUZZ_CHECK(*v == e[i].value);
  }
}

void check_state(std::string_view text) {
  std::string error;
  auto s = fc::parse_state(text, error);
  if (!s) return;
  // Saving and loading again keeps the state and the bytes, with one exception: a bad level
  // that ends in '\r' (at the end of a file without a final newline) loses that '\r' at the
  // save, because GLib strips the '\r' of a "\r\n" line end (as after GLib's own
  // g_key_file_to_data() and reload); what is left may even be a valid level ("1.1\r").
  const std::string saved = fc::serialize(*s);
  auto next = fc::parse_state(saved, error);
  FUZZ_CHECK(next);
  FUZZ_CHECK(next->fd_counter == s->fd_counter);
  if (s->level) FUZZ_CHECK(next->level && next->level->packed() == s->level->packed());
  if (s->bad_level && !s->bad_level->empty() && s->bad_level->back() == '\r') {
    const std::string_view cut = std::string_view(*s->bad_level).substr(0, s->bad_level->size() - 1);
    FUZZ_CHECK(next->bad_level ? *next->bad_level == cut : next->level.has_value());
  } else {
    FUZZ_CHECK(next->bad_level == s->bad_level);
    FUZZ_CHECK(fc::serialize(*next) == saved);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fleetga::fuzz::budget::start();
  check_keyfile(text);
  check_state(text);
  std::string osrelease = "[os-release]\n";
  osrelease.append(text);
  if (auto kf = fp::keyfile::parse(osrelease)) {
    for (const char* k : {"ID", "NAME", "PRETTY_NAME", "VERSION", "VERSION_ID", "VARIANT", "VARIANT_ID"})
      (void)kf->get("os-release", k);
  }
  (void)fp::valid_utf8(text);
  (void)fc::glib_integer(text.substr(0, text.find('\n')));
  // Measured up to ~55 regions per byte.
  fleetga::fuzz::budget::check(size, 0, 300, 0, 30000);
  return 0;
}
