"""Differential test: the same byte streams to Debian's qemu-ga (7.2) and to fleetga, replies
compared byte for byte. Only behaviour where 7.2 and upstream agree is compared (wire spec
§7 lists where they differ; there fleetga follows upstream and other tests check it)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from qga import Agent, FLEETGA, QEMU_GA

# Each case is a list of writes. After each case a barrier (0xFF + guest-sync-delimited)
# collects every byte the case produced.
CASES = {
    # framing (§1.1)
    "no newline": [b'{"execute":"guest-ping"}'],
    "two in one write": [b'{"execute":"guest-ping","id":1}{"execute":"guest-ping","id":2}'],
    "split in three": [b'{"exec', b'ute":"guest-', b'ping","id":"s"}'],
    "whitespace only": [b"\n\n  \t\r\n"],
    "single quotes": [b"{'execute':'guest-ping','id':'it''s'}", b"{'execute':'guest-ping','id':'a\"b'}"],
    "escaped quote in sq": [b"{'execute':'guest-ping','id':'x\\'y'}"],
    "top-level number": [b"123 "],
    "top-level string": [b'"s"'],
    "top-level keyword": [b"true\n", b"null\n"],
    "array": [b"[]", b"[1,2]"],
    # recovery (§1.2)
    "0xff alone": [b"\xff"],
    "0xff mid string": [b'{"execute":"guest-pi\xff{"execute":"guest-ping","id":"C"}'],
    "at signs": [b'@@@ {"execute":"guest-ping","id":"F"}'],
    "bare words": [b'hello world {"execute":"guest-ping"}'],
    "0xff inside then brace": [b'{"execute":"gu\xffest"}'],
    "nul then request": [b'\x00{"execute":"guest-ping"}'],
    "bom then request": [b'\xef\xbb\xbf{"execute":"guest-ping"}'],
    "stray close": [b"}", b"]"],
    "bad escape": [b'{"execute":"guest-ping","id":"\\q"}'],
    "lone surrogate": [b'{"execute":"guest-ping","id":"\\ud800"}'],
    "bad utf8": [b'{"execute":"guest-ping","id":"\xc3\x28"}'],
    "overlong nul": [b'{"execute":"guest-ping","id":"a\xc0\x80b"}'],
    "u0000": [b'{"execute":"guest-ping","id":"a\\u0000b"}'],
    "surrogate pair": [b'{"execute":"guest-ping","id":"\\ud83d\\ude00 \xf0\x9f\x98\x80"}'],
    "control char in string": [b'{"execute":"guest-ping","id":"a\x01b"}'],
    "duplicate key": [b'{"execute":"guest-ping","execute":"guest-ping"}'],
    "duplicate nested": [b'{"execute":"guest-ping","id":{"a":1,"a":2}}'],
    "missing colon": [b'{"execute" "guest-ping"}'],
    "missing value": [b'{"execute":}'],
    "trailing comma": [b'{"execute":"guest-ping",}', b'[1,]'],
    "key not string": [b'{1:2}'],
    "list separator": [b'[1 2]'],
    "dict separator": [b'{"a":1 "b":2}'],
    "bad keyword": [b'{"execute":"guest-ping","id":nul}'],
    "upper keyword": [b'{"execute":"guest-ping","id":TRUE}'],
    "leading zero": [b'{"execute":"guest-ping","id":01}'],
    "nesting limit": [b"[" * 1025 + b"]" * 1025],
    "nesting ok": [b'{"execute":"guest-ping","id":' + b"[" * 1000 + b"]" * 1000 + b"}"],
    # validation (§1.4)
    "not object": [b"[]", b"1 ", b'"s"', b"null "],
    "unexpected member": [b'{"execute":"guest-ping","foo":1}'],
    "exec-oob": [b'{"exec-oob":"guest-ping"}'],
    "execute not string": [b'{"execute":1}'],
    "arguments not object": [b'{"execute":"guest-ping","arguments":[]}', b'{"execute":"guest-ping","arguments":null}'],
    "no execute": [b"{}", b'{"id":5}'],
    "several bad members": [b'{"foo":1,"execute":2,"arguments":3,"id":4}', b'{"bar":1,"baz":2}'],
    "unknown command": [b'{"execute":"guest-foo","id":"u"}'],
    "ping unexpected arg": [b'{"execute":"guest-ping","arguments":{"foo":42}}'],
    "sync missing": [b'{"execute":"guest-sync","arguments":{}}', b'{"execute":"guest-sync"}'],
    "sync type": [b'{"execute":"guest-sync","arguments":{"id":"x"}}',
                  b'{"execute":"guest-sync","arguments":{"id":1.5}}',
                  b'{"execute":"guest-sync","arguments":{"id":1e3}}',
                  b'{"execute":"guest-sync","arguments":{"id":9223372036854775808}}',
                  b'{"execute":"guest-sync","arguments":{"id":true}}'],
    "sync values": [b'{"execute":"guest-sync","arguments":{"id":-9223372036854775808}}',
                    b'{"execute":"guest-sync","arguments":{"id":9223372036854775807}}'],
    "sync missing beats unexpected": [b'{"execute":"guest-sync","arguments":{"foo":1}}'],
    "delimited bad args": [b'{"execute":"guest-sync-delimited","arguments":{"id":"x"}}'],
    "delimited ok": [b'{"execute":"guest-sync-delimited","arguments":{"id":77},"id":"d"}'],
    # id echo (§1.4)
    "ids": [b'{"execute":"guest-ping","id":-5}', b'{"execute":"guest-ping","id":18446744073709551615}',
            b'{"execute":"guest-ping","id":18446744073709551616}', b'{"execute":"guest-ping","id":0.1}',
            b'{"execute":"guest-ping","id":1.0}', b'{"execute":"guest-ping","id":1e3}',
            b'{"execute":"guest-ping","id":1.5e10}', b'{"execute":"guest-ping","id":-0.0}',
            b'{"execute":"guest-ping","id":{"b":1,"a":[true,null,"x"],"c":{"y":1,"x":2}}}',
            b'{"execute":"guest-ping","id":[]}', b'{"execute":"guest-ping","id":{}}',
            b'{"execute":"guest-ping","id":null}', b'{"execute":"guest-ping","id":"\\u00e9\\/\\b\\f"}',
            b'{"execute":"guest-ping","id":"\xc3\xa9\x7f"}',
            b'{"execute":"guest-foo","id":{"k":"v"}}', b'{"id":[1],"execute":5}'],
    "member order": [b'{"id":1,"arguments":{},"execute":"guest-ping"}',
                     b'{"arguments":{"id":3},"id":"z","execute":"guest-sync"}'],
    # files (§3.2)
    "file ops": [b'{"execute":"guest-file-open","arguments":{"path":"foo","mode":"w+"}}',
                 b'{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"SGVsbG8gV29ybGQhCgA="}}',
                 b'{"execute":"guest-file-read","arguments":{"handle":1000}}',
                 b'{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"set"}}',
                 b'{"execute":"guest-file-read","arguments":{"handle":1000,"count":5}}',
                 b'{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":-2,"whence":2}}',
                 b'{"execute":"guest-file-read","arguments":{"handle":1000,"count":0}}',
                 b'{"execute":"guest-file-read","arguments":{"handle":1000,"count":-1}}',
                 b'{"execute":"guest-file-read","arguments":{"handle":1000,"count":50331649}}',
                 b'{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"QUJD","count":4}}',
                 b'{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"QU@D"}}',
                 b'{"execute":"guest-file-write","arguments":{"handle":1000,"buf-b64":"QUJD","count":2}}',
                 b'{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":7}}',
                 b'{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"bogus"}}',
                 b'{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":true}}',
                 b'{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":-100,"whence":"set"}}',
                 b'{"execute":"guest-file-flush","arguments":{"handle":1000}}',
                 b'{"execute":"guest-file-close","arguments":{"handle":1000}}',
                 b'{"execute":"guest-file-close","arguments":{"handle":1000}}',
                 b'{"execute":"guest-file-read","arguments":{"handle":5}}'],
    "file open errors": [b'{"execute":"guest-file-open","arguments":{"path":"/nonexistent/x"}}',
                         b'{"execute":"guest-file-open","arguments":{"path":"foo","mode":"q"}}',
                         b'{"execute":"guest-file-open","arguments":{"mode":"r"}}'],
    "file directory and read-only": [
        b'{"execute":"guest-file-open","arguments":{"path":".","mode":"r"}}',
        b'{"execute":"guest-file-read","arguments":{"handle":1001}}',
        b'{"execute":"guest-file-close","arguments":{"handle":1001}}',
        b'{"execute":"guest-file-open","arguments":{"path":"foo","mode":"r"}}',
        b'{"execute":"guest-file-write","arguments":{"handle":1002,"buf-b64":"QUJD"}}',
        b'{"execute":"guest-file-close","arguments":{"handle":1002}}'],
    # machine state, same on both
    "host name": [b'{"execute":"guest-get-host-name"}'],
    "osinfo": [b'{"execute":"guest-get-osinfo"}'],
    "timezone": [b'{"execute":"guest-get-timezone"}'],
    "fsfreeze status": [b'{"execute":"guest-fsfreeze-status","id":"f"}'],
    # hardware (sysfs/procfs of this machine, unchanged between the two runs)
    "vcpus": [b'{"execute":"guest-get-vcpus"}', b'{"execute":"guest-get-vcpus","arguments":{"a":1}}'],
    "memory block info": [b'{"execute":"guest-get-memory-block-info"}'],
    "memory blocks": [b'{"execute":"guest-get-memory-blocks"}'],
    "set-vcpus args": [b'{"execute":"guest-set-vcpus","arguments":{"vcpus":[]}}',
                       b'{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":false}]}}',
                       b'{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0}]}}',
                       b'{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":true,"bogus":1}]}}',
                       b'{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":1}]}}',
                       b'{"execute":"guest-set-vcpus","arguments":{"vcpus":{}}}',
                       b'{"execute":"guest-set-vcpus","arguments":{"vcpus":[1]}}',
                       b'{"execute":"guest-set-vcpus"}'],
    "set-memory-blocks args": [b'{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[]}}',
                               b'{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":1}]}}',
                               b'{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":"x","online":true}]}}',
                               b'{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":99999,"online":true}]}}'],
    # accounts
    "users": [b'{"execute":"guest-get-users"}'],
    "ssh errors": [b'{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"nosuchuser"}}',
                   b'{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"daemon"}}',
                   b'{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"nosuchuser","keys":["# bad"]}}',
                   b'{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"x","keys":["a\\nb"]}}',
                   b'{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"x","keys":["k"],"reset":null}}',
                   b'{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"x"}}',
                   b'{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"nobody","keys":[]}}'],
    # network: everything but the traffic counters, which move between the two runs
    "interfaces args": [b'{"execute":"guest-network-get-interfaces","arguments":{"a":1}}'],
    # power: only requests that fail before anything runs (both agents are real)
    "shutdown args": [b'{"execute":"guest-shutdown","arguments":{"mode":"sleep"}}',
                      b'{"execute":"guest-shutdown","arguments":{"mode":1}}',
                      b'{"execute":"guest-shutdown","arguments":{"force":true}}',
                      b'{"execute":"guest-suspend-disk","arguments":{"x":1}}'],
    # storage
    "disks": [b'{"execute":"guest-get-disks"}', b'{"execute":"guest-get-disks","arguments":{"x":1}}'],
    "fsinfo args": [b'{"execute":"guest-get-fsinfo","arguments":{"x":1}}'],
}

# Compared as JSON with the members that change between two runs removed.
UNSTABLE = {
    "interfaces": ([b'{"execute":"guest-network-get-interfaces"}'], ("statistics",)),
    "diskstats": ([b'{"execute":"guest-get-diskstats"}'], ("stats",)),
    # total-bytes-privileged is upstream 9.1+ (not in 7.2); the sizes move with disk use
    "fsinfo": ([b'{"execute":"guest-get-fsinfo"}'], ("used-bytes", "total-bytes", "total-bytes-privileged")),
    "cpustats": ([b'{"execute":"guest-get-cpustats"}'],
                 ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guestnice")),
}


def strip(value, keys):
    if isinstance(value, dict):
        return {k: strip(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [strip(v, keys) for v in value]
    return value


def run_cases(binary):
    out = {}
    with Agent(binary) as a:
        c = a.connect()
        for n, (name, writes) in enumerate(CASES.items()):
            for w in writes:
                c.send(w)
            barrier = 900000 + n
            c.send(b'\xff{"execute":"guest-sync-delimited","arguments":{"id":%d}}' % barrier)
            end = b'\xff{"return": %d}\n' % barrier
            while end not in c.buf:
                chunk = c.s.recv(1 << 20)
                if not chunk:
                    raise EOFError(f"agent closed the connection during case {name!r}")
                c.buf += chunk
            got, c.buf = c.buf.split(end, 1)
            out[name] = got
        c.close()
        a.stop()
    return out


@unittest.skipUnless(os.path.exists(QEMU_GA), "Debian's qemu-ga is not installed")
class Differential(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = run_cases(QEMU_GA)
        cls.ours = run_cases(FLEETGA)

    def test_unstable_values_stripped(self):
        import json
        for name, (writes, keys) in UNSTABLE.items():
            with self.subTest(case=name):
                got = {}
                for binary in (QEMU_GA, FLEETGA):
                    with Agent(binary) as a:
                        c = a.connect()
                        c.send(writes[0])
                        raw = c.line()
                        c.close()
                        a.stop()
                    got[binary] = raw
                ref, ours = (json.loads(got[b]) for b in (QEMU_GA, FLEETGA))
                self.assertEqual(strip(ours, keys), strip(ref, keys))
                # members in qemu-ga's order, stable values included
                self.assertEqual(json.dumps(strip(ours, keys)), json.dumps(strip(ref, keys)))

    def test_cases(self):
        for name in CASES:
            with self.subTest(case=name):
                self.assertEqual(self.ours[name].decode("latin-1"), self.ref[name].decode("latin-1"))


@unittest.skipUnless(os.path.exists(QEMU_GA), "Debian's qemu-ga is not installed")
class StateFileCounter(unittest.TestCase):
    """Issue 16, defect 5: the file-handle counter as qga.state gives it. fleetga added 1 to
    fd_counter=9223372036854775807 (UBSan abort, or INT64_MAX then INT64_MIN in Release);
    qemu-ga reads the counter as a gint (g_key_file_get_integer), so any value that is not one
    reads as 0. Both agents start on the same crafted file and open two files: same replies,
    same file afterwards. (Negative counters are left out: qemu-ga answers {"return": -1} and
    closes the file - its guest_file_handle_add() takes them for an error it never set.)"""
    VALUES = ["9223372036854775807", "-9223372036854775808", "99999999999999999999", "2147483648",
              "2147483647", "abc", "7x", "", "0x10", "12 x", "+7", " 7", "1000"]

    def opens(self, binary, stored):
        d = tempfile.mkdtemp(prefix="fleetga-e2e.")
        try:
            with open(os.path.join(d, "qga.state"), "w") as f:
                f.write(f"[global]\nfd_counter={stored}\n")
            with Agent(binary, statedir=d) as a:
                c = a.connect()
                for name in ("a", "b"):
                    c.send('{"execute":"guest-file-open","arguments":{"path":"%s","mode":"w"}}\n'
                           % os.path.join(d, name))
                replies = c.lines(2)
                c.close()
                status, err = a.stop()
            self.assertEqual(status, 0, err)
            with open(os.path.join(d, "qga.state")) as f:
                return replies, f.read()
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_counter_read_like_qemu_ga(self):
        for stored in self.VALUES:
            with self.subTest(fd_counter=stored):
                ref_replies, ref_file = self.opens(QEMU_GA, stored)
                replies, file = self.opens(FLEETGA, stored)
                self.assertEqual(replies, ref_replies)
                if stored == "2147483647":
                    # qemu-ga saves the count truncated to a gint (-2147483647: its next start
                    # hands out -1 for every open); fleetga saves it whole.
                    self.assertEqual(ref_file, "[global]\nfd_counter=-2147483647\n")
                    self.assertEqual(file, "[global]\nfd_counter=2147483649\n")
                else:
                    self.assertEqual(file, ref_file)


def start_failure(binary, statedir):
    """Runs an agent that must fail to start; its stderr lines without the timestamps."""
    p = subprocess.run([binary, "-m", "unix-listen", "-p", os.path.join(statedir, "sock"), "-t", statedir],
                       capture_output=True, timeout=30)
    lines = [re.sub(rb"^[0-9.]+: ", b"", line) for line in p.stderr.splitlines()]
    return p.returncode, lines


@unittest.skipUnless(os.path.exists(QEMU_GA), "Debian's qemu-ga is not installed")
class StateFileAtStart(unittest.TestCase):
    """Issue 16, defect 6: fleetga refused a valid qga.state over 1 MiB, and every start failure
    said only "failed to load persistent state"; qemu-ga names the file and GLib's reason (the
    refused line). Same files to both agents, same lines (fleetga exits 1 where qemu-ga 7.2
    exits 0: a supervisor must see the failed start)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fleetga-e2e.")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.state = os.path.join(self.dir, "qga.state")

    def both_fail_alike(self):
        rc_ref, ref = start_failure(QEMU_GA, self.dir)
        rc, ours = start_failure(FLEETGA, self.dir)
        self.assertEqual(ours, ref)
        self.assertEqual((rc_ref, rc), (0, 1))
        return ours

    def test_unparsable_lines_are_named(self):
        for text in (b"[global]\nthis is not a key file line\n", b"[global]\nfd_counter=5\n[x\n",
                     b"fd_counter=5\n"):
            with self.subTest(text=text):
                with open(self.state, "wb") as f:
                    f.write(text)
                lines = self.both_fail_alike()
                self.assertTrue(lines[0].startswith(b"critical: error loading persistent state from path: "
                                                    + self.state.encode() + b", "), lines)
                with open(self.state, "rb") as f:
                    self.assertEqual(f.read(), text)  # never damaged

    def test_not_a_file(self):
        os.mkdir(self.state)
        self.assertEqual(self.both_fail_alike()[:2], [
            b"critical: error loading persistent state from path: " + self.state.encode() + b", Not a regular file",
            b"critical: failed to load persistent state"])

    def test_statedir_missing(self):
        self.dir = os.path.join(self.dir, "missing")
        rc_ref, ref = start_failure(QEMU_GA, self.dir)
        rc, ours = start_failure(FLEETGA, self.dir)
        path = os.path.join(self.dir, "qga.state").encode()
        # qemu-ga names its temporary file (a random suffix); fleetga the state file itself.
        self.assertRegex(ref[0], rb"critical: failed to write persistent state to " + re.escape(path)
                         + rb": Failed to create file .*: No such file or directory")
        self.assertEqual(ours[0], b"critical: failed to write persistent state to " + path
                         + b": No such file or directory")
        self.assertEqual(ours[1:], ref[1:])

    def test_large_valid_file_starts(self):
        with open(self.state, "w") as f:
            f.write("[global]\n# " + "x" * (3 << 20) + "\nfd_counter=5\n")
        for binary in (QEMU_GA, FLEETGA):
            with Agent(binary, statedir=self.dir) as a:
                c = a.connect()
                self.assertEqual(c.cmd("guest-ping"), {"return": {}})
                c.close()
                status, err = a.stop()
                self.assertEqual(status, 0, f"{binary}: {err}")


