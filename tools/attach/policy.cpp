#include "tools/attach/policy.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <system_error>

#include <fmt/format.h>

namespace fleetga::host::attach {

using commands::minimum_support_level;
using commands::to_string;

namespace {

// "FILE:LINE: reason"; line 0 (the file as a whole): "FILE: reason"; no file name (a config
// given as text): "line LINE: reason".
std::string error_text(const std::string& file, int line, const std::string& reason) {
  if (file.empty()) return fmt::format("line {}: {}", line, reason);
  if (line <= 0) return fmt::format("{}: {}", file, reason);
  return fmt::format("{}:{}: {}", file, line, reason);
}

}  // namespace

config_error::config_error(std::string f, int l, const std::string& reason)
    : std::runtime_error(error_text(f, l, reason)), file(std::move(f)), line(l) {}

namespace {

constexpr std::string_view blanks = " \t";

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(blanks);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(blanks) - b + 1);
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// ---------------------------------------------------------------------------------------------
// The config file

constexpr std::string_view host_keys = "level, cap, skip, timeout, concurrency";
constexpr std::string_view domain_keys = "level, cap, skip";

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return r;
}

// Whole string, decimal, no sign, no blanks: "08" is 8, "+8", "8s" and "" are not numbers.
std::optional<int> parse_int_in(std::string_view v, int lo, int hi) {
  if (v.empty() || v[0] < '0' || v[0] > '9') return std::nullopt;
  int n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || p != v.data() + v.size() || n < lo || n > hi) return std::nullopt;
  return n;
}

// The section being read, for the checks that need more than the current line.
struct section_state {
  bool is_host = false;
  std::size_t domain = 0;           // index in cfg.domains (not a pointer: the vector grows)
  std::string title;                // "[host]" or "[domain \"web-*\"]", for messages
  std::map<std::string, int> keys;  // key -> line, for duplicates
};

// A `[...]` line (already trimmed, starts with '['): the section it opens.
section_state open_section(attach_config& cfg, std::string_view line, int lineno,
                           const std::string& path, int& host_line,
                           std::map<std::string, int, std::less<>>& patterns) {
  const auto fail = [&](const std::string& why) { throw config_error(path, lineno, why); };
  // The first ']' outside double quotes: a glob's own brackets ("app-[0-9]*") are not it.
  auto close = std::string_view::npos;
  bool quoted = false;
  for (std::size_t i = 1; i < line.size() && close == std::string_view::npos; ++i) {
    if (line[i] == '"') quoted = !quoted;
    else if (line[i] == ']' && !quoted) close = i;
  }
  // Unbalanced quotes: the line's last ']' closes it, the quote error is said below.
  if (close == std::string_view::npos && line.back() == ']') close = line.size() - 1;
  if (close == std::string_view::npos)
    fail(fmt::format("unterminated section header '{}' (no closing ']')", line));
  if (close != line.size() - 1)
    fail(fmt::format("unexpected '{}' after the section header '{}'", line.substr(close + 1),
                     line.substr(0, close + 1)));
  const auto inner = trim(line.substr(1, close - 1));
  section_state s;
  if (inner == "host") {
    if (host_line)
      fail(fmt::format("a second [host] section (the first is at line {}); one per file",
                       host_line));
    host_line = lineno;
    cfg.host.line = lineno;
    s.is_host = true;
    s.title = "[host]";
    return s;
  }
  // "domain" then the pattern in double quotes; the pattern may hold anything but a '"' (no
  // escapes: domain names and UUIDs never need one).
  if (inner.substr(0, 6) == "domain" &&
      (inner.size() == 6 || inner[6] == ' ' || inner[6] == '\t' || inner[6] == '"')) {
    const auto rest = trim(inner.substr(6));
    if (rest.size() < 2 || rest.front() != '"' || rest.back() != '"' ||
        rest.substr(1, rest.size() - 2).find('"') != std::string_view::npos)
      fail(fmt::format("'{}': the pattern goes in double quotes: [domain \"PATTERN\"]", line));
    const auto pattern = rest.substr(1, rest.size() - 2);
    if (pattern.empty()) fail(fmt::format("'{}': empty domain pattern", line));
    if (auto it = patterns.find(pattern); it != patterns.end())
      fail(fmt::format("duplicate section [domain \"{}\"] (the first is at line {})", pattern,
                       it->second));
    patterns.emplace(std::string(pattern), lineno);
    cfg.domains.push_back({std::string(pattern), {}});
    cfg.domains.back().settings.line = lineno;
    s.domain = cfg.domains.size() - 1;
    s.title = fmt::format("[domain \"{}\"]", pattern);
    return s;
  }
  fail(fmt::format("unknown section '{}' (valid: [host], [domain \"PATTERN\"])", line));
  return s;  // not reached
}

