#include "tools/attach/libvirt.hpp"

#include <poll.h>
#include <unistd.h>

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

namespace fleetga::host::attach {

namespace {

using clock = std::chrono::steady_clock;

// libvirt's last error on this thread: code and message ("" when none).
std::pair<int, std::string> last_error() {
  virErrorPtr e = virGetLastError();
  if (!e) return {0, "unknown libvirt error"};
  return {e->code, e->message ? e->message : "unknown libvirt error"};
}

std::string uuid_of(virDomainPtr d) {
  char buf[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(d, buf) != 0) return {};
  return buf;
}

// RAII for the libvirt objects this file holds.
struct domain_ref {
  virDomainPtr p = nullptr;
  explicit domain_ref(virDomainPtr d = nullptr) : p(d) {}
  domain_ref(const domain_ref&) = delete;
  domain_ref& operator=(const domain_ref&) = delete;
  ~domain_ref() {
    if (p) virDomainFree(p);
  }
};
struct conn_holder {
  virConnectPtr p = nullptr;
  explicit conn_holder(virConnectPtr c = nullptr) : p(c) {}
  conn_holder(const conn_holder&) = delete;
  conn_holder& operator=(const conn_holder&) = delete;
  ~conn_holder() {
    if (p) virConnectClose(p);
  }
};

// The live XML says whether the guest opened the agent's port:
// <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>.
bool agent_channel_connected(std::string_view xml) {
  std::size_t at = 0;
  for (;;) {
    auto n = xml.find("org.qemu.guest_agent.0", at);
    if (n == std::string_view::npos) return false;
    auto open = xml.rfind('<', n);
    auto close = xml.find('>', n);
    if (open == std::string_view::npos || close == std::string_view::npos) return false;
    std::string_view tag = xml.substr(open, close - open);
    if (tag.starts_with("<target") &&
        (tag.find("state='connected'") != std::string_view::npos ||
         tag.find("state=\"connected\"") != std::string_view::npos))
      return true;
    at = close;
  }
}

// virDomainQemuAgentCommand's reply is the agent's whole object ({"return": ...}); the engine
// wants the value of "return".
agent_reply reply_from_text(const char* text) {
  agent_reply r;
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string s{std::string_view(text)};
  simdjson::dom::element root, ret;
  if (parser.parse(s).get(root) || !root.is_object() || root["return"].get(ret)) {
    r.st = agent_reply::status::garbage;
    r.desc = fmt::format("not a QMP reply: {:.200}", text);
    return r;
  }
  r.st = agent_reply::status::ok;
  r.ret = simdjson::minify(ret);
  return r;
}

class libvirt_link : public agent_link {
 public:
  libvirt_link(virConnectPtr c, virDomainPtr d) : conn_(c), dom_(d) {}
  agent_reply command(const std::string& json, std::chrono::milliseconds timeout) override {
    // libvirt takes whole seconds; round up so a short timeout is never "no wait" (0).
    int secs = static_cast<int>(std::max<long long>(1, (timeout.count() + 999) / 1000));
    char* out = virDomainQemuAgentCommand(dom_.p, json.c_str(), secs, 0);
    if (!out) {
      auto [code, msg] = last_error();
      return classify_libvirt_error(code, msg);
    }
    agent_reply r = reply_from_text(out);
    free(out);
    return r;
  }

