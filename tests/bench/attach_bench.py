#!/usr/bin/env python3
"""What `fleetga-host attach --sockets DIR --once` costs for a directory of 100 agents, against
the same 100 attaches done by a naive per-VM client (a script running `fleetga-host call SOCK
guest-set-support-level ...` and `fleetga-host call SOCK guest-info` for each VM).

Spawns N fleetga agents (unix-listen, each with its own state dir, sockets DIR/vmNNN.qga),
then per round: the daemon at its default concurrency, the daemon at --concurrency 1, and the
naive client (sequential, one process per command), each run setting a level the agents do not
have yet (7.2.R). Every run is checked: all N confirmed (the daemon's log and exit status, the
naive client's guest-info), and afterwards every agent's guest-info read through a connection
of our own. CPU time is user+sys of the client processes (os.wait4 / RUSAGE_CHILDREN), plus
the agents' own (from /proc/PID/stat) for the record. Medians over the rounds.

  attach_bench.py FLEETGA FLEETGA_HOST [--agents 100] [--rounds 3] [--write-doc docs/benchmarks.md]

Not a test: run it by hand on a quiet machine, with Release binaries.
"""
import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import qga  # noqa: E402

SECTION = "## fleetga-host attach, socket mode"


def agent_cpu_s(pids):
    """CPU time of the agents so far, all threads: /proc/PID/schedstat's first field is the
    nanoseconds on a CPU (utime/stime in /proc/PID/stat count whole 10 ms ticks)."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:
                pass  # a thread that just ended
    return total / 1e9


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def wait_connectable(path, limit=30):
    deadline = time.monotonic() + limit
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path}: no agent")
            time.sleep(0.01)
        finally:
            s.close()


def agent_level(path):
    c = qga.Client(path, 10)
    try:
        c.sync_delimited(int.from_bytes(os.urandom(6), "big"))
        lvl = c.cmd("guest-info")["return"].get("support_level")
        return None if lvl is None else (lvl["major"], lvl["minor"], lvl["micro"])
    finally:
        c.close()


def run_daemon(host, sockdir, level, agents, concurrency, conf):
    """One `attach --once`; returns (wall s, user s, sys s, each attach's latency_ms)."""
    argv = [host, "attach", "--sockets", sockdir, "--once", "--host-level", level, "--config", conf]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    confirmed = re.findall(r"attach domain=(\S+) .*confirmed=" + re.escape(level) + r" .*outcome=confirmed", stderr)
    if p.returncode != 0 or len(set(confirmed)) != agents or f"{agents} confirmed" not in stdout:
        raise RuntimeError(f"attach run failed ({p.returncode}, {len(set(confirmed))} confirmed):\n{stdout}\n{stderr[-3000:]}")
    latencies = [float(x) for x in re.findall(r" latency_ms=([\d.]+) .*outcome=confirmed", stderr)]
    return wall, ru.ru_utime, ru.ru_stime, latencies


def run_naive(host, socks, level):
    """Per VM: `call SOCK guest-set-support-level ARGS`, `call SOCK guest-info`; sequential."""
    major, minor, micro = (int(x) for x in level.split("."))
    args = json.dumps({"major": major, "minor": minor, "micro": micro})
    u0, s0 = children_cpu_s()
    t = time.monotonic()
    for sock in socks:
        p = subprocess.run([host, "call", sock, "guest-set-support-level", args], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"naive set {sock}: {p.stderr}")
        p = subprocess.run([host, "call", sock, "guest-info"], capture_output=True, text=True)
        got = json.loads(p.stdout)["return"].get("support_level")
        if p.returncode != 0 or got != {"major": major, "minor": minor, "micro": micro}:
            raise RuntimeError(f"naive guest-info {sock}: {p.stdout[:200]} {p.stderr}")
    wall = time.monotonic() - t
    u1, s1 = children_cpu_s()
    return wall, u1 - u0, s1 - s0


def startup_cost(host, runs=20, sub=()):
    """What one process costs before it does anything: `fleetga-host [SUB] --help`."""
    u0, s0 = children_cpu_s()
    t = time.monotonic()
    for _ in range(runs):
        subprocess.run([host, *sub, "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = (time.monotonic() - t) / runs
    u1, s1 = children_cpu_s()
    return wall, ((u1 - u0) + (s1 - s0)) / runs


def shared_libraries(binary):
    p = subprocess.run(["ldd", binary], capture_output=True, text=True)
    return len([l for l in p.stdout.splitlines() if "=>" in l])


def build_type(binary):
    d = os.path.dirname(os.path.abspath(binary))
    for _ in range(3):
        cache = os.path.join(d, "CMakeCache.txt")
        if os.path.exists(cache):
            with open(cache) as f:
                m = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", f.read(), re.M)
            return m.group(1) if m and m.group(1) else "unknown"
        d = os.path.dirname(d)
    return "unknown"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
    return m.group(1) if m else platform.processor()


def fmt_ms(s):
    return f"{s * 1000:,.0f} ms" if s >= 1 else f"{s * 1000:,.1f} ms"


def fmt_us(s):
    return f"{s * 1e6:,.0f} µs"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fleetga")
    ap.add_argument("host")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write-doc", metavar="BENCHMARKS_MD")
    o = ap.parse_args()
    fleetga, host = os.path.abspath(o.fleetga), os.path.abspath(o.host)
    load = os.getloadavg()[0]

    tmp = tempfile.mkdtemp(prefix="fleetga-attach-bench.")
    sockdir = os.path.join(tmp, "qemu-server")
    os.mkdir(sockdir)
    conf = os.path.join(tmp, "empty.conf")  # not /etc/fleetga/attach.conf, whatever it says
    open(conf, "w").close()
    procs, socks = [], []
    try:
        for i in range(o.agents):
            state = os.path.join(tmp, f"state{i:03d}")
            os.mkdir(state)
            sock = os.path.join(sockdir, f"vm{i:03d}.qga")
            procs.append(subprocess.Popen([fleetga, "-m", "unix-listen", "-p", sock, "-t", state], cwd=state,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            socks.append(sock)
        for s in socks:
            wait_connectable(s)
            agent_level(s)  # warm-up: every agent's first guest-info is not part of a run
        pids = [p.pid for p in procs]

        start_wall, start_cpu = startup_cost(host)
        # `fleetga-host attach` execs fleetga-host-attach, the one program that links libvirt.
        astart_wall, astart_cpu = startup_cost(host, sub=("attach",))
        print(f"fleetga-host --help: wall {start_wall * 1000:.1f} ms, cpu {start_cpu * 1000:.1f} ms per process",
              flush=True)
        rows = {"daemon": [], "daemon1": [], "naive": []}
        micro = 0
        for r in range(o.rounds):
            for kind in ("daemon", "daemon1", "naive"):
                micro += 1
                level = f"7.2.{micro}"
                a0 = agent_cpu_s(pids)
                if kind == "naive":
                    wall, user, sys_ = run_naive(host, socks, level)
                    stats = []
                else:
                    wall, user, sys_, stats = run_daemon(host, sockdir, level, o.agents,
                                                         1 if kind == "daemon1" else None, conf)
                agents_cpu = agent_cpu_s(pids) - a0
                want = (7, 2, micro)
                wrong = [s for s in socks if agent_level(s) != want]
                if wrong:
                    raise RuntimeError(f"{kind}: {len(wrong)} agents do not report {level}: {wrong[:3]}")
                rows[kind].append((wall, user, sys_, agents_cpu, stats))
                print(f"round {r + 1} {kind:8s} wall {wall:7.3f} s  client cpu {user + sys_:6.3f} s "
                      f"(user {user:.3f} sys {sys_:.3f})  agents cpu {agents_cpu:.3f} s  all {o.agents} at {level}",
                      flush=True)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(kind, i):
        return statistics.median(x[i] for x in rows[kind])

    n = o.agents
    d_wall, d1_wall, n_wall = med("daemon", 0), med("daemon1", 0), med("naive", 0)
    def median_run(kind):
        """The run whose client CPU is the median: its user and sys add up to the total shown."""
        runs = sorted(rows[kind], key=lambda x: x[1] + x[2])
        return runs[len(runs) // 2]

    _, d_user, d_sys, _, _ = median_run("daemon")
    _, n_user, n_sys, _, _ = median_run("naive")
    d_cpu, n_cpu = d_user + d_sys, n_user + n_sys
    d1_cpu = sum(median_run("daemon1")[1:3])
    d_agents, n_agents = med("daemon", 3), med("naive", 3)
    lat = sorted(x for row in rows["daemon"] for x in row[4])
    lat_p50, lat_max = lat[len(lat) // 2], lat[-1]
    lat1 = sorted(x for row in rows["daemon1"] for x in row[4])
    lat1_p50, lat1_max = lat1[len(lat1) // 2], lat1[-1]

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cmd = (f"python3 tests/bench/attach_bench.py build/release/agent/fleetga build/release/tools/fleetga-host"
           f" --agents {n} --rounds {o.rounds} --write-doc docs/benchmarks.md")
    md = f"""{SECTION}

Measured {when} on {cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()} (load average
{load:.1f} at the start: a shared machine); fleetga and fleetga-host {build_type(host)} builds. {n} fleetga agents (`-m unix-listen`, each its own state
dir) with their sockets in one directory, the way Proxmox keeps `/var/run/qemu-server/<vmid>.qga`.
One attach = connect, 0xFF + guest-sync-delimited, guest-set-support-level, guest-info (the
level read back), disconnect. Each run sets a level the agents do not have yet, and every run is
checked: all {n} confirmed by the client, then every agent's guest-info read through a connection
of our own. The daemon: `fleetga-host attach --sockets DIR --once --host-level 7.2.N` (default
concurrency 8, and `--concurrency 1`). The naive per-VM client: for each socket `fleetga-host
call SOCK guest-set-support-level '{{"major":7,...}}'` then `fleetga-host call SOCK guest-info`,
one after the other (2 processes, 2 connections and 2 syncs per VM). CPU = user + sys of the
client processes (`os.wait4` / `RUSAGE_CHILDREN`); the agents' CPU from `/proc/PID/task/*/schedstat`.
Median of {o.rounds} rounds, the three runs taking turns, after one guest-info per agent to warm up.

| {n} attaches | wall | client CPU (user + sys) | client CPU per attach | agents' CPU per attach |
|---|---:|---:|---:|---:|
| `attach --once` (concurrency 8) | {fmt_ms(d_wall)} | {d_user * 1000:,.1f} + {d_sys * 1000:,.1f} = {d_cpu * 1000:,.1f} ms | {fmt_us(d_cpu / n)} | {fmt_us(d_agents / n)} |
| `attach --once --concurrency 1` | {fmt_ms(d1_wall)} | {d1_cpu * 1000:,.1f} ms | {fmt_us(d1_cpu / n)} | {fmt_us(med("daemon1", 3) / n)} |
| naive: 2 x `fleetga-host call` per VM, sequential | {fmt_ms(n_wall)} | {n_user * 1000:,.0f} + {n_sys * 1000:,.0f} = {n_cpu * 1000:,.0f} ms | {fmt_us(n_cpu / n)} | {fmt_us(n_agents / n)} |
| naive / `attach --once` | {n_wall / d_wall:.1f}x | {n_cpu / d_cpu:.1f}x | {n_cpu / d_cpu:.1f}x | {n_agents / max(d_agents, 1e-9):.1f}x |
| one `fleetga-host --help` (start-up and exit only), per process | {fmt_ms(start_wall)} | {start_cpu * 1000:,.1f} ms | | |
| one `fleetga-host attach --help` (start-up, exec, libvirt loaded, exit) | {fmt_ms(astart_wall)} | {astart_cpu * 1000:,.1f} ms | | |

One attach from connect to confirmation, as the daemon logs it (`latency_ms`, all rounds): p50
{lat_p50:.1f} ms, max {lat_max:.1f} ms at concurrency 8 ({n} attaches, 8 at a time, on {os.cpu_count()} cores);
p50 {lat1_p50:.1f} ms, max {lat1_max:.1f} ms at concurrency 1. The daemon's client CPU includes its
start-up and exit, paid once for all {n} (without it, about {max(d_cpu - astart_cpu, 0) * 1e6 / n:,.0f} µs per
attach: the `attach --once` CPU minus one `attach --help`). The naive client pays {2 * n} start-ups of
`fleetga-host` ({shared_libraries(host)} shared libraries), most of its cost. Only fleetga-host-attach, which
`fleetga-host attach` execs, links libvirt ({shared_libraries(host + "-attach")} shared libraries: libvirt, glib,
gnutls, curl, krb5, ICU, ...); before that split every `call` paid libvirt's start-up too
(34.5 ms CPU per `--help`, the first run of this benchmark).

Reproduce (Release build: `cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DFLEETGA_TESTS=OFF
&& cmake --build build/release --target fleetga fleetga-host`):

```sh
{cmd}
```
"""
    print()
    print(md)
    if o.write_doc:
        with open(o.write_doc) as f:
            doc = f.read()
        i = doc.find(SECTION)
        if i >= 0:
            j = doc.find("\n## ", i + len(SECTION))
            doc = doc[:i] + md + (doc[j + 1:] if j >= 0 else "")
        else:
            doc = doc.rstrip("\n") + "\n\n" + md
        with open(o.write_doc, "w") as f:
            f.write(doc)
        print(f"written into {o.write_doc}")


if __name__ == "__main__":
    main()
