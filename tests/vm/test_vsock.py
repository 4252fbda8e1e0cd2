"""A real vsock round trip inside the QEMU test guest (tests/vm/README.md).

This machine has no /dev/vhost-vsock, so QEMU can't give the guest a virtio-vsock device;
the guest kernel's vsock_loopback transport (CID 1, VMADDR_CID_LOCAL) carries the
connection instead. The agent that init starts on virtio-serial is the control channel:
through it (guest-exec) each test insmods the vsock modules (lib/modules/load-order-vsock,
never loaded at boot), starts a second agent with `-m vsock-listen -p 1:PORT -d`, and runs
tests/vm/vsock_client.c (/usr/sbin/vsock-client) against it. Both the listener and the client
are inside the guest; what the client received comes back as guest-exec's out-data.

Guests:
  FleetgaVsock  fleetga on both channels: exact replies to 0xFF + guest-sync-delimited,
                guest-ping and guest-info; sequential reconnects; a second client waits until
                the first leaves (one client at a time, backlog 1); clients that leave before
                their replies don't end the listener; lock-step guest-ping round trips/s.
  QemuGaVsock   Debian's qemu-ga 7.2 as the vsock listener (and control agent) running the
                same scenarios: differences are reported, never asserted.
Figures go to stderr and <build dir>/vm-vsock-report.json.

Environment: as test_virtio.py (FLEETGA_BIN, FLEETGA_VM_BUILD_DIR, FLEETGA_VM_DIR,
FLEETGA_VM_REQUIRED, FLEETGA_VM_KEEP).
"""
import base64
import json
import os
import re
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm  # noqa: E402
from test_system import Recorder, Strict, b64, exec_run  # noqa: E402

REPORT = {}
OUT_DIR = None
BUILD_DIR = None
SKIP_REASON = None

CLIENT = "/usr/sbin/vsock-client"
STATE = "/run/vs"
CID = 1                  # VMADDR_CID_LOCAL: the vsock_loopback transport
PORTS = {"fleetga": 5000, "qemu-ga": 5001}
AGENT_BIN = {"fleetga": "/usr/sbin/fleetga", "qemu-ga": "/usr/sbin/qemu-ga"}
PING = b'{"execute":"guest-ping"}\n'
PONG = b'{"return": {}}\n'
# The 0xFF that starts guest-sync-delimited is itself answered with a parse error (qemu-ga
# does the same; test_virtio.py checks it on virtio-serial).
STRAY = b'{"error": {"class": "GenericError", "desc": "JSON parse error, stray \'\\uFFFD\'"}}\n'
PING_FLOOR = 20          # round trips/s: a sanity floor, not a performance assertion
PINGS_PER_RUN = 5000


def setUpModule():
    global OUT_DIR, BUILD_DIR, SKIP_REASON
    OUT_DIR, BUILD_DIR, SKIP_REASON = vm.prepare(())


def tearDownModule():
    if not REPORT:
        return
    text = json.dumps(REPORT, indent=2, sort_keys=True, default=repr)
    sys.stderr.write("\n=== tests/vm vsock figures and qemu-ga differences ===\n" + text + "\n")
    if BUILD_DIR:
        with open(os.path.join(BUILD_DIR, "vm-vsock-report.json"), "w") as f:
            f.write(text + "\n")


def sync_req(ident):
    """0xFF + guest-sync-delimited: two reply lines (STRAY, then synced(ident))."""
    return b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": ident}},
                                separators=(",", ":")).encode() + b"\n"


# -- in the guest, over the control channel ---------------------------------------------------
def sh(c, script, stdin=None, timeout=30):
    """`/bin/sh -c script` in the guest through the control agent (guest-exec). Returns
    (exit code, stdout bytes, stderr text)."""
    extra = {"input-data": b64(stdin)} if stdin is not None else {}
    st, _, _ = exec_run(c, ["/bin/sh", "-c", script], timeout=timeout, **extra)
    out = base64.b64decode(st.get("out-data", ""))
    err = base64.b64decode(st.get("err-data", "")).decode(errors="replace")
    return st.get("exitcode", st.get("signal") and -st["signal"]), out, err


