// Request parsing: QEMU's qmp_dispatch_check_obj() + qmp_dispatch() request checks (qga: OOB
// disabled) over a simdjson on-demand walk of the framed message, in place.
//
// id policy: QEMU's qmp_dispatch() looks the id up before any check, so it is echoed for
// every failure once the top-level value is an object (and never otherwise). parse() does
// the same: req.id is filled on success and on failure whenever the input was an object.
#include "protocol/request.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <vector>

#include "protocol/json_writer.hpp"

namespace fleetga::protocol {

// The framer's padding is what simdjson reads past the end of a document: a padded_view can be
// handed to simdjson in place.
static_assert(padded_view::padding == simdjson::SIMDJSON_PADDING, "the framer pads for simdjson");

namespace detail {

namespace {
thread_local std::unique_ptr<simdjson::ondemand::parser> tls_parser;
}  // namespace

simdjson::ondemand::parser& shared_parser() {
  if (!tls_parser) tls_parser = std::make_unique<simdjson::ondemand::parser>();
  return *tls_parser;
}

// simdjson keeps ~5 bytes of index per byte of the largest document it has seen; after a
// big message (guest-file-write) give that memory back instead of keeping it per thread.
void trim_shared_parser() {
  constexpr std::size_t keep = std::size_t{4} << 20;
  if (tls_parser && tls_parser->capacity() > keep) tls_parser.reset();
}

}  // namespace detail

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view t) {
  while (!t.empty() && is_ws(t.back())) t.remove_suffix(1);
  return t;
}

// QEMU number semantics for re-serialisation: int64 if it fits, else uint64 (non-negative),
// else double printed with %.17g. Anything with . e E is a double.
void append_number(std::string& out, std::string_view tok) {
  const char* b = tok.data();
  const char* e = b + tok.size();
  if (tok.find_first_of(".eE") == std::string_view::npos) {
    std::int64_t i = 0;
    auto r = std::from_chars(b, e, i);
    if (r.ec == std::errc{} && r.ptr == e) {
      char buf[24];
      auto w = std::to_chars(buf, buf + sizeof buf, i);
      out.append(buf, w.ptr);
      return;
    }
    if (tok.front() != '-') {
      std::uint64_t u = 0;
      r = std::from_chars(b, e, u);
      if (r.ec == std::errc{} && r.ptr == e) {
        char buf[24];
        auto w = std::to_chars(buf, buf + sizeof buf, u);
        out.append(buf, w.ptr);
        return;
      }
    }
  }
  double d = 0;
  auto r = std::from_chars(b, e, d);
  if (r.ec != std::errc{}) {
    std::string s(tok);
    d = std::strtod(s.c_str(), nullptr);  // overflow -> inf, like QEMU
  }
  append_double(out, d);
}

// Re-serialises `v` as QEMU's JSON writer prints the QObject the parser built from it.
bool reserialise(simdjson::ondemand::value v, std::string& out) {
  simdjson::ondemand::json_type t;
  if (v.type().get(t)) return false;
  switch (t) {
    case simdjson::ondemand::json_type::object: {
      simdjson::ondemand::object o;
      if (v.get_object().get(o)) return false;
      struct m {
        std::uint32_t bucket;
        std::uint32_t seq;
        std::string text;  // "key": value
      };
      std::vector<m> ms;
      for (auto f : o) {
        simdjson::ondemand::field fld;
        if (std::move(f).get(fld)) return false;
        std::string_view k;
        if (fld.unescaped_key().get(k)) return false;
        m x{qemu_bucket(k), static_cast<std::uint32_t>(ms.size()), {}};
        json_writer::append_string(x.text, k);
        x.text += ": ";
        if (!reserialise(fld.value(), x.text)) return false;
        ms.push_back(std::move(x));
      }
      std::sort(ms.begin(), ms.end(), [](const m& a, const m& b) {
        return a.bucket != b.bucket ? a.bucket < b.bucket : a.seq > b.seq;
      });
      out += '{';
      for (std::size_t i = 0; i < ms.size(); ++i) {
        if (i) out += ", ";
        out += ms[i].text;
      }
      out += '}';
      return true;
    }
    case simdjson::ondemand::json_type::array: {
      simdjson::ondemand::array a;
      if (v.get_array().get(a)) return false;
      out += '[';
      bool first = true;
      for (auto e : a) {
        simdjson::ondemand::value ev;
        if (std::move(e).get(ev)) return false;
        if (!first) out += ", ";
        first = false;
        if (!reserialise(ev, out)) return false;
      }
      out += ']';
      return true;
    }
    case simdjson::ondemand::json_type::number: {
      std::string_view tok;
      tok = v.raw_json_token();
      append_number(out, trim(tok));
      return true;
    }
    case simdjson::ondemand::json_type::string: {
      std::string_view s;
      if (v.get_string().get(s)) return false;
      json_writer::append_string(out, s);
      return true;
    }
    case simdjson::ondemand::json_type::boolean: {
      bool b = false;
      if (v.get_bool().get(b)) return false;
      out += b ? "true" : "false";
      return true;
    }
    case simdjson::ondemand::json_type::null:
      out += "null";
      return v.is_null();
  }
  return false;
}

