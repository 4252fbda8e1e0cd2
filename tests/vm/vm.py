"""Boots the fleetga test guest (tests/vm/build-guest.sh) under qemu-system-x86_64 with TCG and
talks to the agent over a real virtio-serial port whose host side is a unix socket QEMU
listens on. Python 3 stdlib only.

    with Guest(out_dir, agent="fleetga") as g:      # boots, waits for the console marker
        c = g.connect()                             # a host client on the port's socket
        c.sync_delimited(42)
        print(c.cmd("guest-info"))

QEMU is always killed when the context ends (also on errors and timeouts), and every wait is
bounded by a deadline.
"""
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

QEMU = os.environ.get("QEMU_SYSTEM_X86_64", "qemu-system-x86_64")
PORT_NAME = "org.qemu.guest_agent.0"
MARKER = re.compile(rb"FLEETGA-VM: agent (\S+) started pid=(\d+)")
HERE = os.path.dirname(os.path.abspath(__file__))


class VMError(RuntimeError):
    pass


def _die_with_parent():
    """In the child before exec: QEMU gets SIGKILL when the test process dies, even when it
    is killed itself (a ctest timeout) and no context manager runs."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def build_guest(build_dir, fleetga_bin, out_dir=None):
    """Runs build-guest.sh; returns the output directory. Raises VMError(code, text)."""
    out_dir = out_dir or os.path.join(build_dir, "vm-out")
    p = subprocess.run([os.path.join(HERE, "build-guest.sh"), build_dir, fleetga_bin, out_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if p.returncode:
        err = VMError(f"build-guest.sh failed ({p.returncode}): {p.stdout.decode(errors='replace')}")
        err.returncode = p.returncode
        raise err
    return out_dir


def make_disk(path, size_mb=64, label="fgadata"):
    """A fresh ext4 image FILE for the guest's virtio-blk disk (sparse; mke2fs writes its
    tables now, so the guest kernel has no lazy-init thread writing behind the tests)."""
    mkfs = shutil.which("mkfs.ext4") or shutil.which("mkfs.ext4", path="/usr/sbin:/sbin")
    if not mkfs:
        err = VMError("mkfs.ext4 not found (apt-get install e2fsprogs)")
        err.returncode = 3
        raise err
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["truncate", "-s", f"{size_mb}M", path], check=True)
    p = subprocess.run([mkfs, "-F", "-q", "-L", label, "-E", "lazy_itable_init=0,lazy_journal_init=0",
                        path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode:
        raise VMError(f"mkfs.ext4 failed: {p.stdout.decode(errors='replace')}")
    return path


def prepare(tools=()):
    """The guest suites' setUpModule: builds the guest from $FLEETGA_BIN (or takes
    $FLEETGA_VM_DIR). Returns (out_dir, build_dir, skip_reason); skip_reason is None when the
    guest is ready. With FLEETGA_VM_REQUIRED=1 anything missing raises instead (CI).
    `tools`: extra (program, Debian package) pairs the suite needs on the host."""
    def unavailable(reason):
        if os.environ.get("FLEETGA_VM_REQUIRED") == "1":
            raise RuntimeError(reason + " (FLEETGA_VM_REQUIRED=1)")
        return None, None, reason

    if not shutil.which(QEMU):
        return unavailable(f"{QEMU} not installed (apt-get install qemu-system-x86)")
    for prog, pkg in tools:
        if not (shutil.which(prog) or shutil.which(prog, path="/usr/sbin:/sbin")):
            return unavailable(f"{prog} not installed (apt-get install {pkg})")
    if os.environ.get("FLEETGA_VM_DIR"):
        return os.environ["FLEETGA_VM_DIR"], os.environ["FLEETGA_VM_DIR"], None
    fleetga = os.environ.get("FLEETGA_BIN") or shutil.which("fleetga")
    if not fleetga or not os.path.exists(fleetga):
        raise RuntimeError("set FLEETGA_BIN to the fleetga binary")
    build_dir = os.environ.get("FLEETGA_VM_BUILD_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(fleetga))), "vm")
    os.makedirs(build_dir, exist_ok=True)
    try:
        return build_guest(build_dir, fleetga), build_dir, None
    except VMError as e:
        # 3: a tool or the kernel package could not be had; anything else is a real failure.
        if getattr(e, "returncode", None) == 3:
            out = unavailable(f"guest kernel/tools unavailable: {e}")
            return None, build_dir, out[2]
        raise


class Client:
    """A host-side client on the port's unix socket. Every read has a deadline."""

    def __init__(self, path, timeout=10.0):
        self.timeout = timeout
        # QEMU creates the socket file (bind) just before it listens: on a busy machine a
        # connect can fall between the two and be refused (seen in a CI run beside two CPU
        # hogs). Refused is retried until the timeout; anything else is an error at once.
        deadline = time.monotonic() + timeout
        while True:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            try:
                self.s.connect(path)
                break
            except ConnectionRefusedError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.buf = b""

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no reply in time (have {self.buf[-200:]!r})")
        self.s.settimeout(left)
        try:
            chunk = self.s.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError(f"no reply in time (have {self.buf[-200:]!r})") from None
        if not chunk:
            raise EOFError("QEMU closed the connection")
        self.buf += chunk

    def line(self, timeout=None):
        """One reply line (bytes without the newline; a leading 0xFF is kept)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def count_lines(self, expected, n, deadline):
        """Consumes up to n reply lines, each of which must equal `expected` (bytes without the
        newline), until the deadline; returns how many arrived. In bulk, a chunk at a time
        (line() re-slices the buffer per line, which bounds a pipelined measurement at the
        client, not the agent)."""
        want = expected + b"\n"
        got = 0
        while got < n:
            k = min(len(self.buf) // len(want), n - got)
            if k and self.buf.startswith(want * k):
                self.buf = self.buf[k * len(want):]
                got += k
                continue
            if b"\n" in self.buf:  # a complete line that is not `expected` (or k lines were not)
                for i, line in enumerate(self.buf.split(b"\n")[:-1]):
                    if line != expected:
                        raise AssertionError(f"reply {got + i}: {line!r}")
            try:
                self._fill(deadline)
            except TimeoutError:
                break
        return got

    def reply(self, timeout=None):
        return json.loads(self.line(timeout))

    def cmd(self, execute, arguments=None, timeout=None, **extra):
        req = {"execute": execute}
        if arguments is not None:
            req["arguments"] = arguments
        req.update(extra)
        self.send(json.dumps(req) + "\n")
        return self.reply(timeout)

    def ret(self, execute, arguments=None, timeout=None):
        r = self.cmd(execute, arguments, timeout)
        if "return" not in r:
            raise AssertionError(f"{execute}: {r}")
        return r["return"]

    def sync_delimited(self, ident=None, timeout=None):
        """The documented handshake: 0xFF, guest-sync-delimited, discard up to the 0xFF,
        read replies until one carries our id. Returns (reply, bytes skipped)."""
        ident = random.randrange(1 << 62) if ident is None else ident
        deadline = time.monotonic() + (timeout or self.timeout)
        self.send(b"\xff" + json.dumps(
            {"execute": "guest-sync-delimited", "arguments": {"id": ident}}).encode() + b"\n")
        skipped = 0
        while True:
            while b"\xff" not in self.buf:
                skipped += len(self.buf)
                self.buf = b""
                self._fill(deadline)
            at = self.buf.index(b"\xff")
            skipped += at
            self.buf = self.buf[at + 1:]
            while b"\n" not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b"\n", 1)
            reply = json.loads(line)
            if reply.get("return") == ident:
                return reply, skipped
            skipped += len(line) + 1

    def read_file(self, path, count=65536):
        h = self.ret("guest-file-open", {"path": path, "mode": "r"})
        try:
            import base64
            r = self.ret("guest-file-read", {"handle": h, "count": count})
            return base64.b64decode(r["buf-b64"])
        finally:
            self.ret("guest-file-close", {"handle": h})


class Guest:
    """One QEMU guest. `agent` is "fleetga", "qemu-ga" (needs initrd-qemu-ga.img) or "responder"
    (tests/vm/responder.c, in the fleetga initramfs)."""

    # Optional hardware and guest set-up (keyword arguments; the defaults boot the plain guest):
    #   disk      path of a raw disk image, or True for a fresh 64 MiB ext4 image in the work
    #             dir: virtio-blk with discard=unmap (FITRIM reaches the image), mounted by
    #             init on /mnt/data
    #   net       True or a MAC: a virtio-net card on a QEMU hub port with nothing behind it
    #   smp       number of vCPUs
    #   reboot    let a guest reboot restart the machine (no -no-reboot); see wait_reboot()
    #   no_hwclock  boot without hwclock in the guest; guest_date: "@SECONDS" for the system
    #             clock (the RTC keeps the host's time)
    #   qmp       a QMP monitor on a unix socket in the work dir, for qmp() (device_del/add of
    #             the port, id "qgaport" on bus "vser0.0")
    #   hotplug   the guest keeps /dev/virtio-ports/<name> up to date as ports come and go,
    #             as udev does (init polls sysfs every 100 ms; without it the links are made
    #             once at boot)
    DEFAULT_MAC = "52:54:00:12:34:56"

    def __init__(self, out_dir, agent="fleetga", agent_args=(), memory=512, boot_timeout=60,
                 workdir=None, extra_append="", lock_path=None, kernel=None, disk=None, net=False,
                 smp=1, reboot=False, no_hwclock=False, guest_date=None, qmp=False, hotplug=False):
        self.disk = disk
        self.use_qmp = qmp
        self.hotplug = hotplug
        self.mac = (self.DEFAULT_MAC if net is True else net) or None
        self.smp = smp
        self.allow_reboot = reboot
        self.no_hwclock = no_hwclock
        self.guest_date = guest_date
        self.disk_path = None
        self.boots = 0
        self.out_dir = out_dir
        # vmlinux (PVH entry, nothing to decompress) boots faster than the bzImage under TCG.
        self.kernel = kernel or os.environ.get("FLEETGA_VM_KERNEL", "vmlinux")
        self.agent = agent
        self.agent_args = list(agent_args)
        self.memory = memory
        self.boot_timeout = boot_timeout
        self.extra_append = extra_append
        self.given_workdir = workdir
        self.lock_path = lock_path
        self.proc = None
        self.lock = None
        self.agent_pid = None
        self.t_start = None
        self.t_marker = None          # seconds from QEMU start to the console marker
        self.t_first_reply = None     # seconds from QEMU start to the first sync reply

    # -- life cycle ---------------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def argv(self):
        initrd = os.path.join(self.out_dir, f"initrd-{'qemu-ga' if self.agent == 'qemu-ga' else 'fleetga'}.img")
        if not os.path.exists(initrd):
            raise VMError(f"no {initrd}")
        append = ["console=ttyS0", "panic=-1", "quiet", "fga.agent=" + self.agent]
        if self.agent_args:
            if any("," in a or " " in a for a in self.agent_args):
                raise VMError("agent args may not contain commas or spaces")
            append.append("fga.args=" + ",".join(self.agent_args))
        if self.no_hwclock:
            append.append("fga.nohwclock")
        if self.guest_date:
            append.append("fga.date=" + self.guest_date)
        if self.hotplug:
            append.append("fga.hotplug")
        if self.extra_append:
            append.append(self.extra_append)
        argv = [QEMU, "-nodefaults", "-nographic", "-monitor", "none"]
        if not self.allow_reboot:
            argv.append("-no-reboot")
        argv += ["-machine", "q35", "-accel", "tcg", "-m", str(self.memory)]
        if self.smp != 1:
            argv += ["-smp", str(self.smp)]
        argv += ["-kernel", os.path.join(self.out_dir, self.kernel), "-initrd", initrd,
                 "-append", " ".join(append),
                 "-serial", "file:" + self.console_path,
                 "-device", "virtio-serial-pci,id=vser0",
                 "-chardev", f"socket,id=qga0,path={self.sock},server=on,wait=off",
                 "-device", f"virtserialport,chardev=qga0,name={PORT_NAME},id=qgaport,bus=vser0.0"]
        if self.use_qmp:
            argv += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if self.disk_path:
            argv += ["-drive", f"file={self.disk_path},if=none,id=disk0,format=raw,discard=unmap",
                     "-device", "virtio-blk-pci,drive=disk0"]
        if self.mac:
            argv += ["-netdev", "hubport,id=net0,hubid=0",
                     "-device", f"virtio-net-pci,netdev=net0,mac={self.mac},romfile="]
        return argv

    def start(self):
        self.workdir = self.given_workdir or tempfile.mkdtemp(prefix="fleetga-vm.")
        self.sock = os.path.join(self.workdir, "qga.sock")
        self.qmp_path = os.path.join(self.workdir, "qmp.sock")
        self.console_path = os.path.join(self.workdir, "console.log")
        for p in (self.sock, self.console_path):
            if os.path.exists(p):
                os.unlink(p)
        self.disk_path = None
        if self.disk is True:
            self.disk_path = make_disk(os.path.join(self.workdir, "disk.img"))
        elif self.disk:
            self.disk_path = os.path.abspath(self.disk)
        if self.lock_path:  # one QEMU at a time on this machine, whoever runs it
            self.lock = open(self.lock_path, "w")
            deadline = time.monotonic() + 600
            while True:
                try:
                    fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise VMError(f"{self.lock_path} held for 10 minutes") from None
                    time.sleep(0.2)
        argv = self.argv()
        self.qemu_log = open(os.path.join(self.workdir, "qemu.log"), "wb")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.qemu_log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        deadline = self.t_start + self.boot_timeout
        # The host may connect before the guest opens the port: QEMU keeps the bytes until
        # it does, so this measures QEMU start -> first reply.
        while not os.path.exists(self.sock):
            self._check_alive()
            if time.monotonic() > deadline:
                raise VMError("QEMU did not create the socket" + self.diagnostics())
            time.sleep(0.005)
        self._wait_agent(1, deadline)
        self.t_first_reply = self._t_reply - self.t_start
        self.t_marker = self._t_mark - self.t_start

    def _wait_agent(self, boot, deadline):
        """Waits for a sync reply and for the boot-th agent marker on the console."""
        if self.agent == "responder":
            # tests/vm/responder.c answers `{"return": {}}` to every line: a ping, not a sync.
            try:
                with Client(self.sock, timeout=max(1.0, deadline - time.monotonic())) as c:
                    c.send(b'{"execute":"guest-ping"}\n')
                    if c.line() != b'{"return": {}}':
                        raise VMError("the responder did not answer a ping" + self.diagnostics())
            except (TimeoutError, EOFError, OSError) as e:
                raise VMError(f"no reply from the responder: {e}" + self.diagnostics()) from None
        else:
            try:
                with Client(self.sock, timeout=max(1.0, deadline - time.monotonic())) as c:
                    c.sync_delimited(boot)
            except (TimeoutError, EOFError, OSError) as e:
                raise VMError(f"no reply from the agent (boot {boot}): {e}" + self.diagnostics()) from None
        self._t_reply = time.monotonic()
        while True:
            marks = MARKER.findall(self.console())
            if len(marks) >= boot:
                self.agent_pid = int(marks[boot - 1][1])
                break
            self._check_alive()
            if time.monotonic() > deadline:
                raise VMError(f"no agent marker on the console (boot {boot})" + self.diagnostics())
            time.sleep(0.01)
        self._t_mark = time.monotonic()
        self.boots = boot

    def boot_count(self):
        """Agent markers on the console so far (a reboot adds one; the console file is kept
        across a machine reset)."""
        return len(MARKER.findall(self.console()))

    def wait_reboot(self, timeout=60):
        """After the guest rebooted (needs reboot=True): waits for the next boot's agent
        marker and its first reply. Returns seconds from the call to that reply."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while self.boot_count() <= self.boots:
            self._check_alive()
            if time.monotonic() > deadline:
                raise VMError("the guest did not boot again" + self.diagnostics())
            time.sleep(0.02)
        self._wait_agent(self.boots + 1, deadline)
        return self._t_reply - t0

    def wait_exit(self, timeout=30):
        """Waits (bounded) for QEMU to exit by itself (a guest poweroff); returns its exit
        status, None when it is still running at the deadline."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise VMError(f"QEMU exited with {self.proc.returncode}" + self.diagnostics())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc:
            self.qemu_log.close()
        if self.lock:
            self.lock.close()
            self.lock = None
        if not self.given_workdir and getattr(self, "workdir", None) and not os.environ.get("FLEETGA_VM_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- observation ---------------------------------------------------------------------
    def console(self):
        try:
            with open(self.console_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def diagnostics(self):
        qlog = b""
        try:
            with open(os.path.join(self.workdir, "qemu.log"), "rb") as f:
                qlog = f.read()[-2000:]
        except OSError:
            pass
        return ("\n--- console ---\n" + self.console()[-4000:].decode(errors="replace")
                + "\n--- qemu ---\n" + qlog.decode(errors="replace"))

    def connect(self, timeout=10.0):
        return Client(self.sock, timeout)

    def qmp(self, execute, arguments=None, timeout=10.0):
        """One QMP command on a fresh monitor connection (needs qmp=True); returns its
        "return" value, raises VMError on an "error" reply. Events are skipped."""
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.qmp_path)
            f = s.makefile("rwb")

            def reply():
                while True:
                    if time.monotonic() > deadline:
                        raise VMError(f"QMP {execute}: no reply in {timeout} s")
                    line = f.readline()
                    if not line:
                        raise VMError(f"QMP {execute}: monitor closed")
                    msg = json.loads(line)
                    if "return" in msg or "error" in msg or "QMP" in msg:
                        return msg
            reply()  # greeting
            for cmd, args in (("qmp_capabilities", None), (execute, arguments)):
                f.write(json.dumps({"execute": cmd, **({"arguments": args} if args else {})}).encode() + b"\n")
                f.flush()
                msg = reply()
                if "error" in msg:
                    raise VMError(f"QMP {cmd}: {msg['error']}")
            return msg["return"]

    def qemu_cpu_seconds(self):
        """utime+stime of the QEMU process (host side), seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_stat(client, pid):
    """The agent's (cpu seconds, voluntary ctxt switches, nonvoluntary) read inside the guest
    over the channel with guest-file-*. USER_HZ is 100 in Debian's kernel."""
    stat = client.read_file(f"/proc/{pid}/stat").decode()
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / 100.0
    status = client.read_file(f"/proc/{pid}/status").decode()
    vol = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
    nonvol = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
    return cpu, vol, nonvol
