// The system family: guest-get-time, guest-get-host-name, guest-get-timezone,
// guest-get-osinfo, guest-get-load.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include "commands/handlers.hpp"
#include "commands/offload.hpp"
#include "commands/state.hpp"
#include "platform/keyfile.hpp"
#include "protocol/args.hpp"
#include "protocol/reply.hpp"

// GuestLoadAverage (10.0), members in schema order; write_reply() prints QEMU's order.
template <>
struct fleetga::protocol::reply_schema<fleetga::platform::load_average> {
  static constexpr auto members = std::make_tuple(reply_member("load1m", &platform::load_average::load1m),
                                                  reply_member("load5m", &platform::load_average::load5m),
                                                  reply_member("load15m", &platform::load_average::load15m));
};
static_assert(
    fleetga::protocol::qemu_printed(fleetga::protocol::reply_detail::member_names<fleetga::platform::load_average>()) ==
    std::array<std::string_view, 3>{"load15m", "load5m", "load1m"});  // qemu-ga 10.0's bytes

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
  protocol::write_reply(c.out, l);  // GuestLoadAverage: printed load15m, load5m, load1m
  co_return std::nullopt;
}

}  // namespace handlers

namespace {

// Where os-release is looked for: $QGA_OS_RELEASE, else /etc then /usr/lib (rooted).
struct osinfo_source {
  std::optional<std::string> env;
  std::array<std::string, 2> candidates;
  std::size_t count = 0;
};

osinfo_source osinfo_sources(platform::system& sys) {
  osinfo_source src;
  src.env = sys.getenv("QGA_OS_RELEASE");
  if (src.env) {
    src.candidates[src.count++] = *src.env;
  } else {
    src.candidates[src.count++] = sys.rooted("/etc/os-release");
    src.candidates[src.count++] = sys.rooted("/usr/lib/os-release");
  }
  return src;
}

struct osinfo_files {
  std::vector<std::optional<platform::file_identity>> ids;  // of every candidate consulted
  std::optional<platform::keyfile> kf;
};

// Reads files: on a worker, or at start-up.
osinfo_files read_osinfo_files(platform::system& sys, const osinfo_source& src) {
  osinfo_files f;
  for (std::size_t i = 0; i < src.count && !f.kf; ++i) {
    // Identity first: a change racing with the read invalidates the cache next time.
    f.ids.push_back(sys.identity(src.candidates[i]));
    f.kf = load_osrelease(sys, src.candidates[i]);
  }
  return f;
}

void store_osinfo(agent_state& st, platform::uname_info u, osinfo_source src, osinfo_files f) {
  osinfo_cache& cache = st.osinfo;
  build_osinfo(st, &u, f.kf ? &*f.kf : nullptr, cache.json);
  cache.ids = std::move(f.ids);
  cache.env_path = std::move(src.env);
  cache.uname = std::move(u);
  cache.valid = true;
}

}  // namespace

void warm_osinfo(agent_state& st) {
  platform::uname_info u;
  if (st.sys.uname(u) != 0) return;
  osinfo_source src = osinfo_sources(st.sys);
  osinfo_files f = read_osinfo_files(st.sys, src);
  store_osinfo(st, std::move(u), std::move(src), std::move(f));
}

namespace handlers {

// The steady state runs on the I/O thread: one stat() per candidate consulted, and the cached
// reply (the target is <= 16,200 instructions per call against qemu-ga's 162,000). When the
// file, $QGA_OS_RELEASE or uname changed, the files are read again on a worker: a page the
// kernel reclaimed makes that a disk read. The cache is filled at start-up (warm_osinfo), so
// the first call after the host attaches is answered from memory too.
task<handler_result> guest_get_osinfo(call& c) {
  if (auto e = no_args(c)) co_return e;
  agent_state& st = c.state;
  platform::system& sys = st.sys;

  platform::uname_info u;
  const int uname_err = sys.uname(u);
  if (uname_err != 0) co_return errno_error("uname failed", uname_err);

  osinfo_source src = osinfo_sources(sys);
  const osinfo_cache& cache = st.osinfo;
  bool hit = cache.valid && cache.env_path == src.env && cache.uname.release == u.release &&
             cache.uname.version == u.version && cache.uname.machine == u.machine;
  for (std::size_t i = 0; hit && i < cache.ids.size(); ++i) hit = sys.identity(src.candidates[i]) == cache.ids[i];

  if (!hit) {
    st.osinfo.valid = false;
    osinfo_files f = co_await offload(st.pool, [&sys, &src] { return read_osinfo_files(sys, src); });
    store_osinfo(st, std::move(u), std::move(src), std::move(f));
  }
  c.out.raw(st.osinfo.json);
  co_return std::nullopt;
}

}  // namespace handlers
}  // namespace fleetga::commands
