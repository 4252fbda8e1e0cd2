"""Life-cycle edges (issue 16, defect 9): signals during a blocked start-up, the -d parent's
status, SIGHUP (reopen the log file) and SIGUSR1 (a stats line), and the pidfile on every
way out. qemu-ga 10.2 fails each of these (a blocked start ignores SIGTERM, its -d parent
exits 0 whatever the daemon does, SIGHUP/SIGUSR1 kill it and leave the pidfile).

Deadlines are generous (a loaded 2-core machine); waits are on process exit or on a file's
content, never a bare sleep. Nothing here sends freeze, fstrim, shutdown, suspend or set-*
requests: the agent under test acts on this machine."""
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest

from qga import FLEETGA, Agent, Client, alive, wait_for

NO_CONF = "/nonexistent/fleetga-test.conf"  # QGA_CONF for runs that must not see /etc/qemu
DEADLINE = 20  # seconds for anything the agent should do "at once"
STATS = re.compile(r"^\d+\.\d{6}: info: stats uptime_s=\d+ requests=(\d+) rss_kib=[1-9]\d* "
                   r"open_fds=[1-9]\d* frozen=0$", re.M)


def env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "QGA_CONF": NO_CONF}


def slurp(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_blocked_in_fifo_open(proc):
    """Waits until the agent sleeps in open() of a FIFO nobody writes (the kernel's wait
    channel is fifo_open's wait_for_partner): the start-up is blocked there, for as long as
    the test likes."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            with open(f"/proc/{proc.pid}/wchan") as f:
                if f.read().strip() in ("wait_for_partner", "fifo_open"):
                    return
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"agent exited ({proc.returncode}) before blocking on the FIFO")
        if time.monotonic() > deadline:
            raise AssertionError("agent never blocked in open() of the FIFO")
        time.sleep(0.02)


def connect(sock, proc):
    """The socket file appears at bind(), a moment before listen(): retry."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            return Client(sock)
        except ConnectionRefusedError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.02)