void set_key(attach_config& cfg, section_state& s, std::string_view key, std::string_view value,
             int lineno, const std::string& path) {
  const auto fail = [&](const std::string& why) { throw config_error(path, lineno, why); };
  const bool known = key == "level" || key == "cap" || key == "skip" ||
                     (s.is_host && (key == "timeout" || key == "concurrency"));
  if (!known) {
    if (key == "timeout" || key == "concurrency")
      fail(fmt::format("unknown key '{}' in {} (valid: {}); '{}' is a [host] key", key, s.title,
                       domain_keys, key));
    fail(fmt::format("unknown key '{}' in {} (valid: {})", key, s.title,
                     s.is_host ? host_keys : domain_keys));
  }
  if (auto [it, fresh] = s.keys.emplace(std::string(key), lineno); !fresh)
    fail(fmt::format("duplicate key '{}' in {} (the first is at line {})", key, s.title,
                     it->second));
  scope_settings& scope = s.is_host ? cfg.host : cfg.domains[s.domain].settings;

  if (key == "level" || key == "cap") {
    const auto l = commands::parse_support_level(value);
    if (!l)
      fail(fmt::format("{}: '{}' is not a support level (MAJ.MIN[.MIC], each 0..65535)", key,
                       value));
    (key == "level" ? scope.level : scope.cap) = *l;
    (key == "level" ? scope.level_line : scope.cap_line) = lineno;
  } else if (key == "skip") {
    const auto v = lower(value);
    scope.skip_line = lineno;
    if (v == "true" || v == "yes" || v == "1")
      scope.skip = true;
    else if (v == "false" || v == "no" || v == "0")
      scope.skip = false;
    else
      fail(fmt::format("skip: '{}' is not a boolean (true/false, yes/no, 1/0)", value));
  } else if (key == "timeout") {
    const auto n = parse_int_in(value, 1, 300);
    if (!n) fail(fmt::format("timeout: '{}' is not a number of seconds in 1..300", value));
    cfg.timeout_s = *n;
  } else {
    const auto n = parse_int_in(value, 1, 256);
    if (!n) fail(fmt::format("concurrency: '{}' is not a whole number in 1..256", value));
    cfg.concurrency = *n;
  }
}

// ---------------------------------------------------------------------------------------------
// Domain XML: just enough of a tokenizer to know which element a tag belongs to.

struct xml_tag {
  std::string_view name;
  std::string_view attrs;  // between the name and the closing '>' or '/>'
  bool end = false;        // </name>
  bool empty = false;      // <name .../>
};

