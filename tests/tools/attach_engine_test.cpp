// fleetga-host attach's engine against a fake host stack: what it sends, how it reads the
// answers, coalescing, retries, and that a hung agent holds up no other domain. Also the
// translation of libvirt's events and errors (libvirt.hpp) without a libvirtd.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tools/attach/engine.hpp"
#include "tools/attach/libvirt.hpp"

namespace fleetga::host::attach {
namespace {

using namespace std::chrono_literals;

agent_reply ok(std::string ret) {
  agent_reply r;
  r.st = agent_reply::status::ok;
  r.ret = std::move(ret);
  return r;
}
agent_reply err(std::string cls, std::string desc) {
  agent_reply r;
  r.st = agent_reply::status::error_reply;
  r.error_class = std::move(cls);
  r.desc = std::move(desc);
  return r;
}
agent_reply status(agent_reply::status s, std::string desc = {}) {
  agent_reply r;
  r.st = s;
  r.desc = std::move(desc);
  return r;
}

// A fleetga-like agent: remembers the level it was given and reports it in guest-info.
struct fake_agent {
  std::mutex mu;
  std::string level_json = R"({"major": 1, "minor": 0, "micro": 0})";
  bool has_level = true;      // false: qemu-ga (CommandNotFound, no support_level)
  bool frozen = false;
  std::vector<std::string> seen;
  std::function<agent_reply(const std::string&)> override;  // scripted answers

  agent_reply answer(const std::string& json) {
    std::lock_guard lk(mu);
    seen.push_back(json);
    if (override) return override(json);
    if (json.find("guest-set-support-level") != std::string::npos) {
      if (!has_level) return err("CommandNotFound", "The command guest-set-support-level has not been found");
      auto a = json.find("\"major\":");
      auto b = json.find("\"minor\":");
      auto c = json.find("\"micro\":");
      level_json = fmt::format(R"({{"major": {}, "minor": {}, "micro": {}}})", std::stoi(json.substr(a + 8)),
                               std::stoi(json.substr(b + 8)), std::stoi(json.substr(c + 8)));
      return ok("{}");
    }
    if (json.find("guest-info") != std::string::npos) {
      if (!has_level) return ok(R"({"version": "7.2.19", "supported_commands": []})");
      return ok(R"({"version": "10.2.0", "supported_commands": [], "support_level": )" + level_json + "}");
    }
    if (json.find("guest-fsfreeze-status") != std::string::npos) return ok(frozen ? R"("frozen")" : R"("thawed")");
    return err("CommandNotFound", "unexpected");
  }
};

struct fake_stack : host_stack {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<fake_agent>> agents;
  std::map<std::string, std::string> xml;
  std::map<std::string, std::vector<agent_reply::status>> open_failures;  // consumed in order
  std::optional<support_level> level = support_level{7, 2, 0};
  std::atomic<int> opens = 0;

