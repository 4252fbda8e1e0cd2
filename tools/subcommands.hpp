#pragma once
#include <stdexcept>
#include <string>

namespace fleetga::host {

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

double parse_seconds(const std::string& v, const std::string& opt);
long long parse_count(const std::string& v, const std::string& opt);

int cmd_call(int argc, char** argv);
int cmd_load(int argc, char** argv);
int cmd_record(int argc, char** argv);
int cmd_replay(int argc, char** argv);
int cmd_responder(int argc, char** argv);
int cmd_attach(int argc, char** argv);

inline constexpr const char* call_usage =
    "usage: fleetga-host call [--timeout S] [--raw] [--no-reply] [--no-sync] SOCKET COMMAND [ARGS-JSON]\n"
    "  Connects, sends 0xFF + guest-sync-delimited (random id), skips stale output up to the\n"
    "  matching sync reply, sends COMMAND and prints its reply (pretty; --raw: the agent's line).\n"
    "  Exit: 0 return, 1 error reply (class and desc on stderr), 2 usage, 3 timeout/connection.\n"
    "  guest-shutdown and guest-suspend-* (or --no-reply) answer nothing on success: exit 0\n"
    "  when no error arrives within 1 s.\n";

inline constexpr const char* attach_usage =
    "usage: fleetga-host attach [--libvirt URI | --sockets DIR] [options]\n"
    "  Sets the host support level on every agent attach (guest-set-support-level, then\n"
    "  guest-info to confirm it), from what the host really supports; man fleetga-host.\n"
    "  --libvirt URI        libvirt mode (the default; URI default qemu:///system): agent and\n"
    "                       domain lifecycle events, a sweep at start-up and after reconnects\n"
    "  --sockets DIR        socket mode: every unix socket in DIR is an agent chardev (inotify)\n"
    "  --config FILE        operator policy (default /etc/fleetga/attach.conf when present)\n"
    "  --host-level X.Y[.Z] the host's level instead of the detected QEMU version\n"
    "  --timeout S          agent timeout per command (default 5, 1..300)\n"
    "  --concurrency N      attaches in flight at once (default 8)\n"
    "  --rescan S           socket mode: sweep again every S seconds (default 300; 0 never)\n"
    "  --once               sweep, attach every connected agent, exit\n"
    "  --explain DOMAIN     print the level DOMAIN would get, why, and what it enables; exit\n"
    "  --stats S            a counters line every S seconds (SIGUSR1: once)\n"
    "  --log-level L        debug | info (default) | warn\n"
    "  Signals: TERM/INT stop, USR1 logs the counters, HUP reads the config file again.\n"
    "  Exit: 0 all confirmed or left alone (no support level) or stopped by a signal, 1 some\n"
    "  failed (--once), 2 usage or config error, 3 host stack unreachable (--once, --explain).\n";

inline constexpr const char* load_usage =
    "usage: fleetga-host load (--agent SOCKET ... | --spawn 'CMD {sock} {statedir}' [--agents N]) [options]\n"
    "  --style S[,S...]   libvirt (default) | proxmox | pipelined; agent i gets style i mod count\n"
    "  --clients C        clients per agent (default 1; one-client agents serialise them)\n"
    "  --depth D          requests in flight per pipelined client (default 64)\n"
    "  --rate R           requests/s per agent (default: flat out)\n"
    "  --duration S       run time (default 10 s; capped by --max-duration, default 300 s)\n"
    "  --warmup S         run S seconds first without recording latencies and counts (desyncs\n"
    "                     and lost replies still count): agents' first calls, and other\n"
    "                     fleets still starting, stay out of the figures\n"
    "  --requests N       stop after N requests in total\n"
    "  --timeout S        per-request deadline (default 5 s); a miss counts as lost\n"
    "  --mix FILE         'WEIGHT COMMAND [ARGS-JSON]' lines, or a recorded session (its requests);\n"
    "                     default: clients.md 5.2, read-only commands only\n"
    "  --command X [--args JSON]   a single command instead of a mix\n"
    "  --no-ids           pipelined: no per-request id (order and count checks only)\n"
    "  --threads T        client threads (default 1)\n"
    "  --json             report as JSON;  --quiet: no progress lines\n"
    "  --allow-unsafe     permit state-changing commands in a mix; freeze also needs\n"
    "                     --allow-freeze (point it at a test guest or --spawn'ed agents only)\n"
    "  --scenario NAME    backup-window | boot-storm | credentials | exec-poll | file-read |\n"
    "                     timeouts | disconnects\n"
    "  --hold S           backup-window: seconds frozen per window (default 2; clients.md: 1-30)\n"
    "  --every S          backup-window / credentials: seconds between rounds (default 10 / 300)\n"
    "  --path P [--chunk N,...]  file-read: the guest file, read with guest-file-read counts N\n"
    "                     by turns (default 4096,65536,1048576; needs --allow-unsafe)\n"
    "  --output N[,N...]  exec-poll: bytes the guest command writes, by turns (default\n"
    "                     0,65536,16777217: none, 64 KiB, past the agent's 16 MiB cap)\n"
    "  --user NAME        credentials: the guest account whose SSH keys and password rotate\n"
    "                     (needs --allow-unsafe)\n"
    "  --cpu-limit PCT    --spawn'ed agents get PCT % of one CPU each (a cgroup's CFS quota per\n"
    "                     agent, 100 ms period; clients.md 5.3 CPU starvation: 5)\n"
    "  --stall-probe US   a thread pinned to each CPU wakes every US microseconds; waking US late\n"
    "                     is a CPU stall (a kernel thread or the hypervisor held the CPU): the\n"
    "                     report adds the figures without the requests in flight during one\n"
    "  Exit: 0 no desyncs/lost replies/agent problems, 1 otherwise, 2 usage, 3 no agent reachable.\n";

}  // namespace fleetga::host
