// libFuzzer target for the accounts parsers (platform/accounts): utmp records, a
// systemd-logind session file, passwd(5) text and the authorized_keys line split.
// Invariants: no crash or sanitizer report; utmp gives at most one user per record, each
// name at most 32 bytes and listed once; a logind session has a user; the key file's lines
// join back to the same bytes (g_strsplit / g_strjoinv); the work stays within the budget.
// (The g_strstrip of each key line lives in commands/accounts.cpp's anonymous namespace and
// is reached through fuzz_dispatch's guest-ssh-* only once a user is found.)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "budget.hpp"
#include "common.hpp"
#include "platform/accounts.hpp"

namespace fp = fleetga::platform;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fleetga::fuzz::budget::start();

  fp::user_collector users;
  fp::collect_utmp(text, users);
  FUZZ_CHECK(users.users().size() <= size / 384);
  std::set<std::string> names;
  for (const auto& u : users.users()) {
    FUZZ_CHECK(u.name.size() <= 32);
    FUZZ_CHECK(names.insert(u.name).second);
  }

  if (auto s = fp::parse_logind_session(text)) {
    FUZZ_CHECK(!s->user.empty() || text.find("USER=") != std::string_view::npos);
    (void)fp::is_login_session(*s);
  }

  // The user looked up: the first line up to ':' (so an entry for it can exist).
  const std::string_view name = text.substr(0, std::min(text.find(':'), text.find('\n')));
  if (auto p = fp::find_passwd_entry(text, name)) (void)p->home.size();

  auto lines = fp::split_lines(text);
  FUZZ_CHECK(text.empty() == lines.empty());
  FUZZ_CHECK(fp::join_lines(lines) == text);

  // Measured up to ~145 regions per byte (a line per byte: split, joined back).
  fleetga::fuzz::budget::check(size, 0, 500, 0, 20000);
  return 0;
}
