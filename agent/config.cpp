#include "agent/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "platform/keyfile.hpp"

namespace fleetga::agent {
namespace {

// GLib writes its messages in the locale's charset and qemu-ga never calls setlocale(), so
// the curly quotes of GLib's texts come out as '?' (verified on 7.2, also under C.UTF-8).
constexpr std::string_view lq = "\xE2\x80\x9C", rq = "\xE2\x80\x9D";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string cannot_interpret(std::string_view key) {
  return std::string("Key file contains key ").append(lq).append(key).append(rq).append(
      " which has a value that cannot be interpreted.");
}

// g_key_file_get_string().
std::optional<std::string> get_string(const std::string& raw, std::string_view key, std::string& err) {
  if (!platform::valid_utf8(raw)) {
    err = std::string("Key file contains key ").append(lq).append(key).append(rq).append(" with value ")
              .append(lq).append(raw).append(rq).append(" which is not UTF-8");
    return std::nullopt;
  }
  auto v = keyfile_unescape(raw);
  if (!v) err = cannot_interpret(key);
  return v;
}

// g_key_file_get_boolean(): "true"/"false"/"1"/"0", trailing white space ignored.
std::optional<bool> get_bool(const std::string& raw, std::string_view key, std::string& err) {
  std::string_view v = raw;
  while (!v.empty() && is_space(v.back())) v.remove_suffix(1);
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  err = cannot_interpret(key);
  return std::nullopt;
}

// g_key_file_get_integer() (fleetga's fsfreeze-timeout), seconds >= 0.
std::optional<long> get_seconds(const std::string& raw, std::string_view key, std::string& err) {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(raw.c_str(), &end, 10);
  bool ok = !raw.empty() && end != raw.c_str() && (*end == '\0' || is_space(*end)) && errno == 0 &&
            v >= 0 && v <= INT_MAX;
  if (ok) return v;
  err = std::string("Key file contains key ").append(lq).append(key).append(rq).append(" in group ")
            .append(lq).append("general").append(rq).append(" which has a value that cannot be interpreted.");
  return std::nullopt;
}

// qemu-ga's split_list(str, ","): g_strsplit keeps empty pieces, each piece is prepended.
void append_list(std::vector<std::string>& list, std::string_view s) {
  std::vector<std::string> pieces;
  if (!s.empty()) {
    for (;;) {
      auto comma = s.find(',');
      pieces.emplace_back(s.substr(0, comma));
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
  }
  list.insert(list.end(), pieces.rbegin(), pieces.rend());
}

std::string join(const std::vector<std::string>& list) {
  std::string out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i) out += ',';
    out += list[i];
  }
  return out;
}

}  // namespace

void append_rpc_list(std::vector<std::string>& list, std::string_view arg) { append_list(list, arg); }

std::string keyfile_escape(std::string_view value) {
  std::string out;
  bool leading = true;
  for (char c : value) {
    switch (c) {
      case ' ': out += leading ? "\\s" : " "; break;
      case '\t': out += leading ? "\\t" : "\t"; break;
      case '\n': out += "\\n"; leading = false; break;
      case '\r': out += "\\r"; leading = false; break;
      case '\\': out += "\\\\"; leading = false; break;
      default: out += c; leading = false; break;
    }
  }
  return out;
}

std::optional<std::string> keyfile_unescape(std::string_view raw) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\') {
      out += raw[i];
      continue;
    }
    if (++i == raw.size()) return std::nullopt;  // escape character at end of line
    switch (raw[i]) {
      case 's': out += ' '; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      default: return std::nullopt;  // invalid escape sequence
    }
  }
  return out;
}

std::optional<std::string> load_config(const std::string& path, bool required, options& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT && !required) return std::nullopt;
    return std::string(std::strerror(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return std::string("Not a regular file");
  }
  std::string data;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return std::string("Failed to read from file ").append(lq).append(path).append(rq).append(": ")
          .append(std::strerror(e));
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);

  std::string err;
  auto kf = platform::keyfile::parse(data, err);
  if (!kf) return err;

  auto str = [&](const char* key, auto&& assign) -> bool {
    const std::string* raw = kf->get("general", key);
    if (!raw) return true;
    auto v = get_string(*raw, key, err);
    if (!v) return false;
    assign(std::move(*v));
    return true;
  };
  auto boolean = [&](const char* key, bool& dst, bool only_set) -> bool {
    const std::string* raw = kf->get("general", key);
    if (!raw) return true;
    auto v = get_bool(*raw, key, err);
    if (!v) return false;
    if (!only_set || *v) dst = *v;
    return true;
  };
  // qemu-ga's order of reading (the first bad value is the one reported).
  bool ok = boolean("daemon", out.daemonize, false) &&
            str("method", [&](std::string v) { out.method = std::move(v); }) &&
            str("path", [&](std::string v) { out.path = std::move(v); }) &&
            str("logfile", [&](std::string v) { out.logfile = std::move(v); }) &&
            str("pidfile", [&](std::string v) { out.pidfile = std::move(v); }) &&
            str("fsfreeze-hook", [&](std::string v) { out.fsfreeze_hook = std::move(v); }) &&
            str("statedir", [&](std::string v) { out.statedir = std::move(v); }) &&
            boolean("verbose", out.verbose, true) &&  // verbose=false cannot undo anything
            boolean("retry-path", out.retry_path, false) &&
            str("block-rpcs", [&](std::string v) { append_list(out.block_rpcs, v); }) &&
            str("allow-rpcs", [&](std::string v) { append_list(out.allow_rpcs, v); }) &&
            str("support-level", [&](std::string v) { out.support_level = std::move(v); });
  if (ok) {
    if (const std::string* raw = kf->get("general", "fsfreeze-timeout")) {
      auto v = get_seconds(*raw, "fsfreeze-timeout", err);
      if (!v) return err;
      out.fsfreeze_timeout = *v;
      out.fsfreeze_timeout_given = true;
    }
    return std::nullopt;
  }
  return err;
}

std::string dump_config(const options& o) {
  std::string s = "[general]\n";
  auto kv = [&](std::string_view k, std::string_view v) {
    s.append(k).append("=").append(keyfile_escape(v)).append("\n");
  };
  auto kb = [&](std::string_view k, bool v) { kv(k, v ? "true" : "false"); };
  kb("daemon", o.daemonize);
  kv("method", o.method);
  if (o.path) kv("path", *o.path);
  if (o.logfile) kv("logfile", *o.logfile);
  kv("pidfile", o.pidfile);
  if (o.fsfreeze_hook) kv("fsfreeze-hook", *o.fsfreeze_hook);
  kv("statedir", o.statedir);
  kb("verbose", o.verbose);
  kb("retry-path", o.retry_path);
  kv("block-rpcs", join(o.block_rpcs));
  kv("allow-rpcs", join(o.allow_rpcs));
  if (o.support_level) kv("support-level", *o.support_level);
  if (o.fsfreeze_timeout_given) kv("fsfreeze-timeout", std::to_string(o.fsfreeze_timeout));
  return s;
}

}  // namespace fleetga::agent
