#include "tools/common.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include "commands/schema.hpp"

namespace fleetga::host {
namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Integer at s[pos...] up to a non-digit; returns the end position or npos.
std::size_t parse_int_at(std::string_view s, std::size_t pos, std::int64_t& v) {
  const char* b = s.data() + pos;
  const char* e = s.data() + s.size();
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p == b) return std::string_view::npos;
  return static_cast<std::size_t>(p - s.data());
}

simdjson::ondemand::parser& tls_parser() {
  thread_local simdjson::ondemand::parser p;
  return p;
}

reply_info classify_slow(std::string_view t, bool want_ret_int) {
  reply_info r;
  simdjson::padded_string_view in(t.data(), t.size(), t.size() + simdjson::SIMDJSON_PADDING);
  auto doc = tls_parser().iterate(in);
  if (doc.error()) return r;
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) return r;
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return reply_info{};
    if (key == "return") {
      if (r.type == reply_info::kind::other) r.type = reply_info::kind::ret;
      if (want_ret_int) {
        std::int64_t v;
        if (!field.value().get_int64().get(v)) {
          r.ret_is_int = true;
          r.ret_int = v;
        }
      }
    } else if (key == "error") {
      r.type = reply_info::kind::error;
    } else if (key == "id") {
      std::int64_t v;
      if (!field.value().get_int64().get(v)) {
        r.has_id = true;
        r.id = v;
      }
    }
  }
  return r;
}

}  // namespace

reply_info classify_reply(std::string_view t, bool want_ret_int) {
  static constexpr std::string_view ret_p = "{\"return\": ";
  static constexpr std::string_view err_p = "{\"error\": ";
  static constexpr std::string_view id_p = "{\"id\": ";
  static constexpr std::string_view id_tail = ", \"id\": ";
  reply_info r;
  if (t.size() < 3 || t.back() != '}') return classify_slow(t, want_ret_int);
  if (starts_with(t, ret_p)) {
    r.type = reply_info::kind::ret;
    if (want_ret_int) {
      std::int64_t v;
      std::size_t e = parse_int_at(t, ret_p.size(), v);
      if (e != std::string_view::npos && (t[e] == '}' || t[e] == ',')) {
        r.ret_is_int = true;
        r.ret_int = v;
      }
    }
    // `..., "id": N}`: the id is the last member after `return`.
    std::size_t i = t.size() - 1;
    while (i > 0 && t[i - 1] >= '0' && t[i - 1] <= '9') --i;
    if (i < t.size() - 1) {
      std::size_t s = i;
      if (s > 0 && t[s - 1] == '-') --s;
      if (s >= id_tail.size() && t.substr(s - id_tail.size(), id_tail.size()) == id_tail) {
        std::int64_t v;
        if (parse_int_at(t, s, v) == t.size() - 1) {
          r.has_id = true;
          r.id = v;
        }
      }
    }
    return r;
  }
  if (starts_with(t, err_p)) {
    r.type = reply_info::kind::error;
    return r;
  }
  if (starts_with(t, id_p)) {
    std::int64_t v;
    std::size_t e = parse_int_at(t, id_p.size(), v);
    if (e != std::string_view::npos && t.substr(e, 11) == ", \"error\": ") {
      r.type = reply_info::kind::error;
      r.has_id = true;
      r.id = v;
      return r;
    }
  }
  return classify_slow(t, want_ret_int);
}

std::size_t histogram::index(std::uint64_t v) {
  if (v < (1u << sub_bits)) return v;
  const int e = 63 - std::countl_zero(v);
  return (static_cast<std::size_t>(e - sub_bits + 1) << sub_bits) + ((v >> (e - sub_bits)) & ((1u << sub_bits) - 1));
}

std::int64_t histogram::upper(std::size_t idx) {
  if (idx < (1u << sub_bits)) return static_cast<std::int64_t>(idx);
  const int e = static_cast<int>(idx >> sub_bits) + sub_bits - 1;
  const std::uint64_t m = idx & ((1u << sub_bits) - 1);
  const std::uint64_t lo = ((std::uint64_t{1} << sub_bits) + m) << (e - sub_bits);
  return static_cast<std::int64_t>(lo + (std::uint64_t{1} << (e - sub_bits)) - 1);
}

