"""guest-set-time and guest-set-user-password against the built agent, and byte for byte
against Debian's qemu-ga 7.2.

The built agent acts on the system (acts_on_system): only requests that FAIL VALIDATION are
ever sent here, never a time or a password that would be applied. Belt and braces: when this
runs as root both agents run as `nobody` (setpriv), so even a request that slipped through
could neither set the clock nor change a password; and TZ=UTC pins the local year that
guest-set-time checks (every time below is outside [1970, 2070) in any zone anyway)."""
import json
import os
import shutil
import stat
import tempfile
import unittest

from qga import Agent, FLEETGA, QEMU_GA

# (request, expected desc). Every one is refused before anything is touched.
SET_TIME = [
    ('{"execute":"guest-set-time","arguments":{"time":4000000000000000000}}', "Invalid time"),
    ('{"execute":"guest-set-time","arguments":{"time":-172800000000000}}', "Invalid time"),
    ('{"execute":"guest-set-time","arguments":{"time":3155932800000000000}}', "Invalid time"),
    ('{"execute":"guest-set-time","arguments":{"time":9223372036854775807}}', "Invalid time"),
    ('{"execute":"guest-set-time","arguments":{"time":-9223372036854775808}}', "Invalid time"),
    ('{"execute":"guest-set-time","arguments":{"time":9223372036854775808}}',
     "Invalid parameter type for 'time', expected: integer"),
    ('{"execute":"guest-set-time","arguments":{"time":"x"}}',
     "Invalid parameter type for 'time', expected: integer"),
    ('{"execute":"guest-set-time","arguments":{"time":1.5}}',
     "Invalid parameter type for 'time', expected: integer"),
    ('{"execute":"guest-set-time","arguments":{"time":null}}',
     "Invalid parameter type for 'time', expected: integer"),
    ('{"execute":"guest-set-time","arguments":{"tim":1}}', "Parameter 'tim' is unexpected"),
]
SET_PASSWORD = [
    ('{"execute":"guest-set-user-password"}', "Parameter 'username' is missing"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"root","password":"!!!","crypted":false}}',
     "Base64 data contains invalid characters"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"root","password":"Cg==","crypted":false}}',
     "forbidden characters in raw password"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"root","password":"eAp5","crypted":true}}',
     "forbidden characters in raw password"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"a:b","password":"eA==","crypted":false}}',
     "forbidden characters in username"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"a\\nb","password":"eA==","crypted":true}}',
     "forbidden characters in username"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"a:b","password":"!","crypted":true}}',
     "Base64 data contains invalid characters"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"a:b","password":"Cg==","crypted":true}}',
     "forbidden characters in raw password"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA=="}}',
     "Parameter 'crypted' is missing"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"root","crypted":true}}',
     "Parameter 'password' is missing"),
    ('{"execute":"guest-set-user-password","arguments":{"password":"eA==","crypted":true}}',
     "Parameter 'username' is missing"),
    ('{"execute":"guest-set-user-password","arguments":{"username":1,"password":"eA==","crypted":true}}',
     "Invalid parameter type for 'username', expected: string"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA==","crypted":"yes"}}',
     "Invalid parameter type for 'crypted', expected: boolean"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA==","crypted":true,"x":1}}',
     "Parameter 'x' is unexpected"),
    ('{"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA\\u0000","crypted":true}}',
     "Base64 data contains invalid characters"),
]
CASES = SET_TIME + SET_PASSWORD


def _unprivileged_wrapper(binary, tmp):
    """A script that runs `binary` as nobody when we are root (else the binary itself)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return binary
    path = os.path.join(tmp, "as-nobody")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup --clear-groups '
                f'"{os.path.abspath(binary) if os.path.exists(binary) else binary}" "$@"\n')
    os.chmod(path, 0o755)
    return path


def run_cases(binary):
    tmp = tempfile.mkdtemp(prefix="fleetga-e2e-clock.")
    os.chmod(tmp, 0o755)
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    os.chmod(state, 0o777 | stat.S_ISVTX)
    env = dict(os.environ, TZ="UTC")
    try:
        with Agent(_unprivileged_wrapper(binary, tmp), statedir=state, env=env) as a:
            c = a.connect()
            out = []
            for req, _ in CASES:
                c.send(req + "\n")
                out.append(c.line())
            info = c.cmd("guest-info")
            c.close()
            return out, info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class AgainstFleetga(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out, cls.info = run_cases(FLEETGA)

    def test_validation_texts(self):
        for (req, desc), line in zip(CASES, self.out):
            with self.subTest(req=req):
                self.assertEqual(json.loads(line), {"error": {"class": "GenericError", "desc": desc}})

    def test_listed_and_enabled(self):
        cmds = {e["name"]: e for e in self.info["return"]["supported_commands"]}
        for name in ("guest-set-time", "guest-set-user-password"):
            self.assertTrue(cmds[name]["enabled"], name)
            self.assertTrue(cmds[name]["success-response"], name)


@unittest.skipUnless(os.path.exists(QEMU_GA), "Debian's qemu-ga is not installed")
class AgainstQemuGa(unittest.TestCase):
    def test_same_bytes(self):
        ref, _ = run_cases(QEMU_GA)
        ours, _ = run_cases(FLEETGA)
        for (req, _), a, b in zip(CASES, ref, ours):
            with self.subTest(req=req):
                self.assertEqual(b, a)


if __name__ == "__main__":
    unittest.main()