def sh_quiet(c, script, timeout=60, poll=0.25):
    """sh() for measurements: guest-exec-status polled every `poll` s, not back to back (the
    guest has one TCG vCPU; a poll storm on the control agent would slow the measured
    client). Returns (exit code, stdout bytes, stderr text)."""
    pid = c.ret("guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})["pid"]
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(poll)
        st = c.ret("guest-exec-status", {"pid": pid})
        if st.get("exited"):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{script!r} did not exit in {timeout} s")
    return (st.get("exitcode"), base64.b64decode(st.get("out-data", "")),
            base64.b64decode(st.get("err-data", "")).decode(errors="replace"))


def synced(ident):
    return b'\xff{"return": %d}\n' % ident


def reply_lines(request):
    """Reply lines the request asks for: one per newline, one more per 0xFF (STRAY)."""
    return request.count(b"\n") + request.count(b"\xff")


def client(c, port, request, lines=None, timeout=10):
    """vsock-client in the guest against CID 1:port with `request` on its stdin, reading
    `lines` reply lines (default reply_lines(request)). Returns (exit code, bytes received,
    its stderr)."""
    lines = reply_lines(request) if lines is None else lines
    return sh(c, f"exec {CLIENT} -t {timeout} -l {lines} {CID} {port}", stdin=request, timeout=timeout + 20)


def elapsed_ms(err):
    m = re.search(r"elapsed_ms ([\d.]+)", err)
    return float(m.group(1)) if m else None


def start_listener(c, agent, port):
    """Loads the vsock modules and starts `agent -m vsock-listen -p 1:port -d` in the guest.
    Returns the listener's pid."""
    code, out, err = sh(c, f"test -x {CLIENT} || {{ echo 'no {CLIENT}: rebuild the guest' >&2; exit 9; }}\n"
                           "for m in $(cat /lib/modules/load-order-vsock); do\n"
                           "  [ -d /sys/module/$m ] || insmod /lib/modules/$m.ko || exit 1\n"
                           "done\n"
                           "cat /lib/modules/load-order-vsock")
    if code != 0:
        raise AssertionError(f"loading the vsock modules failed ({code}): {err}")
    REPORT.setdefault("modules", out.decode().split())
    code, out, err = sh(c, f"mkdir -p {STATE} && exec {AGENT_BIN[agent]} -m vsock-listen -p {CID}:{port} "
                           f"-t {STATE} -l {STATE}/log -d -f {STATE}/pid")
    if code != 0:
        raise AssertionError(f"{agent} -m vsock-listen failed to start ({code}): {out!r} {err}")
    # -d: the parent exits once the socket listens; the daemon writes the pid file.
    code, out, err = sh(c, f"i=0; while [ ! -s {STATE}/pid ] && [ $i -lt 500 ]; do usleep 10000; i=$((i+1)); done;"
                           f" cat {STATE}/pid")
    if code != 0 or not out.strip().isdigit():
        raise AssertionError(f"no pid file from the vsock listener: {out!r} {err}")
    return int(out)


def listener_alive(c, pid):
    return sh(c, f"kill -0 {pid}")[0] == 0


def listener_log(c):
    code, out, _ = sh(c, f"tail -c 2000 {STATE}/log")
    return out.decode(errors="replace")


# -- scenarios: strict for fleetga, recorded for qemu-ga -------------------------------------
def scenario_round_trip(g, c, chk, figures, port, pid):
    """0xFF + guest-sync-delimited, guest-ping, guest-info in one stream; exact replies."""
    control_info = c.ret("guest-info")
    code, out, err = client(c, port, sync_req(4242) + PING + b'{"execute":"guest-info"}\n')
    chk.eq(f"client exit code [client stderr: {err.strip()}]", code, 0)
    head = STRAY + synced(4242) + PONG
    chk.eq("sync-delimited and ping replies", out[:len(head)], head)
    rest = out[len(head):]
    chk.true("guest-info: one line", rest.endswith(b"\n") and rest.count(b"\n") == 1, rest[:200])
    try:
        info = json.loads(rest)["return"]
    except (ValueError, KeyError, TypeError) as e:
        chk.true("guest-info reply", False, f"{e}: {rest[:200]!r}")
        return
    chk.eq("guest-info version (vsock vs the control channel)", info.get("version"), control_info["version"])
    chk.eq("guest-info commands (vsock vs the control channel)",
           sorted(x["name"] for x in info.get("supported_commands", [])),
           sorted(x["name"] for x in control_info["supported_commands"]))
    figures["round_trip_client_ms"] = elapsed_ms(err)
    figures["version"] = info.get("version")
    chk.true("listener alive", listener_alive(c, pid))


def scenario_reconnect(g, c, chk, figures, port, pid):
    """Clients one after another on the same listener: each gets its own answers."""
    for i in range(1, 4):
        code, out, err = client(c, port, sync_req(100 + i) + PING)
        chk.eq(f"client {i} [client stderr: {err.strip()}]", (code, out), (0, STRAY + synced(100 + i) + PONG))
    chk.true("listener alive", listener_alive(c, pid))


def scenario_second_waits(g, c, chk, figures, port, pid, hold=3):
    """One client at a time: B connects (backlog 1) while A still holds its connection and
    is answered only after A leaves."""
    script = (f"printf '%s\\n' '{PING.decode().strip()}' > {STATE}/a.req\n"
              f"rm -f {STATE}/a.out\n"
              f"{CLIENT} -t 20 -H {hold} {CID} {port} < {STATE}/a.req > {STATE}/a.out 2> {STATE}/a.err &\n"
              f"i=0; while [ ! -s {STATE}/a.out ] && [ $i -lt 1000 ]; do usleep 10000; i=$((i+1)); done\n"
              f"{CLIENT} -t 20 -l {reply_lines(sync_req(7) + PING)} {CID} {port}\n"
              "rc=$?; wait; exit $rc")
    code, out, err = sh(c, script, stdin=sync_req(7) + PING, timeout=60)
    a_out = c.read_file(f"{STATE}/a.out")
    a_err = c.read_file(f"{STATE}/a.err").decode(errors="replace")
    chk.eq(f"first client's reply [its stderr: {a_err.strip()}]", a_out, PONG)
    chk.eq(f"second client's replies [its stderr: {err.strip()}]", (code, out), (0, STRAY + synced(7) + PONG))
    waited = elapsed_ms(err)
    figures["second_client_waited_ms"] = waited
    figures["first_client_ms"] = elapsed_ms(a_err)
    # A holds `hold` s after its reply; B starts right after that reply.
    chk.true(f"the second client waited for the first to leave (held {hold} s)",
             waited is not None and waited >= (hold - 1.5) * 1000, err)
    chk.true("listener alive", listener_alive(c, pid))


def scenario_leavers(g, c, chk, figures, port, pid):
    """Clients that leave before reading their replies must not end the listener: right
    after sending (lines=0), or after the first reply lines while the agent is still writing
    ~600 KB of guest-info replies (more than vsock's 256 KiB buffer: its writes then fail
    with EPIPE/ECONNRESET), or without sending anything."""
    info = b'{"execute":"guest-info"}\n'
    for i, (req, lines) in enumerate(((PING, 0), (info * 200, 0), (info * 200, 1),
                                      (sync_req(9) + PING * 50 + info * 50, 2), (b"", 0))):
        code, out, err = client(c, port, req, lines=lines)
        chk.eq(f"leaver {i}: client exit code [client stderr: {err.strip()}]", code, 0)
    time.sleep(1)  # let the agent process (and fail to answer) what the leavers sent
    chk.true("listener alive after the leavers", listener_alive(c, pid), listener_log(c))
    code, out, err = client(c, port, sync_req(4343) + PING)
    chk.eq(f"the next client's replies [client stderr: {err.strip()}]", (code, out), (0, STRAY + synced(4343) + PONG))


def scenario_ping_rate(g, c, chk, figures, port, pid, runs=3):
    """Lock-step guest-ping round trips/s over vsock loopback: the median of `runs` runs."""
    rates = []
    for _ in range(runs):
        code, out, err = sh_quiet(c, f"exec {CLIENT} -t 60 -n {PINGS_PER_RUN} {CID} {port}")
        m = re.search(rb"rate (\d+)/s", out)
        chk.true("ping run", code == 0 and m, (code, out, err))
        if not m:
            return
        rates.append(int(m.group(1)))
    rate = statistics.median(rates)
    figures["lockstep_pings_per_s"] = rate
    figures["lockstep_pings_per_s_runs"] = rates
    sys.stderr.write(f"\n[vsock] {g.agent}: lock-step guest-ping over vsock loopback in the guest: "
                     f"{rate}/s (runs {rates}, {PINGS_PER_RUN} pings each)\n")
    chk.true(f"ping rate above {PING_FLOOR}/s", rate >= PING_FLOOR, rates)


SCENARIOS = (("round trip", scenario_round_trip), ("reconnect", scenario_reconnect),
             ("second client waits", scenario_second_waits), ("leavers", scenario_leavers),
             ("ping rate", scenario_ping_rate))


# -- the guests --------------------------------------------------------------------------------
def boot(agent):
    if SKIP_REASON:
        raise unittest.SkipTest(SKIP_REASON)
    if agent != "fleetga" and not os.path.exists(os.path.join(OUT_DIR, f"initrd-{agent}.img")):
        raise unittest.SkipTest(f"no {agent} initramfs (is qemu-guest-agent installed?)")
    lock = os.path.join(BUILD_DIR, "qemu.lock") if BUILD_DIR else None
    g = vm.Guest(OUT_DIR, agent=agent, lock_path=lock)
    g.__enter__()
    REPORT.setdefault(agent, {})["boot_to_first_reply_s"] = round(g.t_first_reply, 2)
    return g


class VsockCase(unittest.TestCase):
    agent = "?"
    g = None
    pid = None

    @classmethod
    def setUpClass(cls):
        cls.g = boot(cls.agent)
        try:
            with cls.g.connect(timeout=30) as c:
                c.sync_delimited()
                cls.pid = start_listener(c, cls.agent, PORTS[cls.agent])
        except BaseException:
            cls.g.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.g:
            cls.g.stop()

    def setUp(self):
        self.assertIsNone(self.g.proc.poll(), "QEMU died" + self.g.diagnostics())
        self.c = self.g.connect(timeout=30)
        self.addCleanup(self.c.close)
        self.c.sync_delimited()

    def figures(self, name):
        return REPORT.setdefault(self.agent, {}).setdefault(name, {})


class FleetgaVsock(VsockCase):
    """fleetga on virtio-serial (control) and on vsock loopback; tests share the guest."""
    agent = "fleetga"

    def run_scenario(self, name, scenario):
        try:
            scenario(self.g, self.c, Strict(self), self.figures(name), PORTS[self.agent], self.pid)
        except AssertionError as e:
            try:
                log = listener_log(self.c)
            except Exception as le:  # noqa: BLE001 - the control channel may be the problem
                log = f"(unavailable: {le})"
            raise AssertionError(f"{e}\n--- vsock listener log ---\n{log}") from None

    def test_1_round_trip(self):
        self.run_scenario("round trip", scenario_round_trip)

    def test_2_reconnect(self):
        self.run_scenario("reconnect", scenario_reconnect)

    def test_3_second_client_waits_for_the_first(self):
        self.run_scenario("second client waits", scenario_second_waits)

    def test_4_clients_leaving_before_replies(self):
        self.run_scenario("leavers", scenario_leavers)

    def test_5_lockstep_ping_rate(self):
        self.run_scenario("ping rate", scenario_ping_rate)

    def test_6_no_connection_no_listener(self):
        """The client's failure path: a port nobody listens on."""
        code, out, err = client(self.c, PORTS[self.agent] + 7, PING)
        self.assertEqual(code, 1, err)
        self.assertIn(f"connect to {CID}:{PORTS[self.agent] + 7}: Connection reset by peer", err)


class QemuGaVsock(VsockCase):
    """Debian's qemu-ga 7.2 as both agents: the same scenarios, reported, never asserted."""
    agent = "qemu-ga"

    def test_qemu_ga_scenarios(self):
        for name, scenario in SCENARIOS:
            rec = Recorder()
            figures = self.figures(name)
            try:
                scenario(self.g, self.c, rec, figures, PORTS[self.agent], self.pid)
            except Exception as e:  # noqa: BLE001 - qemu-ga's misbehaviour is data here
                rec.diffs.append({"check": "scenario aborted", "qemu-ga": f"{type(e).__name__}: {e}"[:500]})
            REPORT.setdefault("qemu-ga 7.2 differences", {})[name] = rec.diffs or "none"


if __name__ == "__main__":
    unittest.main()
