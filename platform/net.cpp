#include "platform/net.hpp"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

namespace fleetga::platform {

// ---- the real host -------------------------------------------------------------------

namespace {

// getifaddrs(), copied out.
int read_addresses(std::vector<if_address>& out) {
  out.clear();
  struct ifaddrs* ifap = nullptr;
  if (::getifaddrs(&ifap) < 0) return errno != 0 ? errno : EIO;
  for (struct ifaddrs* ifa = ifap; ifa; ifa = ifa->ifa_next) {
    if_address a;
    a.name = ifa->ifa_name ? ifa->ifa_name : "";
    if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET) {
      a.fam = if_address::family::ipv4;
      std::memcpy(a.addr.data(), &reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr)->sin_addr, 4);
      if (ifa->ifa_netmask) {
        a.has_netmask = true;
        std::memcpy(a.netmask.data(), &reinterpret_cast<const sockaddr_in*>(ifa->ifa_netmask)->sin_addr, 4);
      }
    } else if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET6) {
      a.fam = if_address::family::ipv6;
      const auto* s6 = reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr);
      std::memcpy(a.addr.data(), &s6->sin6_addr, 16);
      a.scope_id = s6->sin6_scope_id;
      if (ifa->ifa_netmask) {
        a.has_netmask = true;
        std::memcpy(a.netmask.data(), &reinterpret_cast<const sockaddr_in6*>(ifa->ifa_netmask)->sin6_addr, 16);
      }
    }
    out.push_back(std::move(a));
  }
  ::freeifaddrs(ifap);
  return 0;
}

hwaddr_result ask_hardware_address(const std::string& name, hwaddr_socket& sock) {
  hwaddr_result r;
  if (sock.fd < 0) {
    sock.fd = ::socket(PF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock.fd == -1) {
      r.st = hwaddr_result::status::socket_failed;
      r.err = errno;
      return r;
    }
  }
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  // pstrcpy(ifr_name, IF_NAMESIZE, name): at most 15 bytes, always terminated.
  std::memcpy(ifr.ifr_name, name.data(), std::min<std::size_t>(name.size(), IF_NAMESIZE - 1));
  if (::ioctl(sock.fd, SIOCGIFHWADDR, &ifr) == -1) {
    r.st = hwaddr_result::status::unavailable;
    r.err = errno;
  } else {
    std::memcpy(r.mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  }
  return r;
}

}  // namespace

linux_net::~linux_net() {
  if (watch_ >= 0) ::close(watch_);
}

bool linux_net::changed() {
  if (watch_ < 0) {
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0) return true;  // no watch: every call asks the kernel, as before
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd);
      return true;
    }
    watch_ = fd;
    return true;  // nothing kept from before the subscription
  }
  bool any = false;
  for (;;) {
    char msg[64];  // only whether something came: MSG_TRUNC drops the rest of each message
    ssize_t n = ::recv(watch_, msg, sizeof msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n >= 0 || errno == ENOBUFS) {  // an event, or events lost to a full socket
      any = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return any;
    ::close(watch_);  // unexpected: drop the watch, it is opened again next time
    watch_ = -1;
    return true;
  }
}

int linux_net::list_addresses(std::vector<if_address>& out) {
  std::lock_guard lock(m_);
  if (changed()) kept_ = false;
  if (kept_) {
    out = addrs_;
    return 0;
  }
  hw_.clear();
  ++epoch_;
  int err = read_addresses(out);
  if (err == 0 && watch_ >= 0) {
    addrs_ = out;
    kept_ = true;
  }
  return err;
}

hwaddr_socket::~hwaddr_socket() {
  if (fd >= 0) ::close(fd);
}

hwaddr_result linux_net::hardware_address(const std::string& name, hwaddr_socket& sock) {
  std::uint64_t epoch;
  {
    std::lock_guard lock(m_);
    if (kept_)
      if (auto it = hw_.find(name); it != hw_.end()) return it->second;
    epoch = epoch_;
  }
  hwaddr_result r = ask_hardware_address(name, sock);
  if (r.st != hwaddr_result::status::socket_failed) {
    std::lock_guard lock(m_);
    if (kept_ && epoch == epoch_) hw_.emplace(name, r);  // not if the list was asked again meanwhile
  }
  return r;
}