class SupportLevelAtStart(unittest.TestCase):
    """A support_level in qga.state that is no level (hand-edited) was ignored silently and
    dropped from the file at the next save. It is reported at start (without -v) and written
    back as it was until guest-set-support-level sets a level."""

    def test_malformed_level_is_reported_and_kept(self):
        d = tempfile.mkdtemp(prefix="fleetga-e2e.")
        self.addCleanup(shutil.rmtree, d, True)
        state = os.path.join(d, "qga.state")
        with open(state, "w") as f:
            f.write("[global]\nfd_counter=1002\nsupport_level=65536.1\n")
        with Agent(FLEETGA, statedir=d) as a:
            c = a.connect()
            self.assertEqual(c.cmd("guest-file-open", {"path": os.path.join(d, "f"), "mode": "w"}), {"return": 1002})
            with open(state) as f:
                self.assertEqual(f.read(), "[global]\nfd_counter=1003\nsupport_level=65536.1\n")
            c.close()
            status, err = a.stop()
        self.assertEqual(status, 0, err)
        self.assertIn(f"error: ignoring support_level '65536.1' in {state}: not MAJOR.MINOR[.MICRO] with "
                      "each part 0..65535 (kept in the file; level 1.0.0 in force until "
                      "guest-set-support-level)\n", err)


