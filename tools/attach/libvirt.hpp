#pragma once
// fleetga-host attach --libvirt URI: libvirt as the host stack, through its C API (no virsh).
// Domains are identified by UUID. Agent commands go through virDomainQemuAgentCommand, which
// does libvirt's own guest-sync first and serialises with every other agent user of the
// domain (libvirt's agent job), so the attach never fights libvirt for the channel.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "tools/attach/engine.hpp"

typedef struct _virConnect virConnect;

namespace fleetga::host::attach {

class libvirt_stack : public host_stack {
 public:
  // host_override: --host-level / [host] level; otherwise virConnectGetVersion's QEMU version.
  libvirt_stack(std::string uri, std::optional<support_level> host_override);
  ~libvirt_stack() override;
  std::string kind() const override { return "libvirt"; }
  std::optional<support_level> host_level() override;
  std::vector<std::string> connected_domains() override;  // throws when not connected
  std::optional<domain_facts> facts(const std::string& id) override;
  std::unique_ptr<agent_link> open(const std::string& id, std::chrono::milliseconds timeout,
                                   agent_reply& why) override;

  const std::string& uri() const { return uri_; }
  // Opens the connection (throws std::runtime_error with libvirt's message); reads the
  // host's version.
  void connect();
  // Drops the connection (after libvirt's close callback, or at exit). Links in use keep
  // their own reference until they end.
  void disconnect();
  bool connected() const;
  // A new reference to the connection (virConnectClose it), nullptr when not connected.
  virConnect* conn_ref() const;
  // A domain's UUID string from its name or UUID (--explain); nullopt when none matches.
  std::optional<std::string> find_domain(const std::string& name_or_uuid);

 private:
  std::string uri_;
  std::optional<support_level> override_;
  mutable std::mutex mu_;
  virConnect* conn_ = nullptr;
  std::optional<support_level> version_;
};

// What libvirt's events mean for the engine (libvirt's numeric event codes; tested against a
// fake host stack).
void on_agent_lifecycle(engine& e, const std::string& uuid, int state, int reason);
void on_domain_lifecycle(engine& e, const std::string& uuid, int event, int detail);
// The agent's error as virDomainQemuAgentCommand reports it (virError code and message).
agent_reply classify_libvirt_error(int code, const std::string& message);

// The daemon's libvirt loop: connects (back-off 1 s doubling to 30 s while libvirtd is
// unreachable, one error line per streak), registers the agent-lifecycle and lifecycle
// events and a close callback, sweeps every running domain, then dispatches events until
// `stop_fd` is readable. A lost connection (libvirtd restart) is reconnected and swept again.
// `tick` runs about once a second on the loop (stats).
void run_libvirt(libvirt_stack& st, engine& e, int stop_fd, const std::function<void()>& tick);

}  // namespace fleetga::host::attach
