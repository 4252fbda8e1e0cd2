"""Test harness: start an agent (fleetga or Debian's qemu-ga) on a unix socket in a
temporary state directory, the way upstream tests/unit/test-qga.c does, and talk raw bytes."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

FLEETGA = os.environ.get("FLEETGA_BIN", "fleetga")
QEMU_GA = os.environ.get("QEMU_GA_BIN", "/usr/sbin/qemu-ga")


class Agent:
    """One agent process: `with Agent(binary, extra_args) as a:`."""

    def __init__(self, binary=FLEETGA, args=(), env=None, cwd_is_statedir=True, statedir=None):
        self.binary = binary
        self.given_dir = statedir
        self.args = list(args)
        self.env = env
        self.cwd_is_statedir = cwd_is_statedir
        self.proc = None
        self.dir = None

    def __enter__(self):
        self.dir = self.given_dir or tempfile.mkdtemp(prefix="fleetga-e2e.")
        self.sock = os.path.join(self.dir, "sock")
        if os.path.exists(self.sock):  # left behind by an earlier agent (qemu-ga does too)
            os.unlink(self.sock)
        env = dict(os.environ) if self.env is None else self.env
        # ASan's leak check at exit would change the exit status of a SIGTERMed agent only if
        # something leaks, which is exactly what we want to hear about.
        self.proc = subprocess.Popen(
            [self.binary, "-m", "unix-listen", "-t", self.dir, "-p", self.sock] + self.args,
            cwd=self.dir if self.cwd_is_statedir else None, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out, err = self.proc.communicate(timeout=5)
                raise RuntimeError(f"agent did not start: {err.decode(errors='replace')}")
            time.sleep(0.01)
        return self

    def connect(self, timeout=10):
        # The socket file appears at bind(), a moment before listen(): retry like test-qga.c
        # does (it retries once a second, ten times).
        deadline = time.monotonic() + 10
        while True:
            try:
                return Client(self.sock, timeout)
            except ConnectionRefusedError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.01)

    def stop(self):
        """SIGTERM like test-qga.c's teardown; returns (exit status, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err.decode(errors="replace")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        if not self.given_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def line(self):
        """One reply line (bytes, without the newline; a leading 0xFF is kept)."""
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError("agent closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def lines(self, n):
        return [self.line() for _ in range(n)]

    def no_reply(self, wait=0.3):
        """True when nothing arrives within `wait` seconds."""
        if self.buf:
            return False
        self.s.settimeout(wait)
        try:
            data = self.s.recv(1 << 16)
        except socket.timeout:
            return True
        finally:
            self.s.settimeout(10)
        if not data:
            raise EOFError("agent closed the connection")
        self.buf += data
        return False

    def cmd(self, execute, arguments=None, **extra):
        req = {"execute": execute}
        if arguments is not None:
            req["arguments"] = arguments
        req.update(extra)
        self.send(json.dumps(req) + "\n")
        return json.loads(self.line())

    def sync_delimited(self, ident):
        """The documented handshake: 0xFF, guest-sync-delimited, skip to the 0xFF."""
        self.send(b"\xff")
        self.send(json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": ident}}) + "\n")
        while True:
            while b"\xff" not in self.buf:
                chunk = self.s.recv(1 << 16)
                if not chunk:
                    raise EOFError("agent closed the connection during the handshake")
                self.buf += chunk
            self.buf = self.buf[self.buf.index(b"\xff") + 1:]
            reply = json.loads(self.line())
            if reply.get("return") == ident:
                return reply


def wait_for(pred, timeout=30, what="condition"):
    """Polls `pred` until it holds; the deadline only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours would still "exist"
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