int linux_net::read_proc_file(std::string_view abs_path, std::string& out) {
  out.clear();
  const std::string path = sys_.rooted(abs_path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return errno;
  char buf[16384];
  int err = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF, or a read error: the data ends here (qemu-ga's getline() loop)
    if (out.size() + static_cast<std::size_t>(n) > proc_net_file_max) {
      err = EFBIG;
      out.clear();
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return err;
}

// ---- sscanf() as glibc does it -------------------------------------------------------

namespace {

constexpr bool c_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The text a conversion reads, then strtol()/strtoul() of it (64-bit long).
struct number_text {
  bool negative = false;
  bool overflow = false;  // magnitude beyond 2^64 - 1
  std::uint64_t magnitude = 0;

  // strtol(): saturates at LONG_MIN/LONG_MAX.
  std::int64_t as_long() const noexcept {
    constexpr std::uint64_t max_pos = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (!negative) return overflow || magnitude > max_pos ? std::numeric_limits<std::int64_t>::max()
                                                          : static_cast<std::int64_t>(magnitude);
    if (overflow || magnitude > max_pos + 1) return std::numeric_limits<std::int64_t>::min();
    return static_cast<std::int64_t>(0 - magnitude);  // two's complement negation
  }
  // strtoul(): ULONG_MAX on overflow, a '-' negates modulo 2^64.
  std::uint64_t as_ulong() const noexcept {
    if (overflow) return std::numeric_limits<std::uint64_t>::max();
    return negative ? 0 - magnitude : magnitude;
  }
};

// A cursor over one line, the way sscanf() walks its input. The line ends at its first NUL
// (sscanf sees a C string).
class scanner {
 public:
  explicit scanner(std::string_view line) : s_(line.substr(0, line.find('\0'))) {}

  // %s / %<width>s: skips white space, then reads up to `width` non-space characters.
  bool token(std::string_view& out, std::size_t width = std::string_view::npos) {
    skip_space();
    std::size_t b = i_;
    while (i_ < s_.size() && !c_space(s_[i_]) && i_ - b < width) ++i_;
    if (i_ == b) return false;
    out = s_.substr(b, i_ - b);
    return true;
  }

  // %d / %x / %lld (and widths): glibc's vfscanf collects [sign][0x]digits, then converts
  // with strtol/strtoul. "0x" with no digit after it reads as 0 (glibc keeps the '0').
  bool number(bool hex, number_text& n, std::size_t width = std::string_view::npos) {
    skip_space();
    n = number_text{};
    std::size_t digits = 0;
    auto more = [&] { return i_ < s_.size() && width != 0; };
    auto take = [&] {
      ++i_;
      if (width != std::string_view::npos) --width;
    };
    if (more() && (s_[i_] == '-' || s_[i_] == '+')) {
      n.negative = s_[i_] == '-';
      take();
    }
    if (more() && s_[i_] == '0') {
      take();
      ++digits;  // the '0' is part of the number
      if (hex && more() && (s_[i_] == 'x' || s_[i_] == 'X')) take();
    }
    const unsigned base = hex ? 16 : 10;
    while (more()) {
      int d = hex ? hex_value(s_[i_]) : (s_[i_] >= '0' && s_[i_] <= '9' ? s_[i_] - '0' : -1);
      if (d < 0) break;
      if (!n.overflow) {
        if (n.magnitude > (std::numeric_limits<std::uint64_t>::max() - static_cast<unsigned>(d)) / base)
          n.overflow = true;
        else
          n.magnitude = n.magnitude * base + static_cast<unsigned>(d);
      }
      ++digits;
      take();
    }
    return digits > 0;
  }

  bool int32_dec(std::int32_t& v) {  // "%d" into int
    number_text n;
    if (!number(false, n)) return false;
    v = static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<std::uint64_t>(n.as_long())));
    return true;
  }
  bool uint32_hex(std::uint32_t& v) {  // "%x" / "%X" into unsigned int (or an int's bits)
    number_text n;
    if (!number(true, n)) return false;
    v = static_cast<std::uint32_t>(n.as_ulong());
    return true;
  }
  bool int64_dec(std::int64_t& v) {  // "%lld" into long long
    number_text n;
    if (!number(false, n)) return false;
    v = n.as_long();
    return true;
  }

 private:
  void skip_space() {
    while (i_ < s_.size() && c_space(s_[i_])) ++i_;
  }
  std::string_view s_;
  std::size_t i_ = 0;
};

// getline() over `text`: every line with its '\n' (the last one may lack it).
template <class F>
void for_each_line(std::string_view text, F&& f) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    f(text.substr(pos, end - pos));
    pos = end;
  }
}

std::string dotted_quad(std::uint32_t v) {
  // hex_to_ip_address(, 0): "%u.%u.%u.%u" of byte4, byte3, byte2, byte1 (low byte first).
  std::string s;
  s.reserve(15);
  for (int shift = 0; shift < 32; shift += 8) {
    if (shift) s += '.';
    s += std::to_string((v >> shift) & 0xFFu);
  }
  return s;
}

std::string ntop6(const std::uint8_t* bytes) {
  char buf[INET6_ADDRSTRLEN];
  if (!::inet_ntop(AF_INET6, bytes, buf, sizeof buf)) return {};
  return buf;
}

}  // namespace

std::optional<std::string> ipv6_from_hex(std::string_view hex) {
  std::array<std::uint8_t, 16> b{};
  for (std::size_t i = 0; i < 16; ++i) {
    const std::size_t p = i * 2;
    // At the terminating NUL sscanf() returns EOF; beyond it upstream reads stale stack
    // bytes (undefined behaviour): both are "does not parse" here.
    if (p >= hex.size()) return std::nullopt;
    scanner sc(hex.substr(p));
    number_text n;
    if (!sc.number(true, n, 2)) return std::nullopt;
    b[i] = static_cast<std::uint8_t>(n.as_ulong());  // "%02hhx"
  }
  return ntop6(b.data());
}