void histogram::add(std::int64_t ns) {
  if (ns < 0) ns = 0;
  ++c_[index(static_cast<std::uint64_t>(ns))];
  ++n_;
  sum_ += static_cast<long double>(ns);
  max_ = std::max(max_, ns);
  min_ = std::min(min_, ns);
}

void histogram::merge(const histogram& o) {
  for (std::size_t i = 0; i < buckets; ++i) c_[i] += o.c_[i];
  n_ += o.n_;
  sum_ += o.sum_;
  max_ = std::max(max_, o.max_);
  min_ = std::min(min_, o.min_);
}

std::int64_t histogram::quantile(double q) const {
  if (n_ == 0) return 0;
  auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n_));
  if (rank >= n_) rank = n_ - 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets; ++i) {
    seen += c_[i];
    if (seen > rank) return std::min(upper(i), max_);
  }
  return max_;
}

std::uint64_t histogram::count_at_least(std::int64_t ns) const {
  std::uint64_t n = 0;
  for (std::size_t i = index(static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0))); i < buckets; ++i) n += c_[i];
  return n;
}

std::string histogram::json_buckets() const {
  std::string out = "[";
  for (std::size_t i = 0; i < buckets; ++i) {
    if (c_[i] == 0) continue;
    if (out.size() > 1) out += ", ";
    fmt::format_to(std::back_inserter(out), "[{}, {}]", std::min(upper(i), max_), c_[i]);
  }
  return out + "]";
}

std::string fmt_ns(std::int64_t ns) {
  if (ns < 1000) return fmt::format("{}ns", ns);
  if (ns < 1000000) return fmt::format("{:.1f}us", static_cast<double>(ns) / 1e3);
  if (ns < 1000000000) return fmt::format("{:.2f}ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.2f}s", static_cast<double>(ns) / 1e9);
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04X}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void print_json(std::string& out, simdjson::dom::element e, bool pretty, int indent) {
  using simdjson::dom::element_type;
  auto nl = [&](int ind) {
    if (!pretty) return;
    out += '\n';
    out.append(static_cast<std::size_t>(ind) * 2, ' ');
  };
  switch (e.type()) {
    case element_type::OBJECT: {
      simdjson::dom::object o = e.get_object().value_unsafe();
      if (o.size() == 0) {
        out += "{}";
        return;
      }
      out += '{';
      bool first = true;
      for (auto [k, v] : o) {
        if (!first) out += pretty ? "," : ", ";
        first = false;
        nl(indent + 1);
        append_json_string(out, k);
        out += ": ";
        print_json(out, v, pretty, indent + 1);
      }
      nl(indent);
      out += '}';
      return;
    }
    case element_type::ARRAY: {
      simdjson::dom::array a = e.get_array().value_unsafe();
      if (a.size() == 0) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (auto v : a) {
        if (!first) out += pretty ? "," : ", ";
        first = false;
        nl(indent + 1);
        print_json(out, v, pretty, indent + 1);
      }
      nl(indent);
      out += ']';
      return;
    }
    case element_type::INT64: out += fmt::format("{}", e.get_int64().value_unsafe()); return;
    case element_type::UINT64: out += fmt::format("{}", e.get_uint64().value_unsafe()); return;
    case element_type::DOUBLE: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", e.get_double().value_unsafe());
      out += buf;
      return;
    }
    case element_type::STRING: append_json_string(out, e.get_string().value_unsafe()); return;
    case element_type::BOOL: out += e.get_bool().value_unsafe() ? "true" : "false"; return;
    case element_type::NULL_VALUE: out += "null"; return;
  }
}

// From the agent's command schema (commands/schema.hpp); a name it does not know (a newer
// agent's command) is none of these.
bool is_unsafe_command(std::string_view c) {
  const commands::command_schema* s = commands::find_schema(c);
  return s && s->has(commands::acts_on_guest);
}

bool is_no_reply_command(std::string_view c) {
  const commands::command_schema* s = commands::find_schema(c);
  return s && s->has(commands::no_success_response);
}

bool is_volatile_command(std::string_view c) {
  const commands::command_schema* s = commands::find_schema(c);
  return s && s->has(commands::volatile_reply);
}

