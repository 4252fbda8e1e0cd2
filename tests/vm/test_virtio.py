"""fleetga over a real virtio-serial port: a tiny Debian guest under qemu-system-x86_64 (TCG).

Environment:
  FLEETGA_BIN            the fleetga binary to put in the guest (required unless FLEETGA_VM_DIR)
  FLEETGA_VM_BUILD_DIR   where build-guest.sh caches the kernel (default: next to FLEETGA_BIN's
                         build tree, else a temp dir)
  FLEETGA_VM_DIR         use an already built guest (vmlinux + initrd-*.img) instead
  FLEETGA_VM_REQUIRED=1  fail instead of skipping when QEMU or the kernel can't be had (CI)
  FLEETGA_VM_KEEP=1      keep each guest's work dir (console.log, qemu.log)
Figures are printed at the end and written to <build dir>/vm-report.json.
"""
import base64
import json
import os
import re
import statistics
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm  # noqa: E402

QEMU_VERSION = os.environ.get("FLEETGA_QEMU_VERSION", "10.2.0")
REPORT = {}
OUT_DIR = None
BUILD_DIR = None
SKIP_REASON = None


def setUpModule():
    global OUT_DIR, BUILD_DIR, SKIP_REASON
    OUT_DIR, BUILD_DIR, SKIP_REASON = vm.prepare(())


def tearDownModule():
    if not REPORT:
        return
    text = json.dumps(REPORT, indent=2, sort_keys=True)
    sys.stderr.write("\n=== tests/vm figures ===\n" + text + "\n")
    if BUILD_DIR:
        with open(os.path.join(BUILD_DIR, "vm-report.json"), "w") as f:
            f.write(text + "\n")


def boot(agent, **kw):
    if SKIP_REASON:
        raise unittest.SkipTest(SKIP_REASON)
    if agent == "qemu-ga" and not os.path.exists(os.path.join(OUT_DIR, "initrd-qemu-ga.img")):
        raise unittest.SkipTest(f"no {agent} initramfs (is qemu-guest-agent installed?)")
    lock = os.path.join(BUILD_DIR, "qemu.lock") if BUILD_DIR else None
    g = vm.Guest(OUT_DIR, agent=agent, lock_path=lock, **kw)
    g.__enter__()
    REPORT.setdefault(agent, {})["boot_to_first_reply_s"] = round(g.t_first_reply, 3)
    REPORT[agent]["boot_to_console_marker_s"] = round(g.t_marker, 3)
    return g


# -- measurements shared by the fleetga and qemu-ga guests ------------------------------------
def lockstep_pings(c, seconds=1.0, rounds=3):
    """Round trips/s of one ping at a time: the median of `rounds` runs of `seconds` each
    (a busy moment on this shared machine then moves one run, not the figure)."""
    req = b'{"execute":"guest-ping"}\n'
    rates = []
    for _ in range(rounds):
        n = 0
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            c.send(req)
            line = c.line(timeout=5)
            if line != b'{"return": {}}':
                raise AssertionError(f"ping {n}: {line!r}")
            n += 1
        rates.append(n / (time.monotonic() - t0))
    return statistics.median(rates)


PIPELINED_N = 50_000  # pings per pipelined measurement (the reference answers 2M/s: 25 ms)


