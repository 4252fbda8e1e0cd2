"""Helpers for tests/libvirt: a real libvirtd (.ci/libvirtd), transient domains booted from the
tests/vm guest, libvirt's domain events as `virsh event` prints them, and the attach daemon's
log. Python 3 stdlib + the virsh CLI; every wait is bounded.

    lvd = Libvirtd(); lvd.start()
    with EventWatcher() as ev:
        dom = Domain.create(out_dir, work_dir, "fga-e2e-1-main", agent="fleetga")
        ev.wait(lambda e: e.domain == dom.name and e.agent == "connected", timeout=120)
        print(virsh_agent(dom.name, {"execute": "guest-info"}))
        dom.destroy()
"""
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
import vm  # noqa: E402  (tests/vm/vm.py: build_guest, make_disk, the console marker)

URI = os.environ.get("FLEETGA_LIBVIRT_URI", "qemu:///system")
LIBVIRTD_SCRIPT = os.path.join(REPO, ".ci", "libvirtd")
PREFIX = "fga-e2e-"


def log(msg):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


class VirshError(RuntimeError):
    def __init__(self, argv, rc, out, err):
        super().__init__(f"virsh {' '.join(argv)} -> rc {rc}: {err.strip() or out.strip()}")
        self.rc, self.out, self.err = rc, out, err


def virsh(*argv, timeout=60, check=True):
    """Runs `virsh -c URI ARGV...`; returns (rc, stdout, stderr). check: raise VirshError on
    a non-zero exit. A hung virsh is killed at the timeout (TimeoutExpired propagates)."""
    p = subprocess.run(["virsh", "-c", URI, *argv], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)
    if check and p.returncode:
        raise VirshError(argv, p.returncode, p.stdout, p.stderr)
    return p.returncode, p.stdout, p.stderr


def virsh_agent(dom, cmd, timeout=30, check=True):
    """`virsh qemu-agent-command DOM JSON`: the parsed reply's "return" (check) or
    (rc, stdout, stderr)."""
    rc, out, err = virsh("qemu-agent-command", "--timeout", str(timeout), dom, json.dumps(cmd),
                         timeout=timeout + 30, check=check)
    if check:
        return json.loads(out)["return"]
    return rc, out, err


def virsh_error(err):
    """The text after virsh's 'error: ' lines (stderr), one string."""
    lines = [l[len("error: "):] for l in err.splitlines() if l.startswith("error: ")]
    return " | ".join(lines) if lines else err.strip()


def list_domains(prefix=PREFIX):
    rc, out, _ = virsh("list", "--all", "--name", check=False, timeout=30)
    return [l.strip() for l in out.splitlines() if l.strip().startswith(prefix)] if rc == 0 else []