// Next tag at or after `pos`, skipping comments, CDATA, processing instructions and the
// DOCTYPE (whose text may look like tags); nullopt at the end or on a truncated tag.
std::optional<xml_tag> next_tag(std::string_view x, std::size_t& pos) {
  while (true) {
    const auto lt = x.find('<', pos);
    if (lt == std::string_view::npos) return std::nullopt;
    const auto rest = x.substr(lt);
    const auto skip_past = [&](std::string_view close) {
      const auto e = x.find(close, lt);
      if (e == std::string_view::npos) return false;
      pos = e + close.size();
      return true;
    };
    if (starts_with(rest, "<!--")) {
      if (!skip_past("-->")) return std::nullopt;
      continue;
    }
    if (starts_with(rest, "<![CDATA[")) {
      if (!skip_past("]]>")) return std::nullopt;
      continue;
    }
    if (starts_with(rest, "<?")) {
      if (!skip_past("?>")) return std::nullopt;
      continue;
    }
    if (starts_with(rest, "<!")) {  // <!DOCTYPE ... [ internal subset ] >
      int bracket = 0;
      std::size_t i = lt + 2;
      for (; i < x.size(); ++i) {
        if (x[i] == '[') ++bracket;
        else if (x[i] == ']') --bracket;
        else if (x[i] == '>' && bracket <= 0) break;
      }
      if (i >= x.size()) return std::nullopt;
      pos = i + 1;
      continue;
    }
    xml_tag t;
    std::size_t i = lt + 1;
    if (i < x.size() && x[i] == '/') {
      t.end = true;
      ++i;
    }
    const auto name_start = i;
    while (i < x.size() && x[i] != '>' && x[i] != '/' && x[i] != ' ' && x[i] != '\t' &&
           x[i] != '\n' && x[i] != '\r')
      ++i;
    t.name = x.substr(name_start, i - name_start);
    // The tag ends at the first '>' outside a quoted attribute value.
    const auto attrs_start = i;
    char quote = 0;
    for (; i < x.size(); ++i) {
      if (quote) {
        if (x[i] == quote) quote = 0;
      } else if (x[i] == '"' || x[i] == '\'') {
        quote = x[i];
      } else if (x[i] == '>') {
        break;
      }
    }
    if (i >= x.size()) return std::nullopt;
    auto attrs_end = i;
    if (attrs_end > attrs_start && x[attrs_end - 1] == '/') {
      t.empty = true;
      --attrs_end;
    }
    t.attrs = x.substr(attrs_start, attrs_end - attrs_start);
    pos = i + 1;
    return t;
  }
}

// The value of attribute `name` (either quote style, blanks around '='), nullopt if absent.
std::optional<std::string_view> attribute(std::string_view attrs, std::string_view name) {
  constexpr std::string_view ws = " \t\r\n";
  std::size_t i = 0;
  while (true) {
    i = attrs.find_first_not_of(ws, i);
    if (i == std::string_view::npos) return std::nullopt;
    const auto eq = attrs.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    auto n = attrs.substr(i, eq - i);
    n = n.substr(0, n.find_last_not_of(ws) + 1);
    auto v = attrs.find_first_not_of(ws, eq + 1);
    if (v == std::string_view::npos || (attrs[v] != '"' && attrs[v] != '\'')) return std::nullopt;
    const auto close = attrs.find(attrs[v], v + 1);
    if (close == std::string_view::npos) return std::nullopt;
    if (n == name) return attrs.substr(v + 1, close - v - 1);
    i = close + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// resolve()

// "[host] (FILE:LINE)", "[domain "web-*"] (FILE:LINE, matches the name)": where a setting comes
// from, as the operator would look for it: the key's line, else the section's (a config built
// in code has neither).
std::string where(const attach_config& cfg, std::string_view title, int key_line,
                  int section_line, std::string_view match = {}) {
  // key_line -1: the value came from the command line (--host-level), not from the file.
  if (key_line < 0) return "--host-level";
  const int line = key_line > 0 ? key_line : section_line;
  std::string loc;
  if (!cfg.path.empty() && line > 0) loc = fmt::format("{}:{}", cfg.path, line);
  if (!match.empty()) loc += loc.empty() ? std::string(match) : fmt::format(", {}", match);
  return loc.empty() ? std::string(title) : fmt::format("{} ({})", title, loc);
}

// "guest-suspend-ram and guest-suspend-hybrid need 1.1.0": the commands a level in (to, from]
// enables, i.e. the ones lowering `from` to `to` disables, grouped by the level they need.
// Nothing at or below 1.0.0 is ever disabled (a lower level is raised to it).
std::string disabled_between(support_level to, support_level from) {
  to = commands::clamp_to_minimum(to);
  std::map<std::uint64_t, std::vector<std::string_view>> by_level;
  for (const auto& r : level_rules())
    if (r.needs > to && r.needs <= from) by_level[r.needs.packed()].push_back(r.command);
  std::string out;
  for (const auto& [packed, names] : by_level) {
    if (!out.empty()) out += ", ";
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (i > 0) out += i + 1 == names.size() ? " and " : ", ";
      out += names[i];
    }
    out += fmt::format(" {} {}", names.size() == 1 ? "needs" : "need",
                       to_string(support_level::unpack(packed)));
  }
  return out;
}

// Lowers `lvl` to `to` when it is above it; the reason line says what that disables.
void lower_for_cap(decision& d, support_level& lvl, support_level to, std::string_view cause) {
  if (lvl <= to) return;
  const auto disabled = disabled_between(to, lvl);
  d.reasons.push_back(fmt::format("{}: {}{}lowered from {} to {}", cause, disabled,
                                  disabled.empty() ? "" : ", ", to_string(lvl), to_string(to)));
  lvl = to;
}

}  // namespace