def cpu_seconds(pid):
    """user + system CPU time of a process (/proc/PID/stat, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sanitizer_build(binary):
    # FLEETGA_REAL_BIN: the agent behind a wrapper script (the old-kernel runs' enosys).
    if binary == FLEETGA and os.environ.get("FLEETGA_REAL_BIN"):
        binary = os.environ["FLEETGA_REAL_BIN"]
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


@unittest.skipUnless(os.path.exists(QEMU_GA), "Debian's qemu-ga is not installed")
class LongList(unittest.TestCase):
    """Issue 16, defect 1: a list argument of 1M elements whose last element has the wrong type
    (a legal 3 MB request: `"",` per element, within QEMU's 2M-token limit). The decoder walked
    from the first element for every index; 1,048,000 elements got no reply in 840 s while
    qemu-ga answers in ~1.5 s. Both agents get the same request in this run; fleetga must answer
    the same bytes, using at most twice qemu-ga's time. Time = the agent's CPU time over the
    request (user + system, /proc/PID/stat), which other work on the machine barely moves; the
    best of two runs of each, alternated. An unoptimized sanitizer build (ASan + UBSan, -O0) runs
    this CPU-bound path ~5x slower than Release (measured in one run: Release 0.41 s, ASan
    1.99 s, qemu-ga 1.32 s): within 2x too, with little margin, so for it the bound is doubled
    (4x). A quadratic decoder takes hours either way."""
    N = 1000000

    def run_agent(self, binary, req, wall_limit):
        with Agent(binary) as a:
            c = a.connect(timeout=wall_limit)
            c.sync_delimited(4711)
            before = cpu_seconds(a.proc.pid)
            t0 = time.monotonic()
            c.send(req)
            try:
                reply = c.line()  # socket timeout: wall_limit
            except TimeoutError:
                self.fail(f"{binary}: no reply in {wall_limit:.1f} s")
            wall = time.monotonic() - t0
            cpu = cpu_seconds(a.proc.pid) - before
            self.assertEqual(c.cmd("guest-ping"), {"return": {}})  # still serving
            c.close()
            a.stop()
        return reply, cpu, wall

    def test_million_element_list_answered_like_qemu_ga(self):
        req = (b'{"execute":"guest-exec","arguments":{"path":"/bin/true","arg":['
               + b'"",' * (self.N - 1) + b'1]}}\n')
        self.assertLess(len(req), 3_100_000)
        factor = 2 * (2 if sanitizer_build(FLEETGA) else 1)
        ref_cpu, ours_cpu, ref_wall = [], [], []
        for _ in range(2):
            ref, cpu, wall = self.run_agent(QEMU_GA, req, 600)
            ref_cpu.append(cpu)
            ref_wall.append(wall)
            # The reply must come within the bound in wall time too (+ 10 s for the transfer
            # and the test's own work): no waiting for a decoder that never ends.
            ours, cpu, _ = self.run_agent(FLEETGA, req, factor * max(ref_wall) + 10)
            ours_cpu.append(cpu)
            self.assertEqual(ours, ref)
        self.assertEqual(ref, b'{"error": {"class": "GenericError", "desc": '
                              b'"Invalid parameter type for \'arg[999999]\', expected: string"}}')
        sys.stderr.write(f"\n1M-element list: qemu-ga {min(ref_cpu):.2f} s CPU, fleetga "
                         f"{min(ours_cpu):.2f} s CPU (bound {factor} x)\n")
        self.assertLessEqual(min(ours_cpu), factor * min(ref_cpu),
                             f"fleetga {ours_cpu} s vs qemu-ga {ref_cpu} s of CPU")


if __name__ == "__main__":
    unittest.main()