 private:
  conn_holder conn_;
  domain_ref dom_;
};

}  // namespace

agent_reply classify_libvirt_error(int code, const std::string& message) {
  agent_reply r;
  r.desc = message;
  switch (code) {
    case VIR_ERR_NO_DOMAIN:
      r.st = agent_reply::status::gone;
      return r;
    case VIR_ERR_OPERATION_INVALID:  // "domain is not running"
      r.st = message.find("not running") != std::string::npos ? agent_reply::status::gone
                                                               : agent_reply::status::not_connected;
      return r;
    case VIR_ERR_AGENT_UNRESPONSIVE:
      // "Guest agent is not responding: QEMU guest agent is not connected" (at once, after a
      // "disconnected" event) and "... Guest agent disappeared while executing command": the
      // next "connected" event brings it back. "... Guest agent not available for now" is an
      // agent that is connected but did not answer libvirt's guest-sync or the command in
      // time (libvirt 9.0 gives both the same code and text): a timeout, retried with back-off.
      if (message.find("not connected") != std::string::npos || message.find("disappeared") != std::string::npos)
        r.st = agent_reply::status::not_connected;
      else
        r.st = agent_reply::status::timeout;
      return r;
    case VIR_ERR_OPERATION_TIMEOUT:  // "cannot acquire state change lock": someone holds the agent job
      r.st = agent_reply::status::busy;
      return r;
    case VIR_ERR_AGENT_UNSYNCED:
      r.st = agent_reply::status::garbage;
      return r;
    case VIR_ERR_INTERNAL_ERROR: {
      // An error reply from the agent: "internal error: unable to execute QEMU agent command
      // 'NAME': DESC" (libvirt keeps the desc only).
      constexpr std::string_view marker = "unable to execute QEMU agent command '";
      auto at = message.find(marker);
      if (at != std::string::npos) {
        auto end = message.find("': ", at + marker.size());
        r.st = agent_reply::status::error_reply;
        r.desc = end == std::string::npos ? message : message.substr(end + 3);
        return r;
      }
      r.st = agent_reply::status::failed;
      return r;
    }
    default:
      r.st = agent_reply::status::failed;
      return r;
  }
}

libvirt_stack::libvirt_stack(std::string uri, std::optional<support_level> host_override)
    : uri_(std::move(uri)), override_(host_override) {}

libvirt_stack::~libvirt_stack() { disconnect(); }

void libvirt_stack::connect() {
  virConnectPtr c = virConnectOpen(uri_.c_str());
  if (!c) throw std::runtime_error(fmt::format("cannot connect to {}: {}", uri_, last_error().second));
  std::optional<support_level> v;
  unsigned long hv = 0;
  if (virConnectGetVersion(c, &hv) == 0) v = level_from_version_number(hv);
  std::lock_guard lk(mu_);
  if (conn_) virConnectClose(conn_);
  conn_ = c;
  version_ = v;
}

void libvirt_stack::disconnect() {
  std::lock_guard lk(mu_);
  if (conn_) virConnectClose(conn_);
  conn_ = nullptr;
}

bool libvirt_stack::connected() const {
  std::lock_guard lk(mu_);
  return conn_ != nullptr;
}

virConnect* libvirt_stack::conn_ref() const {
  std::lock_guard lk(mu_);
  if (!conn_) return nullptr;
  virConnectRef(conn_);
  return conn_;
}

std::optional<support_level> libvirt_stack::host_level() {
  if (override_) return override_;
  std::lock_guard lk(mu_);
  return version_;
}

std::vector<std::string> libvirt_stack::connected_domains() {
  conn_holder c(conn_ref());
  if (!c.p) throw std::runtime_error(fmt::format("not connected to {}", uri_));
  virDomainPtr* doms = nullptr;
  int n = virConnectListAllDomains(c.p, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) throw std::runtime_error(fmt::format("listing the domains of {}: {}", uri_, last_error().second));
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    domain_ref d(doms[i]);
    char* xml = virDomainGetXMLDesc(d.p, 0);
    if (!xml) continue;  // gone since the list
    bool up = agent_channel_connected(xml);
    free(xml);
    if (up) ids.push_back(uuid_of(d.p));
  }
  free(doms);
  return ids;
}

std::optional<domain_facts> libvirt_stack::facts(const std::string& id) {
  conn_holder c(conn_ref());
  if (!c.p) throw std::runtime_error(fmt::format("not connected to {}", uri_));
  domain_ref d(virDomainLookupByUUIDString(c.p, id.c_str()));
  if (!d.p) {
    auto [code, msg] = last_error();
    if (code == VIR_ERR_NO_DOMAIN) return std::nullopt;
    throw std::runtime_error(msg);
  }
  if (virDomainIsActive(d.p) != 1) return std::nullopt;
  domain_facts f;
  if (const char* name = virDomainGetName(d.p)) f.name = name;
  f.uuid = id;
  char* xml = virDomainGetXMLDesc(d.p, 0);
  if (!xml) {
    auto [code, msg] = last_error();
    if (code == VIR_ERR_NO_DOMAIN) return std::nullopt;
    throw std::runtime_error(msg);
  }
  f.xml = xml;
  free(xml);
  return f;
}

