// enosys: runs a program with the system calls that Linux 4.18 (RHEL 8, fleetga's floor)
// doesn't have answering ENOSYS, as they would there. A seccomp filter (inherited across
// exec and fork, so the agent's children see it too) turns each listed call into ENOSYS;
// everything else is allowed.
//
//   enosys [--list] -- PROGRAM [ARG...]
//
// The calls (x86_64 and aarch64 numbers come from <sys/syscall.h>):
//   openat2 (5.6), pidfd_open (5.3), pidfd_send_signal (5.1), pidfd_getfd (5.6),
//   close_range (5.9), clone3 (5.3), faccessat2 (5.8), epoll_pwait2 (5.11),
//   process_madvise (5.10), memfd_secret (5.14), landlock_* (5.13), futex_waitv (5.16),
//   cachestat (6.5), fchmodat2 (6.6), mseal (6.10), statmount / listmount (6.8).
// statx (4.11) is older than the floor; its mount id (STATX_MNT_ID, 5.8) is simply not
// reported by an older kernel, which the code handles where it asks.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

struct call {
  const char* name;
  long nr;
};

const call denied[] = {
#ifdef SYS_openat2
    {"openat2",                 SYS_openat2                },
#endif
#ifdef SYS_pidfd_open
    {"pidfd_open",              SYS_pidfd_open             },
#endif
#ifdef SYS_pidfd_send_signal
    {"pidfd_send_signal",       SYS_pidfd_send_signal      },
#endif
#ifdef SYS_pidfd_getfd
    {"pidfd_getfd",             SYS_pidfd_getfd            },
#endif
#ifdef SYS_close_range
    {"close_range",             SYS_close_range            },
#endif
#ifdef SYS_clone3
    {"clone3",                  SYS_clone3                 },
#endif
#ifdef SYS_faccessat2
    {"faccessat2",              SYS_faccessat2             },
#endif
#ifdef SYS_epoll_pwait2
    {"epoll_pwait2",            SYS_epoll_pwait2           },
#endif
#ifdef SYS_process_madvise
    {"process_madvise",         SYS_process_madvise        },
#endif
#ifdef SYS_memfd_secret
    {"memfd_secret",            SYS_memfd_secret           },
#endif
#ifdef SYS_landlock_create_ruleset
    {"landlock_create_ruleset", SYS_landlock_create_ruleset},
#endif
#ifdef SYS_futex_waitv
    {"futex_waitv",             SYS_futex_waitv            },
#endif
    {"cachestat",               451                        },
    {"fchmodat2",               452                        },
    {"statmount",               457                        },
    {"listmount",               458                        },
    {"mseal",                   462                        },
};

}  // namespace

int main(int argc, char** argv) {
  int i = 1;
  if (i < argc && std::strcmp(argv[i], "--list") == 0) {
    for (const auto& c : denied) std::printf("%s %ld\n", c.name, c.nr);
    return 0;
  }
  if (i < argc && std::strcmp(argv[i], "--") == 0) ++i;
  if (i >= argc) {
    std::fprintf(stderr, "usage: enosys [--list] -- PROGRAM [ARG...]\n");
    return 2;
  }
  std::vector<sock_filter> f;
  f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
#if defined(__x86_64__)
  const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  const unsigned arch = AUDIT_ARCH_AARCH64;
#elif defined(__i386__)
  const unsigned arch = AUDIT_ARCH_I386;
#else
#error "enosys: unknown architecture"
#endif
  // Another architecture's calls (x32, a 32-bit binary on x86_64): allowed, untouched.
  f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0));
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  for (const auto& c : denied) {
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(c.nr), 0, 1));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)));
  }
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    std::fprintf(stderr, "enosys: seccomp: %s\n", std::strerror(errno));
    return 1;
  }
  ::execvp(argv[i], argv + i);
  std::fprintf(stderr, "enosys: %s: %s\n", argv[i], std::strerror(errno));
  return 127;
}
