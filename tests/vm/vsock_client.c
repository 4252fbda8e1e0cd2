/* test_vsock.py's AF_VSOCK client, run inside the test guest (static, no libraries).
 *
 * usage: vsock-client [-l LINES] [-t SECONDS] [-H SECONDS] CID PORT
 *        vsock-client -n PINGS [-t SECONDS] CID PORT
 *
 * Connects an AF_VSOCK SOCK_STREAM socket to CID:PORT, writes all of stdin to it, then copies
 * what comes back to stdout until LINES newlines arrived (default: as many as stdin had), the
 * peer closed, or the deadline (-t, default 10 s, counted from the start) passed. -l 0 sends
 * and closes without reading (a client that leaves before its replies). -H holds the
 * connection open that long after the replies (stdout flushed first), for a client that a
 * second one has to wait behind.
 * -n: PINGS lock-step guest-ping round trips (one request in flight); prints
 * "pings N seconds S rate R/s" (CLOCK_MONOTONIC) and fails on any other reply.
 * Always prints "connect_ms M elapsed_ms E" on stderr.
 * Exit status: 0 done, 1 connect/IO error (errno text on stderr), 2 usage, 3 timeout with
 * fewer lines than wanted, 4 wrong ping reply. Never waits past the deadline. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double t_start, deadline;

/* Waits for fd to become ready for `events` until the deadline: 1 ready, 0 timed out. */
static int wait_fd(int fd, short events) {
  for (;;) {
    int left = (int)((deadline - now()) * 1000);
    if (left <= 0) return 0;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, left);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return 0;
  }
}

static int write_all(int fd, const char* buf, size_t len) {
  while (len) {
    if (!wait_fd(fd, POLLOUT)) {
      fprintf(stderr, "vsock-client: write timed out\n");
      return -1;
    }
    ssize_t w = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (w < 0) {
      perror("vsock-client: send");
      return -1;
    }
    buf += w;
    len -= (size_t)w;
  }
  return 0;
}

static void report(double t_connected) {
  fprintf(stderr, "connect_ms %.1f elapsed_ms %.1f\n", (t_connected - t_start) * 1000, (now() - t_start) * 1000);
}

/* -n: one guest-ping at a time, each reply checked. */
static int pings(int fd, long n, double t_connected) {
  static const char req[] = "{\"execute\":\"guest-ping\"}\n";
  static const char want[] = "{\"return\": {}}\n";
  char buf[256];
  double t0 = now();
  for (long i = 0; i < n; i++) {
    if (write_all(fd, req, sizeof req - 1)) return 1;
    size_t have = 0;
    while (have == 0 || buf[have - 1] != '\n') {
      if (!wait_fd(fd, POLLIN)) {
        fprintf(stderr, "vsock-client: ping %ld: no reply in time\n", i);
        return 3;
      }
      ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0 || have + (size_t)r >= sizeof buf - 1) {
        fprintf(stderr, "vsock-client: ping %ld: %s\n", i, r < 0 ? strerror(errno) : r == 0 ? "peer closed" : "reply too long");
        return r < 0 ? 1 : 4;
      }
      have += (size_t)r;
    }
    buf[have] = 0;
    if (strcmp(buf, want) != 0) {
      fprintf(stderr, "vsock-client: ping %ld: unexpected reply %s", i, buf);
      return 4;
    }
  }
  double secs = now() - t0;
  printf("pings %ld seconds %.3f rate %.0f/s\n", n, secs, n / secs);
  report(t_connected);
  return 0;
}

int main(int argc, char** argv) {
  long want_lines = -1, n_pings = 0;
  double timeout = 10, hold = 0;
  int opt;
  while ((opt = getopt(argc, argv, "l:t:H:n:")) != -1) {
    switch (opt) {
      case 'l': want_lines = atol(optarg); break;
      case 't': timeout = atof(optarg); break;
      case 'H': hold = atof(optarg); break;
      case 'n': n_pings = atol(optarg); break;
      default: return 2;
    }
  }
  if (argc - optind != 2) {
    fprintf(stderr, "usage: %s [-l LINES] [-t SECONDS] [-H SECONDS] | -n PINGS  CID PORT\n", argv[0]);
    return 2;
  }
  t_start = now();
  deadline = t_start + timeout;

  /* The request: all of stdin (not needed for -n). */
  char* req = NULL;
  size_t req_len = 0, cap = 0;
  if (n_pings == 0) {
    for (;;) {
      if (cap - req_len < 4096 && !(req = realloc(req, cap = cap * 2 + 4096))) return 1;
      ssize_t r = read(STDIN_FILENO, req + req_len, cap - req_len);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        perror("vsock-client: stdin");
        return 1;
      }
      if (r == 0) break;
      req_len += (size_t)r;
    }
    if (want_lines < 0) {
      want_lines = 0;
      for (size_t i = 0; i < req_len; i++) want_lines += req[i] == '\n';
    }
  }

  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("vsock-client: socket(AF_VSOCK)");
    return 1;
  }
  struct sockaddr_vm addr;
  memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = (unsigned)strtoul(argv[optind], NULL, 10);
  addr.svm_port = (unsigned)strtoul(argv[optind + 1], NULL, 10);
  /* A blocking connect: the kernel bounds it (vsock's connect timeout, 2 s by default). */
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
    fprintf(stderr, "vsock-client: connect to %s:%s: %s\n", argv[optind], argv[optind + 1], strerror(errno));
    return 1;
  }
  double t_connected = now();
  if (n_pings > 0) return pings(fd, n_pings, t_connected);

  if (write_all(fd, req, req_len)) return 1;
  if (want_lines == 0) { /* leave without reading */
    close(fd);
    report(t_connected);
    return 0;
  }
  long lines = 0;
  char buf[65536];
  int status = 0;
  while (lines < want_lines) {
    if (!wait_fd(fd, POLLIN)) {
      fprintf(stderr, "vsock-client: timed out with %ld of %ld lines\n", lines, want_lines);
      status = 3;
      break;
    }
    ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r < 0) {
      perror("vsock-client: recv");
      status = 1;
      break;
    }
    if (r == 0) {
      fprintf(stderr, "vsock-client: peer closed after %ld of %ld lines\n", lines, want_lines);
      status = 3;
      break;
    }
    fwrite(buf, 1, (size_t)r, stdout);
    for (ssize_t i = 0; i < r; i++) lines += buf[i] == '\n';
  }
  fflush(stdout);
  if (hold > 0 && status == 0) {
    struct timespec ts = {(time_t)hold, (long)((hold - (time_t)hold) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  close(fd);
  report(t_connected);
  return status;
}
