/* The transport's reference for the VM benchmark: the least a guest agent can do per
 * request over virtio-serial. A blocking read, then one `{"return": {}}` per complete line
 * in one write; no JSON, no state. When no host is attached the port reads EOF: sleep 10 ms
 * and read again (this program is only for measuring, not for idling).
 * usage: vm-responder PORT_PATH */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  int fd = open(argv[1], O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  static char in[65536], out[65536 * 16];
  static const char reply[] = "{\"return\": {}}\n";
  const size_t rl = sizeof reply - 1;
  for (;;) {
    ssize_t n = read(fd, in, sizeof in);
    if (n <= 0) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
      continue;
    }
    size_t k = 0;
    for (ssize_t i = 0; i < n; i++)
      if (in[i] == '\n') {
        memcpy(out + k, reply, rl);
        k += rl;
      }
    for (size_t done = 0; done < k;) {
      ssize_t w = write(fd, out + done, k - done);
      if (w <= 0) break;
      done += (size_t)w;
    }
  }
}
