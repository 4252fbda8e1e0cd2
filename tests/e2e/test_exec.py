"""guest-exec / guest-exec-status end to end (wire spec §3.2, §6.2 cases 22-25): the upstream
test-qga.c exec cases ported exactly, exact texts, truncation over the wire, many children
busy-polled, no zombies, no fd leaks, a channel that stays responsive, children that outlive
the agent, and a byte-for-byte comparison with Debian's qemu-ga where the replies are stable.

QGA_E2E_BIN=/usr/sbin/qemu-ga runs the upstream cases against qemu-ga (7.2 has no
capture-output modes, so the separated/merged cases are skipped there)."""
import base64
import json
import os
import time
import unittest

from qga import Agent, FLEETGA, QEMU_GA

BIN = os.environ.get("QGA_E2E_BIN", FLEETGA)
IS_FLEETGA = BIN == FLEETGA
SCRIPT = "for i in $(seq 4); do if (( $i % 2 )); then echo stdout; else echo stderr 1>&2; fi; done;"
LQ, RQ = "\u201c", "\u201d"


def wait_exited(test, c, pid, limit=5.0):
    """test-qga.c's loop: guest-exec-status until exited (it gives up after 5 s)."""
    end = time.monotonic() + limit
    while True:
        rsp = c.cmd("guest-exec-status", {"pid": pid})
        test.assertNotIn("error", rsp, rsp)
        if rsp["return"]["exited"]:
            return rsp["return"]
        test.assertLess(time.monotonic(), end, "child did not exit in time")
        time.sleep(0.01)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class UpstreamCases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agent = Agent(BIN).__enter__()
        cls.c = cls.agent.connect()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        status, err = cls.agent.stop()
        cls.agent.__exit__(None, None, None)
        assert status == 0, f"agent exit status {status}: {err}"

    def test_22_guest_exec(self):
        rsp = self.c.cmd("guest-exec", {"path": "echo", "arg": ["-n", "\" test_str \""], "capture-output": True})
        self.assertNotIn("error", rsp, rsp)
        pid = rsp["return"]["pid"]
        self.assertGreater(pid, 0)
        st = wait_exited(self, self.c, pid)
        self.assertEqual(st["exitcode"], 0)
        out = base64.b64decode(st["out-data"])
        self.assertEqual(len(out), 12)
        self.assertEqual(out, b"\" test_str \"")

    @unittest.skipUnless(IS_FLEETGA, "qemu-ga 7.2 has no capture-output modes")
    def test_23_guest_exec_separated(self):
        rsp = self.c.cmd("guest-exec", {"path": "bash", "arg": ["-c", SCRIPT], "capture-output": "separated"})
        self.assertNotIn("error", rsp, rsp)
        st = wait_exited(self, self.c, rsp["return"]["pid"])
        self.assertEqual(st["exitcode"], 0)
        self.assertEqual(base64.b64decode(st["out-data"]), b"stdout\nstdout\n")
        self.assertEqual(base64.b64decode(st["err-data"]), b"stderr\nstderr\n")

    @unittest.skipUnless(IS_FLEETGA, "qemu-ga 7.2 has no capture-output modes")
    def test_24_guest_exec_merged(self):
        rsp = self.c.cmd("guest-exec", {"path": "bash", "arg": ["-c", SCRIPT], "capture-output": "merged"})
        self.assertNotIn("error", rsp, rsp)
        st = wait_exited(self, self.c, rsp["return"]["pid"])
        self.assertEqual(st["exitcode"], 0)
        self.assertEqual(base64.b64decode(st["out-data"]), b"stdout\nstderr\nstdout\nstderr\n")
        self.assertNotIn("err-data", st)

    def test_25_guest_exec_invalid(self):
        rsp = self.c.cmd("guest-exec", {"path": "/bin/invalid-cmd42"})
        self.assertEqual(rsp["error"]["class"], "GenericError")
        self.assertTrue(rsp["error"]["desc"])
        self.assertNotIn("return", rsp)
        rsp = self.c.cmd("guest-exec-status", {"pid": 0})
        self.assertEqual(rsp["error"]["class"], "GenericError")
        self.assertTrue(rsp["error"]["desc"])
        self.assertNotIn("return", rsp)