  std::shared_ptr<fake_agent> add(const std::string& id) {
    std::lock_guard lk(mu);
    auto a = std::make_shared<fake_agent>();
    agents[id] = a;
    return a;
  }
  std::string kind() const override { return "fake"; }
  std::optional<support_level> host_level() override { return level; }
  std::vector<std::string> connected_domains() override {
    std::lock_guard lk(mu);
    std::vector<std::string> ids;
    for (auto& [id, a] : agents) ids.push_back(id);
    return ids;
  }
  std::optional<domain_facts> facts(const std::string& id) override {
    std::lock_guard lk(mu);
    if (!agents.count(id)) return std::nullopt;
    return domain_facts{"dom-" + id, "uuid-" + id, xml[id]};
  }
  struct link : agent_link {
    std::shared_ptr<fake_agent> a;
    agent_reply command(const std::string& json, std::chrono::milliseconds) override { return a->answer(json); }
  };
  std::unique_ptr<agent_link> open(const std::string& id, std::chrono::milliseconds, agent_reply& why) override {
    ++opens;
    std::lock_guard lk(mu);
    auto& f = open_failures[id];
    if (!f.empty()) {
      why = status(f.front(), "scripted");
      f.erase(f.begin());
      return nullptr;
    }
    auto it = agents.find(id);
    if (it == agents.end()) {
      why = status(agent_reply::status::gone);
      return nullptr;
    }
    auto l = std::make_unique<link>();
    l->a = it->second;
    return l;
  }
};

engine_options fast() {
  engine_options o;
  o.timeout = 200ms;
  o.retry_first = 5ms;
  o.retry_max = 20ms;
  o.max_attempts = 3;
  o.concurrency = 4;
  return o;
}

// Collects results; waits for a count (bounded: a broken engine fails, never hangs).
struct results {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<attach_result> all;
  void add(const attach_result& r) {
    std::lock_guard lk(mu);
    all.push_back(r);
    cv.notify_all();
  }
  bool wait_for(std::size_t n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 30s, [&] { return all.size() >= n; });
  }
  std::vector<attach_result> snapshot() {
    std::lock_guard lk(mu);
    return all;
  }
};

TEST(AttachEngine, SetsTheHostLevelAndConfirmsIt) {
  fake_stack hs;
  auto a = hs.add("a");
  engine e(hs, {}, fast());
  results rs;
  e.on_result([&](const attach_result& r) { rs.add(r); });
  e.agent_connected("a");
  ASSERT_TRUE(e.wait_idle(30s));
  auto all = rs.snapshot();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].result, outcome::confirmed);
  EXPECT_EQ(all[0].asked, (support_level{7, 2, 0}));
  EXPECT_EQ(all[0].confirmed, (support_level{7, 2, 0}));
  EXPECT_EQ(all[0].agent_version, "10.2.0");
  EXPECT_EQ(all[0].name, "dom-a");
  ASSERT_EQ(a->seen.size(), 2u);
  EXPECT_EQ(a->seen[0], R"({"execute":"guest-set-support-level","arguments":{"major":7,"minor":2,"micro":0}})");
  EXPECT_EQ(a->seen[1], R"({"execute":"guest-info"})");
}

TEST(AttachEngine, UnknownHostVersionAsksForTheMinimum) {
  fake_stack hs;
  hs.level.reset();
  hs.add("a");
  engine e(hs, {}, fast());
  e.agent_connected("a");
  ASSERT_TRUE(e.wait_idle(30s));
  auto r = e.last("a");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result, outcome::confirmed);
  EXPECT_EQ(r->asked, (support_level{1, 0, 0}));
}

TEST(AttachEngine, AnAgentWithoutSupportLevelIsLeftAloneAfterOneTry) {
  fake_stack hs;
  auto a = hs.add("old");
  a->has_level = false;
  engine e(hs, {}, fast());
  e.agent_connected("old");
  ASSERT_TRUE(e.wait_idle(30s));
  auto r = e.last("old");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result, outcome::unsupported);
  EXPECT_EQ(r->agent_version, "7.2.19");
  EXPECT_EQ(r->attempt, 1);
  EXPECT_EQ(hs.opens.load(), 1);  // no retry loop
  EXPECT_EQ(e.stats().retries, 0u);
}

TEST(AttachEngine, AFleetgaThatRefusesForNowIsRetriedNotLeftAlone) {
  // Frozen, or the command blocked with -b: the same error text as an old agent's, but
  // guest-info shows a support level, so it is no "unsupported" agent.
  fake_stack hs;
  auto a = hs.add("frozen");
  int sets = 0;
  auto inner = std::make_shared<fake_agent>();
  inner->frozen = true;
  a->override = [&sets, inner](const std::string& json) {
    if (json.find("guest-fsfreeze-status") != std::string::npos) {
      auto r = inner->answer(json);
      inner->frozen = false;  // thawed before the retry
      return r;
    }
    if (json.find("guest-set-support-level") != std::string::npos && sets++ == 0)
      return err("CommandNotFound", "Command guest-set-support-level has been disabled: the command is not allowed");
    return inner->answer(json);
  };
  engine e(hs, {}, fast());
  results rs;
  e.on_result([&](const attach_result& r) { rs.add(r); });
  e.agent_connected("frozen");
  ASSERT_TRUE(rs.wait_for(2));
  ASSERT_TRUE(e.wait_idle(30s));
  auto all = rs.snapshot();
  EXPECT_EQ(all[0].result, outcome::failed);
  EXPECT_EQ(all.back().result, outcome::confirmed);
}