int prefix_length(const std::array<std::uint8_t, 16>& netmask, bool ipv6) noexcept {
  int bits = 0;
  const std::size_t n = ipv6 ? 16 : 4;
  for (std::size_t i = 0; i < n; ++i) bits += std::popcount(netmask[i]);
  return bits;
}

std::string address_text(const if_address& a) {
  if (a.fam == if_address::family::ipv6) return ntop6(a.addr.data());
  char buf[INET_ADDRSTRLEN];
  if (!::inet_ntop(AF_INET, a.addr.data(), buf, sizeof buf)) return {};
  return buf;
}

std::optional<dev_stats> find_dev_stats(std::string_view text, std::string_view name) {
  std::optional<dev_stats> found;
  for_each_line(text, [&](std::string_view line) {
    if (found) return;
    line = line.substr(0, line.find('\0'));
    std::size_t b = 0;  // g_strchug()
    while (b < line.size() && c_space(line[b])) ++b;
    line.remove_prefix(b);
    if (line.empty()) return;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon != name.size() || line.substr(0, colon) != name) return;
    scanner sc(line.substr(colon + 1));
    std::int64_t v[16];
    for (auto& x : v)
      if (!sc.int64_dec(x)) return;  // fewer than 16: try the next line
    dev_stats s;
    s.rx_bytes = static_cast<std::uint64_t>(v[0]);
    s.rx_packets = static_cast<std::uint64_t>(v[1]);
    s.rx_errs = static_cast<std::uint64_t>(v[2]);
    s.rx_dropped = static_cast<std::uint64_t>(v[3]);
    s.tx_bytes = static_cast<std::uint64_t>(v[8]);
    s.tx_packets = static_cast<std::uint64_t>(v[9]);
    s.tx_errs = static_cast<std::uint64_t>(v[10]);
    s.tx_dropped = static_cast<std::uint64_t>(v[11]);
    found = s;
  });
  return found;
}

void parse_ipv4_routes(std::string_view text, const route_sink& sink) {
  bool first = true;
  route r;
  for_each_line(text, [&](std::string_view line) {
    if (first) {
      first = false;
      return;
    }
    scanner sc(line);
    std::string_view iface;
    std::uint32_t dest, gw, flags, mask;
    std::int32_t refcnt, use, metric, mtu, window, irtt;
    if (!sc.token(iface) || !sc.uint32_hex(dest) || !sc.uint32_hex(gw) || !sc.uint32_hex(flags) ||
        !sc.int32_dec(refcnt) || !sc.int32_dec(use) || !sc.int32_dec(metric) || !sc.uint32_hex(mask) ||
        !sc.int32_dec(mtu) || !sc.int32_dec(window) || !sc.int32_dec(irtt))
      return;
    r.iface.assign(iface);
    r.destination = dotted_quad(dest);
    r.gateway = dotted_quad(gw);
    r.mask = dotted_quad(mask);
    r.metric = metric;
    r.flags = flags;  // unsigned int: no sign extension
    r.refcnt = refcnt;
    r.use = use;
    r.mtu = mtu;
    r.window = window;
    r.irtt = irtt;
    r.version = 4;
    sink(r);
  });
}

void parse_ipv6_routes(std::string_view text, const route_sink& sink) {
  route r;
  r.version = 6;
  for_each_line(text, [&](std::string_view line) {
    scanner sc(line);
    std::string_view dest, src, hop, iface;
    std::uint32_t des_prefixlen, src_prefixlen, metric, refcnt, use, flags;  // upstream: int
    if (!sc.token(dest, 32) || !sc.uint32_hex(des_prefixlen) || !sc.token(src, 32) ||
        !sc.uint32_hex(src_prefixlen) || !sc.token(hop, 32) || !sc.uint32_hex(metric) ||
        !sc.uint32_hex(refcnt) || !sc.uint32_hex(use) || !sc.uint32_hex(flags) || !sc.token(iface))
      return;
    auto d = ipv6_from_hex(dest);
    if (!d) return;
    // Upstream reads these %x fields into C `int`s, so metric ffffffff becomes -1 and the
    // flags of local routes (80200001) sign-extend into 18446744071564165121. The kernel
    // prints them as unsigned 32-bit values; fleetga reports them as such (issue 3: no
    // sign-extension bugs).
    r.iface.assign(iface);
    r.destination = std::move(*d);
    r.source = ipv6_from_hex(src);
    r.nexthop = ipv6_from_hex(hop);
    r.desprefixlen = std::to_string(des_prefixlen);
    r.srcprefixlen = std::to_string(src_prefixlen);
    r.metric = metric;
    r.flags = flags;
    r.refcnt = refcnt;
    r.use = use;
    sink(r);
  });
}

}  // namespace fleetga::platform