@unittest.skipUnless(IS_FLEETGA, "fleetga behaviour")
class Fleetga(unittest.TestCase):
    def setUp(self):
        self.agent = Agent().__enter__()
        self.c = self.agent.connect()

    def tearDown(self):
        self.c.close()
        status, err = self.agent.stop()
        self.agent.__exit__(None, None, None)
        self.assertEqual(status, 0, err)

    def run_to_end(self, args, limit=60):
        rsp = self.c.cmd("guest-exec", args)
        self.assertIn("return", rsp, rsp)
        return rsp["return"]["pid"], wait_exited(self, self.c, rsp["return"]["pid"], limit)

    def test_upstream_error_texts(self):
        self.assertEqual(self.c.cmd("guest-exec", {"path": "/nonexistent"}),
                         {"error": {"class": "GenericError",
                                    "desc": f"Failed to execute child process {LQ}/nonexistent{RQ} (No such file or directory)"}})
        self.assertEqual(self.c.cmd("guest-exec", {"path": "true", "env": ["PATH=/nonexistent"]})["error"]["desc"],
                         f"Failed to execute child process {LQ}true{RQ} (No such file or directory)")
        # The reply is pure ASCII with upper-case \u escapes, like QEMU's writer.
        self.c.send('{"execute": "guest-exec", "arguments": {"path": "/nonexistent"}}\n')
        self.assertIn(b"\\u201C/nonexistent\\u201D", self.c.line())
        self.assertEqual(self.c.cmd("guest-exec-status", {"pid": 0}),
                         {"error": {"class": "GenericError", "desc": "PID ld does not exist"}})
        self.assertEqual(self.c.cmd("guest-exec", {"path": "true", "capture-output": "bogus"})["error"]["desc"],
                         "Parameter 'capture-output' does not accept value 'bogus'")
        self.assertEqual(self.c.cmd("guest-exec", {"path": "true", "capture-output": None})["error"]["desc"],
                         "Invalid parameter type for 'capture-output', expected: GuestExecCaptureOutput")

    def test_record_gone_after_read_and_no_zombie(self):
        pid, st = self.run_to_end({"path": "sh", "arg": ["-c", "exit 3"]})
        self.assertEqual(st, {"exitcode": 3, "exited": True})
        self.assertFalse(os.path.exists(f"/proc/{pid}"), "child left as a zombie (or still running)")
        self.assertEqual(self.c.cmd("guest-exec-status", {"pid": pid})["error"]["desc"], "PID ld does not exist")
        pid, st = self.run_to_end({"path": "sh", "arg": ["-c", "kill -9 $$"], "capture-output": True})
        self.assertEqual(st, {"signal": 9, "exited": True})
        # Reaped as soon as it died, even before anyone asks (pidfd on the event loop).
        rsp = self.c.cmd("guest-exec", {"path": "true"})
        pid = rsp["return"]["pid"]
        end = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < end:
            time.sleep(0.01)
        self.assertFalse(os.path.exists(f"/proc/{pid}"))
        self.assertEqual(self.c.cmd("guest-exec-status", {"pid": pid}), {"return": {"exitcode": 0, "exited": True}})

    def test_input_data_and_truncation_over_the_wire(self):
        data = os.urandom(300000)
        _, st = self.run_to_end({"path": "cat", "input-data": base64.b64encode(data).decode(), "capture-output": True})
        self.assertEqual(base64.b64decode(st["out-data"]), data)
        self.assertIs(st["out-truncated"], False)
        _, st = self.run_to_end({"path": "head", "arg": ["-c", "17000000", "/dev/zero"], "capture-output": True})
        self.assertEqual(len(base64.b64decode(st["out-data"])), 16777216)
        self.assertIs(st["out-truncated"], True)

    def test_channel_stays_responsive_while_children_write(self):
        rsp = self.c.cmd("guest-exec", {"path": "head", "arg": ["-c", "60000000", "/dev/zero"], "capture-output": True})
        pid = rsp["return"]["pid"]
        t0 = time.monotonic()
        for _ in range(20):
            self.assertEqual(self.c.cmd("guest-ping"), {"return": {}})
        self.assertLess(time.monotonic() - t0, 2.0)
        st = wait_exited(self, self.c, pid, 60)
        self.assertIs(st["out-truncated"], True)

    def test_200_concurrent_busy_polled(self):
        # after one exec: descriptors opened once (syslog, /dev/null) are not a leak
        self.run_to_end({"path": "true"})
        base_fds = fd_count(self.agent.proc.pid)
        pids = {}
        for i in range(200):
            rsp = self.c.cmd("guest-exec", {"path": "sh", "arg": ["-c", f"echo {i}; echo e{i} >&2"],
                                            "capture-output": True})
            self.assertIn("return", rsp, rsp)
            pids[rsp["return"]["pid"]] = i
        self.assertEqual(len(pids), 200)
        pending = dict(pids)
        end = time.monotonic() + 60
        polls = 0
        while pending:
            self.assertLess(time.monotonic(), end)
            for pid in list(pending):
                polls += 1
                st = self.c.cmd("guest-exec-status", {"pid": pid})["return"]
                if st["exited"]:
                    i = pending.pop(pid)
                    self.assertEqual(st, {"exitcode": 0, "err-data": base64.b64encode(f"e{i}\n".encode()).decode(),
                                          "out-data": base64.b64encode(f"{i}\n".encode()).decode(),
                                          "err-truncated": False, "out-truncated": False, "exited": True})
        for pid in pids:
            self.assertFalse(os.path.exists(f"/proc/{pid}"), f"zombie {pid}")
            self.assertEqual(self.c.cmd("guest-exec-status", {"pid": pid})["error"]["desc"], "PID ld does not exist")
        self.assertEqual(fd_count(self.agent.proc.pid), base_fds, "fds leaked")

    def test_children_do_not_inherit_the_agents_oom_protection(self):
        """Issue 16, defect 7: packaging/fleetga.service runs the agent with OOMScoreAdjust=-500
        and guest-exec's children inherited it; they get the default score (0) back, as under
        qemu-ga's unit, which sets none. The agent keeps its own. Lowering a score below 0
        needs CAP_SYS_RESOURCE: skipped where this test runs without it (tests/vm runs the
        same check as root in the QEMU guest)."""
        path = f"/proc/{self.agent.proc.pid}/oom_score_adj"
        try:
            with open(path, "w") as f:
                f.write("-500")
        except PermissionError:
            self.skipTest("can't lower the agent's oom_score_adj here (no CAP_SYS_RESOURCE)")
        for capture in (True, "merged"):
            _, st = self.run_to_end({"path": "cat", "arg": ["/proc/self/oom_score_adj"], "capture-output": capture})
            self.assertEqual(base64.b64decode(st["out-data"]), b"0\n", st)
        _, st = self.run_to_end({"path": "sh", "arg": ["-c", "cat /proc/$PPID/oom_score_adj"], "capture-output": True})
        self.assertEqual(base64.b64decode(st["out-data"]), b"-500\n", st)
        with open(path) as f:
            self.assertEqual(f.read(), "-500\n")

    def test_children_outlive_the_agent(self):
        rsp = self.c.cmd("guest-exec", {"path": "sleep", "arg": ["1"], "capture-output": True})
        pid = rsp["return"]["pid"]
        self.assertEqual(self.c.cmd("guest-exec-status", {"pid": pid}), {"return": {"exited": False}})
        self.c.close()
        status, err = self.agent.stop()
        self.assertEqual(status, 0, err)
        self.assertTrue(os.path.exists(f"/proc/{pid}"), "the agent killed its child")
        # reconnect a fresh agent for tearDown
        self.agent.__exit__(None, None, None)
        self.agent = Agent().__enter__()
        self.c = self.agent.connect()