// An id token that QEMU would print back byte for byte.
bool passes_through(std::string_view tok, simdjson::ondemand::json_type t) {
  using jt = simdjson::ondemand::json_type;
  if (t == jt::boolean || t == jt::null) return true;
  if (t == jt::number) {
    std::size_t i = tok[0] == '-' ? 1 : 0;
    std::size_t digits = tok.size() - i;
    if (digits == 0 || digits > 18) return false;
    for (std::size_t k = i; k < tok.size(); ++k)
      if (tok[k] < '0' || tok[k] > '9') return false;
    return !(i == 1 && tok == "-0");
  }
  if (t == jt::string) {
    for (std::size_t k = 1; k + 1 < tok.size(); ++k) {
      unsigned char c = static_cast<unsigned char>(tok[k]);
      if (c == '\\' || c < 0x20 || c >= 0x7F) return false;
    }
    return true;
  }
  return false;
}

// Rewrites QEMU-only syntax to standard JSON: single-quoted strings, \' escapes, and the
// overlong C0 80 encoding of U+0000. The framer already validated the message.
void normalise(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size() + in.size() / 8 + 16 + input_padding);
  char quote = 0;  // 0 outside strings, else the opening quote
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (!quote) {
      if (c == '"' || c == '\'') {
        quote = c;
        out += '"';
      } else {
        out += c;
      }
      continue;
    }
    if (c == '\\' && i + 1 < in.size()) {
      char n = in[++i];
      if (n == '\'') {
        out += '\'';
      } else {
        out += '\\';
        out += n;
      }
    } else if (c == quote) {
      out += '"';
      quote = 0;
    } else if (c == '"') {  // inside a single-quoted string
      out += "\\\"";
    } else if (c == '\xC0' && i + 1 < in.size() && in[i + 1] == '\x80') {
      out += "\\u0000";
      ++i;
    } else {
      out += c;
    }
  }
  std::size_t n = out.size();
  out.append(input_padding, '\0');
  out.resize(n + input_padding);
}

}  // namespace

struct request_parser::impl {
  enum class role : std::uint8_t { execute, arguments, id, other };
  struct mem {
    role r;
    bool ok;               // execute: is a string; arguments: is an object
    std::string_view key;  // decoded; valid while the parser's document is
    std::uint32_t bucket;
    std::uint32_t seq;     // insertion (document) order
  };
  std::vector<mem> mems;
  std::string exec_scratch;
  std::string id_scratch;
  std::string norm;  // padded normalised copy of an extended message
};

request_parser::request_parser() : p_(std::make_unique<impl>()) {}
request_parser::~request_parser() = default;

namespace {

bool is_plain_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.';
}

// The shape libvirt sends for every nullary command, and most of a fleet's traffic:
// {"execute": "name"} with any JSON whitespace and a name of [A-Za-z0-9_.-]. One member that
// is a string, so none of qmp_dispatch_check_obj()'s checks can fail and there is no id:
// the request is the name, found without simdjson (about half of a guest-ping's cost).
// Anything else (other members, escapes, other bytes) returns false and takes the full path.
bool plain_execute(std::string_view t, std::string_view& name) {
  std::size_t i = 0;
  const std::size_t n = t.size();
  auto ws = [&] {
    while (i < n && is_ws(t[i])) ++i;
  };
  auto expect = [&](char c) {
    if (i == n || t[i] != c) return false;
    ++i;
    return true;
  };
  ws();
  if (!expect('{')) return false;
  ws();
  constexpr std::string_view key = "\"execute\"";
  if (t.substr(i, key.size()) != key) return false;
  i += key.size();
  ws();
  if (!expect(':')) return false;
  ws();
  if (!expect('"')) return false;
  const std::size_t start = i;
  while (i < n && is_plain_name_char(t[i])) ++i;
  if (i == start) return false;
  name = t.substr(start, i - start);
  if (!expect('"')) return false;
  ws();
  if (!expect('}')) return false;
  ws();
  return i == n;
}

}  // namespace