std::vector<mix_entry> default_mix() {
  // clients.md §5.2 by request count, read-only commands only: freeze/thaw, shutdown,
  // suspend, set-*, ssh-*, file-*, exec are left out (they act on the system the agent runs
  // on); the shares of the rest are kept as they are (the picker normalises).
  return {
      {"guest-fsfreeze-status", "", 40},
      {"guest-get-users", "", 24},
      {"guest-ping", "", 12},
      {"guest-network-get-interfaces", "", 5},
      {"guest-get-osinfo", "", 2.5},
      {"guest-get-host-name", "", 2.5},
      {"guest-get-timezone", "", 2.5},
      {"guest-sync", "", 1.5},
      {"guest-sync-delimited", "", 1.5},
      {"guest-get-load", "", 2},
      {"guest-get-vcpus", "", 2},
      {"guest-get-fsinfo", "", 1},
      {"guest-info", "", 1},
      {"guest-get-disks", "", 0.5},
      {"guest-get-cpustats", "", 0.1},
      {"guest-get-diskstats", "", 0.1},
      {"guest-get-memory-block-info", "", 0.05},
      {"guest-network-get-route", "", 0.05},
  };
}

std::vector<mix_entry> load_mix_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(fmt::format("{}: cannot open", path));
  std::vector<mix_entry> mix;
  std::string line;
  int no = 0;
  simdjson::dom::parser p;
  while (std::getline(f, line)) {
    ++no;
    auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    line = line.substr(b);
    if (line[0] != '{') {
      auto h = line.find('#');
      if (h != std::string::npos) line.resize(h);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    } else {
      // A recorded session (record/replay JSON Lines): its host requests become the mix, each
      // distinct request weighted by how often it was sent. Sync commands get fresh ids anyway.
      simdjson::dom::element e, req;
      std::string_view dir, cmd;
      if (p.parse(line).get(e) || e["dir"].get(dir))
        throw std::runtime_error(fmt::format("{}:{}: not a session line", path, no));
      if (dir != "h2a" || e["json"].get(req) || req["execute"].get(cmd)) continue;
      mix_entry m{std::string(cmd), "", 1};
      simdjson::dom::element args;
      if (!req["arguments"].get(args) && cmd != "guest-sync" && cmd != "guest-sync-delimited") print_json(m.args, args, false);
      auto it = std::find_if(mix.begin(), mix.end(), [&](const mix_entry& x) { return x.command == m.command && x.args == m.args; });
      if (it != mix.end()) it->weight += 1;
      else mix.push_back(std::move(m));
      continue;
    }
    mix_entry m;
    char* end = nullptr;
    m.weight = std::strtod(line.c_str(), &end);
    if (end == line.c_str() || !(m.weight > 0))
      throw std::runtime_error(fmt::format("{}:{}: expected 'WEIGHT COMMAND [ARGS-JSON]'", path, no));
    std::string_view rest(end);
    rest.remove_prefix(std::min(rest.find_first_not_of(" \t"), rest.size()));
    auto sp = rest.find_first_of(" \t");
    m.command = std::string(rest.substr(0, sp));
    if (m.command.empty()) throw std::runtime_error(fmt::format("{}:{}: missing command", path, no));
    if (sp != std::string_view::npos) {
      std::string args(rest.substr(sp));
      args.erase(0, args.find_first_not_of(" \t"));
      while (!args.empty() && (args.back() == ' ' || args.back() == '\t' || args.back() == '\r')) args.pop_back();
      if (!args.empty()) {
        simdjson::dom::element e;
        if (p.parse(args).get(e) || !e.is_object())
          throw std::runtime_error(fmt::format("{}:{}: arguments must be a JSON object", path, no));
        m.args.clear();
        print_json(m.args, e, false);
      }
    }
    mix.push_back(std::move(m));
  }
  if (mix.empty()) throw std::runtime_error(fmt::format("{}: no commands", path));
  return mix;
}

mix_picker::mix_picker(const std::vector<mix_entry>& mix) {
  double s = 0;
  for (auto& m : mix) cum_.push_back(s += m.weight);
  for (auto& c : cum_) c /= s;
}

std::size_t mix_picker::pick(rng& r) const {
  const double u = r.uniform();
  auto it = std::upper_bound(cum_.begin(), cum_.end(), u);
  return it == cum_.end() ? cum_.size() - 1 : static_cast<std::size_t>(it - cum_.begin());
}

std::uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ static_cast<std::uint64_t>(now_ns());
}

}  // namespace fleetga::host
