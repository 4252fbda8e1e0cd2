#pragma once
// Tests that need a namespace, a uid or limits of their own run their body in a forked child.
#include <sys/wait.h>
#include <unistd.h>

namespace fleetga::test {

// Exit code 77 from a body: this machine can't do it (no namespace of our own, not root...).
inline constexpr int child_cannot = 77;

// Runs `body` in a forked child and returns its exit status: what body returned, or 128 + the
// signal that ended it (125: body threw; -1: fork or wait failed). The child leaves with _exit
// (no atexit handlers, no test framework teardown), after body's own locals are destroyed.
template <class F>
int in_child(F body) {
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    try {
      ::_exit(body());
    } catch (...) {  // never back into the test runner's copy in the child
      ::_exit(125);
    }
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace fleetga::test