def destroy_stale(prefix=PREFIX):
    """Destroys domains a killed earlier run left behind (name fga-e2e-<pid>-..., pid gone)."""
    for name in list_domains(prefix):
        m = re.match(re.escape(prefix) + r"(\d+)-", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            log(f"destroying stale domain {name}")
            virsh("destroy", name, check=False, timeout=60)
            virsh("undefine", name, "--nvram", check=False, timeout=60)


# -- libvirtd ------------------------------------------------------------------------------

class Libvirtd:
    """.ci/libvirtd from the test: setup/start/stop/restart; every call bounded."""

    def __init__(self, script=LIBVIRTD_SCRIPT):
        self.script = script
        self.dir = os.environ.get("FLEETGA_LIBVIRTD_DIR", "/run/fleetga-libvirtd")
        self.log_path = os.path.join(self.dir, "libvirtd.log")

    def _run(self, verb, timeout=180):
        p = subprocess.run(["bash", self.script, verb], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        if p.returncode:
            raise RuntimeError(f".ci/libvirtd {verb} failed ({p.returncode}): {p.stdout.strip()}")
        return p.stdout

    def running(self):
        return subprocess.run(["bash", self.script, "status"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=60).returncode == 0

    def start(self):
        return self._run("start")

    def stop(self):
        return self._run("stop")

    def restart(self):
        return self._run("restart")

    def pid(self):
        try:
            with open(os.path.join(self.dir, "libvirtd.pid")) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def started_at(self):
        """Epoch seconds at which the running libvirtd process started (from /proc), or None."""
        pid = self.pid()
        try:
            with open(f"/proc/{pid}/stat") as f:
                ticks = int(f.read().rsplit(")", 1)[1].split()[19])
            with open("/proc/stat") as f:
                btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
            return btime + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, StopIteration, TypeError):
            return None

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""


# -- events ----------------------------------------------------------------------------------

# event 'agent-lifecycle' for domain 'NAME': state: 'connected' reason: 'channel event'
EVENT_RE = re.compile(r"^(?:(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d{4}): )?"
                      r"event '(?P<type>[^']+)' for domain '?(?P<domain>[^':]+)'?:?\s*(?P<rest>.*)$")


def parse_libvirt_ts(s):
    """'2026-12-07 17:57:57.125+0000' -> epoch seconds."""
    return datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f%z").timestamp()


class Event:
    __slots__ = ("type", "domain", "rest", "ts", "t_recv", "line")

    def __init__(self, type_, domain, rest, ts, t_recv, line):
        self.type, self.domain, self.rest, self.ts, self.t_recv, self.line = type_, domain, rest, ts, t_recv, line

    @property
    def agent(self):
        """'connected' / 'disconnected' for an agent-lifecycle event, else None."""
        if self.type != "agent-lifecycle":
            return None
        m = re.search(r"state: '([^']+)'", self.rest)
        return m.group(1) if m else None

    def __repr__(self):
        return f"Event({self.line!r})"


class EventWatcher:
    """`virsh event --all --loop --timestamp` in the background; every line parsed into an
    Event with libvirt's timestamp (epoch s) and the time it was read (time.time()). virsh
    exits when libvirtd goes away; respawn() starts it again (call it once libvirtd is back)."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()
        self.proc = None
        self.thread = None
        self.raw = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.proc = subprocess.Popen(["stdbuf", "-oL", "virsh", "-c", URI, "event", "--all", "--loop",
                                      "--timestamp"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     preexec_fn=vm._die_with_parent)
        self.thread = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.thread.start()
        # virsh registers its callbacks after connecting: wait until it has (it prints nothing
        # until the first event), i.e. until libvirtd lists it as a client... approximated by
        # a short bounded settle, plus a check that it did not exit at once.
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"virsh event exited at once: {self.proc.stderr.read()}")

    def _read(self, proc):
        for line in proc.stdout:
            t = time.time()
            line = line.rstrip("\n")
            if not line.strip():
                continue
            m = EVENT_RE.match(line)
            with self.cond:
                self.raw.append(line)
                if m:
                    ts = parse_libvirt_ts(m.group("ts")) if m.group("ts") else t
                    self.events.append(Event(m.group("type"), m.group("domain"), m.group("rest"), ts, t, line))
                self.cond.notify_all()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.thread:
            self.thread.join(timeout=5)
        if self.proc:
            for f in (self.proc.stdout, self.proc.stderr):
                if f:
                    f.close()

    def respawn(self):
        self.stop()
        self.start()

    def mark(self):
        with self.cond:
            return len(self.events)

    def find(self, pred, since=0):
        with self.cond:
            return [e for e in self.events[since:] if pred(e)]

    def wait(self, pred, timeout, since=0, what="event"):
        """The first event from index `since` on that satisfies pred; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events[since:]:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s; events: {self.raw[-10:]}")
                self.cond.wait(min(left, 0.5))

    def agent_event(self, dom, state, timeout, since=0):
        return self.wait(lambda e: e.domain == dom and e.agent == state, timeout, since,
                         what=f"agent-lifecycle {state} for {dom}")


# -- domains ---------------------------------------------------------------------------------

def emulator():
    for p in ("/usr/bin/qemu-system-x86_64", "/usr/libexec/qemu-kvm"):
        if os.path.exists(p):
            return p
    return vm.shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"


class Domain:
    """A transient libvirt domain running the tests/vm guest. destroy() always; the console
    file holds the init's marker lines."""

    def __init__(self, name, workdir, agent, console, xml):
        self.name, self.workdir, self.agent, self.console_path, self.xml = name, workdir, agent, console, xml
        self.uuid = None
        self.t_create = None       # time.time() when virsh create was issued
        self.t_created = None      # ... and when it returned
        self.boots = 0

    @classmethod
    def render(cls, out_dir, workdir, name, agent="fleetga", agent_args=(), s3=True, disk=True,
               memory=512, extra_cmdline=""):
        os.makedirs(workdir, exist_ok=True)
        console = os.path.join(workdir, "console.log")
        initrd = os.path.join(out_dir, "initrd-qemu-ga.img" if agent == "qemu-ga" else "initrd-fleetga.img")
        if not os.path.exists(initrd):
            raise RuntimeError(f"no {initrd}")
        cmdline = ["console=ttyS0", "panic=-1", "quiet", "fga.agent=" + agent]
        if agent_args:
            if any("," in a or " " in a for a in agent_args):
                raise ValueError("agent args may not contain commas or spaces")
            cmdline.append("fga.args=" + ",".join(agent_args))
        if extra_cmdline:
            cmdline.append(extra_cmdline)
        diskpath = vm.make_disk(os.path.join(workdir, "disk.img")) if disk else None
        with open(os.path.join(HERE, "domain.xml")) as f:
            xml = f.read()
        fields = {"NAME": name, "MEMORY": str(memory), "KERNEL": os.path.join(out_dir, "vmlinux"),
                  "INITRD": initrd, "CMDLINE": " ".join(cmdline), "S3": "yes" if s3 else "no",
                  "EMULATOR": emulator(), "DISK": diskpath or "", "CONSOLE": console}
        for k, v in fields.items():
            xml = xml.replace(f"@{k}@", v.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;"))
        if not disk:
            xml = re.sub(r"\s*<disk .*?</disk>", "", xml, flags=re.S)
        return cls(name, workdir, agent, console, xml)

    @classmethod
    def create(cls, *args, **kw):
        d = cls.render(*args, **kw)
        d.start()
        return d

    def start(self):
        path = os.path.join(self.workdir, "domain.xml")
        with open(path, "w") as f:
            f.write(self.xml)
        if os.path.exists(self.console_path):
            os.unlink(self.console_path)
        self.t_create = time.time()
        virsh("create", path, timeout=120)
        self.t_created = time.time()
        _, out, _ = virsh("domuuid", self.name, timeout=30)
        self.uuid = out.strip()

    def console(self):
        try:
            with open(self.console_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def markers(self):
        return [(m.group(1), int(m.group(2))) for m in re.finditer(r"FLEETGA-VM: agent (\S+) started pid=(\d+)", self.console())]

    def wait_marker(self, n, timeout):
        """Waits for the n-th agent start marker on the console; returns its pid."""
        deadline = time.monotonic() + timeout
        while True:
            ms = self.markers()
            if len(ms) >= n:
                return ms[n - 1][1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no agent marker #{n} in {timeout} s; console:\n{self.console()[-3000:]}")
            time.sleep(0.05)

    def state(self):
        rc, out, err = virsh("domstate", "--reason", self.name, check=False, timeout=30)
        return out.strip() if rc == 0 else None

    def exists(self):
        rc, _, _ = virsh("domid", self.name, check=False, timeout=30)
        return rc == 0

    def destroy(self):
        rc, out, err = virsh("destroy", self.name, check=False, timeout=60)
        return rc == 0

    def exec(self, script, wait=True, timeout=30):
        """Runs `sh -c SCRIPT` in the guest through the agent (guest-exec). wait: poll
        guest-exec-status until it exits (bounded) and return (exitcode, stdout, stderr)."""
        import base64
        r = virsh_agent(self.name, {"execute": "guest-exec", "arguments": {
            "path": "/bin/sh", "arg": ["-c", script], "capture-output": bool(wait)}})
        if not wait:
            return r["pid"]
        deadline = time.monotonic() + timeout
        while True:
            st = virsh_agent(self.name, {"execute": "guest-exec-status", "arguments": {"pid": r["pid"]}})
            if st.get("exited"):
                dec = lambda k: base64.b64decode(st.get(k, "")).decode(errors="replace")
                return st.get("exitcode"), dec("out-data"), dec("err-data")
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest-exec {script!r} still running after {timeout} s")
            time.sleep(0.1)


# -- the attach daemon -----------------------------------------------------------------------

# attach domain=NAME uuid=UUID agent="10.2.0" asked=7.2.0 confirmed=7.2.0 latency_ms=12.3
#   since_event_ms=40.1 outcome=confirmed attempt=1 [detail="..."]
ATTACH_RE = re.compile(r"\battach domain=(?P<domain>\S+) uuid=(?P<uuid>\S+) agent=(?P<agent>\"[^\"]*\"|\S+) "
                       r"asked=(?P<asked>\S+) confirmed=(?P<confirmed>\S+) latency_ms=(?P<latency_ms>\S+) "
                       r"since_event_ms=(?P<since_event_ms>\S+) outcome=(?P<outcome>\S+) attempt=(?P<attempt>\d+)"
                       r"(?: detail=(?P<detail>\"(?:[^\"\\]|\\.)*\"))?")
OUTCOMES = {"confirmed", "mismatch", "unsupported", "skipped", "not_connected", "busy", "timeout",
            "gone", "garbage", "failed"}
# The log line's time stamp: spdlog's default "[2026-12-07 17:57:57.125] [info] ..." (local
# time) or an ISO prefix "2026-12-07T17:57:57.125+0000 fleetga-host[PID]: info: ...".
SPDLOG_TS_RE = re.compile(r"^\[?(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d\.\d+)([+-]\d\d:?\d\d|Z)?")


def parse_log_ts(line):
    """Epoch seconds of a log line's time stamp prefix, None when it has none."""
    m = SPDLOG_TS_RE.match(line)
    if not m:
        return None
    tz = m.group(3)
    try:
        if tz:
            tz = "+0000" if tz == "Z" else tz.replace(":", "")
            return datetime.datetime.strptime(f"{m.group(1)} {m.group(2)}{tz}", "%Y-%m-%d %H:%M:%S.%f%z").timestamp()
        return datetime.datetime.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
    except ValueError:
        return None


class AttachLine:
    def __init__(self, m, line, t_seen, ts):
        self.line, self.t_seen, self.ts = line, t_seen, ts
        g = m.groupdict()
        self.domain, self.uuid, self.outcome = g["domain"], g["uuid"], g["outcome"]
        self.agent = g["agent"].strip('"')
        self.asked, self.confirmed = g["asked"], g["confirmed"]
        self.attempt = int(g["attempt"])
        self.detail = g["detail"]

        def num(v):
            try:
                return float(v)
            except ValueError:
                return None
        self.latency_ms, self.since_event_ms = num(g["latency_ms"]), num(g["since_event_ms"])

    def __repr__(self):
        return f"AttachLine({self.line!r})"


class AttachDaemon:
    """fleetga-host attach in the background, stderr (and stdout) to a file that is followed
    by a thread: attach lines are parsed as they appear, with the time they were seen and the
    time in their spdlog prefix (local time)."""

    def __init__(self, host_bin, args, log_path):
        self.argv = [host_bin, "attach", *args]
        self.log_path = log_path
        self.proc = None
        self.lines = []       # every line of its output
        self.attaches = []    # AttachLine
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self.thread = None

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.offset = self.logf.tell()
        env = dict(os.environ)
        # ASan/UBSan builds: reports to the same file, never abort quietly.
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env, preexec_fn=vm._die_with_parent)
        self.t_start = time.time()
        self._stop.clear()
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()
        log(f"started {' '.join(map(shlex.quote, self.argv))} (pid {self.proc.pid}), log {self.log_path}")
        return self

    def _follow(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.offset)
            buf = b""
            while True:
                chunk = f.read(65536)
                if chunk:
                    buf += chunk
                    t = time.time()
                    *complete, buf = buf.split(b"\n")
                    with self.cond:
                        for raw in complete:
                            line = raw.decode(errors="replace")
                            self.lines.append(line)
                            m = ATTACH_RE.search(line)
                            if m:
                                self.attaches.append(AttachLine(m, line, t, parse_log_ts(line)))
                        self.cond.notify_all()
                    continue
                if self._stop.is_set():
                    return
                time.sleep(0.01)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout=20):
        """SIGTERM, bounded wait (then SIGKILL); returns the exit status."""
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                rc = "killed"
        elif self.proc:
            rc = self.proc.returncode
        time.sleep(0.05)
        self._stop.set()
        if self.thread:
            self.thread.join(timeout=5)
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        return rc

    def mark(self):
        with self.cond:
            return len(self.attaches)

    def lines_mark(self):
        with self.cond:
            return len(self.lines)

    def find(self, pred, since=0):
        with self.cond:
            return [a for a in self.attaches[since:] if pred(a)]

    def wait(self, pred, timeout, since=0, what="attach line"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for a in self.attaches[since:]:
                    if pred(a):
                        return a
                if self.proc.poll() is not None:
                    raise RuntimeError(f"fleetga-host attach exited ({self.proc.returncode}) while waiting for {what}; "
                                       f"last lines: {self.lines[-15:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s; last lines: {self.lines[-15:]}")
                self.cond.wait(min(left, 0.5))

    def wait_line(self, pred, timeout, since=0, what="log line"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for l in self.lines[since:]:
                    if pred(l):
                        return l
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s; last lines: {self.lines[-15:]}")
                self.cond.wait(min(left, 0.5))

    def text(self):
        with self.cond:
            return "\n".join(self.lines)


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]
