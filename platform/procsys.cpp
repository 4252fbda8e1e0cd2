#include "platform/procsys.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace fleetga::platform {
namespace {

// ---- sscanf() as glibc does it, for the conversions qemu-ga uses -----------------------

constexpr bool c_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

enum class conv : std::uint8_t { ok, mismatch, eof };

// A decimal number as %u / %lu / %ld read it: optional sign, then digits, converted by
// strtoul/strtol (saturating on overflow, an unsigned conversion negates modulo 2^64).
struct number {
  bool neg = false;
  bool overflow = false;
  std::uint64_t mag = 0;

  std::uint64_t as_ulong() const noexcept {
    if (overflow) return std::numeric_limits<std::uint64_t>::max();
    return neg ? std::uint64_t{0} - mag : mag;
  }
  // %u: read as unsigned long, stored into an unsigned int.
  std::uint32_t as_uint() const noexcept { return static_cast<std::uint32_t>(as_ulong()); }
  std::int64_t as_long() const noexcept {
    constexpr std::uint64_t lmax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (neg) {
      if (overflow || mag > lmax + 1) return std::numeric_limits<std::int64_t>::min();
      return static_cast<std::int64_t>(std::uint64_t{0} - mag);
    }
    if (overflow || mag > lmax) return std::numeric_limits<std::int64_t>::max();
    return static_cast<std::int64_t>(mag);
  }
};

struct scanner {
  std::string_view s;
  std::size_t p = 0;

  void skip_ws() noexcept {
    while (p < s.size() && c_space(s[p])) ++p;
  }
  // %s
  conv word(std::string_view& out) noexcept {
    skip_ws();
    if (p == s.size()) return conv::eof;
    const std::size_t b = p;
    while (p < s.size() && !c_space(s[p])) ++p;
    out = s.substr(b, p - b);
    return conv::ok;
  }
  // %u, %lu, %ld (base 10)
  conv num(number& n) noexcept {
    skip_ws();
    if (p == s.size()) return conv::eof;
    n = number{};
    if (s[p] == '+' || s[p] == '-') n.neg = s[p++] == '-';
    const std::size_t digits = p;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      const auto d = static_cast<std::uint64_t>(s[p] - '0');
      if (n.mag > (std::numeric_limits<std::uint64_t>::max() - d) / 10) n.overflow = true;
      n.mag = n.mag * 10 + d;
      ++p;
    }
    return p == digits ? conv::mismatch : conv::ok;
  }
};

// getline() lines (the '\n' stays out); sscanf sees each up to its first NUL.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (auto nul = line.find('\0'); nul != std::string_view::npos) line = line.substr(0, nul);
    if (!f(line)) return;
  }
}

}  // namespace

// ---- parsers ---------------------------------------------------------------------------

