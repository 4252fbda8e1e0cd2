"""Memory the agent gives back and its peak, measured on the Release binary beside Debian's
qemu-ga (issue 16, defects 3 and 4).

RSS is the allocator's business, so these run on FLEETGA_RELEASE_BIN (glibc malloc, -O2), not
on the ASan build the rest of the suite uses: ASan's allocator unmaps large blocks by itself
and hides what glibc keeps. The README's test command builds it (build/release); without it
the suite is skipped, unless FLEETGA_RELEASE_REQUIRED=1 (CI) makes that a failure.

Figures are memory, not time: nothing here depends on how busy the machine is.
"""
import json
import os
import socket
import sys
import time
import unittest

from qga import Agent, QEMU_GA

RELEASE = os.environ.get("FLEETGA_RELEASE_BIN", "")
REQUIRED = os.environ.get("FLEETGA_RELEASE_REQUIRED") == "1"


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def need_release(test):
    if not RELEASE or not os.access(RELEASE, os.X_OK):
        if REQUIRED:
            test.fail(f"FLEETGA_RELEASE_BIN={RELEASE!r} is not an executable (build/release)")
        test.skipTest("no Release build (FLEETGA_RELEASE_BIN)")


def start_exec(c, script):
    return c.cmd("guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})["return"]["pid"]


def collect_all(c, pids, deadline):
    """guest-exec-status for every child, round-robin, until each has exited with its output
    complete (that call hands out the output and drops the record). Round-robin because the
    agent's 256 MiB output budget can hold some children in write(2) until others are
    collected. Returns the replies' total size in bytes."""
    total = 0
    pending = list(pids)
    while pending:
        still = []
        for pid in pending:
            c.send(json.dumps({"execute": "guest-exec-status", "arguments": {"pid": pid}}))
            line = c.line()
            if b'"exited": true' in line:
                total += len(line)
            else:
                still.append(pid)
        pending = still
        if pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"children {pending} did not exit")
            time.sleep(0.05)
    return total


def run_exec_round(binary, children=20, size=20_000_000):
    """Idle RSS before, and after `children` guest-execs of `size` bytes of output each are
    collected and the client is gone."""
    with Agent(binary) as a:
        c = a.connect(timeout=120)
        # Warm-up: the worker pool, the reactor and a first child exist before "before".
        collect_all(c, [start_exec(c, "echo warm")], time.monotonic() + 60)
        time.sleep(0.2)
        before = status_kib(a.proc.pid, "VmRSS")
        pids = [start_exec(c, f"head -c {size} /dev/zero") for _ in range(children)]
        deadline = time.monotonic() + 300
        collected = collect_all(c, pids, deadline)
        c.close()
        c2 = a.connect()
        c2.sync_delimited(5)
        c2.close()
        time.sleep(0.5)
        after = status_kib(a.proc.pid, "VmRSS")
        peak = status_kib(a.proc.pid, "VmHWM")
        a.stop()
        return before, after, peak, collected


def stray_token_peak(binary, fill, n=60 << 20):
    """Peak RSS (VmHWM) of an agent sent one string token of `n` bytes of `fill` ended by a
    control byte (QEMU's lexer rejects it; the error reply quotes it), and the reply's size."""
    with Agent(binary) as a:
        c = a.connect(timeout=300)
        c.s.settimeout(300)
        payload = b'"' + fill * n + b"\x01"
        c.s.sendall(payload)
        got = 0
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = c.s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
            buf = chunk[-1:]
        peak = status_kib(a.proc.pid, "VmHWM")
        c.close()
        a.stop()
        return peak, got


class MemoryAfterExec(unittest.TestCase):
    def test_idle_rss_after_collecting_large_exec_output(self):
        need_release(self)
        before, after, peak, collected = run_exec_round(RELEASE)
        q = run_exec_round(QEMU_GA)
        print(f"\nidle RSS before/after 20 x 20 MB of exec output, KiB: fleetga {before} -> {after} "
              f"(peak {peak}), qemu-ga {q[0]} -> {q[1]} (peak {q[2]}); replies {collected} bytes",
              file=sys.stderr)
        self.assertGreater(collected, 100 << 20)  # the output really went through the agent
        self.assertLessEqual(after, 2 * before, f"fleetga kept {after - before} KiB after the output was collected")


class PeakOnOversizedToken(unittest.TestCase):
    def check(self, fill):
        need_release(self)
        f_peak, f_reply = stray_token_peak(RELEASE, fill)
        q_peak, q_reply = stray_token_peak(QEMU_GA, fill)
        print(f"\npeak RSS on a 60 MiB {fill!r} token, KiB: fleetga {f_peak}, qemu-ga {q_peak}; "
              f"replies {f_reply} / {q_reply} bytes", file=sys.stderr)
        self.assertEqual(f_reply, q_reply)  # the same error reply
        self.assertLessEqual(f_peak, q_peak)

    def test_invalid_utf8_token(self):
        self.check(b"\x80")

    def test_ascii_token(self):
        self.check(b"a")


if __name__ == "__main__":
    unittest.main()