@unittest.skipUnless(IS_FLEETGA and os.access(QEMU_GA, os.X_OK), "needs Debian's qemu-ga")
class Differential(unittest.TestCase):
    """Same requests to qemu-ga 7.2 and fleetga: byte-identical status replies."""

    CASES = [
        {"path": "echo", "arg": ["-n", "\" test_str \""], "capture-output": True},
        {"path": "sh", "arg": ["-c", "echo out; echo err >&2; exit 3"], "capture-output": True},
        {"path": "sh", "arg": ["-c", "kill -9 $$"], "capture-output": True},
        {"path": "sh", "arg": ["-c", "echo out; exit 0"]},
        {"path": "sh", "arg": ["-c", "exit 0"], "capture-output": True},
        {"path": "cat", "input-data": "aGVsbG8=", "capture-output": True},
        {"path": "env", "env": ["A=1", "B=2"], "capture-output": True},
        {"path": "printf", "arg": ["\\001\\377\\342\\200\\234"], "capture-output": True},
    ]

    def replies(self, binary):
        out = []
        with Agent(binary) as a:
            c = a.connect()
            for args in self.CASES:
                c.send(json.dumps({"execute": "guest-exec", "arguments": args}) + "\n")
                pid = json.loads(c.line())["return"]["pid"]
                while True:
                    c.send(json.dumps({"execute": "guest-exec-status", "arguments": {"pid": pid}}) + "\n")
                    line = c.line()
                    if b'"exited": false' not in line:
                        break
                    time.sleep(0.01)
                out.append(line)
            c.send('{"execute": "guest-exec", "arguments": {"path": "true", "input-data": "@@"}}\n')
            out.append(c.line())
            c.close()
            a.stop()
        return out

    def test_status_replies_byte_for_byte(self):
        ours, theirs = self.replies(FLEETGA), self.replies(QEMU_GA)
        self.assertEqual(len(ours), len(theirs))
        for args, a, b in zip(self.CASES + ["bad base64"], ours, theirs):
            self.assertEqual(a, b, args)


if __name__ == "__main__":
    unittest.main()