std::vector<disk_stats_entry> parse_diskstats(std::string_view text) {
  // "%u %u %s %lu %lu %lu" "%lu %lu %lu %lu %u %u %u %u" "%lu %lu %lu %u %lu %u"
  constexpr std::uint32_t u32_fields = (1u << 0) | (1u << 1) | (1u << 10) | (1u << 11) | (1u << 12) |
                                       (1u << 13) | (1u << 17) | (1u << 19);
  std::vector<disk_stats_entry> out;
  for_each_line(text, [&](std::string_view line) {
    scanner sc{line};
    std::array<std::uint64_t, 20> f{};
    std::string_view name;
    int i = 0;
    for (int k = 0; k < 20; ++k) {
      if (k == 2) {
        if (sc.word(name) != conv::ok) break;
      } else {
        number n;
        if (sc.num(n) != conv::ok) break;
        f[k] = (u32_fields & (1u << k)) ? n.as_uint() : n.as_ulong();
      }
      ++i;
    }
    if (i < 7) return true;
    disk_stats_entry& e = out.emplace_back();
    e.name.assign(name);
    e.major = f[0];
    e.minor = f[1];
    auto set = [&](disk_stat s, std::uint64_t v) {
      e.present |= std::uint32_t{1} << s;
      e.v[s] = v;
    };
    if (i == 7) {
      set(ds_read_ios, f[3]);
      set(ds_read_sectors, f[4]);
      set(ds_write_ios, f[5]);
      set(ds_write_sectors, f[6]);
    }
    if (i >= 14) {
      set(ds_read_ios, f[3]);
      set(ds_read_merges, f[4]);
      set(ds_read_sectors, f[5]);
      set(ds_read_ticks, f[6]);
      set(ds_write_ios, f[7]);
      set(ds_write_merges, f[8]);
      set(ds_write_sectors, f[9]);
      set(ds_write_ticks, f[10]);
      set(ds_ios_pgr, f[11]);
      set(ds_total_ticks, f[12]);
      set(ds_weight_ticks, f[13]);
    }
    if (i >= 18) {
      set(ds_discard_ios, f[14]);
      set(ds_discard_merges, f[15]);
      set(ds_discard_sectors, f[16]);
      set(ds_discard_ticks, f[17]);
    }
    if (i >= 20) {
      set(ds_flush_ios, f[18]);
      set(ds_flush_ticks, f[19]);
    }
    return true;
  });
  return out;
}

std::vector<cpu_stats_entry> parse_cpustats(std::string_view text, long clk_tck) {
  const auto tck = static_cast<std::uint64_t>(clk_tck);  // int -> unsigned long, as in C
  std::vector<cpu_stats_entry> out;
  for_each_line(text, [&](std::string_view line) {
    scanner sc{line};
    std::string_view name;
    if (sc.word(name) != conv::ok) return true;  // sscanf() == EOF
    std::array<std::uint64_t, cpu_stat_count> f{};
    int i = 1;
    for (int k = 0; k < cpu_stat_count; ++k) {
      number n;
      if (sc.num(n) != conv::ok) break;
      f[k] = n.as_ulong();
      ++i;
    }
    // drop "cpu 1 2 3 ...", keep "cpuX 1 2 3 ..."
    if (name.substr(0, 3) != "cpu" || name.size() == 3) return true;
    if (i < 5) return false;  // qemu-ga: "Parsing cpu stat from /proc/stat failed", break
    cpu_stats_entry& e = out.emplace_back();
    scanner id{name.substr(3)};
    number n;
    if (id.num(n) == conv::ok) e.cpu = static_cast<std::int32_t>(n.as_long());  // atoi()
    auto set = [&](cpu_stat s) {
      e.present |= std::uint32_t{1} << s;
      e.ms[s] = f[s] * 1000 / tck;
    };
    set(cs_user);
    set(cs_nice);
    set(cs_system);
    set(cs_idle);
    if (i > 5) set(cs_iowait);
    if (i > 6) {
      set(cs_irq);
      set(cs_softirq);  // f[cs_softirq] is 0 when i == 7
    }
    if (i > 8) set(cs_steal);
    if (i > 9) set(cs_guest);
    if (i > 10) set(cs_guestnice);
    return true;
  });
  return out;
}

std::optional<std::int64_t> parse_vcpu_name(std::string_view name) noexcept {
  if (name.substr(0, 3) != "cpu") return std::nullopt;
  scanner sc{name.substr(3)};
  number n;
  if (sc.num(n) != conv::ok) return std::nullopt;
  return n.as_long();
}

std::optional<std::uint64_t> parse_memory_block_name(std::string_view name) noexcept {
  if (name.substr(0, 6) != "memory") return std::nullopt;
  scanner sc{name.substr(6)};
  number n;
  if (sc.num(n) != conv::ok) return 0;  // strtoul() without digits
  return n.as_ulong();
}

