// The system family: guest-get-time, guest-get-host-name, guest-get-timezone,
// guest-get-osinfo, guest-get-load.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include "commands/handlers.hpp"
#include "commands/state.hpp"
#include "platform/keyfile.hpp"
#include "protocol/args.hpp"

namespace fleetga::commands {
namespace {



using protocol::qemu_print_order;

// GuestOSInfo in schema order; the first three come from uname, the rest from os-release.
constexpr std::array<std::string_view, 10> osinfo_members{
    "kernel-release", "kernel-version", "machine", "id",      "name",
    "pretty-name",    "version",        "version-id", "variant", "variant-id"};
constexpr std::array<std::string_view, 7> osrelease_keys{"ID",         "NAME",    "PRETTY_NAME", "VERSION",
                                                         "VERSION_ID", "VARIANT", "VARIANT_ID"};
constexpr auto osinfo_order = qemu_print_order(osinfo_members);
constexpr std::array<std::string_view, 10> osinfo_printed = [] {
  std::array<std::string_view, 10> a{};
  for (std::size_t i = 0; i < 10; ++i) a[i] = osinfo_members[osinfo_order[i]];
  return a;
}();
static_assert(protocol::in_qemu_order(osinfo_members, osinfo_printed));
// What qemu-ga 7.2 printed on Debian 12 (with variant/variant-id absent).
static_assert(osinfo_printed[0] == "name" && osinfo_printed[1] == "kernel-release" &&
              osinfo_printed[2] == "version" && osinfo_printed[9] == "id");

static_assert(protocol::in_qemu_order(std::array<std::string_view, 2>{"zone", "offset"},
                                      std::array<std::string_view, 2>{"zone", "offset"}));
static_assert(protocol::in_qemu_order(std::array<std::string_view, 3>{"load1m", "load5m", "load15m"},
                                      std::array<std::string_view, 3>{"load15m", "load5m", "load1m"}));

}  // namespace

// ga_osrelease_replace_special(), including its quirks: an unquoted (or single-quoted) value
// is cut at the first space and then at the first ';'; a double-quoted one is unescaped for
// \$ \' \" \\ \` (other backslashes stay) up to the closing quote. The unescape works in place
// and writes no terminator when the closing quote is missing, so the tail of the original
// text stays behind (`"abc` -> `abcc`); reproduced byte for byte.
std::string osrelease_unquote(std::string v) {
  if (v.empty() || v[0] != '"') {
    if (auto sp = v.find(' '); sp != std::string::npos) v.resize(sp);
    if (auto sc = v.find(';'); sc != std::string::npos) v.resize(sc);
    return v;
  }
  v.push_back('\0');
  const char quote = v[0];
  std::size_t p2 = 0, p = 1;
  while (v[p] != '\0') {
    if (v[p] == '\\') {
      ++p;
      switch (v[p]) {
        case '$': case '\'': case '"': case '\\': case '`': break;
        default: --p; break;  // keep the backslash and whatever follows
      }
    } else if (v[p] == quote) {
      v[p2] = '\0';
      break;
    }
    v[p2++] = v[p++];
  }
  v.resize(v.find('\0'));
  return v;
}

namespace {

// ga_parse_osrelease(): whole file, valid UTF-8 up to the first NUL, GLib key file with
// "[os-release]\n" prepended. nullopt: qemu-ga would treat the file as unusable.
std::optional<platform::keyfile> load_osrelease(platform::system& sys, const std::string& path) {
  std::string content;
  if (sys.read_small_file(path, platform::small_file_max, content) != 0) return std::nullopt;
  if (auto nul = content.find('\0'); nul != std::string::npos) content.resize(nul);
  if (!platform::valid_utf8(content)) return std::nullopt;
  content.insert(0, "[os-release]\n");
  return platform::keyfile::parse(content);
}

void build_osinfo(agent_state& st, const platform::uname_info* u, const platform::keyfile* kf,
                  std::string& out) {
  std::array<std::optional<std::string>, 10> v;
  if (u) {
    v[0] = u->release;
    v[1] = u->version;
    v[2] = u->machine;
  }
  if (kf)
    for (std::size_t i = 0; i < osrelease_keys.size(); ++i)
      if (const std::string* raw = kf->get("os-release", osrelease_keys[i]))
        v[3 + i] = osrelease_unquote(*raw);
  (void)st;
  out.clear();
  protocol::json_writer w(out);
  w.begin_object();
  for (std::size_t i : osinfo_order) {
    if (!v[i]) continue;
    w.key(osinfo_members[i]);
    w.string(*v[i]);
  }
  w.end_object();
}

}  // namespace

namespace handlers {

task<handler_result> guest_get_time(call& c) {
  if (auto e = no_args(c)) co_return e;
  c.out.integer(c.state.sys.realtime_ns());
  co_return std::nullopt;
}

task<handler_result> guest_get_host_name(call& c) {
  if (auto e = no_args(c)) co_return e;
  std::string name;
  if (int err = c.state.sys.hostname(name)) co_return errno_error("cannot get hostname", err);
  c.out.begin_object();
  c.out.key("host-name");
  c.out.string(name);
  c.out.end_object();
  co_return std::nullopt;
}

task<handler_result> guest_get_timezone(call& c) {
  if (auto e = no_args(c)) co_return e;
  platform::timezone_info tz = c.state.sys.timezone();
  c.out.begin_object();
  if (tz.zone) {
    c.out.key("zone");
    c.out.string(*tz.zone);
  }
  c.out.key("offset");
  c.out.integer(tz.offset);
  c.out.end_object();
  co_return std::nullopt;
}

task<handler_result> guest_get_load(call& c) {
  if (auto e = no_args(c)) co_return e;
  platform::load_average l;
  if (int err = c.state.sys.loadavg(l)) co_return errno_error("cannot query load average", err);
  c.out.begin_object();
  c.out.key("load15m");
  c.out.number(l.load15m);
  c.out.key("load5m");
  c.out.number(l.load5m);
  c.out.key("load1m");
  c.out.number(l.load1m);
  c.out.end_object();
  co_return std::nullopt;
}

// Runs on the I/O thread on purpose: os-release is a tiny file on the root filesystem
// (page-cache reads; a frozen filesystem blocks writers, not readers), and the steady state
// is one stat() per candidate plus a cached reply, far cheaper than a hand-off to the pool
// (the target is <= 16,200 instructions per call against qemu-ga's 162,000). A
// $QGA_OS_RELEASE on a slow network mount would block the loop, as it blocks qemu-ga.
task<handler_result> guest_get_osinfo(call& c) {
  if (auto e = no_args(c)) co_return e;
  agent_state& st = c.state;
  platform::system& sys = st.sys;

  platform::uname_info u;
  const int uname_err = sys.uname(u);
  if (uname_err != 0) co_return errno_error("uname failed", uname_err);

  std::optional<std::string> env = sys.getenv("QGA_OS_RELEASE");
  std::array<std::string, 2> candidates;
  std::size_t ncand = 0;
  if (env) {
    candidates[ncand++] = *env;
  } else {
    candidates[ncand++] = sys.rooted("/etc/os-release");
    candidates[ncand++] = sys.rooted("/usr/lib/os-release");
  }

  osinfo_cache& cache = st.osinfo;
  bool hit = cache.valid && cache.env_path == env && cache.uname.release == u.release &&
             cache.uname.version == u.version && cache.uname.machine == u.machine;
  for (std::size_t i = 0; hit && i < cache.ids.size(); ++i) hit = sys.identity(candidates[i]) == cache.ids[i];

  if (!hit) {
    cache.valid = false;
    cache.ids.clear();
    std::optional<platform::keyfile> kf;
    for (std::size_t i = 0; i < ncand && !kf; ++i) {
      // Identity first: a change racing with the read invalidates the cache next time.
      cache.ids.push_back(sys.identity(candidates[i]));
      kf = load_osrelease(sys, candidates[i]);
    }
    build_osinfo(st, &u, kf ? &*kf : nullptr, cache.json);
    cache.env_path = std::move(env);
    cache.uname = std::move(u);
    cache.valid = true;
  }
  c.out.raw(cache.json);
  co_return std::nullopt;
}

}  // namespace handlers
}  // namespace fleetga::commands
