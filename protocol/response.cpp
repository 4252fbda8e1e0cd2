#include "protocol/response.hpp"

#include "protocol/json_writer.hpp"

namespace fleetga::protocol {

// Member orders are QEMU's hash order (qmp_error_response / qmp_dispatch insert "error" or
// "return" first, then "id"): return before id, id before error, class before desc.
static_assert(in_qemu_order(std::array<std::string_view, 2>{"return", "id"},
                            std::array<std::string_view, 2>{"return", "id"}));
static_assert(in_qemu_order(std::array<std::string_view, 2>{"error", "id"},
                            std::array<std::string_view, 2>{"id", "error"}));
static_assert(in_qemu_order(std::array<std::string_view, 2>{"class", "desc"},
                            std::array<std::string_view, 2>{"class", "desc"}));

std::size_t begin_return(std::string& out, bool delimited) {
  std::size_t mark = out.size();
  if (delimited) out += '\xff';
  out += "{\"return\": ";
  return mark;
}

void end_return(std::string& out, std::string_view id) {
  if (id.empty()) {
    out += "}\n";
    return;
  }
  out += ", \"id\": ";
  out += id;
  out += "}\n";
}

void write_error(std::string& out, const error& e, std::string_view id) { write_error(out, e.cls, e.desc, id); }

void write_error(std::string& out, error_class cls, std::string_view desc, std::string_view id) {
  if (id.empty()) {
    out += "{\"error\": {\"class\": \"";
  } else {
    out += "{\"id\": ";
    out += id;
    out += ", \"error\": {\"class\": \"";
  }
  out += class_name(cls);
  out += "\", \"desc\": ";
  json_writer::append_string(out, desc);
  out += "}}\n";
}

}  // namespace fleetga::protocol