std::uint64_t parse_block_size(std::string_view s) noexcept {
  if (auto nul = s.find('\0'); nul != std::string_view::npos) s = s.substr(0, nul);
  std::size_t p = 0;
  while (p < s.size() && c_space(s[p])) ++p;
  bool neg = false;
  if (p < s.size() && (s[p] == '+' || s[p] == '-')) neg = s[p++] == '-';
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  // "0x" is a prefix only when a hex digit follows it.
  if (p + 2 < s.size() && s[p] == '0' && (s[p + 1] == 'x' || s[p + 1] == 'X') && hex(s[p + 2]) >= 0) p += 2;
  std::uint64_t mag = 0;
  bool overflow = false;
  for (; p < s.size() && hex(s[p]) >= 0; ++p) {
    if (mag > (std::numeric_limits<std::uint64_t>::max() >> 4)) overflow = true;
    mag = (mag << 4) | static_cast<std::uint64_t>(hex(s[p]));
  }
  number n{neg, overflow, mag};
  return static_cast<std::uint64_t>(n.as_long());  // strtol(), stored in a uint64
}

// ---- files -----------------------------------------------------------------------------

namespace {

constexpr std::string_view cpu_dir = "/sys/devices/system/cpu";
constexpr std::string_view memory_dir = "/sys/devices/system/memory/";

struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

struct dir_guard {
  DIR* d = nullptr;
  ~dir_guard() {
    if (d) ::closedir(d);
  }
};

std::string quoted_call(std::string_view fn, std::string_view path) {
  std::string s(fn);
  s += "(\"";
  s += path;
  s += "\")";
  return s;
}

std::string vcpu_dirpath(std::int64_t id) {
  return std::string(cpu_dir) + "/cpu" + std::to_string(id) + "/";
}

std::string memory_block_dirpath(std::uint64_t phys_index) {
  // PRId64 of a uint64: an index above INT64_MAX prints negative.
  return std::string(memory_dir) + "memory" + std::to_string(static_cast<std::int64_t>(phys_index)) + "/";
}

ssize_t pread_retry(int fd, void* buf, std::size_t n) {
  ssize_t r;
  do r = ::pread(fd, buf, n, 0);
  while (r < 0 && errno == EINTR);
  return r;
}

// transfer_vcpu() past the directory open, for an open `online` file.
bool read_online(int fd, const std::string& file, vcpu_state& v, failure& f) {
  unsigned char status = 0;
  ssize_t r = pread_retry(fd, &status, 1);
  if (r < 0) {
    const int e = errno;
    f = {quoted_call("pread", file), e};
    return false;
  }
  if (r == 0) {
    f = {quoted_call("pread", file) + ": unexpected EOF", 0};
    return false;
  }
  v.online = status != '0';
  v.can_offline = true;
  return true;
}

// ga_read_sysfs_file(): pread of up to `size` bytes at offset 0. On failure f.err is the
// errno qemu-ga then looks at (0 after "unexpected EOF").
bool read_sysfs(int dirfd, const char* name, char* buf, std::size_t size, failure& f) {
  fd_guard g{::openat(dirfd, name, O_RDONLY | O_CLOEXEC)};
  const int open_err = errno;
  const std::string quoted = std::string("\"") + name + "\"";
  if (g.fd < 0) {
    f = {"open sysfs file " + quoted, open_err};
    return false;
  }
  ssize_t r = pread_retry(g.fd, buf, size);
  const int read_err = errno;
  if (r < 0) {
    f = {"pread sysfs file " + quoted, read_err};
    return false;
  }
  if (r == 0) {
    f = {"pread sysfs file " + quoted + ": unexpected EOF", 0};
    return false;
  }
  return true;
}

}  // namespace