attach_config parse_config(std::string_view text, const std::string& path) {
  attach_config cfg;
  cfg.path = path;
  if (starts_with(text, "\xEF\xBB\xBF")) text.remove_prefix(3);  // editors on other systems

  std::optional<section_state> sec;
  int host_line = 0;
  std::map<std::string, int, std::less<>> patterns;
  int lineno = 0;
  while (!text.empty()) {
    ++lineno;
    const auto nl = text.find('\n');
    auto raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    const auto line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      sec = open_section(cfg, line, lineno, path, host_line, patterns);
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos)
      throw config_error(path, lineno,
                         fmt::format("'{}' is not `key = value`, a [section] header or a comment",
                                     line));
    const auto key = trim(line.substr(0, eq));
    const auto value = trim(line.substr(eq + 1));
    if (key.empty()) throw config_error(path, lineno, fmt::format("'{}' has no key", line));
    if (!sec)
      throw config_error(path, lineno,
                         fmt::format("key '{}' before any section ([host] or [domain \"PATTERN\"])",
                                     key));
    set_key(cfg, *sec, key, value, lineno, path);
  }
  return cfg;
}

attach_config load_config(const std::string& path) {
  // Far above any real config; a bigger file is not a config file (a log, a disk image).
  constexpr std::size_t limit = 1 << 20;
  const auto sys_error = [&](std::string_view what) {
    return config_error(path, 0,
                        fmt::format("{}: {}", what, std::generic_category().message(errno)));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw sys_error("cannot open it");
  std::string text;
  char buf[65536];
  while (true) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const auto e = sys_error("cannot read it");
      ::close(fd);
      throw e;
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > limit) {
      ::close(fd);
      throw config_error(path, 0, "larger than 1 MiB: not a config file");
    }
  }
  ::close(fd);
  return parse_config(text, path);
}

domain_caps parse_domain_caps(std::string_view xml) {
  domain_caps caps;
  std::size_t pos = 0;
  int depth = 0;  // elements open around the next tag; the root is at 0
  bool in_pm = false;
  while (auto t = next_tag(xml, pos)) {
    if (t->end) {
      if (--depth <= 0) break;  // past the root: nothing after it is the domain's
      if (depth == 1) in_pm = false;
      continue;
    }
    if (depth == 0) {
      // Not a domain's XML: its defaults, i.e. can. <domain/>: nothing in it.
      if (t->name != "domain" || t->empty) break;
    } else if (depth == 1 && t->name == "pm") {
      in_pm = !t->empty;
    } else if (depth == 2 && in_pm &&
               (t->name == "suspend-to-mem" || t->name == "suspend-to-disk")) {
      // libvirt writes 'yes' or 'no'; anything else leaves QEMU's default.
      const auto enabled = attribute(t->attrs, "enabled");
      if (enabled == "no" || enabled == "yes")
        (t->name == "suspend-to-mem" ? caps.s3 : caps.s4) = *enabled == "yes";
    }
    if (!t->empty) ++depth;
  }
  return caps;
}

