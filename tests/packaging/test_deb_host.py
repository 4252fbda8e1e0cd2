"""The host package fleetga-host, as built by CPack from its own configuration
(packaging/fleetga-host.cpack.in): control fields, contents, the unit and its environment
file, conffiles, maintainer scripts (run against stub deb-systemd-helper/-invoke), the man
page - and that the agent package built from the same tree still holds none of it.

Environment:
  FLEETGA_CPACK_HOST_CONFIG  <build>/CPackConfig-fleetga-host.cmake (required)
  FLEETGA_CPACK_CONFIG       <build>/CPackConfig.cmake, the agent package's (required)
  FLEETGA_CPACK              the cpack program (default: cpack)
"""
import glob
import gzip
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_deb  # noqa: E402  (the agent package's expected contents)

WORK = None
DEB = None
ROOT = None
AGENT_DEB = None

UNIT = "lib/systemd/system/fleetga-attach.service"
DEFAULTS = "etc/default/fleetga-attach"
CONF = "etc/fleetga/attach.conf"
BIN = "usr/bin/fleetga-host"
MAN = "usr/share/man/man1/fleetga-host.1.gz"

EXPECTED = {
    # path: mode
    BIN: 0o755,
    BIN + "-attach": 0o755,
    UNIT: 0o644,
    DEFAULTS: 0o644,
    CONF: 0o644,
    MAN: 0o644,
    "usr/share/doc/fleetga-host/copyright": 0o644,
}
SUBCOMMANDS = ("attach", "call", "load", "record", "replay", "responder")


def cpack(config, pattern):
    out = tempfile.mkdtemp(prefix="cpack.", dir=WORK)
    p = subprocess.run([os.environ.get("FLEETGA_CPACK", "cpack"), "--config", config, "-B", out],
                       capture_output=True, text=True, timeout=600)
    if p.returncode:
        raise RuntimeError(f"cpack --config {config} failed:\n" + p.stdout + p.stderr)
    debs = glob.glob(os.path.join(out, pattern))
    if len(debs) != 1:
        raise RuntimeError(f"expected one {pattern} in {out}: {os.listdir(out)}")
    return debs[0]


def setUpModule():
    global WORK, DEB, ROOT, AGENT_DEB
    configs = {}
    for var in ("FLEETGA_CPACK_HOST_CONFIG", "FLEETGA_CPACK_CONFIG"):
        configs[var] = os.environ.get(var)
        if not configs[var] or not os.path.exists(configs[var]):
            raise RuntimeError(f"set {var} (see this file's docstring)")
    WORK = tempfile.mkdtemp(prefix="fleetga-host-deb.")
    DEB = cpack(configs["FLEETGA_CPACK_HOST_CONFIG"], "fleetga-host_*.deb")
    AGENT_DEB = cpack(configs["FLEETGA_CPACK_CONFIG"], "fleetga_*.deb")
    ROOT = os.path.join(WORK, "root")
    subprocess.run(["dpkg-deb", "-x", DEB, ROOT], check=True)


def tearDownModule():
    if WORK:
        shutil.rmtree(WORK, ignore_errors=True)


def read(path):
    with open(path) as f:
        return f.read()


def field(name, deb=None):
    return subprocess.run(["dpkg-deb", "-f", deb or DEB, name], capture_output=True, text=True,
                          check=True).stdout.strip()


def relations(name):
    return {re.split(r"[ (]", d.strip())[0] for d in field(name).split(",") if d.strip()}


def leaves(deb):
    listed = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    paths = set()
    for line in listed.splitlines():
        name = line.split(None, 5)[5].split(" -> ")[0][2:].rstrip("/")
        if name:
            paths.add(name)
    return {p for p in paths if not any(q.startswith(p + "/") for q in paths)}


def host_bin():
    return os.path.join(ROOT, BIN)