bool is_plain_command_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), is_plain_name_char);
}

bool request_parser::parse(const frame& message, request& req, error& err) {
  req = request{};
  if (std::string_view name; !message.extended && plain_execute(message.text, name)) {
    req.execute = name;
    return true;
  }
  // In place in the framer's buffer, or the normalised copy (padded by normalise()).
  simdjson::padded_string_view text(message.text.data(), message.text.size(),
                                    message.text.size() + padded_view::padding);
  if (message.extended) {
    normalise(message.text, p_->norm);
    text = simdjson::padded_string_view(p_->norm.data(), p_->norm.size() - input_padding, p_->norm.size());
  }
  auto fail = [&](std::string desc) {
    err = error{error_class::generic_error, std::move(desc)};
    return false;
  };

  auto& parser = detail::shared_parser();
  struct trim_guard {
    ~trim_guard() { detail::trim_shared_parser(); }
  } guard;
  simdjson::ondemand::document doc;
  if (parser.iterate(text).get(doc)) return fail("QMP input must be a JSON object");
  simdjson::ondemand::json_type t;
  if (doc.type().get(t) || t != simdjson::ondemand::json_type::object)
    return fail("QMP input must be a JSON object");
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) return fail("QMP input must be a JSON object");

  // The members as qmp_dispatch_check_obj() sees them, in document order.
  auto& mems = p_->mems;
  mems.clear();
  for (auto f : obj) {
    simdjson::ondemand::field fld;
    if (std::move(f).get(fld)) return fail("QMP input must be a JSON object");
    std::string_view k;
    if (fld.unescaped_key().get(k)) return fail("QMP input must be a JSON object");
    simdjson::ondemand::value v = fld.value();
    simdjson::ondemand::json_type vt;
    if (v.type().get(vt)) return fail("QMP input must be a JSON object");
    impl::mem m{impl::role::other, true, k, qemu_bucket(k), static_cast<std::uint32_t>(mems.size())};
    if (k == "execute") {
      m.r = impl::role::execute;
      m.key = "execute";
      m.ok = vt == simdjson::ondemand::json_type::string;
      if (m.ok) {
        std::string_view tok;
        tok = v.raw_json_token();
        tok = trim(tok);
        std::string_view inner = tok.substr(1, tok.size() - 2);
        if (inner.find('\\') == std::string_view::npos) {
          req.execute = inner;
        } else {
          std::string_view s;
          if (v.get_string().get(s)) return fail("QMP input must be a JSON object");
          p_->exec_scratch.assign(s);
          req.execute = p_->exec_scratch;
        }
      }
    } else if (k == "arguments") {
      m.r = impl::role::arguments;
      m.key = "arguments";
      m.ok = vt == simdjson::ondemand::json_type::object;
      if (m.ok) {
        simdjson::ondemand::object a;
        std::string_view raw;
        if (v.get_object().get(a) || a.raw_json().get(raw))
          return fail("QMP input must be a JSON object");
        req.arguments = trim(raw);
      }
    } else if (k == "id") {
      m.r = impl::role::id;
      m.key = "id";
      std::string_view tok;
      if (vt != simdjson::ondemand::json_type::object &&
          vt != simdjson::ondemand::json_type::array) {
        tok = v.raw_json_token();
        tok = trim(tok);
      }
      if (!tok.empty() && passes_through(tok, vt)) {
        req.id = tok;
      } else {
        p_->id_scratch.clear();
        if (!reserialise(v, p_->id_scratch)) return fail("QMP input must be a JSON object");
        req.id = p_->id_scratch;
      }
    }
    mems.push_back(m);
  }

  // QEMU iterates the request dict in hash order: bucket ascending, later insertion first.
  std::sort(mems.begin(), mems.end(), [](const impl::mem& a, const impl::mem& b) {
    return a.bucket != b.bucket ? a.bucket < b.bucket : a.seq > b.seq;
  });
  bool has_exec = false;
  for (const impl::mem& m : mems) {
    switch (m.r) {
      case impl::role::execute:
        if (!m.ok) return fail("QMP input member 'execute' must be a string");
        has_exec = true;
        break;
      case impl::role::arguments:
        if (!m.ok) return fail("QMP input member 'arguments' must be an object");
        break;
      case impl::role::id:
        break;
      case impl::role::other:
        return fail("QMP input member '" + std::string(m.key) + "' is unexpected");
    }
  }
  if (!has_exec) return fail("QMP input lacks member 'execute'");
  return true;
}

}  // namespace fleetga::protocol
