// Load client for the benchmark table: talks to any agent (fleetga or qemu-ga) on a unix
// socket with plain blocking syscalls, so the client costs as little as possible.
//   qga_bench lockstep  SOCKET N [REQUEST]   N round trips, one request in flight
//   qga_bench pipelined SOCKET N [REQUEST]   N requests written while replies are read
//   qga_bench send      SOCKET N [REQUEST]   N lock-step requests 1 ms apart, no timing
//                                            (callgrind: each request finds the agent idle,
//                                            waiting for input, as a fleet's requests do)
// Prints "<requests/s>" (or nothing for send). Exit status 1 on any short or bad reply.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int connect_unix(const char* path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  return fd;
}

void write_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) { std::perror("write"); std::exit(1); }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Reads until `lines` newlines have been seen; checks every reply is a success.
struct reader {
  int fd;
  std::vector<char> buf = std::vector<char>(1 << 20);
  long bad = 0;
  bool at_line_start = true;
  void read_lines(long lines) {
    while (lines > 0) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n <= 0) { std::fprintf(stderr, "agent closed with %ld replies missing\n", lines); std::exit(1); }
      for (ssize_t i = 0; i < n; ++i) {
        if (at_line_start && buf[i] == '{' && i + 2 < n && buf[i + 2] == 'e') ++bad;  // {"error"
        at_line_start = buf[i] == '\n';
        if (at_line_start) --lines;
      }
    }
  }
};

// Drains what an earlier client left and resynchronises: 0xFF, guest-sync-delimited.
void handshake(int fd, reader& r) {
  const char sync[] = "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":4711}}\n";
  write_all(fd, sync, sizeof sync - 1);
  r.read_lines(2);  // the 0xFF's parse error + the sync reply
  r.bad = 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s lockstep|pipelined|send SOCKET N [REQUEST]\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  long n = std::atol(argv[3]);
  std::string req = argc > 4 ? argv[4] : "{\"execute\":\"guest-ping\"}";
  req += '\n';
  int fd = connect_unix(argv[2]);
  reader r{fd};
  handshake(fd, r);

  auto t0 = std::chrono::steady_clock::now();
  if (mode == "pipelined") {
    std::thread writer([&] {
      std::string batch;
      const long per_batch = 256;
      for (long i = 0; i < per_batch; ++i) batch += req;
      long left = n;
      while (left > 0) {
        long k = left < per_batch ? left : per_batch;
        write_all(fd, batch.data(), req.size() * static_cast<size_t>(k));
        left -= k;
      }
    });
    r.read_lines(n);
    writer.join();
  } else {
    const bool paced = mode == "send";
    for (long i = 0; i < n; ++i) {
      write_all(fd, req.data(), req.size());
      r.read_lines(1);
      if (paced) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(fd);
  if (r.bad) {
    std::fprintf(stderr, "%ld error replies\n", r.bad);
    return 1;
  }
  if (mode != "send") std::printf("%.0f\n", static_cast<double>(n) / secs);
  return 0;
}
