"""upstream tests/unit/test-qga.c, ported (wire spec §6.2): the cases that concern the
commands fleetga implements so far. Run against fleetga by default; QGA_E2E_BIN=/usr/sbin/qemu-ga
runs the same cases against Debian's qemu-ga (version checks then use its version)."""
import base64
import os
import random
import subprocess
import unittest

from qga import Agent, FLEETGA

BIN = os.environ.get("QGA_E2E_BIN", FLEETGA)
EXPECTED_VERSION = os.environ.get("FLEETGA_QEMU_VERSION", "10.2.0")
DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def no_error(test, rsp):
    test.assertNotIn("error", rsp, rsp)


def expect_error(test, rsp, cls):
    test.assertIn("error", rsp, rsp)
    test.assertEqual(rsp["error"]["class"], cls)
    test.assertIsInstance(rsp["error"]["desc"], str)
    test.assertNotIn("return", rsp)


class SharedFixture(unittest.TestCase):
    """Cases that share one agent and one connection, in registration order."""

    @classmethod
    def setUpClass(cls):
        cls.agent = Agent(BIN).__enter__()
        cls.c = cls.agent.connect()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        status, err = cls.agent.stop()
        # test-qga.c's teardown: exit status 0 and only qga.state left besides foo and sock.
        left = sorted(set(os.listdir(cls.agent.dir)) - {"foo", "sock"})
        cls.agent.__exit__(None, None, None)
        assert status == 0, f"agent exit status {status}: {err}"
        assert left == ["qga.state"], f"state directory holds {left}"

    def test_01_sync_delimited(self):
        r = random.getrandbits(32)
        self.c.send(b"\xff")
        self.c.send(f'{{"execute": "guest-sync-delimited", "arguments": {{"id": {r}}}}}\n')
        # read until the first 0xFF: the reply to our own 0xFF must not contain one
        while b"\xff" not in self.c.buf:
            self.c.buf += self.c.s.recv(4096)
        self.c.buf = self.c.buf[self.c.buf.index(b"\xff") + 1:]
        import json
        rsp = json.loads(self.c.line())
        no_error(self, rsp)
        self.assertEqual(rsp["return"], r)

    def test_02_sync(self):
        r = random.getrandbits(32)
        rsp = self.c.cmd("guest-sync", {"id": r})
        no_error(self, rsp)
        self.assertEqual(rsp["return"], r)

    def test_03_ping(self):
        no_error(self, self.c.cmd("guest-ping"))

    def test_04_info(self):
        rsp = self.c.cmd("guest-info")
        no_error(self, rsp)
        if BIN == FLEETGA:
            self.assertEqual(rsp["return"]["version"], EXPECTED_VERSION)
        else:
            self.assertIsInstance(rsp["return"]["version"], str)

    def test_05_network_get_interfaces(self):
        rsp = self.c.cmd("guest-network-get-interfaces")
        no_error(self, rsp)
        self.assertIn("name", rsp["return"][0])

    @unittest.skipUnless(os.path.exists("/sys/devices/system/cpu/cpu0"), "no cpu0 in sysfs")
    def test_06_get_vcpus(self):
        rsp = self.c.cmd("guest-get-vcpus")
        no_error(self, rsp)
        self.assertIn("online", rsp["return"][0])
        self.assertIn("logical-id", rsp["return"][0])

    def test_07_get_fsinfo(self):
        rsp = self.c.cmd("guest-get-fsinfo")
        no_error(self, rsp)
        if rsp["return"]:
            for k in ("name", "mountpoint", "type", "disk"):
                self.assertIn(k, rsp["return"][0])

    def test_08_get_load(self):
        rsp = self.c.cmd("guest-get-load")
        if BIN != FLEETGA and "error" in rsp:
            self.skipTest("qemu-ga 7.2 has no guest-get-load")
        no_error(self, rsp)
        for k in ("load1m", "load5m", "load15m"):
            self.assertIn(k, rsp["return"])

    def test_09_get_memory_block_info(self):
        rsp = self.c.cmd("guest-get-memory-block-info")
        if "error" not in rsp:  # upstream tolerates an error (no memory hotplug in sysfs)
            self.assertGreater(rsp["return"]["size"], 0)

    def test_10_get_memory_blocks(self):
        rsp = self.c.cmd("guest-get-memory-blocks")
        if "error" not in rsp and rsp["return"]:
            self.assertIn("phys-index", rsp["return"][0])
            self.assertIn("online", rsp["return"][0])

    def test_11_file_ops(self):
        c = self.c
        data = b"Hello World!\n\0"
        b64 = base64.b64encode(data).decode()
        rsp = c.cmd("guest-file-open", {"path": "foo", "mode": "w+"})
        no_error(self, rsp)
        h = rsp["return"]
        self.assertGreater(h, 0)
        rsp = c.cmd("guest-file-write", {"handle": h, "buf-b64": b64})
        no_error(self, rsp)
        self.assertEqual(rsp["return"], {"count": 14, "eof": False})
        no_error(self, c.cmd("guest-file-flush", {"handle": h}))
        no_error(self, c.cmd("guest-file-close", {"handle": h}))
        with open(os.path.join(self.agent.dir, "foo"), "rb") as f:
            self.assertEqual(f.read(), data)
        rsp = c.cmd("guest-file-open", {"path": "foo", "mode": "r"})
        no_error(self, rsp)
        h = rsp["return"]
        rsp = c.cmd("guest-file-read", {"handle": h})
        no_error(self, rsp)
        self.assertEqual(rsp["return"], {"count": 14, "eof": True, "buf-b64": b64})
        rsp = c.cmd("guest-file-read", {"handle": h})
        self.assertEqual(rsp["return"], {"count": 0, "eof": True, "buf-b64": ""})
        rsp = c.cmd("guest-file-seek", {"handle": h, "offset": 6, "whence": "set"})
        no_error(self, rsp)
        self.assertEqual(rsp["return"], {"position": 6, "eof": False})
        rsp = c.cmd("guest-file-read", {"handle": h})
        self.assertEqual(rsp["return"]["count"], 8)
        self.assertTrue(rsp["return"]["eof"])
        self.assertEqual(base64.b64decode(rsp["return"]["buf-b64"]), data[6:])
        no_error(self, c.cmd("guest-file-close", {"handle": h}))

    def test_12_file_write_read(self):
        c = self.c
        data = b"Hello World!\n\0"
        b64 = base64.b64encode(data).decode()
        h = c.cmd("guest-file-open", {"path": "foo", "mode": "w+"})["return"]
        self.assertEqual(c.cmd("guest-file-write", {"handle": h, "buf-b64": b64})["return"],
                         {"count": 14, "eof": False})
        # implicit flush on write -> read, position at the end
        self.assertEqual(c.cmd("guest-file-read", {"handle": h})["return"],
                         {"count": 0, "eof": True, "buf-b64": ""})
        self.assertEqual(c.cmd("guest-file-seek", {"handle": h, "offset": 0, "whence": "set"})["return"],
                         {"position": 0, "eof": False})
        self.assertEqual(c.cmd("guest-file-read", {"handle": h})["return"],
                         {"count": 14, "eof": True, "buf-b64": b64})
        no_error(self, c.cmd("guest-file-close", {"handle": h}))

    def test_13_get_time(self):
        rsp = self.c.cmd("guest-get-time")
        no_error(self, rsp)
        self.assertGreater(rsp["return"], 0)

    def test_14_id(self):
        rsp = self.c.cmd("guest-ping", id=1)
        no_error(self, rsp)
        self.assertEqual(rsp["id"], 1)

    def test_15_invalid_oob(self):
        import json
        self.c.send('{"exec-oob": "guest-ping"}\n')
        rsp = json.loads(self.c.line())
        expect_error(self, rsp, "GenericError")

    def test_16_invalid_cmd(self):
        rsp = self.c.cmd("guest-invalid-cmd")
        expect_error(self, rsp, "CommandNotFound")
        self.assertTrue(rsp["error"]["desc"])

    def test_17_invalid_args(self):
        rsp = self.c.cmd("guest-ping", {"foo": 42})
        expect_error(self, rsp, "GenericError")
        self.assertEqual(rsp["error"]["desc"], "Parameter 'foo' is unexpected")

    def test_18_fsfreeze_status(self):
        rsp = self.c.cmd("guest-fsfreeze-status")
        no_error(self, rsp)
        self.assertEqual(rsp["return"], "thawed")

    def test_27_get_host_name(self):
        rsp = self.c.cmd("guest-get-host-name")
        no_error(self, rsp)
        self.assertIn("host-name", rsp["return"])

    def test_29_get_users(self):
        rsp = self.c.cmd("guest-get-users")
        no_error(self, rsp)
        self.assertIsInstance(rsp["return"], list)

    def test_28_get_timezone(self):
        rsp = self.c.cmd("guest-get-timezone")
        no_error(self, rsp)
        self.assertIn("offset", rsp["return"])


