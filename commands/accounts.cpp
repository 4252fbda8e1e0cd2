// The accounts family: guest-get-users (qga/commands-posix.c) and
// guest-ssh-get/add/remove-authorized-keys (qga/commands-posix-ssh.c), with qemu-ga's
// semantics and texts. Beyond qemu-ga: no utmp at all -> systemd-logind's sessions; the key
// file is replaced atomically (never half written, never briefly world-readable).
#include "commands/accounts.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "commands/state.hpp"
#include "platform/accounts.hpp"
#include "protocol/args.hpp"

namespace fleetga::commands {
namespace {

struct ssh_get_args {
  std::string username;
};
struct ssh_add_args {
  std::string username;
  std::vector<std::string> keys;
  std::optional<bool> reset;
};
struct ssh_remove_args {
  std::string username;
  std::vector<std::string> keys;
};

}  // namespace
}  // namespace fleetga::commands

namespace fleetga::protocol {
using commands::ssh_add_args;
using commands::ssh_get_args;
using commands::ssh_remove_args;
template <>
struct arg_schema<ssh_get_args> {
  static constexpr auto members = std::make_tuple(member("username", &ssh_get_args::username));
};
template <>
struct arg_schema<ssh_add_args> {
  static constexpr auto members = std::make_tuple(member("username", &ssh_add_args::username),
                                                  member("keys", &ssh_add_args::keys),
                                                  member("reset", &ssh_add_args::reset));
};
template <>
struct arg_schema<ssh_remove_args> {
  static constexpr auto members = std::make_tuple(member("username", &ssh_remove_args::username),
                                                  member("keys", &ssh_remove_args::keys));
};
}  // namespace fleetga::protocol

