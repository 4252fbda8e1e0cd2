#include "tools/session.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include "protocol/base64.hpp"
#include "tools/common.hpp"

namespace fleetga::host {

void byte_splitter::emit(std::vector<item>& out, bool json) {
  if (!cur_.empty()) out.push_back({json, std::move(cur_)});
  cur_.clear();
  depth_ = 0;
  in_str_ = esc_ = junk_ = false;
}

void byte_splitter::feed(std::string_view data, std::vector<item>& out) {
  for (char ch : data) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0xFF) {  // never inside valid JSON: ends whatever was pending
      cur_ += ch;
      emit(out, false);
      continue;
    }
    if (depth_ > 0) {
      cur_ += ch;
      if (in_str_) {
        if (esc_) esc_ = false;
        else if (ch == '\\') esc_ = true;
        else if (ch == '"') in_str_ = false;
      } else if (ch == '"') {
        in_str_ = true;
      } else if (ch == '{' || ch == '[') {
        ++depth_;
      } else if (ch == '}' || ch == ']') {
        if (--depth_ == 0) emit(out, true);
      }
      continue;
    }
    const bool ws = ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t';
    if (ch == '{' || ch == '[') {
      if (junk_) emit(out, false);
      cur_ += ch;
      depth_ = 1;
      continue;
    }
    if (ws) {
      if (junk_) emit(out, false);
      continue;
    }
    junk_ = true;
    cur_ += ch;
  }
}

void byte_splitter::flush(std::vector<item>& out) { emit(out, false); }

std::string session_line(double t, int conn, std::string_view dir, const byte_splitter::item& it) {
  std::string line = fmt::format("{{\"t\": {:.6f}, \"conn\": {}, \"dir\": \"{}\"", t, conn, dir);
  if (it.is_json) {
    thread_local simdjson::dom::parser p;
    simdjson::dom::element e;
    if (!p.parse(it.bytes).get(e)) {
      std::string mini(it.bytes.size() + 1, '\0');
      std::size_t n = 0;
      if (!simdjson::minify(it.bytes.data(), it.bytes.size(), mini.data(), n)) {
        mini.resize(n);
        line += ", \"json\": ";
        line += mini;
        line += "}";
        return line;
      }
    }
  }
  std::string b64;
  protocol::base64_encode(it.bytes, b64);
  line += ", \"b64\": \"";
  line += b64;
  line += "\"}";
  return line;
}

}  // namespace fleetga::host