std::unique_ptr<agent_link> libvirt_stack::open(const std::string& id, std::chrono::milliseconds,
                                                 agent_reply& why) {
  virConnectPtr c = conn_ref();
  if (!c) {
    why.st = agent_reply::status::failed;
    why.desc = fmt::format("not connected to {}", uri_);
    return nullptr;
  }
  virDomainPtr d = virDomainLookupByUUIDString(c, id.c_str());
  if (!d) {
    auto [code, msg] = last_error();
    virConnectClose(c);
    why.st = code == VIR_ERR_NO_DOMAIN ? agent_reply::status::gone : agent_reply::status::failed;
    why.desc = msg;
    return nullptr;
  }
  return std::make_unique<libvirt_link>(c, d);
}

std::optional<std::string> libvirt_stack::find_domain(const std::string& name_or_uuid) {
  conn_holder c(conn_ref());
  if (!c.p) return std::nullopt;
  domain_ref d(virDomainLookupByName(c.p, name_or_uuid.c_str()));
  if (!d.p) d.p = virDomainLookupByUUIDString(c.p, name_or_uuid.c_str());
  if (!d.p) return std::nullopt;
  return uuid_of(d.p);
}

void on_agent_lifecycle(engine& e, const std::string& uuid, int state, int reason) {
  spdlog::debug("event agent-lifecycle domain={} state={} reason={}", uuid, state, reason);
  if (state == VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED)
    e.agent_connected(uuid);
  else if (state == VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED)
    e.agent_disconnected(uuid);
}

void on_domain_lifecycle(engine& e, const std::string& uuid, int event, int detail) {
  spdlog::debug("event lifecycle domain={} event={} detail={}", uuid, event, detail);
  switch (event) {
    case VIR_DOMAIN_EVENT_STOPPED:
      e.domain_gone(uuid);
      break;
    case VIR_DOMAIN_EVENT_RESUMED:
      // The end of an incoming migration: the agent was connected on the source, and the
      // destination's libvirt may report it without an agent event.
      if (detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED || detail == VIR_DOMAIN_EVENT_RESUMED_POSTCOPY)
        e.agent_connected(uuid);
      break;
    case VIR_DOMAIN_EVENT_STARTED:
      // A restored domain or snapshot runs on with the agent state it was saved with.
      if (detail == VIR_DOMAIN_EVENT_STARTED_RESTORED || detail == VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT)
        e.agent_connected(uuid);
      break;
    default:
      break;
  }
}

