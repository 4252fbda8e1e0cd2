"""Tests for `fleetga-host attach --sockets DIR` (tools/attach/sockets.cpp), the way Proxmox
hosts keep agent sockets (one <vmid>.qga per VM in one directory, one client at a time):
real fleetga agents and Debian's qemu-ga in unix-listen mode in DIR, the real daemon, and each
agent's level checked afterwards through a fresh connection of our own.

FLEETGA_BIN and FLEETGA_HOST name the binaries (ctest sets both); QEMU_GA_BIN the reference
agent (default /usr/sbin/qemu-ga; its test is skipped when it is missing)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import qga  # noqa: E402  (the e2e harness: Client speaks the handshake)

HOST = os.environ.get("FLEETGA_HOST", "fleetga-host")
FLEETGA = os.environ.get("FLEETGA_BIN", "fleetga")
QEMU_GA = os.environ.get("QEMU_GA_BIN", "/usr/sbin/qemu-ga")
HAVE_QEMU_GA = os.path.exists(QEMU_GA) and os.access(QEMU_GA, os.X_OK)

LEVEL = {"major": 7, "minor": 2, "micro": 0}


class AgentProc:
    """An agent (fleetga or qemu-ga) listening on DIR/NAME, its state in a directory of its own."""

    def __init__(self, sock, binary=FLEETGA):
        self.sock = sock
        self.state = tempfile.mkdtemp(prefix="fleetga-attach-state.")
        self.proc = subprocess.Popen([binary, "-m", "unix-listen", "-p", sock, "-t", self.state],
                                     cwd=self.state, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # The file appears at bind(), a moment before listen(): wait until it answers.
        deadline = time.monotonic() + 20
        while True:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(sock)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"agent did not start: {self.proc.stderr.read().decode(errors='replace')}")
                time.sleep(0.01)
            finally:
                probe.close()

    def client(self, timeout=10):
        c = qga.Client(self.sock, timeout)
        c.sync_delimited(int.from_bytes(os.urandom(6), "big"))
        return c

    def info(self):
        """guest-info through a fresh connection of our own."""
        c = self.client()
        try:
            return c.cmd("guest-info")["return"]
        finally:
            c.close()

    def level(self):
        return self.info().get("support_level")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.state, ignore_errors=True)


class Listener:
    """A socket in DIR that is no agent: counts connections; answers nothing (hung=True keeps
    each connection open and reads it, like an agent that stopped answering)."""

    def __init__(self, path):
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.srv.settimeout(0.1)
        self.connections = 0
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            self.conns.append(c)

    def close(self):
        self.stop = True
        self.t.join()
        self.srv.close()
        for c in self.conns:
            c.close()


ATTACH_RE = re.compile(r"\battach (domain=.*)$")
FIELD_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_attach(line):
    """The key=value fields of an attach log line (quotes kept off), or None."""
    m = ATTACH_RE.search(line)
    if not m:
        return None
    return {k: v[1:-1] if v.startswith('"') else v for k, v in FIELD_RE.findall(m.group(1))}


class Daemon:
    """`fleetga-host attach ARGS`, its stderr collected line by line (with arrival times)."""

    def __init__(self, *args):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([HOST, "attach", *[str(a) for a in args]], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []  # (monotonic time, line)
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.proc.stderr:
            with self.cv:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def attaches(self, domain=None):
        with self.cv:
            got = [(t, parse_attach(l)) for t, l in self.lines]
        return [(t, a) for t, a in got if a and (domain is None or a.get("domain") == domain)]

    def wait_for(self, pred, timeout=30):
        """The first (time, line) for which pred(line) holds, waiting up to `timeout`; None."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for t, l in self.lines:
                    if pred(l):
                        return t, l
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cv.wait(min(left, 0.2))

    def wait_outcome(self, domain, outcome, timeout=30):
        def pred(line):
            a = parse_attach(line)
            return a is not None and a.get("domain") == domain and a.get("outcome") == outcome
        return self.wait_for(pred, timeout)

    def text(self):
        with self.cv:
            return "\n".join(l for _, l in self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals it, waits; returns (exit status, seconds it took to exit)."""
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None, time.monotonic() - t
        self.reader.join(5)
        return self.proc.returncode, time.monotonic() - t

    def wait(self, timeout=120):
        """--once: its exit status and stdout (stderr is the reader thread's)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"fleetga-host attach --once did not finish:\n{self.text()}")
        self.reader.join(5)
        return self.proc.returncode, self.proc.stdout.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


class AttachSockets(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fleetga-attach.")
        self.dir = os.path.join(self.tmp, "qemu-server")
        os.mkdir(self.dir)
        self.cleanups = []

    def tearDown(self):
        for c in reversed(self.cleanups):
            c()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def agent(self, name, binary=FLEETGA, directory=None):
        a = AgentProc(os.path.join(directory or self.dir, name), binary)
        self.cleanups.append(a.close)
        return a

    def daemon(self, *args):
        d = Daemon(*args)
        self.cleanups.append(d.close)
        return d

    def dead_socket(self, name):
        """A socket file nobody listens on (a VM that stopped leaves one behind)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(self.dir, name))
        s.close()

    def test_once_sets_and_confirms_every_agents_level(self):
        agents = {f"10{i}": self.agent(f"10{i}.qga") for i in range(3)}
        for a in agents.values():
            self.assertEqual(a.level(), {"major": 1, "minor": 0, "micro": 0})
        conf = os.path.join(self.tmp, "attach.conf")
        with open(conf, "w") as f:
            f.write('[domain "101"]\nlevel = 1.1.0\n')
        d = self.daemon("--sockets", self.dir, "--once", "--host-level", "7.2.0", "--config", conf)
        rc, out = d.wait()
        self.assertEqual(rc, 0, d.text())
        self.assertIn("3 confirmed", out)
        for name in agents:
            want = "1.1.0" if name == "101" else "7.2.0"
            lines = [a for _, a in d.attaches(name)]
            self.assertEqual([(a["outcome"], a["asked"], a["confirmed"], a["agent"]) for a in lines],
                             [("confirmed", want, want, "10.2.0")], d.text())
        # Confirmed by the agents themselves, through connections of our own.
        self.assertEqual(agents["100"].level(), LEVEL)
        self.assertEqual(agents["101"].level(), {"major": 1, "minor": 1, "micro": 0})
        self.assertEqual(agents["102"].level(), LEVEL)

    def test_once_exit_status_counts_failures(self):
        good = self.agent("100.qga")
        self.dead_socket("101.qga")
        d = self.daemon("--sockets", self.dir, "--once", "--host-level", "7.2.0")
        rc, out = d.wait()
        self.assertNotEqual(rc, 0, d.text())
        self.assertIn("1 failed", out)
        self.assertTrue(d.wait_outcome("100", "confirmed", 0), d.text())
        outcomes = {a["outcome"] for _, a in d.attaches("101")}
        self.assertEqual(outcomes, {"not_connected"}, d.text())
        self.assertEqual(good.level(), LEVEL)

    def test_daemon_picks_up_sockets_that_appear_and_never_holds_them(self):
        # DIR itself does not exist yet when the daemon starts.
        shutil.rmtree(self.dir)
        d = self.daemon("--sockets", self.dir, "--host-level", "7.2.0")
        self.assertTrue(d.wait_for(lambda l: "socket mode" in l, 30), d.text())
        time.sleep(0.3)
        self.assertIsNone(d.proc.poll(), d.text())
        os.mkdir(self.dir)
        first = self.agent("100.qga")
        self.assertTrue(d.wait_outcome("100", "confirmed"), d.text())
        second = self.agent("101.qga")
        self.assertTrue(d.wait_outcome("101", "confirmed"), d.text())
        # The daemon let go of the one-client sockets: another client gets in at once (a client
        # queued behind a held socket would hear nothing and time out).
        for a in (first, second):
            t = time.monotonic()
            c = a.client(timeout=3)
            self.assertEqual(c.cmd("guest-info")["return"]["support_level"], LEVEL)
            c.close()
            self.assertLess(time.monotonic() - t, 3)
        # Once each (a socket caught between bind() and listen() is refused first, and retried).
        for name in ("100", "101"):
            outcomes = [a["outcome"] for _, a in d.attaches(name)]
            self.assertEqual(outcomes.count("confirmed"), 1, d.text())
            self.assertLessEqual(set(outcomes), {"confirmed", "not_connected"}, d.text())
        rc, took = d.stop()
        self.assertEqual(rc, 0, d.text())
        self.assertLess(took, 5, d.text())

    @unittest.skipUnless(HAVE_QEMU_GA, "no qemu-ga")
    def test_qemu_ga_is_unsupported_once_and_left_alone(self):
        q = self.agent("200.qga", QEMU_GA)
        f = self.agent("201.qga")
        # Rescans every second: each sweeps both agents again.
        d = self.daemon("--sockets", self.dir, "--host-level", "7.2.0", "--rescan", "1")
        self.assertTrue(d.wait_outcome("200", "unsupported"), d.text())
        self.assertTrue(d.wait_outcome("201", "confirmed"), d.text())
        deadline = time.monotonic() + 30
        while len([a for _, a in d.attaches("201")]) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertGreaterEqual(len(d.attaches("201")), 3, "no rescans?\n" + d.text())
        q_lines = [a for _, a in d.attaches("200")]
        self.assertEqual([a["outcome"] for a in q_lines], ["unsupported"], d.text())
        self.assertNotEqual(q_lines[0]["agent"], "10.2.0")
        # qemu-ga still works and knows nothing of levels; fleetga got its level.
        info = q.info()
        self.assertNotIn("support_level", info)
        self.assertEqual(f.level(), LEVEL)
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.text())

    def test_a_busy_socket_is_retried_and_confirmed_after_release(self):
        a = self.agent("100.qga")
        holder = a.client()  # the one client QEMU's chardev (and fleetga) serves
        d = self.daemon("--sockets", self.dir, "--host-level", "7.2.0", "--timeout", "1")
        self.assertTrue(d.wait_outcome("100", "busy"), d.text())
        time.sleep(2)
        self.assertFalse(d.wait_outcome("100", "confirmed", 0), d.text())
        released = time.monotonic()
        holder.close()
        got = d.wait_outcome("100", "confirmed", 60)
        self.assertTrue(got, d.text())
        self.assertGreater(got[0], released)
        confirmed = [x for _, x in d.attaches("100") if x["outcome"] == "confirmed"][0]
        self.assertGreaterEqual(int(confirmed["attempt"]), 2)
        self.assertEqual(a.level(), LEVEL)
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.text())

    def test_only_agent_sockets_are_touched(self):
        # Proxmox keeps QEMU's monitor (<vmid>.qmp) and serial consoles (<vmid>.serial0) in the
        # same directory: the handshake must never go there.
        good = self.agent("100.qga")
        qmp = self.agent("100.qmp")  # an agent, even: the name says it is not one to attach
        serial = Listener(os.path.join(self.dir, "100.serial0"))
        self.cleanups.append(serial.close)
        with open(os.path.join(self.dir, "101.qga"), "w") as f:
            f.write("a regular file\n")
        d = self.daemon("--sockets", self.dir, "--once", "--host-level", "7.2.0")
        rc, out = d.wait()
        self.assertEqual(rc, 0, d.text())
        self.assertEqual({a["domain"] for _, a in d.attaches()}, {"100"}, d.text())
        self.assertEqual(serial.connections, 0)
        self.assertEqual(qmp.level(), {"major": 1, "minor": 0, "micro": 0})
        self.assertEqual(good.level(), LEVEL)

    def test_sigterm_exits_zero_promptly_even_with_an_attach_hanging(self):
        self.agent("100.qga")
        hung = Listener(os.path.join(self.dir, "101.qga"))  # accepts, never answers
        self.cleanups.append(hung.close)
        d = self.daemon("--sockets", self.dir, "--host-level", "7.2.0", "--timeout", "60")
        self.assertTrue(d.wait_outcome("100", "confirmed"), d.text())
        deadline = time.monotonic() + 10
        while hung.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreater(hung.connections, 0)
        # The attach of 101 now waits for a sync reply (up to its 60 s timeout): SIGTERM ends
        # that wait at once (abort_on), it does not wait the timeout out.
        rc, took = d.stop()
        self.assertEqual(rc, 0, d.text())
        self.assertLess(took, 30, d.text())

    def test_stats_periodically_and_on_sigusr1(self):
        self.agent("100.qga")
        d = self.daemon("--sockets", self.dir, "--host-level", "7.2.0", "--stats", "1")
        self.assertTrue(d.wait_outcome("100", "confirmed"), d.text())
        self.assertTrue(d.wait_for(lambda l: "stats events=" in l and " confirmed=1" in l, 10), d.text())
        n = len([1 for _, l in d.lines if "stats events=" in l])
        self.assertTrue(d.wait_for(lambda l: len([1 for _, x in d.lines if "stats events=" in x]) > n, 10))
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.text())
        # SIGUSR1 alone (no --stats) logs the line once.
        d2 = self.daemon("--sockets", self.dir, "--host-level", "7.2.0")
        self.assertTrue(d2.wait_outcome("100", "confirmed"), d2.text())
        self.assertFalse(any("stats events=" in l for _, l in d2.lines))
        d2.proc.send_signal(signal.SIGUSR1)
        self.assertTrue(d2.wait_for(lambda l: "stats events=" in l, 10), d2.text())
        rc, _ = d2.stop()
        self.assertEqual(rc, 0, d2.text())


if __name__ == "__main__":
    unittest.main()
