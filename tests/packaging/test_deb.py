"""The Debian package, as built by CPack: control fields, contents, the files it installs
(unit, udev rule, hook runner, config sample, man page) and a QEMU guest booted from the
binary the package holds - so the packaged files are the ones tested.

Environment:
  FLEETGA_CPACK_CONFIG  <build>/CPackConfig.cmake (required)
  FLEETGA_CPACK         the cpack program (default: cpack)
  FLEETGA_VM_BUILD_DIR  kernel cache of tests/vm (optional; default a temp dir)
  FLEETGA_VM_REQUIRED=1 fail instead of skipping the guest boot when QEMU/kernel are missing
"""
import glob
import gzip
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
import vm  # noqa: E402

WORK = None
DEB = None
ROOT = None

EXPECTED = {
    # path: (kind, target-or-mode)
    "etc/qemu/fsfreeze-hook": ("file", 0o755),
    "etc/qemu/fsfreeze-hook.d": ("dir", None),
    "lib/systemd/system/fleetga.service": ("file", 0o644),
    "lib/systemd/system/qemu-guest-agent.service": ("link", "fleetga.service"),
    "lib/udev/rules.d/60-fleetga.rules": ("file", 0o644),
    "usr/sbin/fleetga": ("file", 0o755),
    "usr/sbin/qemu-ga": ("link", "fleetga"),
    "usr/share/doc/fleetga/copyright": ("file", 0o644),
    "usr/share/doc/fleetga/examples/qemu-ga.conf": ("file", 0o644),
    "usr/share/doc/fleetga/examples/fsfreeze-hook.d.sample": ("file", 0o644),
    "usr/share/man/man8/fleetga.8.gz": ("file", 0o644),
    "usr/share/man/man8/qemu-ga.8.gz": ("link", "fleetga.8.gz"),
}