decision resolve(const attach_config& cfg, std::optional<support_level> host_level,
                 const domain_facts& dom) {
  decision d;
  support_level lvl = minimum_support_level;
  if (host_level) {
    lvl = *host_level;
    d.reasons.push_back(fmt::format("host QEMU version {}: level {}", to_string(lvl),
                                    to_string(lvl)));
  } else {
    d.reasons.push_back(
        fmt::format("host QEMU version unknown: level {}, the default", to_string(lvl)));
  }

  // [host]: what the operator says about this host.
  const auto& host = cfg.host;
  const auto host_where = [&](int key_line) { return where(cfg, "[host]", key_line, host.line); };
  if (host.level) {
    const auto at = host_where(host.level_line);
    d.reasons.push_back(*host.level == lvl
                            ? fmt::format("{} level = {} (the same)", at, to_string(lvl))
                            : fmt::format("{} level = {} replaces {}", at,
                                          to_string(*host.level), to_string(lvl)));
    lvl = *host.level;
  }
  if (host.cap)
    lower_for_cap(d, lvl, *host.cap,
                  fmt::format("{} cap = {}", host_where(host.cap_line), to_string(*host.cap)));

  // What the domain can do: a command it cannot run stays disabled. S4 is listed for the day a
  // command needs it above 1.0.0 (guest-suspend-disk works on any host today: no-op).
  if (!dom.xml.empty()) {
    const auto caps = parse_domain_caps(dom.xml);
    const struct {
      bool can;
      std::string_view element, command;
    } needs[] = {{caps.s3, "suspend-to-mem", "guest-suspend-ram"},
                 {caps.s4, "suspend-to-disk", "guest-suspend-disk"}};
    for (const auto& n : needs)
      if (!n.can)
        if (const auto top = highest_level_without(n.command))
          lower_for_cap(d, lvl, *top,
                        fmt::format("{} disabled in the domain XML", n.element));
  }

  // The first [domain] section whose pattern matches the name or the UUID (UUIDs are hex: any
  // case matches).
  const domain_rule* rule = nullptr;
  std::string_view match;
  for (const auto& r : cfg.domains) {
    if (::fnmatch(r.pattern.c_str(), dom.name.c_str(), 0) == 0) {
      rule = &r;
      match = "matches the name";
    } else if (!dom.uuid.empty() &&
               ::fnmatch(r.pattern.c_str(), dom.uuid.c_str(), FNM_CASEFOLD) == 0) {
      rule = &r;
      match = "matches the UUID";
    }
    if (rule) break;
  }
  const auto dom_where = [&](int key_line) {
    return where(cfg, fmt::format("[domain \"{}\"]", rule->pattern), key_line,
                 rule->settings.line, match);
  };
  if (rule) {
    const auto& s = rule->settings;
    if (s.level) {
      const auto at = dom_where(s.level_line);
      // The host cap is about the host (what its QEMU can take): a domain can't raise it.
      if (cfg.host.cap && *s.level > *cfg.host.cap) {
        d.reasons.push_back(fmt::format(
            "{} level = {} is above the [host] cap {}: the host cap wins, level {}", at,
            to_string(*s.level), to_string(*cfg.host.cap), to_string(*cfg.host.cap)));
        lvl = *cfg.host.cap;
      } else {
        d.reasons.push_back(*s.level == lvl
                                ? fmt::format("{} level = {} (the same)", at, to_string(lvl))
                                : fmt::format("{} level = {} replaces {}", at,
                                              to_string(*s.level), to_string(lvl)));
        lvl = *s.level;
      }
    }
    if (s.cap)
      lower_for_cap(d, lvl, *s.cap,
                    fmt::format("{} cap = {}", dom_where(s.cap_line), to_string(*s.cap)));
  }

  const auto clamped = commands::clamp_to_minimum(lvl);
  if (clamped != lvl)
    d.reasons.push_back(fmt::format("{} is below {}, the lowest support level: raised to {}",
                                    to_string(lvl), to_string(clamped), to_string(clamped)));
  d.level = clamped;

  // skip last, so that a skipped domain's last reason is the one that says why (the engine
  // logs it); the level above is what the domain would get without it (--explain shows it).
  const bool host_skip = cfg.host.skip.value_or(false);
  const auto dom_skip = rule ? rule->settings.skip : std::nullopt;
  if (dom_skip == true)
    d.reasons.push_back(fmt::format("{} skip = true: this agent is left alone",
                                    dom_where(rule->settings.skip_line)));
  else if (dom_skip == false && host_skip)
    d.reasons.push_back(fmt::format("{} skip = false: overrides [host] skip = true",
                                    dom_where(rule->settings.skip_line)));
  else if (host_skip)
    d.reasons.push_back(fmt::format(
        "{} skip = true: agents are left alone unless their [domain] section says skip = false",
        host_where(host.skip_line)));
  d.skip = dom_skip.value_or(host_skip);
  return d;
}

