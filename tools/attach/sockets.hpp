#pragma once
// fleetga-host attach --sockets DIR: hosts without libvirt keep each VM's agent chardev as a
// unix socket in one directory (Proxmox: /var/run/qemu-server/<vmid>.qga). A domain is a
// socket in DIR whose name matches `match` ("*.qga" unless told otherwise); its id is the file
// name, its name the file name without ".qga". Each attach connects, syncs (0xFF +
// guest-sync-delimited), sets the level, reads guest-info and disconnects: the socket is the
// host stack's, never held longer than one attach.
//
// Why a name pattern: the same directory holds other one-client sockets of the same VMs
// (Proxmox: <vmid>.qmp, QEMU's monitor; <vmid>.serial0, the guest's serial console). Writing
// the handshake into those would type into a guest's console or hold the monitor that the
// management stack needs, for up to the agent timeout on every rescan.
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/attach/engine.hpp"

namespace fleetga::host::attach {

inline constexpr const char* default_socket_match = "*.qga";

// True when `name` (a file name in DIR) is an agent socket's name: fnmatch(match, name,
// FNM_PERIOD), so hidden files ("." + ...) are never agents.
bool agent_socket_name(std::string_view name, const std::string& match);

// The agent sockets in `dir` (lstat: sockets only, names matching `match`), sorted; empty when
// DIR does not exist or cannot be read.
std::vector<std::string> list_agent_sockets(const std::string& dir, const std::string& match);

class socket_stack : public host_stack {
 public:
  // host_level: configured (--host-level / [host] level) or detect_qemu_level(); may be nullopt.
  socket_stack(std::string dir, std::optional<support_level> host_level,
               std::string match = default_socket_match);
  std::string kind() const override { return "sockets"; }
  std::optional<support_level> host_level() override { return level_; }
  std::vector<std::string> connected_domains() override;  // every agent socket in DIR
  // nullopt unless DIR/id is a socket (lstat) with a matching name.
  std::optional<domain_facts> facts(const std::string& id) override;
  // Connects without blocking and syncs, all within `timeout`. Failures (`why`): gone (no such
  // file), not_connected (refused: nobody listens; or the agent hung up during the sync),
  // busy (the listen backlog is full, or no sync reply in time: a one-client chardev serving
  // someone else, or a chardev with no agent behind it), failed (anything else).
  std::unique_ptr<agent_link> open(const std::string& id, std::chrono::milliseconds timeout,
                                   agent_reply& why) override;
  const std::string& dir() const { return dir_; }
  const std::string& match() const { return match_; }
  // Opens and commands in flight, and later ones, give up (failed, "fleetga-host is stopping")
  // as soon as `fd` is readable: the daemon passes its stop eventfd (which stays readable), so
  // SIGTERM does not wait out the agent timeout of an attach stuck on a hung agent. -1: never.
  void abort_on(int fd) { abort_fd_.store(fd); }

 private:
  std::string dir_;
  std::optional<support_level> level_;
  std::string match_;
  std::atomic<int> abort_fd_{-1};
};

// Watches DIR (inotify) until `stop_fd` is readable: a socket that appears (create, moved in,
// attributes changed) is engine.agent_connected(id), one that goes is engine.domain_gone(id);
// names not matching `match` and files that are not sockets are ignored. When the watch is
// set up (at start, and whenever DIR appears again) and every `rescan` (0: never)
// engine.sweep(), so guests whose level was lost (a new agent with an empty state dir) get it
// again; callers don't sweep themselves. A missing DIR is waited for (its nearest existing
// ancestor is watched); a DIR removed and re-created is picked up again.
// Throws std::system_error when inotify itself fails (or DIR cannot be watched: EACCES).
void watch_sockets(const std::string& dir, engine& e, int stop_fd, std::chrono::seconds rescan,
                   const std::string& match = default_socket_match);

// The host's QEMU version from `qemu-system-<arch> --version` (the first of the machine's
// own arch, x86_64, aarch64 found in PATH), nullopt when none runs and answers within
// `limit` (all candidates together; a hung one is killed).
std::optional<support_level> detect_qemu_level(std::chrono::milliseconds limit = std::chrono::seconds(5));

}  // namespace fleetga::host::attach