def pipelined_pings(c, n=PIPELINED_N, batch=100, timeout=30):
    """n pings written in batches by a sender thread while this thread reads.
    Returns (replies/s, replies received)."""
    req = b'{"execute":"guest-ping"}\n'
    err = []

    def sender():
        try:
            for _ in range(n // batch):
                c.s.sendall(req * batch)
        except OSError as e:
            err.append(e)
    t0 = time.monotonic()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    got = c.count_lines(b'{"return": {}}', n, t0 + timeout)
    dt = time.monotonic() - t0
    th.join(timeout=10)
    return got / dt, got


def attach_latencies(g, trials=8):
    """Detach, wait so the agent sees EOF, re-attach: seconds from connect() to the sync reply."""
    out = []
    for i in range(trials):
        time.sleep(0.25 + 0.037 * (i % 8))  # a spread of phases against any 100 ms timer
        t0 = time.monotonic()
        with g.connect() as c:
            c.sync_delimited(1000 + i, timeout=5)
            out.append(time.monotonic() - t0)
    return out


def detached_cpu(g, seconds=5.0):
    """Agent CPU while no host is attached, read inside the guest over the channel."""
    with g.connect() as c:
        c.sync_delimited()
        cpu0, vol0, inv0 = vm.agent_stat(c, g.agent_pid)
        # Cost of one measurement itself (two file reads), to subtract.
        cpu1, vol1, inv1 = vm.agent_stat(c, g.agent_pid)
    q0 = g.qemu_cpu_seconds()
    t0 = time.monotonic()
    time.sleep(seconds)
    with g.connect() as c:
        elapsed = time.monotonic() - t0
        q1 = g.qemu_cpu_seconds()
        c.sync_delimited()
        cpu2, vol2, inv2 = vm.agent_stat(c, g.agent_pid)
    return {
        "detached_s": round(elapsed, 2),
        "agent_cpu_s": round(cpu2 - cpu1, 3),
        "agent_cpu_pct": round(100 * (cpu2 - cpu1) / elapsed, 2),
        "agent_wakeups_per_s": round(((vol2 - vol1) - (vol1 - vol0)) / elapsed, 1),
        "agent_involuntary_switches": inv2 - inv1,
        "qemu_host_cpu_pct": round(100 * (q1 - q0) / elapsed, 1),
    }


class FleetgaVirtio(unittest.TestCase):
    """One guest for the whole class; every test starts with its own 0xFF handshake."""

    @classmethod
    def setUpClass(cls):
        cls.g = boot("fleetga")
        cls.r = REPORT["fleetga"]

    @classmethod
    def tearDownClass(cls):
        cls.g.stop()

    def setUp(self):
        self.assertIsNone(self.g.proc.poll(), "QEMU died" + self.g.diagnostics())

    def tearDown(self):
        self.assertNotIn(b"agent fleetga exited", self.g.console(),
                         "the agent exited" + self.g.diagnostics())

    def client(self):
        c = self.g.connect()
        self.addCleanup(c.close)
        return c

    # 1
    def test_1_sync_delimited_handshake(self):
        c = self.client()
        c.send(b"\xff")
        # The 0xFF itself is answered with a parse error (qemu-ga does the same).
        self.assertEqual(c.line(), b'{"error": {"class": "GenericError", '
                                   b'"desc": "JSON parse error, stray \'\\uFFFD\'"}}')
        c.send(b'{"execute":"guest-sync-delimited","arguments":{"id":123456789}}\n')
        self.assertEqual(c.line(), b'\xff{"return": 123456789}')
        reply, _ = c.sync_delimited(987654321)
        self.assertEqual(reply, {"return": 987654321})

    # 2
    def test_2_upstream_basics(self):
        c = self.client()
        c.sync_delimited()
        self.assertEqual(c.cmd("guest-ping"), {"return": {}})
        self.assertEqual(c.cmd("guest-ping", id="abc"), {"return": {}, "id": "abc"})
        info = c.ret("guest-info")
        self.assertEqual(info["version"], QEMU_VERSION)
        names = {x["name"] for x in info["supported_commands"]}
        self.assertTrue({"guest-ping", "guest-sync-delimited", "guest-file-open"} <= names)
        osinfo = c.ret("guest-get-osinfo")
        with open(os.path.join(OUT_DIR, "kernel-version")) as f:
            kver = f.read().strip()
        self.assertEqual(osinfo["kernel-release"], kver)
        self.assertEqual(osinfo["machine"], "x86_64")
        self.assertEqual(osinfo["id"], "debian")
        self.assertEqual(c.ret("guest-get-host-name"), {"host-name": "fleetga-vm"})
        self.assertEqual(c.ret("guest-fsfreeze-status"), "thawed")
        # file open/write/read/close in the guest's /tmp
        data = bytes(range(256)) * 40 + b"fleetga over virtio-serial\n"
        h = c.ret("guest-file-open", {"path": "/tmp/vm-test.bin", "mode": "w+"})
        self.assertIsInstance(h, int)
        w = c.ret("guest-file-write", {"handle": h, "buf-b64": base64.b64encode(data).decode()})
        self.assertEqual(w, {"count": len(data), "eof": False})
        self.assertEqual(c.ret("guest-file-seek", {"handle": h, "offset": 0, "whence": "set"}),
                         {"position": 0, "eof": False})
        r = c.ret("guest-file-read", {"handle": h, "count": 65536})
        self.assertEqual(base64.b64decode(r["buf-b64"]), data)
        self.assertEqual(r["count"], len(data))
        self.assertTrue(r["eof"])
        self.assertEqual(c.ret("guest-file-close", {"handle": h}), {})
        self.assertEqual(c.read_file("/tmp/vm-test.bin"), data)
        bad = c.cmd("guest-file-close", {"handle": h})
        self.assertEqual(bad["error"]["class"], "GenericError")

    # 3
    def test_3_thousand_separate_writes_in_order(self):
        c = self.client()
        c.sync_delimited()
        n = 1000
        errors = []

        def sender():
            try:
                for i in range(n):
                    c.s.sendall(b'{"execute":"guest-sync","arguments":{"id":%d}}\n' % i)
            except OSError as e:
                errors.append(e)
        t0 = time.monotonic()
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        got = []
        try:
            for _ in range(n):
                got.append(c.reply(timeout=10)["return"])
        finally:
            th.join(timeout=10)
        self.r["thousand_writes_s"] = round(time.monotonic() - t0, 3)
        self.assertEqual(errors, [])
        self.assertEqual(got, list(range(n)))
        self.assertEqual(c.cmd("guest-ping"), {"return": {}})

    # 4
    def test_4_disconnect_reconnect_mid_stream(self):
        partials = [b'{"execute":"guest-ping"', b'{"execute":"guest-file-open","arguments":{"pa',
                    b'{"execute":"guest-sync","arguments":{"id":7}} {"exec']
        for i, partial in enumerate(partials):
            with self.g.connect() as c:
                c.sync_delimited()
                self.assertEqual(c.cmd("guest-ping"), {"return": {}})
                c.send(partial)
                time.sleep(0.05)
            with self.g.connect() as c:
                reply, _ = c.sync_delimited(5000 + i)
                self.assertEqual(reply, {"return": 5000 + i})
                self.assertEqual(c.cmd("guest-ping"), {"return": {}})
                self.assertEqual(c.ret("guest-info")["version"], QEMU_VERSION)
                self.assertEqual(c.cmd("guest-sync", {"id": 77}), {"return": 77})

    # 5
    def test_5_client_left_before_its_reply(self):
        with self.g.connect() as c:
            c.sync_delimited()
            c.send(b'{"execute":"guest-info"}\n' * 20)
        c = self.client()
        reply, skipped = c.sync_delimited(424242)
        self.assertEqual(reply, {"return": 424242})
        self.r["stale_bytes_skipped_by_next_client"] = skipped
        self.assertEqual(c.cmd("guest-ping"), {"return": {}})
        self.assertEqual(c.cmd("guest-sync", {"id": 5}), {"return": 5})

    # 6
    def test_6_no_spin_detached_and_fast_attach(self):
        d = detached_cpu(self.g, seconds=5.0)
        self.r.update({"detached_" + k: v for k, v in d.items()})
        lat = attach_latencies(self.g, trials=10)
        self.r["attach_to_first_reply_ms"] = {
            "min": round(1000 * min(lat), 1), "median": round(1000 * statistics.median(lat), 1),
            "max": round(1000 * max(lat), 1), "all": [round(1000 * x, 1) for x in lat]}
        # Not spinning: under 5 % of one CPU while detached, and about one wake-up a second
        # (the fallback timer; SIGIO does the real work). qemu-ga wakes 10 times a second.
        self.assertLess(d["agent_cpu_pct"], 5.0, d)
        self.assertLess(d["agent_wakeups_per_s"], 3, d)
        # SIGIO path: the reply follows the attach within milliseconds, not a polling timer.
        # A 100 ms poller is uniform over 0..100 ms: 8 of 10 under 30 ms has a 0.2 % chance;
        # one slow outlier on a loaded machine is tolerated.
        fast = sum(x < 0.030 for x in lat)
        self.assertGreaterEqual(fast, 8, f"attach latencies (s): {lat}")

    # 8 (beyond the brief: a fix for 6 must not lose this)
    def test_8_requests_of_a_host_that_left_are_executed(self):
        """Connect, write, close at once (fire-and-forget, like `guest-shutdown` from a
        script): the agent executes the requests while no host is attached, as qemu-ga does.
        Observed on the guest console: the requests write a marker to /dev/console."""
        with self.g.connect() as c:
            c.sync_delimited()
            h = c.ret("guest-file-open", {"path": "/tmp/handle-probe", "mode": "w"})
            c.ret("guest-file-close", {"handle": h})
        marker = b"FLEETGA-VM: written by a host that left %d" % time.monotonic_ns()
        reqs = [{"execute": "guest-file-open", "arguments": {"path": "/dev/console", "mode": "a"}},
                {"execute": "guest-file-write", "arguments": {
                    "handle": h + 1, "buf-b64": base64.b64encode(marker + b"\n").decode()}},
                {"execute": "guest-file-close", "arguments": {"handle": h + 1}}]
        with self.g.connect() as c:
            c.send(b"\xff" + b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
        deadline = time.monotonic() + 5
        while marker not in self.g.console() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn(marker, self.g.console(), "requests of a host that left were not run")
        c = self.client()
        reply, _ = c.sync_delimited(88)
        self.assertEqual(reply, {"return": 88})

    # 7
    def test_7_ping_throughput(self):
        c = self.client()
        c.sync_delimited()
        self.r["lockstep_ping_per_s"] = round(lockstep_pings(c))
        rate, got = pipelined_pings(c)
        self.r["pipelined_ping_per_s"] = round(rate)
        self.r["pipelined_sent"] = PIPELINED_N
        self.assertEqual(got, PIPELINED_N)
        # Floors far below what was measured here: catches a transport stuck on a timer.
        self.assertGreater(self.r["lockstep_ping_per_s"], 200)
        self.assertGreater(rate, 500)


def unplug_port(g, timeout=10):
    """device_del of the agent's port; waits (bounded) until QEMU and the guest's link are gone."""
    g.qmp("device_del", {"id": "qgaport"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gone = "qgaport" not in [d["name"] for d in g.qmp("qom-list", {"path": "/machine/peripheral"})]
        if gone and b"port link org.qemu.guest_agent.0 removed" in g.console():
            return
        time.sleep(0.05)
    raise AssertionError("the port was not unplugged" + g.diagnostics())


def replug_port(g):
    g.qmp("device_add", {"driver": "virtserialport", "chardev": "qga0", "name": vm.PORT_NAME,
                         "id": "qgaport", "bus": "vser0.0"})


def first_reply_after(g, t0, timeout=15):
    """Seconds from t0 until a fresh connection gets its sync reply."""
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        try:
            with g.connect(timeout=0.5) as c:
                c.sync_delimited(timeout=0.5)
                return time.monotonic() - t0
        except (TimeoutError, OSError, EOFError):
            time.sleep(0.02)
    raise AssertionError(f"no reply {timeout} s after the port came back" + g.diagnostics())


class VirtioHotUnplug(unittest.TestCase):
    """The port hot-unplugged (QMP device_del) and plugged again (device_add), the guest's
    /dev/virtio-ports links kept by init the way udev keeps them (fga.hotplug)."""

    def guest(self, agent, args=()):
        if SKIP_REASON:
            raise unittest.SkipTest(SKIP_REASON)
        lock = os.path.join(BUILD_DIR, "qemu.lock") if BUILD_DIR else None
        g = vm.Guest(OUT_DIR, agent=agent, agent_args=args, lock_path=lock, qmp=True, hotplug=True)
        g.__enter__()
        self.addCleanup(g.stop)
        return g

    def test_1_retry_path_reopens_when_the_port_comes_back(self):
        g = self.guest("fleetga", ["-r"])
        with g.connect() as c:
            c.sync_delimited()
            h = c.ret("guest-file-open", {"path": "/tmp/survives-unplug", "mode": "w+"})
        unplug_port(g)
        # Past fleetga's first two retries (1 s, then 2 s later): the agent stays up and keeps
        # trying, and its next timed retry is 4 s away when the port comes back.
        time.sleep(3.5)
        self.assertNotIn(b"agent fleetga exited", g.console(), g.diagnostics())
        t0 = time.monotonic()
        replug_port(g)
        dt = first_reply_after(g, t0)
        REPORT.setdefault("fleetga", {})["replug_to_first_reply_s"] = round(dt, 2)
        # inotify on /dev/virtio-ports: reopened when the link appears, not at the next retry
        # (qemu-ga 10.2 retries every 5 s).
        self.assertLess(dt, 1.0, g.diagnostics())
        with g.connect() as c:
            c.sync_delimited()
            # the same process: state from before the unplug is still there
            self.assertEqual(c.ret("guest-file-write", {"handle": h, "buf-b64": "b2s="})["count"], 2)
            c.ret("guest-file-close", {"handle": h})
        self.assertEqual(len(vm.MARKER.findall(g.console())), 1)

    def test_2_without_retry_path_the_agent_exits_like_qemu_ga(self):
        rcs = {}
        agents = ["fleetga"] + (["qemu-ga"] if os.path.exists(os.path.join(OUT_DIR or "", "initrd-qemu-ga.img")) else [])
        for agent in agents:
            g = self.guest(agent)
            with g.connect() as c:
                c.sync_delimited()
            unplug_port(g)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                m = re.search(rb"agent %s exited rc=(\d+)" % agent.encode(), g.console())
                if m:
                    rcs[agent] = int(m.group(1))
                    break
                time.sleep(0.05)
            g.stop()
            self.assertIn(agent, rcs, f"{agent} did not exit after the unplug" + g.diagnostics())
        self.assertEqual(rcs["fleetga"], 0)
        if "qemu-ga" in rcs:
            self.assertEqual(rcs["fleetga"], rcs["qemu-ga"])


class QemuGaReference(unittest.TestCase):
    """Debian's qemu-ga 7.2 in the same guest and port, for the side-by-side figures. It
    only fails when qemu-ga can't be driven at all; its misbehaviour is reported."""

    @classmethod
    def setUpClass(cls):
        cls.g = boot("qemu-ga")
        cls.r = REPORT["qemu-ga"]

    @classmethod
    def tearDownClass(cls):
        cls.g.stop()

    def test_reference_figures(self):
        with self.g.connect() as c:
            reply, _ = c.sync_delimited()
            self.assertEqual(c.ret("guest-info")["version"][:2], "7.")
        d = detached_cpu(self.g, seconds=3.0)
        self.r.update({"detached_" + k: v for k, v in d.items()})
        lat = attach_latencies(self.g, trials=6)
        self.r["attach_to_first_reply_ms"] = {
            "min": round(1000 * min(lat), 1), "median": round(1000 * statistics.median(lat), 1),
            "max": round(1000 * max(lat), 1)}
        with self.g.connect() as c:
            c.sync_delimited()
            self.r["lockstep_ping_per_s"] = round(lockstep_pings(c))
        with self.g.connect() as c:
            c.sync_delimited()
            rate, got = pipelined_pings(c, timeout=15)
            self.r["pipelined_ping_per_s"] = round(rate)
            self.r["pipelined_replies"] = got
            self.r["pipelined_sent"] = PIPELINED_N
        with self.g.connect() as c:
            c.sync_delimited(timeout=20)
            n, got = 1000, 0
            for i in range(n):
                c.send(b'{"execute":"guest-sync","arguments":{"id":%d}}\n' % i)
            try:
                while got < n:
                    c.reply(timeout=3)
                    got += 1
            except (TimeoutError, ValueError):
                pass
            self.r["thousand_separate_writes_replies"] = got


class ResponderReference(unittest.TestCase):
    """What the transport allows: tests/vm/responder.c (a blocking read, one static reply per
    line, one write) on the same port, against fleetga in the same minutes: the responder and
    fleetga guests are booted alternately, twice each, and each measured the same way, so a
    busy spell on this shared machine hits both sides."""

    @classmethod
    def setUpClass(cls):
        if SKIP_REASON:
            raise unittest.SkipTest(SKIP_REASON)
        with open(os.path.join(OUT_DIR, "initrd-fleetga.img"), "rb") as f:
            if b"usr/sbin/vm-responder" not in f.read():
                raise unittest.SkipTest("no vm-responder in the guest (no C compiler?)")

    def test_reference_figures(self):
        pairs = {"responder": {"lockstep": [], "pipelined": []}, "fleetga": {"lockstep": [], "pipelined": []}}
        lock = os.path.join(BUILD_DIR, "qemu.lock") if BUILD_DIR else None
        for _ in range(2):
            for agent in ("responder", "fleetga"):
                with vm.Guest(OUT_DIR, agent=agent, lock_path=lock) as g, g.connect() as c:
                    if agent == "fleetga":
                        c.sync_delimited()
                    pairs[agent]["lockstep"].append(round(lockstep_pings(c)))
                    rate, got = pipelined_pings(c, timeout=15)
                    self.assertEqual(got, PIPELINED_N, agent)
                    pairs[agent]["pipelined"].append(round(rate))
        REPORT["transport_reference"] = pairs
        for agent in pairs:
            self.assertGreater(min(pairs[agent]["lockstep"]), 200, agent)


if __name__ == "__main__":
    unittest.main()