TEST(AttachEngine, AFleetgaThatBlocksTheCommandIsLeftAlone) {
  // The guest's owner blocked guest-set-support-level (-b): no retry loop.
  fake_stack hs;
  auto a = hs.add("blocked");
  auto inner = std::make_shared<fake_agent>();
  a->override = [inner](const std::string& json) {
    if (json.find("guest-set-support-level") != std::string::npos)
      return err("CommandNotFound", "Command guest-set-support-level has been disabled: the command is not allowed");
    return inner->answer(json);
  };
  engine e(hs, {}, fast());
  e.agent_connected("blocked");
  ASSERT_TRUE(e.wait_idle(30s));
  auto r = e.last("blocked");
  EXPECT_EQ(r->result, outcome::unsupported);
  EXPECT_NE(r->detail.find("blocked by the guest's configuration"), std::string::npos);
  EXPECT_EQ(hs.opens.load(), 1);
}

TEST(AttachEngine, ATimeoutOfAVanishedDomainIsGone) {
  // libvirt answers a call cut short by a destroy with "not available for now" (a timeout).
  fake_stack hs;
  auto a = hs.add("a");
  a->override = [&](const std::string&) {
    std::lock_guard lk(hs.mu);
    hs.agents.erase("a");
    return status(agent_reply::status::timeout, "Guest agent not available for now");
  };
  engine e(hs, {}, fast());
  e.agent_connected("a");
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(e.last("a")->result, outcome::gone);
  EXPECT_EQ(hs.opens.load(), 1);
}

TEST(AttachEngine, AHungAgentHoldsUpNoOtherDomain) {
  fake_stack hs;
  auto hung = hs.add("hung");
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  hung->override = [&](const std::string&) {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return release; });  // like an agent that answers only after its timeout
    return status(agent_reply::status::timeout, "no answer");
  };
  for (int i = 0; i < 10; ++i) hs.add("ok" + std::to_string(i));
  auto opt = fast();
  opt.max_attempts = 1;
  engine e(hs, {}, opt);
  results rs;
  e.on_result([&](const attach_result& r) { rs.add(r); });
  e.agent_connected("hung");
  for (int i = 0; i < 10; ++i) e.agent_connected("ok" + std::to_string(i));
  // All ten others finish while the hung one still holds its worker.
  ASSERT_TRUE(rs.wait_for(10));
  for (auto& r : rs.snapshot()) EXPECT_EQ(r.result, outcome::confirmed) << r.id;
  {
    std::lock_guard lk(m);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(e.last("hung")->result, outcome::timeout);
}

TEST(AttachEngine, BusyIsRetriedWithBackOffUntilItWorks) {
  fake_stack hs;
  hs.add("a");
  hs.open_failures["a"] = {agent_reply::status::busy, agent_reply::status::timeout};
  engine e(hs, {}, fast());
  results rs;
  e.on_result([&](const attach_result& r) { rs.add(r); });
  e.agent_connected("a");
  ASSERT_TRUE(rs.wait_for(3));
  ASSERT_TRUE(e.wait_idle(30s));
  auto all = rs.snapshot();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].result, outcome::busy);
  EXPECT_EQ(all[1].result, outcome::timeout);
  EXPECT_EQ(all[2].result, outcome::confirmed);
  EXPECT_EQ(all[2].attempt, 3);
  EXPECT_EQ(e.stats().retries, 2u);
}

TEST(AttachEngine, RetriesStopAtMaxAttemptsUntilTheNextEvent) {
  fake_stack hs;
  hs.add("a");
  hs.open_failures["a"] = std::vector<agent_reply::status>(10, agent_reply::status::busy);
  engine e(hs, {}, fast());
  e.agent_connected("a");
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(hs.opens.load(), 3);
  e.agent_connected("a");  // a new event starts a new round
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(hs.opens.load(), 6);
}

TEST(AttachEngine, NotConnectedWaitsForTheNextEventInLibvirtMode) {
  fake_stack hs;
  hs.add("a");
  hs.open_failures["a"] = {agent_reply::status::not_connected};
  engine e(hs, {}, fast());
  e.agent_connected("a");
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(e.last("a")->result, outcome::not_connected);
  EXPECT_EQ(hs.opens.load(), 1);
}

TEST(AttachEngine, NotConnectedIsRetriedInSocketMode) {
  fake_stack hs;
  hs.add("a");
  hs.open_failures["a"] = {agent_reply::status::not_connected};
  auto opt = fast();
  opt.retry_not_connected = true;
  engine e(hs, {}, opt);
  e.agent_connected("a");
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(e.last("a")->result, outcome::confirmed);
}