namespace fleetga::commands {
namespace {

// GuestUser {user, login-time, domain?} (domain: Windows only) and GuestAuthorizedKeys.
static_assert(protocol::in_qemu_order(std::array<std::string_view, 3>{"user", "login-time", "domain"},
                                      std::array<std::string_view, 2>{"login-time", "user"}));
static_assert(protocol::in_qemu_order(std::array<std::string_view, 1>{"keys"},
                                      std::array<std::string_view, 1>{"keys"}));

// QEMU keeps a NUL of a JSON string as the overlong pair C0 80 (its strings are C strings):
// that is what reaches getpwnam() and the key file.
void qemu_cstring(std::string& s) {
  if (s.find('\0') == std::string::npos) return;
  std::string t;
  t.reserve(s.size() + 8);
  for (char ch : s) {
    if (ch == '\0') t += "\xC0\x80";
    else t += ch;
  }
  s = std::move(t);
}

// check_openssh_pub_keys(): the first key starting with '#' or holding a newline.
handler_result check_keys(std::vector<std::string>& keys) {
  for (auto& k : keys) {
    qemu_cstring(k);
    if ((!k.empty() && k[0] == '#') || k.find('\n') != std::string::npos)
      return protocol::generic("invalid OpenSSH public key: '" + k + "'");
  }
  return std::nullopt;
}

// get_passwd_entry(): "failed to lookup user 'x': <g_strerror>", "Success" for a user that
// does not exist (getpwnam_r() returns 0 and no entry).
std::optional<std::string> lookup(platform::accounts& acc, const std::string& user, platform::passwd_entry& out) {
  platform::user_lookup r = acc.lookup_user(user);
  if (!r.entry) return "failed to lookup user '" + user + "': " + std::strerror(r.err);
  out = std::move(*r.entry);
  return std::nullopt;
}

// g_strstrip(): g_ascii_isspace() characters off both ends — space, \t \n \f \r, but not \v
// (GLib's table leaves it out; checked against qemu-ga 7.2).
std::string_view strip(std::string_view s) {
  auto space = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\f' || ch == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

void empty_object(call& c) {
  c.out.begin_object();
  c.out.end_object();
}

}  // namespace

namespace handlers {

// Inline on the I/O thread on purpose: utmp and logind's session files live on /run, a tmpfs
// (no disk I/O, no lock taken — see platform::read_users), so this never blocks, and a
// hand-off to the pool would cost more than the whole command (guest-get-users is in every
// management stack's polling mix).
task<handler_result> guest_get_users(call& c) {
  if (!c.args.empty()) {
    protocol::no_args a;
    if (auto e = protocol::decode_args(c.args, a)) co_return e;
  }
  platform::accounts& acc = *c.state.accounts;
  std::vector<platform::guest_user> users;
  platform::read_users(acc.utmp_path(), acc.sessions_dir(), users);
  c.out.begin_array();
  for (const auto& u : users) {
    c.out.begin_object();
    c.out.key("login-time");
    c.out.number(u.login_time);
    c.out.key("user");
    c.out.string(u.name);
    c.out.end_object();
  }
  c.out.end_array();
  co_return std::nullopt;
}

task<handler_result> guest_ssh_get_authorized_keys(call& c) {
  ssh_get_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  qemu_cstring(a.username);
  platform::accounts& acc = *c.state.accounts;

  std::vector<std::string> keys;
  std::optional<std::string> err = co_await offload(c.state.pool, [&]() -> std::optional<std::string> {
    platform::passwd_entry p;
    if (auto e = lookup(acc, a.username, p)) return e;
    platform::authorized_keys_file file(p);
    if (auto e = file.open_dir(false)) return "failed to read '" + file.path() + "': " + *e;
    std::string text;
    bool refused = false;
    if (auto f = file.read(platform::authorized_keys_max, text, refused))
      return "failed to read '" + file.path() + "': " + f->message;
    for (const auto& line : platform::split_lines(text)) {
      std::string_view k = strip(line);
      if (k.empty() || k[0] == '#') continue;
      keys.emplace_back(k);
    }
    return std::nullopt;
  });
  if (err) co_return protocol::generic(std::move(*err));

  c.out.begin_object();
  c.out.key("keys");
  c.out.begin_array();
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) c.out.string(*it);  // QAPI_LIST_PREPEND
  c.out.end_array();
  c.out.end_object();
  co_return std::nullopt;
}

task<handler_result> guest_ssh_add_authorized_keys(call& c) {
  ssh_add_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  if (auto e = check_keys(a.keys)) co_return e;
  qemu_cstring(a.username);
  const bool reset = a.reset.value_or(false);
  platform::accounts& acc = *c.state.accounts;

  std::optional<std::string> err = co_await offload(c.state.pool, [&]() -> std::optional<std::string> {
    platform::passwd_entry p;
    if (auto e = lookup(acc, a.username, p)) return e;
    platform::authorized_keys_file file(p);
    // ~/.ssh made when missing (qemu-ga makes it after its read fails, with the same result).
    if (auto e = file.open_dir(true)) return e;

    std::vector<std::string> lines;
    if (!reset) {
      std::string text;
      bool refused = false;
      if (auto f = file.read(platform::authorized_keys_max, text, refused)) {
        // qemu-ga ignores read errors here and starts from an empty file; a file too large
        // for us to read must not be replaced by the new keys alone, and a refused one (a
        // link, not the user's) is not replaced at all.
        if (f->err == EFBIG || refused) return "failed to read '" + file.path() + "': " + f->message;
      } else {
        lines = platform::split_lines(text);
      }
    }
    for (const auto& k : a.keys)
      if (std::find(lines.begin(), lines.end(), k) == lines.end()) lines.push_back(k);
    return file.replace(platform::join_lines(lines));
  });
  if (err) co_return protocol::generic(std::move(*err));
  empty_object(c);
  co_return std::nullopt;
}

task<handler_result> guest_ssh_remove_authorized_keys(call& c) {
  ssh_remove_args a;
  if (auto e = protocol::decode_args(c.args, a)) co_return e;
  if (auto e = check_keys(a.keys)) co_return e;
  qemu_cstring(a.username);
  platform::accounts& acc = *c.state.accounts;

  std::optional<std::string> err = co_await offload(c.state.pool, [&]() -> std::optional<std::string> {
    platform::passwd_entry p;
    if (auto e = lookup(acc, a.username, p)) return e;
    platform::authorized_keys_file file(p);
    if (auto e = file.open_dir(false)) return "failed to read '" + file.path() + "': " + *e;
    if (!file.exists()) return std::nullopt;  // nothing to remove: success
    std::string text;
    bool refused = false;
    if (auto f = file.read(platform::authorized_keys_max, text, refused))
      return "failed to read '" + file.path() + "': " + f->message;
    std::vector<std::string> kept;
    for (auto& line : platform::split_lines(text))
      if (std::find(a.keys.begin(), a.keys.end(), line) == a.keys.end()) kept.push_back(std::move(line));
    // Rewritten (owner and mode reset) even when nothing matched, as qemu-ga does.
    return file.replace(platform::join_lines(kept));
  });
  if (err) co_return protocol::generic(std::move(*err));
  empty_object(c);
  co_return std::nullopt;
}

}  // namespace handlers
}  // namespace fleetga::commands