bool procsys::read_proc(std::string_view abs, std::string& out, failure& f) const {
  fd_guard g{::open(rooted(abs).c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY)};
  if (g.fd < 0) {
    const int e = errno;
    f = {quoted_call("open", abs), e};
    return false;
  }
  out.clear();
  std::size_t chunk = 4096;
  for (;;) {
    const std::size_t old = out.size();
    out.resize(old + chunk);
    ssize_t n = ::read(g.fd, out.data() + old, chunk);
    if (n < 0 && errno == EINTR) {
      out.resize(old);
      continue;
    }
    out.resize(old + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n <= 0) break;  // EOF, or an error getline() would take as the end
    if (out.size() >= proc_file_max) {
      out.resize(proc_file_max);
      auto nl = out.rfind('\n');
      out.resize(nl == std::string::npos ? 0 : nl + 1);
      break;
    }
    if (chunk < 65536) chunk *= 2;
  }
  return true;
}

bool procsys::list_vcpus(std::vector<vcpu_state>& out, failure& f) const {
  out.clear();
  dir_guard d{::opendir(rooted(cpu_dir).c_str())};
  if (!d.d) {
    const int e = errno;
    f = {"failed to list entries: " + std::string(cpu_dir), e};
    return false;
  }
  const int cpufd = ::dirfd(d.d);
  while (const dirent* de = ::readdir(d.d)) {
    std::string_view name = de->d_name;
    if (name == "." || name == "..") continue;  // g_dir_read_name() skips them
    auto id = parse_vcpu_name(name);
    if (!id) continue;
    vcpu_state& v = out.emplace_back();
    v.logical_id = *id;
    const std::string dirpath = vcpu_dirpath(*id);
    const std::string file = dirpath + "/online";
    // Fast path: one open of cpuN/online relative to the listed directory; anything but
    // success replays qemu-ga's two-step open for the exact outcome and text.
    std::string rel = "cpu" + std::to_string(*id) + "/online";
    {
      fd_guard g{::openat(cpufd, rel.c_str(), O_RDONLY | O_CLOEXEC)};
      if (g.fd >= 0) {
        if (!read_online(g.fd, file, v, f)) return false;
        continue;
      }
    }
    fd_guard dg{::open(rooted(dirpath).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dg.fd < 0) {
      const int e = errno;
      f = {quoted_call("open", dirpath), e};
      return false;
    }
    fd_guard g{::openat(dg.fd, "online", O_RDONLY | O_CLOEXEC)};
    if (g.fd < 0) {
      if (const int e = errno; e != ENOENT) {
        f = {quoted_call("open", file), e};
        return false;
      }
      v.online = true;
      v.can_offline = false;
      continue;
    }
    if (!read_online(g.fd, file, v, f)) return false;
  }
  return true;
}

bool procsys::set_vcpu(std::int64_t logical_id, bool online, failure& f) const {
  const std::string dirpath = vcpu_dirpath(logical_id);
  const std::string file = dirpath + "/online";
  fd_guard dg{::open(rooted(dirpath).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dg.fd < 0) {
    const int e = errno;
    f = {quoted_call("open", dirpath), e};
    return false;
  }
  fd_guard g{::openat(dg.fd, "online", O_RDWR | O_CLOEXEC)};
  if (g.fd < 0) {
    if (const int e = errno; e != ENOENT) {
      f = {quoted_call("open", file), e};
      return false;
    }
    if (!online) {
      f = {"logical processor #" + std::to_string(logical_id) + " can't be offlined", 0};
      return false;
    }
    return true;  // pretend successful re-onlining
  }
  unsigned char status = 0;
  ssize_t r = pread_retry(g.fd, &status, 1);
  if (r < 0) {
    const int e = errno;
    f = {quoted_call("pread", file), e};
    return false;
  }
  if (r == 0) {
    f = {quoted_call("pread", file) + ": unexpected EOF", 0};
    return false;
  }
  if (online != (status != '0')) {
    status = online ? '1' : '0';
    ssize_t w;
    do w = ::pwrite(g.fd, &status, 1, 0);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
      const int e = errno;
      f = {quoted_call("pwrite", file), e};
      return false;
    }
  }
  return true;
}

bool procsys::list_memory_blocks(std::vector<memory_block_state>& out, bool& missing, failure& f) const {
  out.clear();
  missing = false;
  dir_guard d{::opendir(rooted(memory_dir).c_str())};
  if (!d.d) {
    const int e = errno;
    if (e == ENOENT) {
      missing = true;
      return true;
    }
    f = {"Can't open directory\"" + std::string(memory_dir) + "\"", e};
    return false;
  }
  while (const dirent* de = ::readdir(d.d)) {
    // qemu-ga's test is `d_type & DT_DIR` (DT_BLK and DT_SOCK pass it too).
    if (!(de->d_type & DT_DIR)) continue;
    auto idx = parse_memory_block_name(de->d_name);
    if (!idx) continue;
    memory_block_state b;
    b.phys_index = *idx;
    const std::string dirpath = memory_block_dirpath(*idx);
    fd_guard dg{::open(rooted(dirpath).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dg.fd < 0) {
      const int e = errno;
      f = {quoted_call("open", dirpath), e};
      return false;
    }
    char status[10] = {};
    if (!read_sysfs(dg.fd, "state", status, sizeof status, f)) {
      if (f.err != ENOENT) return false;
      b.online = true;  // no state file in old kernels
      b.can_offline = false;
      f = {};
      out.push_back(b);
      continue;
    }
    b.online = std::strncmp(status, "online", 6) == 0;
    char removable = '0';
    if (!read_sysfs(dg.fd, "removable", &removable, 1, f)) {
      if (f.err != ENOENT) return false;
      f = {};
      b.can_offline = false;
    } else {
      b.can_offline = removable != '0';
    }
    out.push_back(b);
  }
  return true;
}

memory_block_result procsys::set_memory_block(std::uint64_t phys_index, bool online) const {
  using resp = memory_block_response;
  memory_block_result res;  // response 0 = success, like g_malloc0
  {
    dir_guard d{::opendir(rooted(memory_dir).c_str())};
    if (!d.d) {
      const int e = errno;
      if (e == ENOENT) res.response = resp::operation_not_supported;
      res.error_code = e;
      return res;
    }
  }
  fd_guard dg{::open(rooted(memory_block_dirpath(phys_index)).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dg.fd < 0) {
    const int e = errno;
    res.response = e == ENOENT ? resp::not_found : resp::operation_failed;
    res.error_code = e;
    return res;
  }
  char status[10] = {};
  failure f;
  if (!read_sysfs(dg.fd, "state", status, sizeof status, f)) {
    if (f.err == ENOENT) {
      if (!online) res.response = resp::operation_not_supported;
    } else {
      res.response = resp::operation_failed;
    }
    res.error_code = f.err;
    return res;
  }
  if (online != (std::strncmp(status, "online", 6) == 0)) {
    const std::string_view new_state = online ? "online" : "offline";
    fd_guard g{::openat(dg.fd, "state", O_WRONLY | O_CLOEXEC)};
    ssize_t w = -1;
    if (g.fd >= 0) {
      do w = ::pwrite(g.fd, new_state.data(), new_state.size(), 0);
      while (w < 0 && errno == EINTR);
    }
    if (w < 0) {
      res.response = resp::operation_failed;
      res.error_code = errno;
      return res;
    }
    res.response = resp::success;
  }
  return res;  // otherwise pretend successful re-(on|off)-lining
}

bool procsys::memory_block_size(std::uint64_t& out, failure& f) const {
  fd_guard dg{::open(rooted(memory_dir).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dg.fd < 0) {
    const int e = errno;
    f = {quoted_call("open", memory_dir), e};
    return false;
  }
  char buf[20] = {};
  if (!read_sysfs(dg.fd, "block_size_bytes", buf, sizeof buf, f)) return false;
  out = parse_block_size(std::string_view(buf, sizeof buf));
  return true;
}

}  // namespace fleetga::platform
