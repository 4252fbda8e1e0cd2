#include "platform/keyfile.hpp"

#include <cstdint>

namespace fleetga::platform {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// g_key_file_is_group_name(): non-empty, no '[' ']' or ASCII control characters.
bool valid_group_name(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n) {
    auto u = static_cast<unsigned char>(c);
    if (c == '[' || c == ']' || u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

bool locale_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '_' || c == '.' || c == '@' || u >= 0x80;  // non-ASCII alnum: accepted loosely
}

// g_key_file_is_key_name(): no '=' '[' ']' in the name, no leading/trailing space, optional
// "[locale]" suffix.
bool valid_key_name(std::string_view k) {
  std::size_t q = 0;
  while (q < k.size() && k[q] != '=' && k[q] != '[' && k[q] != ']') ++q;
  if (q == 0) return false;
  if (k[0] == ' ' || k[q - 1] == ' ') return false;
  if (q < k.size() && k[q] == '[') {
    ++q;
    while (q < k.size() && locale_char(k[q])) ++q;
    if (q >= k.size() || k[q] != ']') return false;
    ++q;
  }
  return q == k.size();
}

}  // namespace

std::optional<keyfile> keyfile::parse(std::string_view data, std::string& error) {
  keyfile kf;
  std::string group;
  bool have_group = false;
  // GLib loads from a NUL-terminated copy (length -1), so a NUL ends the data.
  if (auto nul = data.find('\0'); nul != std::string_view::npos) data = data.substr(0, nul);
  std::size_t pos = 0;
  while (pos <= data.size()) {
    std::size_t nl = data.find('\n', pos);
    bool last = nl == std::string_view::npos;
    std::string_view line = data.substr(pos, last ? std::string_view::npos : nl - pos);
    pos = last ? data.size() + 1 : nl + 1;
    // GLib drops the '\r' of a "\r\n" only: an unterminated last line keeps it.
    if (!last && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view whole = line;  // GLib quotes the line untrimmed
    std::size_t s = 0;
    while (s < line.size() && is_space(line[s])) ++s;
    line.remove_prefix(s);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      std::size_t close = line.find(']');
      if (close != std::string_view::npos) {
        std::size_t t = close + 1;
        while (t < line.size() && (line[t] == ' ' || line[t] == '\t')) ++t;
        if (t == line.size()) {
          std::string_view name = line.substr(1, close - 1);
          if (!valid_group_name(name)) {
            error = "Invalid group name: " + std::string(name);
            return std::nullopt;
          }
          group.assign(name);
          have_group = true;
          continue;
        }
      }
    }
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) {  // GLib wants a non-empty key before '='
      error = std::string("Key file contains line \xE2\x80\x9C")  // “
                  .append(whole)
                  .append("\xE2\x80\x9D which is not a key-value pair, group, or comment");  // ”
      return std::nullopt;
    }
    if (!have_group) {
      error = "Key file does not start with a group";
      return std::nullopt;
    }
    std::size_t kend = eq;
    while (kend > 0 && is_space(line[kend - 1])) --kend;
    std::string_view key = line.substr(0, kend);
    if (!valid_key_name(key)) {
      error = "Invalid key name: " + std::string(key);
      return std::nullopt;
    }
    std::size_t vs = eq + 1;
    while (vs < line.size() && is_space(line[vs])) ++vs;
    kf.entries_.push_back({group, std::string(key), std::string(line.substr(vs))});
  }
  return kf;
}

const std::string* keyfile::get(std::string_view group, std::string_view key) const {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
    if (it->group == group && it->key == key) return &it->value;
  return nullptr;
}

bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned c = *p;
    if (c < 0x80) { ++p; continue; }
    int n;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
    else return false;
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

}  // namespace fleetga::platform