std::string explain(const decision& d, const domain_facts& dom) {
  std::string out = fmt::format("domain {} (UUID {})\n", dom.name.empty() ? "?" : dom.name,
                                dom.uuid.empty() ? "unknown" : dom.uuid);
  if (d.skip)
    out += fmt::format("level: skipped (the agent keeps the level it has; without skip: {})\n",
                       to_string(d.level));
  else
    out += fmt::format("level: {}\n", to_string(d.level));
  out += "because:\n";
  for (std::size_t i = 0; i < d.reasons.size(); ++i)
    out += fmt::format("  {}. {}\n", i + 1, d.reasons[i]);

  std::vector<const level_rule*> above;
  std::size_t at_minimum = 0;
  std::size_t width = std::string_view("command").size(), needs_width = 5;
  for (const auto& r : level_rules()) {
    if (r.needs > minimum_support_level) {
      above.push_back(&r);
      width = std::max(width, r.command.size());
      needs_width = std::max(needs_width, to_string(r.needs).size());
    } else {
      ++at_minimum;
    }
  }
  if (above.empty()) {
    out += fmt::format("every command ({}) needs only {}: all are enabled at every level\n",
                       at_minimum, to_string(minimum_support_level));
    return out;
  }
  out += fmt::format("commands that need more than {}:\n", to_string(minimum_support_level));
  out += fmt::format("  {:<{}}  {:<{}}  {:<7}  {}\n", "command", width, "needs", needs_width,
                     "enabled", "why");
  for (const auto* r : above)
    out += fmt::format("  {:<{}}  {:<{}}  {:<7}  {}\n", r->command, width, to_string(r->needs),
                       needs_width, d.skip ? "-" : r->needs <= d.level ? "yes" : "no", r->why);
  if (d.skip) out += "  (enabled: '-', the agent's own level decides)\n";
  out += fmt::format("{} other command{} only {} and {} enabled at every level\n", at_minimum,
                     at_minimum == 1 ? " needs" : "s need", to_string(minimum_support_level),
                     at_minimum == 1 ? "is" : "are");
  return out;
}

std::optional<support_level> level_from_version_number(unsigned long long v) {
  if (v == 0) return std::nullopt;  // libvirt's "unknown"
  const auto major = v / 1000000;
  if (major > 65535) return std::nullopt;
  return support_level{static_cast<std::uint16_t>(major),
                       static_cast<std::uint16_t>(v / 1000 % 1000),
                       static_cast<std::uint16_t>(v % 1000)};
}

std::optional<support_level> level_from_qemu_banner(std::string_view text) {
  auto line = trim(text.substr(0, text.find('\n')));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // "QEMU emulator version 7.2.15 (...)", "QEMU PC emulator version 0.12.1 (qemu-kvm-0.12.1.2)"
  if (!starts_with(line, "QEMU ")) return std::nullopt;
  constexpr std::string_view key = " version ";
  const auto k = line.find(key);
  if (k == std::string_view::npos) return std::nullopt;
  const auto rest = line.substr(k + key.size());
  const auto n = std::min(rest.find_first_not_of("0123456789."), rest.size());
  // The number ends the line or is followed by a blank, '(' or ',' ("7.2.15a" is not one).
  if (n < rest.size() && rest[n] != ' ' && rest[n] != '\t' && rest[n] != '(' && rest[n] != ',')
    return std::nullopt;
  const auto l = commands::parse_support_level(rest.substr(0, n));
  if (!l || *l == support_level{0, 0, 0}) return std::nullopt;
  return l;
}

}  // namespace fleetga::host::attach
