// fleetga-host responder SOCKET: a trivial agent for measuring fleetga-host itself. Answers
// every top-level JSON object with {"return": {}} (echoing a top-level integer "id"), the
// sync commands with their id (0xFF first for guest-sync-delimited), and a 0xFF with QEMU's
// stray-byte error. Plain blocking syscalls, one thread per connection, a string-aware
// brace counter for framing: it must cost less than the client it measures.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "tools/common.hpp"
#include "tools/subcommands.hpp"

namespace fleetga::host {
namespace {

bool write_all(int fd, const char* p, std::size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Reply to one complete request object [b, e).
void answer(std::string& out, const char* b, const char* e) {
  std::string_view m(b, static_cast<std::size_t>(e - b));
  if (m.find("guest-sync") != std::string_view::npos) {
    simdjson::dom::parser p;
    simdjson::dom::element el;
    std::int64_t id = 0;
    std::string_view cmd;
    if (!p.parse(m.data(), m.size()).get(el) && !el["execute"].get(cmd) && !el["arguments"]["id"].get(id)) {
      if (cmd == "guest-sync-delimited") out += '\xff';
      fmt::format_to(std::back_inserter(out), "{{\"return\": {}}}\n", id);
      return;
    }
  }
  // A top-level integer id is the object's last member: `..."id":123}` at depth 1.
  std::size_t i = m.size() - 1;
  std::size_t d = i;
  while (d > 0 && m[d - 1] >= '0' && m[d - 1] <= '9') --d;
  if (d < i) {
    std::size_t k = d;
    while (k > 0 && m[k - 1] == ' ') --k;
    if (k >= 5 && m.substr(k - 5, 5) == "\"id\":") {
      out += "{\"return\": {}, \"id\": ";
      out.append(m.data() + d, i - d);
      out += "}\n";
      return;
    }
  }
  out += "{\"return\": {}}\n";
}

void serve(int fd) {
  std::vector<char> buf(256 * 1024);
  std::string pending;  // an incomplete object carried over between reads
  std::string out;
  int depth = 0;
  bool in_str = false, esc = false;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) break;
    out.clear();
    const char* p = buf.data();
    const char* end = p + n;
    const char* start = pending.empty() ? nullptr : p;  // start of the current object in buf
    for (const char* c = p; c < end; ++c) {
      const char ch = *c;
      if (in_str) {
        if (esc) esc = false;
        else if (ch == '\\') esc = true;
        else if (ch == '"') in_str = false;
        continue;
      }
      if (ch == '"') {
        in_str = depth > 0;
      } else if (ch == '{') {
        if (depth++ == 0) start = c;
      } else if (ch == '}' && depth > 0) {
        if (--depth == 0) {
          if (!pending.empty()) {
            pending.append(start, static_cast<std::size_t>(c + 1 - start));
            answer(out, pending.data(), pending.data() + pending.size());
            pending.clear();
          } else {
            answer(out, start, c + 1);
          }
          start = nullptr;
        }
      } else if (static_cast<unsigned char>(ch) == 0xFF) {
        depth = 0;
        pending.clear();
        start = nullptr;
        out += "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n";
      }
    }
    if (depth > 0 && start) pending.append(start, static_cast<std::size_t>(end - start));
    if (!out.empty() && !write_all(fd, out.data(), out.size())) break;
  }
  ::close(fd);
}

}  // namespace

int cmd_responder(int argc, char** argv) {
  if (argc != 1 || argv[0][0] == '-') {
    std::cerr << "usage: fleetga-host responder SOCKET\n"
                 "  A trivial agent: {\"return\": {}} to every request, for measuring fleetga-host.\n";
    return argc == 1 ? ok : usage;
  }
  const std::string path = argv[0];
  int ls = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw usage_error("socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(ls, 128) != 0)
    throw std::runtime_error(fmt::format("{}: cannot listen: {}", path, std::strerror(errno)));
  for (;;) {
    int fd = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(fmt::format("accept: {}", std::strerror(errno)));
    }
    std::thread(serve, fd).detach();
  }
}

}  // namespace fleetga::host
