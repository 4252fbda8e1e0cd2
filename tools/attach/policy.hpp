#pragma once
// Which support level a domain gets (no I/O but load_config(): the caller brings the domain
// XML and the host version).
//
// Default: the host's QEMU version (the support level is "generally analogous to the host
// QEMU version"), lowered where the domain cannot do what a command needs (a domain whose XML
// disables suspend-to-mem gets a level at which guest-suspend-ram/-hybrid stay disabled),
// then the operator's config: per host and per domain (name, UUID or glob) `level =` replaces
// the computed level, `cap =` bounds it, `skip = true` leaves the domain alone.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tools/attach/levels.hpp"

namespace fleetga::host::attach {

// A config file error: "FILE:LINE: reason" (what()), with the parts kept. Line 0 is the file
// as a whole ("FILE: reason": cannot open it, too big); no file name: "line LINE: reason".
struct config_error : std::runtime_error {
  config_error(std::string file, int line, const std::string& reason);
  std::string file;
  int line;
};

// What the config says for one scope (the host, or one [domain "PATTERN"] section).
struct scope_settings {
  std::optional<support_level> level;  // replaces the computed level
  std::optional<support_level> cap;    // the level never exceeds it
  std::optional<bool> skip;            // true: never touch this domain's agent ([host]: every
                                       // agent but those whose [domain] says false)
  int line = 0;                        // where the section starts (for --explain)
  int level_line = 0, cap_line = 0, skip_line = 0;  // where each key is, 0: not given
};

struct domain_rule {
  std::string pattern;  // glob (fnmatch) matched against the domain's name and its UUID
  scope_settings settings;
};

// The operator's config file (packaging/fleetga-attach.conf is the documented sample):
//
//   # comment                     ; comment
//   [host]                         at most once
//   level = 7.2                    the host's level, instead of the detected QEMU version
//   cap = 9.0.0                    no domain gets more (not even by its own `level`)
//   skip = true                    leave agents alone unless their [domain] says skip = false
//   timeout = 5                    agent timeout per command, seconds (1..300)
//   concurrency = 8                attaches in flight at once (1..256)
//   [domain "web-*"]               name or UUID, glob; the first matching section wins
//                                  (keys: level, cap, skip)
//   cap = 1.0.0
//   [domain "6f1c3b9e-..."]
//   level = 1.1.0
//   skip = true
//
// Unknown sections or keys, malformed levels, duplicate keys, a second [host], a pattern given
// twice and lines that are not `key = value` are errors naming the file and line (nothing is
// guessed). Comments are whole lines ("cap = 1.0 # no" is a bad value); blanks around '=' and
// at line ends are optional; booleans are true/false, yes/no, 1/0 (any case); a UTF-8 BOM and
// CRLF line ends are accepted.
struct attach_config {
  std::string path;  // where it was read from ("" when none)
  scope_settings host;
  int timeout_s = 5;
  int concurrency = 8;
  std::vector<domain_rule> domains;
};

attach_config parse_config(std::string_view text, const std::string& path);
// Reads and parses `path`; a missing or unreadable file, or one over 1 MiB, is a config_error
// (line 0, with strerror's text).
attach_config load_config(const std::string& path);

// What the host stack knows about a domain.
struct domain_facts {
  std::string name;  // libvirt domain name; socket mode: the socket's file name without .qga
  std::string uuid;  // empty when unknown (socket mode)
  std::string xml;   // libvirt: the live domain XML; empty when unknown
};

// What the domain XML says the domain can do (absent elements: QEMU's defaults, i.e. can).
// Only <pm> children of the root <domain> count (not one in a comment, CDATA or <metadata>);
// either quote style, any attribute order. No XML library: a small tag scanner.
struct domain_caps {
  bool s3 = true;  // <pm><suspend-to-mem enabled='no'/></pm> -> false
  bool s4 = true;  // <pm><suspend-to-disk enabled='no'/></pm> -> false
};
domain_caps parse_domain_caps(std::string_view xml);

struct decision {
  bool skip = false;                 // config says leave this domain alone
  support_level level;               // what to ask for
  std::vector<std::string> reasons;  // in order, how it was reached (for logs and --explain)
};

// host_level: the host's QEMU version, or nullopt when it could not be found (then 1.0.0,
// said in the reasons). The steps, each adding a reason line when it changes something (the
// first line always says where the level started):
//   1. host_level (unknown: 1.0.0)
//   2. [host] level replaces it (a line even when equal: "(the same)"), [host] cap bounds it
//   3. the domain XML: suspend-to-mem disabled -> at most highest_level_without(
//      "guest-suspend-ram"), the line naming the commands that disables (suspend-to-disk
//      likewise for guest-suspend-disk, which needs 1.0.0 today: no change)
//   4. the first [domain] whose pattern matches the name (case-sensitive) or the UUID (any
//      case): level replaces everything above, except that the [host] cap still bounds it
//      (the host cap is about the host: a domain cannot raise it); then its cap bounds it
//   5. below 1.0.0: raised to 1.0.0
//   6. skip: the domain's skip, else the host's; its line comes last, so a skipped domain's
//      last reason says why (`level` is then what it would get without skip).
decision resolve(const attach_config& cfg, std::optional<support_level> host_level,
                 const domain_facts& dom);

// --explain: the decision, its reasons and every command with the level it needs and whether
// the decided level enables it (the ones needing more than 1.0.0 as a table, the rest
// counted). Several lines, each ending in '\n'.
std::string explain(const decision& d, const domain_facts& dom);

// QEMU's version number as virConnectGetVersion reports it (major * 1e6 + minor * 1e3 + micro)
// as a level; nullopt when a part does not fit 0..65535 or v is 0.
std::optional<support_level> level_from_version_number(unsigned long long v);
// `qemu-system-x86_64 --version`'s first line ("QEMU emulator version 7.2.15 (Debian ...)",
// "QEMU PC emulator version 0.12.1 (qemu-kvm-0.12.1.2)"): the line starts with "QEMU", the
// number follows " version " and ends the line or is followed by a blank, '(' or ','.
// nullopt for anything else, a part over 65535, or 0.0.0.
std::optional<support_level> level_from_qemu_banner(std::string_view text);

}  // namespace fleetga::host::attach