class OwnAgent(unittest.TestCase):
    def test_19_blockedrpcs(self):
        with Agent(BIN, ["-b", "guest-ping,guest-get-time"]) as a:
            c = a.connect()
            for cmd in ("guest-ping", "guest-get-time"):
                rsp = c.cmd(cmd)
                expect_error(self, rsp, "CommandNotFound")
                self.assertIn("has been disabled", rsp["error"]["desc"])
            no_error(self, c.cmd("guest-get-fsinfo"))
            c.close()
            self.assertEqual(a.stop()[0], 0)

    def test_20_allowedrpcs(self):
        if BIN != FLEETGA:
            self.skipTest("qemu-ga 7.2 has no -a")
        with Agent(BIN, ["-a", "guest-ping,guest-get-time"]) as a:
            c = a.connect()
            no_error(self, c.cmd("guest-ping"))
            no_error(self, c.cmd("guest-get-time"))
            rsp = c.cmd("guest-get-fsinfo")
            expect_error(self, rsp, "CommandNotFound")
            self.assertIn("has been disabled", rsp["error"]["desc"])
            c.close()
            self.assertEqual(a.stop()[0], 0)

    def test_26_get_osinfo(self):
        env = dict(os.environ, QGA_OS_RELEASE=os.path.join(DATA, "test-qga-os-release"))
        with Agent(BIN, env=env) as a:
            c = a.connect()
            rsp = c.cmd("guest-get-osinfo")
            no_error(self, rsp)
            r = rsp["return"]
            self.assertEqual(r["id"], "qemu-ga-test")
            self.assertEqual(r["name"], "QEMU-GA")
            self.assertEqual(r["pretty-name"], "QEMU Guest Agent test")
            self.assertEqual(r["version"], "Test 1")
            self.assertEqual(r["version-id"], "1")
            self.assertEqual(r["variant"], "Unit test \"'$`\\ and \\\\ etc.")
            self.assertEqual(r["variant-id"], "unit-test")
            c.close()
            self.assertEqual(a.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()