def run_host(*args, timeout=30):
    return subprocess.run([host_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def attach_args_in_defaults():
    """Every FLEETGA_ATTACH_ARGS="..." of the packaged /etc/default file, as systemd passes it
    to ExecStart=... $FLEETGA_ATTACH_ARGS: EnvironmentFile= drops the quotes, an unbraced
    $VAR is split at whitespace. (active, [args]) pairs, commented-out lines inactive."""
    out = []
    for line in read(os.path.join(ROOT, DEFAULTS)).splitlines():
        m = re.match(r"^(#?)FLEETGA_ATTACH_ARGS=(.*)$", line.strip())
        if m:
            out.append((m.group(1) == "", " ".join(shlex.split(m.group(2))).split()))
    return out


class Control(unittest.TestCase):
    def test_name_version_arch(self):
        self.assertEqual(field("Package"), "fleetga-host")
        self.assertRegex(field("Version"), r"^\d+\.\d+\.\d+$")
        self.assertEqual(field("Version"), field("Version", AGENT_DEB))
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
        self.assertEqual(field("Architecture"), arch)
        self.assertEqual(field("Section"), "admin")

    def test_depends_computed_from_the_binary(self):
        deps = relations("Depends")
        self.assertIn("libvirt0", deps)
        self.assertIn("libc6", deps)
        # Every library the binaries link comes with a Depends on its package (dpkg-shlibdeps).
        # Only fleetga-host-attach links libvirt (fleetga-host execs it for `attach`), so that
        # `call`, `load` and the rest don't load libvirt's libraries.
        def needed(path):
            out = subprocess.run(["objdump", "-p", path], capture_output=True, text=True, check=True).stdout
            return re.findall(r"NEEDED\s+(\S+)", out)
        attach_libs = needed(host_bin() + "-attach")
        self.assertTrue(any(lib.startswith("libvirt.so") for lib in attach_libs), attach_libs)
        self.assertFalse(any(lib.startswith("libvirt") for lib in needed(host_bin())), needed(host_bin()))
        libs = sorted(set(needed(host_bin()) + attach_libs))
        triplet = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        for lib in libs:
            owner = subprocess.run(["dpkg", "-S", f"*/{triplet}/{lib}"], capture_output=True, text=True)
            if owner.returncode == 0:
                pkg = owner.stdout.split(":")[0]
                self.assertIn(pkg, deps, f"{lib} comes from {pkg}, not in Depends {deps}")

    def test_installs_next_to_the_agent(self):
        # A host that is also a guest may have both: no relation to qemu-guest-agent or fleetga,
        # and no file in common.
        for rel in ("Conflicts", "Replaces", "Provides", "Breaks"):
            self.assertEqual(field(rel), "", rel)
        self.assertEqual(leaves(DEB) & leaves(AGENT_DEB), set())

    def test_conffiles(self):
        ctl = os.path.join(WORK, "control")
        subprocess.run(["dpkg-deb", "-e", DEB, ctl], check=True)
        conffiles = read(os.path.join(ctl, "conffiles")).split()
        self.assertEqual(sorted(conffiles), ["/" + DEFAULTS, "/" + CONF])
        for path in conffiles:
            self.assertTrue(os.path.isfile(os.path.join(ROOT, path.lstrip("/"))), path)


class Contents(unittest.TestCase):
    def test_exact_file_list(self):
        self.assertEqual(leaves(DEB), set(EXPECTED), "unexpected or missing files in the package")

    def test_modes(self):
        for rel, mode in EXPECTED.items():
            st = os.lstat(os.path.join(ROOT, rel))
            self.assertTrue(stat.S_ISREG(st.st_mode), rel)
            self.assertEqual(stat.S_IMODE(st.st_mode), mode, rel)

    def test_binary_runs_and_lists_every_subcommand(self):
        p = run_host("--help")
        self.assertEqual(p.returncode, 0, p.stderr)
        for sub in SUBCOMMANDS:
            self.assertRegex(p.stdout, rf"(?m)^\s+{sub}\b", sub)

    def test_agent_package_holds_none_of_it(self):
        agent = leaves(AGENT_DEB)
        self.assertEqual(agent, set(test_deb.EXPECTED), "the agent package's contents changed")
        for path in agent:
            self.assertNotIn("fleetga-host", path)
            self.assertNotIn("fleetga-attach", path)
            self.assertFalse(path.startswith("etc/fleetga"), path)
        self.assertEqual(field("Package", AGENT_DEB), "fleetga")


class Service(unittest.TestCase):
    def setUp(self):
        self.u = test_deb.unit_sections(read(os.path.join(ROOT, UNIT)))

    def test_order_and_start(self):
        unit, svc = self.u["Unit"], self.u["Service"]
        after = " ".join(unit["After"]).split()
        self.assertIn("libvirtd.service", after)
        self.assertIn("virtqemud.service", after)
        self.assertEqual(" ".join(unit["Wants"]).split(), ["libvirtd.service"])
        self.assertEqual(svc["Type"], ["simple"])
        self.assertEqual(svc["Restart"], ["on-failure"])
        self.assertEqual(self.u["Install"]["WantedBy"], ["multi-user.target"])
        self.assertIn("man:fleetga-host(1)", unit["Documentation"])

    def test_exec_start_with_the_environment_file(self):
        svc = self.u["Service"]
        self.assertEqual(svc["EnvironmentFile"], ["-/" + DEFAULTS])  # optional, and shipped
        exec_start = svc["ExecStart"]
        self.assertEqual(len(exec_start), 1)
        argv = exec_start[0].split()
        self.assertEqual(argv[:2], ["/" + BIN, "attach"])
        self.assertTrue(os.access(os.path.join(ROOT, argv[0].lstrip("/")), os.X_OK))
        self.assertEqual(argv[2:], ["$FLEETGA_ATTACH_ARGS"])
        # What systemd runs with the packaged file: libvirt mode, the system instance.
        active = [args for on, args in attach_args_in_defaults() if on]
        self.assertEqual(active, [["--libvirt", "qemu:///system"]])
        # ...and the documented switch for Proxmox VE is there, commented out.
        self.assertIn(["--sockets", "/var/run/qemu-server"],
                      [args for on, args in attach_args_in_defaults() if not on])

    def test_hardening_leaves_libvirts_socket_reachable(self):
        svc = self.u["Service"]
        families = " ".join(svc.get("RestrictAddressFamilies", [])).split()
        if families and families[0].startswith("~"):  # a deny list
            self.assertNotIn("AF_UNIX", [f.lstrip("~") for f in families])
        elif families:
            self.assertIn("AF_UNIX", families)
        self.assertNotIn("yes", svc.get("PrivateNetwork", []))
        self.assertNotIn("yes", svc.get("PrivateUsers", []))
        # Nothing makes /run/libvirt, /var/run/qemu-server or /etc/fleetga invisible. (A
        # read-only /run, ProtectSystem=strict, still lets it connect to the sockets.)
        for key in ("InaccessiblePaths", "TemporaryFileSystem"):
            for value in svc.get(key, []):
                for path in value.split():
                    path = path.lstrip("-+").split(":")[0]
                    for needed in ("/run/libvirt", "/var/run/qemu-server", "/etc/fleetga"):
                        self.assertFalse(needed == path or needed.startswith(path.rstrip("/") + "/"),
                                         f"{key}={value} hides {needed}")
        self.assertEqual(svc["RestartPreventExitStatus"], ["2"])

    def test_systemd_accepts_the_unit(self):
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze missing")
        # This machine's units (sysinit.target, ...) with a copy of ours whose ExecStart is the
        # packaged binary where it was unpacked: every directive and setting must be known.
        d = tempfile.mkdtemp(prefix="unit.", dir=WORK)
        unit = os.path.join(d, os.path.basename(UNIT))
        with open(unit, "w") as f:
            f.write(read(os.path.join(ROOT, UNIT)).replace("/" + BIN + " ", host_bin() + " "))
        p = subprocess.run([analyze, "verify", "--man=no", unit], capture_output=True, text=True,
                           timeout=60)
        # libvirtd.service/virtqemud.service are absent where libvirt is: Wants=/After= on
        # them are fine then.
        problems = [line for line in (p.stdout + p.stderr).splitlines()
                    if "fleetga-attach.service" in line and "libvirtd.service" not in line
                    and "virtqemud.service" not in line]
        self.assertEqual(problems, [], p.stdout + p.stderr)


class MaintainerScripts(unittest.TestCase):
    """The scripts run against stubs that log their arguments: deb-systemd-helper semantics."""

    def setUp(self):
        self.ctl = os.path.join(WORK, "control-scripts")
        if not os.path.isdir(self.ctl):
            subprocess.run(["dpkg-deb", "-e", DEB, self.ctl], check=True)
        self.stubs = tempfile.mkdtemp(prefix="stubs.", dir=WORK)
        self.log = os.path.join(self.stubs, "log")
        for name in ("deb-systemd-helper", "deb-systemd-invoke", "systemctl"):
            with open(os.path.join(self.stubs, name), "w") as f:
                f.write(f'#!/bin/sh\necho "{name} $*" >> "{self.log}"\n'
                        'case "$*" in *was-enabled*) exit "${WAS_ENABLED:-0}";; esac\nexit 0\n')
            os.chmod(os.path.join(self.stubs, name), 0o755)
        self.systemd = os.path.isdir("/run/systemd/system")

    def run_script(self, script, *args, was_enabled=0):
        env = {k: v for k, v in os.environ.items() if k != "DPKG_ROOT"}
        env.update(PATH=self.stubs + ":/usr/bin:/bin", WAS_ENABLED=str(was_enabled))
        if os.path.exists(self.log):
            os.unlink(self.log)
        path = os.path.join(self.ctl, script)
        self.assertTrue(os.stat(path).st_mode & stat.S_IXUSR, script)
        p = subprocess.run(["sh", "-e", path, *args], capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return read(self.log).splitlines() if os.path.exists(self.log) else []

    def helper(self, calls):
        return [c for c in calls if c.startswith("deb-systemd-helper")]

    def invoke(self, calls):
        return [c for c in calls if c.startswith("deb-systemd-invoke")]

    def test_install_enables_and_starts(self):
        calls = self.run_script("postinst", "configure", "")
        unit = "fleetga-attach.service"
        self.assertEqual(self.helper(calls), [f"deb-systemd-helper unmask {unit}",
                                              f"deb-systemd-helper --quiet was-enabled {unit}",
                                              f"deb-systemd-helper enable {unit}"])
        self.assertEqual(self.invoke(calls), [f"deb-systemd-invoke start {unit}"] if self.systemd else [])

    def test_upgrade_keeps_a_disabled_unit_disabled_and_restarts(self):
        calls = self.run_script("postinst", "configure", "0.0.9", was_enabled=1)
        unit = "fleetga-attach.service"
        self.assertIn(f"deb-systemd-helper update-state {unit}", calls)
        self.assertNotIn(f"deb-systemd-helper enable {unit}", calls)
        self.assertEqual(self.invoke(calls), [f"deb-systemd-invoke restart {unit}"] if self.systemd else [])

    def test_remove_stops_and_masks_purge_forgets(self):
        unit = "fleetga-attach.service"
        self.assertEqual(self.invoke(self.run_script("prerm", "remove")),
                         [f"deb-systemd-invoke stop {unit}"] if self.systemd else [])
        self.assertEqual(self.invoke(self.run_script("prerm", "upgrade", "0.2.0")), [])
        self.assertEqual(self.helper(self.run_script("postrm", "remove")), [f"deb-systemd-helper mask {unit}"])
        self.assertEqual(self.helper(self.run_script("postrm", "purge")),
                         [f"deb-systemd-helper purge {unit}", f"deb-systemd-helper unmask {unit}"])
        self.assertEqual(self.helper(self.run_script("postrm", "upgrade", "0.2.0")), [])


class Docs(unittest.TestCase):
    def man_text(self):
        with gzip.open(os.path.join(ROOT, MAN), "rt") as f:
            return f.read()

    def test_man_page_renders_without_warnings(self):
        src = os.path.join(WORK, "fleetga-host.1")
        with open(src, "w") as f:
            f.write(self.man_text())
        self.assertTrue(self.man_text().startswith(".TH FLEETGA\\-HOST 1 "))
        ran = False
        if shutil.which("groff"):
            p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", src], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual((p.returncode, p.stderr), (0, ""))
            ran = True
        if shutil.which("man"):
            p = subprocess.run(["man", "--warnings", "-l", os.path.join(ROOT, MAN)], capture_output=True,
                               text=True, timeout=60, env=dict(os.environ, MANWIDTH="80", MANPAGER="cat",
                                                                 PAGER="cat"))
            self.assertEqual((p.returncode, p.stderr), (0, ""))
            self.assertIn("fleetga-host attach", p.stdout.replace("\u2010", "-"))
            ran = True
        if not ran:
            self.skipTest("neither groff nor man installed")

    def test_every_subcommand_and_option_documented(self):
        man = self.man_text().replace("\\-", "-")
        for sub in SUBCOMMANDS:
            self.assertRegex(man, rf"(?m)^\.SH {sub.upper()}$", f"no section for {sub}")
            p = run_host(sub, "--help")
            text = p.stdout + p.stderr
            self.assertIn(f"fleetga-host {sub}", text, f"{sub} --help: {p.returncode} {text!r}")
            for opt in sorted(set(re.findall(r"--([a-z][a-z-]+)", text))):
                self.assertIn("--" + opt, man, f"{sub} --{opt} is in --help but not in the man page")
        p = run_host("attach", "--help")
        attach_opts = set(re.findall(r"--([a-z][a-z-]+)", p.stdout + p.stderr))
        for opt in ("libvirt", "sockets", "config", "host-level", "timeout", "concurrency", "rescan",
                    "once", "explain", "stats", "log-level"):
            self.assertIn(opt, attach_opts, f"attach --help does not list --{opt}")
        for word in ("confirmed", "mismatch", "unsupported", "skipped", "not_connected", "busy",
                     "timeout", "gone", "garbage", "failed", "SIGUSR1", "SIGTERM",
                     "/etc/fleetga/attach.conf", "/etc/default/fleetga-attach", "since_event_ms"):
            self.assertIn(word, man)


class PackagedConfig(unittest.TestCase):
    """The shipped config and environment file are accepted by the shipped binary."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sockets.", dir=WORK)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(os.path.join(self.dir, "test-vm.qga"))
        self.sock.listen(1)

    def tearDown(self):
        self.sock.close()

    def test_shipped_config_explains_a_domain(self):
        p = run_host("attach", "--sockets", self.dir, "--host-level", "7.2.0",
                     "--config", os.path.join(ROOT, CONF), "--explain", "test-vm")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("guest-suspend-ram", p.stdout)

    def test_every_documented_args_line_is_accepted(self):
        # Exit 2 is a usage or config error; 0, 1 or 3 (no libvirt here, no
        # /var/run/qemu-server) mean the options were taken.
        for _, args in attach_args_in_defaults():
            p = run_host("attach", *args, "--config", os.path.join(ROOT, CONF), "--explain", "test-vm")
            self.assertNotEqual(p.returncode, 2, f"{args}: {p.stderr}")


if __name__ == "__main__":
    unittest.main()
