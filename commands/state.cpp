#include "commands/state.hpp"

#include <algorithm>
#include <charconv>

#include "commands/table.hpp"
#include "platform/keyfile.hpp"

namespace fleetga::commands {

std::optional<support_level> parse_support_level(std::string_view text) noexcept {
  std::uint16_t parts[3] = {0, 0, 0};
  int n = 0;
  const char* p = text.data();
  const char* end = p + text.size();
  while (true) {
    if (n == 3 || p == end || *p < '0' || *p > '9') return std::nullopt;
    unsigned v = 0;
    auto [q, ec] = std::from_chars(p, end, v);
    if (ec != std::errc{} || v > 65535) return std::nullopt;
    parts[n++] = static_cast<std::uint16_t>(v);
    p = q;
    if (p == end) break;
    if (*p != '.') return std::nullopt;
    ++p;
  }
  if (n < 2) return std::nullopt;
  return support_level{parts[0], parts[1], parts[2]};
}

std::string to_string(support_level l) {
  std::string s = std::to_string(l.major);
  s += '.';
  s += std::to_string(l.minor);
  s += '.';
  s += std::to_string(l.micro);
  return s;
}

namespace {

bool glib_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

}  // namespace

std::int32_t glib_integer(std::string_view value) noexcept {
  // g_key_file_parse_value_as_integer(): strtol(value, &end, 10); an error when the value is
  // empty, when end stops at anything but NUL or a blank, on ERANGE or when the long does not
  // fit a gint. g_key_file_get_integer() then returns 0, and qemu-ga stores that 0.
  if (auto nul = value.find('\0'); nul != std::string_view::npos) value = value.substr(0, nul);  // a C string
  const char* p = value.data();
  const char* const end = p + value.size();
  while (p != end && glib_space(*p)) ++p;  // strtol's leading blanks
  bool negative = false;
  if (p != end && (*p == '+' || *p == '-')) negative = *p++ == '-';
  const char* const digits = p;
  std::int64_t n = 0;  // magnitude, capped once past any gint
  while (p != end && *p >= '0' && *p <= '9') {
    if (n <= std::int64_t{1} << 32) n = n * 10 + (*p - '0');
    ++p;
  }
  if (value.empty()) return 0;
  // No digits: strtol's end is the value's start (a blank there passes GLib's check and
  // reads as 0, anything else is an error - 0 as well).
  if (p == digits) return 0;
  if (p != end && !glib_space(*p)) return 0;
  if (negative) n = -n;
  if (n < std::numeric_limits<std::int32_t>::min() || n > std::numeric_limits<std::int32_t>::max()) return 0;
  return static_cast<std::int32_t>(n);
}

std::string serialize(const persistent_state& s) {
  // g_key_file_to_data(): "[group]\nkey=value\n", no blank line for a single group.
  std::string out = "[global]\nfd_counter=";
  out += std::to_string(s.fd_counter);
  out += '\n';
  if (s.level) {
    out += "support_level=";
    out += to_string(*s.level);
    out += '\n';
  } else if (s.bad_level) {
    out += "support_level=";
    out += *s.bad_level;
    out += '\n';
  }
  return out;
}

std::optional<persistent_state> parse_state(std::string_view text, std::string& error) {
  auto kf = platform::keyfile::parse(text, error);
  if (!kf) return std::nullopt;
  persistent_state s;
  if (const std::string* v = kf->get("global", "fd_counter")) s.fd_counter = glib_integer(*v);
  if (const std::string* v = kf->get("global", "support_level")) {
    if (auto l = parse_support_level(*v)) s.level = clamp_to_minimum(*l);
    else s.bad_level = *v;
  }
  return s;
}

platform::stdio_file* file_table::find(std::int64_t handle) noexcept {
  auto it = std::lower_bound(files_.begin(), files_.end(), handle,
                             [](const auto& e, std::int64_t h) { return e.first < h; });
  return it != files_.end() && it->first == handle ? it->second.get() : nullptr;
}

void file_table::add(std::int64_t handle, std::unique_ptr<platform::stdio_file> f) {
  auto it = std::lower_bound(files_.begin(), files_.end(), handle,
                             [](const auto& e, std::int64_t h) { return e.first < h; });
  files_.insert(it, {handle, std::move(f)});
}

void file_table::remove(std::int64_t handle) noexcept {
  auto it = std::lower_bound(files_.begin(), files_.end(), handle,
                             [](const auto& e, std::int64_t h) { return e.first < h; });
  if (it != files_.end() && it->first == handle) files_.erase(it);
}

agent_state::agent_state(offloader& p, platform::system& s, std::string dir,
                         std::uint64_t list_allowed, support_level dflt)
    : pool(p),
      sys(s),
      gate(list_allowed, freeze_safe_mask),
      statedir(std::move(dir)),
      default_level(clamp_to_minimum(dflt)) {
  gate.set_level(default_level);
}

}  // namespace fleetga::commands