def setUpModule():
    global WORK, DEB, ROOT
    cfg = os.environ.get("FLEETGA_CPACK_CONFIG")
    if not cfg or not os.path.exists(cfg):
        raise RuntimeError("set FLEETGA_CPACK_CONFIG to <build>/CPackConfig.cmake")
    WORK = tempfile.mkdtemp(prefix="fleetga-deb.")
    p = subprocess.run([os.environ.get("FLEETGA_CPACK", "cpack"), "--config", cfg, "-B", WORK],
                       capture_output=True, text=True, timeout=300)
    if p.returncode:
        raise RuntimeError("cpack failed:\n" + p.stdout + p.stderr)
    debs = glob.glob(os.path.join(WORK, "fleetga_*.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"expected one fleetga_*.deb in {WORK}: {os.listdir(WORK)}")
    DEB = debs[0]
    ROOT = os.path.join(WORK, "root")
    subprocess.run(["dpkg-deb", "-x", DEB, ROOT], check=True)


def tearDownModule():
    if WORK:
        shutil.rmtree(WORK, ignore_errors=True)


def read(path):
    with open(path) as f:
        return f.read()


def field(name):
    return subprocess.run(["dpkg-deb", "-f", DEB, name], capture_output=True, text=True,
                          check=True).stdout.strip()


def relations(name):
    return {re.split(r"[ (]", d.strip())[0] for d in field(name).split(",") if d.strip()}


class Control(unittest.TestCase):
    def test_name_version_arch(self):
        self.assertEqual(field("Package"), "fleetga")
        self.assertRegex(field("Version"), r"^\d+\.\d+\.\d+$")
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
        self.assertEqual(field("Architecture"), arch)

    def test_swaps_with_qemu_guest_agent(self):
        # apt install ./fleetga_*.deb removes qemu-guest-agent and takes over its files.
        for rel in ("Conflicts", "Replaces", "Provides"):
            self.assertIn("qemu-guest-agent", relations(rel), rel)

    def test_depends_on_the_libraries_it_links(self):
        deps = relations("Depends")
        self.assertIn("libc6", deps)
        self.assertTrue(any(d.startswith("libsimdjson") for d in deps), deps)
        needed = subprocess.run(["objdump", "-p", os.path.join(ROOT, "usr/sbin/fleetga")],
                                capture_output=True, text=True, check=True).stdout
        triplet = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        for lib in re.findall(r"NEEDED\s+(\S+)", needed):
            owner = subprocess.run(["dpkg", "-S", f"*/{triplet}/{lib}"], capture_output=True, text=True)
            if owner.returncode == 0:
                pkg = owner.stdout.split(":")[0]
                self.assertIn(pkg, deps, f"{lib} comes from {pkg}, not in Depends {deps}")

    def test_maintainer_scripts(self):
        ctl = os.path.join(WORK, "control")
        subprocess.run(["dpkg-deb", "-e", DEB, ctl], check=True)
        self.assertEqual(read(os.path.join(ctl, "conffiles")).split(), ["/etc/qemu/fsfreeze-hook"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(ctl, script)
            self.assertTrue(os.stat(path).st_mode & stat.S_IXUSR, script)
            subprocess.run(["sh", "-n", path], check=True)


class Contents(unittest.TestCase):
    def test_exact_file_list(self):
        listed = subprocess.run(["dpkg-deb", "-c", DEB], capture_output=True, text=True, check=True).stdout
        paths = set()
        for line in listed.splitlines():
            name = line.split(None, 5)[5].split(" -> ")[0]
            name = name[2:].rstrip("/")  # "./usr/sbin/" -> "usr/sbin"
            if name:
                paths.add(name)
        leaves = {p for p in paths if not any(q.startswith(p + "/") for q in paths)}
        self.assertEqual(leaves, set(EXPECTED), "unexpected or missing files in the package")

    def test_modes_and_links(self):
        for rel, (kind, want) in EXPECTED.items():
            path = os.path.join(ROOT, rel)
            st = os.lstat(path)
            if kind == "link":
                self.assertTrue(stat.S_ISLNK(st.st_mode), rel)
                self.assertEqual(os.readlink(path), want, rel)
            elif kind == "dir":
                self.assertTrue(stat.S_ISDIR(st.st_mode), rel)
            else:
                self.assertTrue(stat.S_ISREG(st.st_mode), rel)
                self.assertEqual(stat.S_IMODE(st.st_mode), want, rel)

    def test_binary_and_qemu_ga_name_run(self):
        for name in ("fleetga", "qemu-ga"):
            p = subprocess.run([os.path.join(ROOT, "usr/sbin", name), "-V"], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.startswith("QEMU Guest Agent "), p.stdout)
        p = subprocess.run([os.path.join(ROOT, "usr/sbin/fleetga"), "-b", "help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("guest-set-support-level", p.stdout.split())


def unit_sections(text):
    sections, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), {})
            continue
        k, v = line.split("=", 1)
        cur.setdefault(k, []).append(v)
    return sections


class SystemdAndUdev(unittest.TestCase):
    def test_unit_bound_to_the_port_like_debians(self):
        u = unit_sections(read(os.path.join(ROOT, "lib/systemd/system/fleetga.service")))
        dev = r"dev-virtio\x2dports-org.qemu.guest_agent.0.device"
        self.assertEqual(u["Unit"]["BindsTo"], [dev])
        self.assertEqual(u["Unit"]["After"], [dev])
        self.assertEqual(u["Service"]["Restart"], ["always"])
        exe = u["Service"]["ExecStart"][0].lstrip("-@:+!")
        self.assertEqual(exe.split()[0], "/usr/sbin/fleetga")
        self.assertTrue(os.access(os.path.join(ROOT, exe.split()[0].lstrip("/")), os.X_OK))

    def test_udev_rule_wants_the_unit(self):
        rule = read(os.path.join(ROOT, "lib/udev/rules.d/60-fleetga.rules")).replace("\\\n", " ")
        self.assertIn('SUBSYSTEM=="virtio-ports"', rule)
        self.assertIn('ATTR{name}=="org.qemu.guest_agent.0"', rule)
        self.assertIn('TAG+="systemd"', rule)
        wants = re.search(r'ENV\{SYSTEMD_WANTS\}="([^"]+)"', rule).group(1)
        self.assertTrue(os.path.exists(os.path.join(ROOT, "lib/systemd/system", wants)), wants)


class FsfreezeHook(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="fleetga-hook.")
        shutil.copy(os.path.join(ROOT, "etc/qemu/fsfreeze-hook"), self.d)
        self.hookd = os.path.join(self.d, "fsfreeze-hook.d")
        os.mkdir(self.hookd)
        self.trace = os.path.join(self.d, "trace")
        self.log = os.path.join(self.d, "log")

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def script(self, name, status=0, executable=True):
        path = os.path.join(self.hookd, name)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\necho \"{name} $1\" >> {self.trace}\nexit {status}\n")
        os.chmod(path, 0o755 if executable else 0o644)

    def run_hook(self, arg, strict=False):
        env = dict(os.environ, FSFREEZE_HOOK_LOG=self.log)
        if strict:
            env["FSFREEZE_HOOK_STRICT"] = "1"
        return subprocess.run([os.path.join(self.d, "fsfreeze-hook"), arg], capture_output=True,
                              text=True, env=env, timeout=30)

    def trace_lines(self):
        if not os.path.exists(self.trace):
            return []
        with open(self.trace) as f:
            lines = f.read().splitlines()
        os.unlink(self.trace)
        return lines

    def test_order_and_skipped_files(self):
        self.script("20-db")
        self.script("10-app")
        self.script("30-old.dpkg-old")
        self.script("40-disabled", executable=False)
        self.script("50-backup~")
        self.assertEqual(self.run_hook("freeze").returncode, 0)
        self.assertEqual(self.trace_lines(), ["10-app freeze", "20-db freeze"])
        self.assertEqual(self.run_hook("thaw").returncode, 0)
        self.assertEqual(self.trace_lines(), ["20-db thaw", "10-app thaw"])
        log = read(self.log)
        self.assertIn("10-app finished with status=0", log)

    def test_failure_logged_and_strict_mode(self):
        self.script("10-bad", status=3)
        p = self.run_hook("freeze")
        self.assertEqual(p.returncode, 0, "like Debian's hook, a failing script doesn't stop the freeze")
        self.assertIn("status=3", read(self.log))
        p = self.run_hook("freeze", strict=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("10-bad freeze failed with status 3", p.stdout)

    def test_no_directory_is_fine(self):
        os.rmdir(self.hookd)
        self.assertEqual(self.run_hook("freeze").returncode, 0)


class Docs(unittest.TestCase):
    def test_man_page_documents_every_option(self):
        with gzip.open(os.path.join(ROOT, "usr/share/man/man8/fleetga.8.gz"), "rt") as f:
            man = f.read().replace("\\-", "-")
        self.assertTrue(man.startswith(".TH FLEETGA 8"))
        help_text = subprocess.run([os.path.join(ROOT, "usr/sbin/fleetga"), "--help"],
                                   capture_output=True, text=True, timeout=10).stdout
        longs = set(re.findall(r"--([a-z][a-z-]+)", help_text))
        self.assertGreater(len(longs), 10, help_text)
        for opt in sorted(longs):
            self.assertIn(opt, man, f"--{opt} is in --help but not in the man page")

    def test_config_sample_is_accepted(self):
        sample = os.path.join(ROOT, "usr/share/doc/fleetga/examples/qemu-ga.conf")
        # Every key commented out: the dump equals the defaults' dump.
        env = {k: v for k, v in os.environ.items() if k != "QGA_CONF"}
        fleetga = os.path.join(ROOT, "usr/sbin/fleetga")
        with_sample = subprocess.run([fleetga, "-c", sample, "-D"], capture_output=True, text=True, env=env, timeout=10)
        self.assertEqual(with_sample.returncode, 0, with_sample.stderr)
        self.assertIn("[general]", with_sample.stdout)
        # The sample's commented values are the defaults: uncommented, the dump is the same.
        active = os.path.join(WORK, "active.conf")
        with open(sample) as f, open(active, "w") as out:
            for line in f:
                m = re.match(r"#([a-z-]+=.*)$", line)
                if m and not m.group(1).startswith(("block-rpcs", "logfile", "fsfreeze-hook")):
                    out.write(m.group(1) + "\n")
                else:
                    out.write(line)
        uncommented = subprocess.run([fleetga, "-c", active, "-D"], capture_output=True, text=True, env=env, timeout=10)
        self.assertEqual(uncommented.returncode, 0, uncommented.stderr)
        # fleetga's own keys are dumped only when set (a qemu-ga config dumps like qemu-ga).
        self.assertEqual(uncommented.stdout,
                         with_sample.stdout + "support-level=1.0.0\nfsfreeze-timeout=600\n")


class BootFromPackage(unittest.TestCase):
    def test_guest_runs_the_packaged_binary(self):
        if not shutil.which(vm.QEMU):
            if os.environ.get("FLEETGA_VM_REQUIRED") == "1":
                self.fail(f"{vm.QEMU} missing")
            self.skipTest(f"{vm.QEMU} missing")
        build_dir = os.environ.get("FLEETGA_VM_BUILD_DIR") or os.path.join(WORK, "vm")
        os.makedirs(build_dir, exist_ok=True)
        out = vm.build_guest(build_dir, os.path.join(ROOT, "usr/sbin/fleetga"), os.path.join(WORK, "vm-out"))
        with vm.Guest(out, lock_path=os.path.join(build_dir, "qemu.lock")) as g:
            with g.connect() as c:
                c.sync_delimited()
                info = c.ret("guest-info")
                names = {x["name"] for x in info["supported_commands"]}
                self.assertIn("guest-set-support-level", names)
                self.assertEqual(c.ret("guest-ping"), {})


if __name__ == "__main__":
    unittest.main()