TEST(AttachEngine, ADomainGoneMidAttachIsForgotten) {
  fake_stack hs;
  auto a = hs.add("a");
  engine* eng = nullptr;
  a->override = [&](const std::string&) {
    eng->domain_gone("a");
    return status(agent_reply::status::gone, "Domain not found");
  };
  engine e(hs, {}, fast());
  eng = &e;
  results rs;
  e.on_result([&](const attach_result& r) { rs.add(r); });
  e.agent_connected("a");
  ASSERT_TRUE(rs.wait_for(1));
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(rs.snapshot()[0].result, outcome::gone);
  EXPECT_FALSE(e.last("a"));
  EXPECT_EQ(hs.opens.load(), 1);
}

TEST(AttachEngine, FactsOfAVanishedDomainEndTheAttach) {
  fake_stack hs;
  engine e(hs, {}, fast());
  e.agent_connected("nowhere");
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(e.last("nowhere")->result, outcome::gone);
  EXPECT_EQ(hs.opens.load(), 0);
}

TEST(AttachEngine, EventsDuringAnAttachRunItOnceMoreNotOncePerEvent) {
  fake_stack hs;
  auto a = hs.add("a");
  std::mutex m;
  std::condition_variable cv;
  bool entered = false, release = false;
  int calls = 0;
  auto inner = std::make_shared<fake_agent>();
  a->override = [&, inner](const std::string& json) {
    if (calls++ == 0) {
      std::unique_lock lk(m);
      entered = true;
      cv.notify_all();
      cv.wait(lk, [&] { return release; });
    }
    return inner->answer(json);
  };
  engine e(hs, {}, fast());
  e.agent_connected("a");
  {
    std::unique_lock lk(m);
    ASSERT_TRUE(cv.wait_for(lk, 30s, [&] { return entered; }));
  }
  for (int i = 0; i < 5; ++i) e.agent_connected("a");
  {
    std::lock_guard lk(m);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(hs.opens.load(), 2);
}

TEST(AttachEngine, AGuestInfoWithAnotherLevelIsAMismatch) {
  fake_stack hs;
  auto a = hs.add("a");
  a->override = [](const std::string& json) {
    if (json.find("guest-info") != std::string::npos)
      return ok(R"({"version": "10.2.0", "support_level": {"major": 1, "minor": 0, "micro": 0}})");
    return ok("{}");
  };
  engine e(hs, {}, fast());
  e.agent_connected("a");
  ASSERT_TRUE(e.wait_idle(30s));
  auto r = e.last("a");
  EXPECT_EQ(r->result, outcome::mismatch);
  EXPECT_EQ(r->confirmed, (support_level{1, 0, 0}));
  EXPECT_EQ(hs.opens.load(), 3);  // retried: the agent may have been replaced meanwhile
}

TEST(AttachEngine, GarbageFromGuestInfoIsReported) {
  fake_stack hs;
  auto a = hs.add("a");
  a->override = [](const std::string& json) {
    if (json.find("guest-info") != std::string::npos) return ok("[1, 2");
    return ok("{}");
  };
  auto opt = fast();
  opt.max_attempts = 1;
  engine e(hs, {}, opt);
  e.agent_connected("a");
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(e.last("a")->result, outcome::garbage);
}

TEST(AttachEngine, SweepAttachesEveryConnectedDomain) {
  fake_stack hs;
  for (int i = 0; i < 20; ++i) hs.add("d" + std::to_string(i));
  engine e(hs, {}, fast());
  e.sweep();
  ASSERT_TRUE(e.wait_idle(30s));
  auto s = e.stats();
  EXPECT_EQ(s.attaches, 20u);
  EXPECT_EQ(s.by_outcome[static_cast<int>(outcome::confirmed)], 20u);
  EXPECT_NE(e.stats_line().find("confirmed=20"), std::string::npos);
}

TEST(AttachEngine, ResultLineHasTheDocumentedShape) {
  attach_result r;
  r.id = "u";
  r.name = "web-1";
  r.uuid = "6f1c3b9e-0000-4000-8000-000000000001";
  r.agent_version = "10.2.0";
  r.asked = support_level{7, 2, 0};
  r.confirmed = support_level{7, 2, 0};
  r.latency = 12345us;
  r.since_event = 40100us;
  r.result = outcome::confirmed;
  EXPECT_EQ(format_result(r),
            "attach domain=web-1 uuid=6f1c3b9e-0000-4000-8000-000000000001 agent=\"10.2.0\" asked=7.2.0 "
            "confirmed=7.2.0 latency_ms=12.3 since_event_ms=40.1 outcome=confirmed attempt=1");
  r.name = "odd name\x1b[2J";
  r.agent_version.clear();
  r.confirmed.reset();
  r.result = outcome::failed;
  r.detail = "line\nbreak \"q\"";
  EXPECT_EQ(format_result(r),
            "attach domain=\"odd name\\x1b[2J\" uuid=6f1c3b9e-0000-4000-8000-000000000001 agent=- asked=7.2.0 "
            "confirmed=- latency_ms=12.3 since_event_ms=40.1 outcome=failed attempt=1 detail=\"line\\x0abreak \\\"q\\\"\"");
}

TEST(AttachLibvirt, AgentLifecycleEventsDriveTheEngine) {
  fake_stack hs;
  hs.add("u1");
  hs.open_failures["u1"] = {agent_reply::status::busy};
  auto opt = fast();
  opt.retry_first = 10min;  // a retry that would wait: the disconnect must drop it
  opt.retry_max = 10min;
  engine e(hs, {}, opt);
  on_agent_lifecycle(e, "u1", VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED,
                     VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_CHANNEL);
  EXPECT_FALSE(e.wait_idle(500ms));  // busy: a retry is pending
  on_agent_lifecycle(e, "u1", VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED,
                     VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_CHANNEL);
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(hs.opens.load(), 1);
  on_agent_lifecycle(e, "u1", VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED,
                     VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_DOMAIN_STARTED);
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(e.last("u1")->result, outcome::confirmed);
}

TEST(AttachLibvirt, DomainLifecycleEvents) {
  fake_stack hs;
  hs.add("u1");
  engine e(hs, {}, fast());
  on_domain_lifecycle(e, "u1", VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_MIGRATED);
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(e.last("u1")->result, outcome::confirmed);
  on_domain_lifecycle(e, "u1", VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_UNPAUSED);  // no attach
  on_domain_lifecycle(e, "u1", VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);    // the agent event will come
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(hs.opens.load(), 1);
  on_domain_lifecycle(e, "u1", VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_RESTORED);
  ASSERT_TRUE(e.wait_idle(30s));
  EXPECT_EQ(hs.opens.load(), 2);
  on_domain_lifecycle(e, "u1", VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED);
  EXPECT_FALSE(e.last("u1"));
}

TEST(AttachLibvirt, ErrorsAreClassified) {
  using S = agent_reply::status;
  auto r = classify_libvirt_error(VIR_ERR_INTERNAL_ERROR,
                                  "internal error: unable to execute QEMU agent command 'guest-set-support-level': "
                                  "The command guest-set-support-level has not been found");
  EXPECT_EQ(r.st, S::error_reply);
  EXPECT_EQ(r.desc, "The command guest-set-support-level has not been found");
  EXPECT_TRUE(means_unsupported(r));
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_AGENT_UNRESPONSIVE,
                                   "Guest agent is not responding: QEMU guest agent is not connected").st,
            S::not_connected);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_AGENT_UNRESPONSIVE,
                                   "Guest agent is not responding: Guest agent disappeared while executing command").st,
            S::not_connected);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_AGENT_UNRESPONSIVE,
                                   "Guest agent is not responding: Guest agent not available for now").st,
            S::timeout);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_AGENT_UNRESPONSIVE, "Guest agent is not responding: timeout").st,
            S::timeout);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_NO_DOMAIN, "Domain not found").st, S::gone);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_OPERATION_INVALID, "Requested operation is not valid: domain is not running").st,
            S::gone);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_OPERATION_TIMEOUT, "Timed out during operation: cannot acquire state change lock").st,
            S::busy);
  EXPECT_EQ(classify_libvirt_error(VIR_ERR_RPC, "End of file while reading data").st, S::failed);
  EXPECT_FALSE(means_unsupported(err("GenericError", "Parameter 'major' is missing")));
}

}  // namespace
}  // namespace fleetga::host::attach