class BlockedStart(unittest.TestCase):
    """The -c file is a FIFO nobody writes: start-up blocks reading it (a stand-in for any
    start-up step that blocks: a configuration on a hung network filesystem, ...)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fleetga-life.")
        self.fifo = os.path.join(self.dir, "conf")
        os.mkfifo(self.fifo)
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "log")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *extra):
        self.proc = subprocess.Popen([FLEETGA, "-c", self.fifo, "-m", "unix-listen", "-p", self.sock,
                                      "-t", self.dir, "-l", self.log, *extra],
                                     env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_blocked_in_fifo_open(self.proc)

    def test_sigterm_ends_a_blocked_start(self):
        """Before, SIGTERM killed it there by the default action (status -15), or, blocked
        on qga.state, was held until the quit handler was armed (never)."""
        self.start()
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.fail("a start-up blocked on a FIFO config file ignored SIGTERM")
        self.assertEqual(status, 0)
        self.assertFalse(os.path.exists(self.sock))

    def test_fifo_at_qga_state_fails_the_start_at_once(self):
        """qga.state is read without waiting for a writer: a FIFO there is no state file
        (GLib's "Not a regular file"; qemu-ga blocks in open() before GLib can say so)."""
        os.mkfifo(os.path.join(self.dir, "qga.state"))
        r = subprocess.run([FLEETGA, "-m", "unix-listen", "-p", self.sock, "-t", self.dir],
                           env=env(), capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"error loading persistent state from path: {self.dir}/qga.state, Not a regular file",
                      r.stderr)
        self.assertTrue(stat.S_ISFIFO(os.stat(os.path.join(self.dir, "qga.state")).st_mode))  # untouched

    def test_sigint_ends_a_blocked_start(self):
        self.start()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.assertEqual(self.proc.wait(timeout=DEADLINE), 0)
        except subprocess.TimeoutExpired:
            self.fail("a start-up blocked on a FIFO config file ignored SIGINT")

    def test_sighup_and_sigusr1_during_start_are_not_fatal(self):
        """They neither kill the blocked start-up (before: status -SIGHUP / -SIGUSR1) nor end
        it; SIGTERM still does, with status 0."""
        self.start()
        self.proc.send_signal(signal.SIGUSR1)
        self.proc.send_signal(signal.SIGHUP)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.assertEqual(self.proc.wait(timeout=DEADLINE), 0)
        except subprocess.TimeoutExpired:
            self.fail("a start-up blocked on a FIFO config file ignored SIGTERM")


class DaemonParent(unittest.TestCase):
    """-d: the parent's status says whether the daemon is up."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fleetga-life.")
        self.sock = os.path.join(self.dir, "sock")
        self.pidfile = os.path.join(self.dir, "pid")
        self.pids = []

    def tearDown(self):
        for pid in self.pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def daemon(self, *extra, pidfile=None, sock=None):
        return subprocess.run([FLEETGA, "-d", "-f", pidfile or self.pidfile, "-m", "unix-listen",
                               "-p", sock or self.sock, "-t", self.dir, *extra],
                              env=env(), capture_output=True, text=True, timeout=60)

    def test_pidfile_error_fails_the_parent(self):
        bad = os.path.join(self.dir, "missing", "pid")
        r = self.daemon(pidfile=bad)
        self.assertNotEqual(r.returncode, 0, "the parent exited 0 though the daemon died")
        self.assertRegex(r.stderr, rf"critical: Could not create '{re.escape(bad)}': No such file or directory\n")
        self.assertRegex(r.stderr, r"critical: daemon process \d+ exited with status 1 before it was ready\n")

    def test_locked_pidfile_fails_the_second_parent(self):
        r = self.daemon()
        self.assertEqual(r.returncode, 0, r.stderr)
        # status 0 means up: pidfile written and the channel answering, no waiting needed
        pid = int(slurp(self.pidfile))
        self.pids.append(pid)
        c = Client(self.sock)
        self.assertEqual(c.cmd("guest-ping"), {"return": {}})
        c.close()
        r2 = self.daemon(sock=self.sock + "2")
        self.assertEqual(r2.returncode, 1)
        self.assertIn("critical: Cannot lock pid file: Resource temporarily unavailable", r2.stderr)
        self.assertEqual(int(slurp(self.pidfile)), pid, "the failed second daemon touched the pidfile")
        self.assertTrue(alive(pid))
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), what="the daemon to exit")
        self.assertFalse(os.path.exists(self.pidfile), "pidfile left behind after SIGTERM")

    def test_hup_and_usr1_keep_the_daemon_and_its_pidfile(self):
        log = os.path.join(self.dir, "log")
        r = self.daemon("-l", log)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = int(slurp(self.pidfile))
        self.pids.append(pid)
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            os.kill(pid, sig)
            c = Client(self.sock)
            self.assertEqual(c.cmd("guest-ping"), {"return": {}}, sig.name)
            c.close()
            self.assertTrue(alive(pid), f"{sig.name} ended the daemon")
            self.assertTrue(os.path.exists(self.pidfile))
        wait_for(lambda: STATS.search(slurp(log)), what="the stats line")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), what="the daemon to exit")
        self.assertFalse(os.path.exists(self.pidfile), "pidfile left behind after SIGTERM")


class RunningSignals(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fleetga-life.")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def agent(self, log, *extra):
        return Agent(args=["-l", log, *extra], env=env(), statedir=self.dir)

    def test_sighup_reopens_the_log_file(self):
        """logrotate's way: rename, SIGHUP, new lines go to a new file at the path."""
        log = os.path.join(self.dir, "log")
        with self.agent(log, "-v") as a:
            c = a.connect()
            self.assertEqual(c.cmd("guest-ping"), {"return": {}})
            os.rename(log, log + ".1")
            a.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "SIGHUP: reopened log file " + log in slurp(log), what="the new log file")
            rsp = c.cmd("guest-exec", {"path": "true", "arg": ["after-hup-marker"]})
            self.assertIn("pid", rsp["return"])
            self.assertEqual(c.cmd("guest-ping"), {"return": {}})
            c.close()
            self.assertEqual(a.stop()[0], 0)
        self.assertIn("guest-exec called: \"true after-hup-marker\"", slurp(log))
        self.assertNotIn("after-hup-marker", slurp(log + ".1"))
        self.assertIn("debug: client connected", slurp(log + ".1"))  # before the rename

    def test_sighup_when_the_log_path_cant_be_opened(self):
        """The error names the file; logging goes on in the file already open."""
        logdir = os.path.join(self.dir, "logs")
        os.mkdir(logdir)
        log = os.path.join(logdir, "log")
        with self.agent(log) as a:
            c = a.connect()
            os.rename(logdir, logdir + ".old")
            a.proc.send_signal(signal.SIGHUP)
            old = os.path.join(logdir + ".old", "log")
            wait_for(lambda: "SIGHUP:" in slurp(old), what="the reopen error")
            self.assertRegex(slurp(old), rf"\d+\.\d{{6}}: error: SIGHUP: {re.escape(log)}: unable to open specified "
                                         r"log file: No such file or directory; still logging to the previous file\n")
            self.assertEqual(c.cmd("guest-ping"), {"return": {}})
            c.close()
            self.assertEqual(a.stop()[0], 0)

    def test_sigusr1_logs_one_stats_line(self):
        """Without -v too (it was asked for); the agent goes on serving."""
        log = os.path.join(self.dir, "log")
        with self.agent(log) as a:
            c = a.connect()
            for _ in range(3):
                self.assertEqual(c.cmd("guest-ping"), {"return": {}})
            a.proc.send_signal(signal.SIGUSR1)
            wait_for(lambda: STATS.search(slurp(log)), what="the stats line")
            self.assertEqual(len(STATS.findall(slurp(log))), 1, slurp(log))
            self.assertEqual(STATS.search(slurp(log)).group(1), "3")
            self.assertEqual(c.cmd("guest-ping"), {"return": {}})
            c.close()
            self.assertEqual(a.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()