namespace {

struct loop_state {
  libvirt_stack* st = nullptr;
  engine* e = nullptr;
  bool quit = false;
  bool lost = false;
  int close_reason = 0;
  int agent_cb = -1, life_cb = -1;
  virConnectPtr registered = nullptr;  // our reference for the callbacks' lifetime
  const std::function<void()>* tick = nullptr;
};

void agent_cb(virConnectPtr, virDomainPtr dom, int state, int reason, void* opaque) {
  auto* ls = static_cast<loop_state*>(opaque);
  on_agent_lifecycle(*ls->e, uuid_of(dom), state, reason);
}

int life_cb(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  auto* ls = static_cast<loop_state*>(opaque);
  on_domain_lifecycle(*ls->e, uuid_of(dom), event, detail);
  return 0;
}

void close_cb(virConnectPtr, int reason, void* opaque) {
  auto* ls = static_cast<loop_state*>(opaque);
  ls->lost = true;
  ls->close_reason = reason;
}

void stop_cb(int, int fd, int, void* opaque) {
  auto* ls = static_cast<loop_state*>(opaque);
  ls->quit = true;
  (void)fd;
}

void tick_cb(int, void* opaque) {
  auto* ls = static_cast<loop_state*>(opaque);
  if (ls->tick && *ls->tick) (*ls->tick)();
}

const char* close_reason_text(int r) {
  switch (r) {
    case VIR_CONNECT_CLOSE_REASON_ERROR: return "I/O error";
    case VIR_CONNECT_CLOSE_REASON_EOF: return "libvirtd closed the connection";
    case VIR_CONNECT_CLOSE_REASON_KEEPALIVE: return "keepalive timeout";
    case VIR_CONNECT_CLOSE_REASON_CLIENT: return "closed by the client";
    default: return "unknown reason";
  }
}

void unregister(loop_state& ls) {
  if (!ls.registered) return;
  if (ls.agent_cb >= 0) virConnectDomainEventDeregisterAny(ls.registered, ls.agent_cb);
  if (ls.life_cb >= 0) virConnectDomainEventDeregisterAny(ls.registered, ls.life_cb);
  virConnectUnregisterCloseCallback(ls.registered, close_cb);
  virResetLastError();
  virConnectClose(ls.registered);
  ls.registered = nullptr;
  ls.agent_cb = ls.life_cb = -1;
}

// One attempt: connect, register, sweep. Throws with the reason.
void attach_to_libvirt(loop_state& ls) {
  ls.st->connect();
  virConnectPtr c = ls.st->conn_ref();
  if (!c) throw std::runtime_error("connection dropped");
  ls.registered = c;
  ls.lost = false;
  if (virConnectRegisterCloseCallback(c, close_cb, &ls, nullptr) < 0 ||
      (ls.agent_cb = virConnectDomainEventRegisterAny(c, nullptr, VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE,
                                                      VIR_DOMAIN_EVENT_CALLBACK(agent_cb), &ls, nullptr)) < 0 ||
      (ls.life_cb = virConnectDomainEventRegisterAny(c, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                     VIR_DOMAIN_EVENT_CALLBACK(life_cb), &ls, nullptr)) < 0) {
    std::string why = last_error().second;
    unregister(ls);
    ls.st->disconnect();
    throw std::runtime_error(fmt::format("registering for events on {}: {}", ls.st->uri(), why));
  }
  // A dead libvirtd is noticed within ~20 s even when no call is in flight.
  virConnectSetKeepAlive(c, 5, 3);
  auto lvl = ls.st->host_level();
  spdlog::info("connected to {} (host level {}); sweeping running domains", ls.st->uri(),
               lvl ? commands::to_string(*lvl) : std::string("unknown: 1.0.0"));
  ls.e->sweep();
}

}  // namespace

void run_libvirt(libvirt_stack& st, engine& e, int stop_fd, const std::function<void()>& tick) {
  loop_state ls;
  ls.st = &st;
  ls.e = &e;
  ls.tick = &tick;
  int hw = virEventAddHandle(stop_fd, VIR_EVENT_HANDLE_READABLE, stop_cb, &ls, nullptr);
  int tw = virEventAddTimeout(1000, tick_cb, &ls, nullptr);
  if (hw < 0 || tw < 0) throw std::runtime_error("libvirt's event loop refused a handle");

  auto backoff = std::chrono::seconds(1);
  auto next_try = clock::now();
  int failures = 0;
  while (!ls.quit) {
    if (ls.lost) {
      spdlog::warn("lost the connection to {} ({}); reconnecting", st.uri(), close_reason_text(ls.close_reason));
      unregister(ls);
      st.disconnect();
      e.drop_pending();
      ls.lost = false;
      backoff = std::chrono::seconds(1);
      next_try = clock::now() + backoff;
    }
    if (!st.connected() && clock::now() >= next_try) {
      try {
        attach_to_libvirt(ls);
        if (failures) spdlog::info("{} reachable again after {} failed attempts", st.uri(), failures);
        failures = 0;
        backoff = std::chrono::seconds(1);
      } catch (const std::exception& ex) {
        ++failures;
        // One clear line per streak, then one per back-off step at most every 30 s.
        if (failures == 1)
          spdlog::error("{}; retrying with back-off (1 s doubling to 30 s)", ex.what());
        else
          spdlog::info("still cannot reach {} (attempt {}), next try in {} s", st.uri(), failures,
                       backoff.count());
        next_try = clock::now() + backoff;
        backoff = std::min(backoff * 2, std::chrono::seconds(30));
      }
    }
    if (virEventRunDefaultImpl() < 0) {
      spdlog::error("libvirt's event loop failed: {}", last_error().second);
      break;
    }
  }
  unregister(ls);
  st.disconnect();
  virEventRemoveHandle(hw);
  virEventRemoveTimeout(tw);
}

}  // namespace fleetga::host::attach
