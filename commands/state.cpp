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

std::string serialize(const persistent_state& s) {
  // g_key_file_to_data(): "[group]\nkey=value\n", no blank line for a single group.
  std::string out = "[global]\nfd_counter=";
  out += std::to_string(s.fd_counter);
  out += '\n';
  if (s.level) {
    out += "support_level=";
    out += to_string(*s.level);
    out += '\n';
  }
  return out;
}

std::optional<persistent_state> parse_state(std::string_view text) {
  auto kf = platform::keyfile::parse(text);
  if (!kf) return std::nullopt;
  persistent_state s;
  if (const std::string* v = kf->get("global", "fd_counter")) {
    // g_key_file_get_integer(): strtol base 10, trailing whitespace allowed.
    std::string_view t = *v;
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    std::int64_t n = 0;
    auto [q, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (ec == std::errc{} && q == t.data() + t.size() && !t.empty()) s.fd_counter = n;
  }
  if (const std::string* v = kf->get("global", "support_level"))
    if (auto l = parse_support_level(*v)) s.level = clamp_to_minimum(*l);
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
