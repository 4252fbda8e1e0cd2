#pragma once
// Replies described like arguments (protocol/args.hpp's arg_schema): a reply_schema<T> lists
// the members of a QAPI struct once, in the schema's order (qga/qapi-schema.json), and
// write_reply() writes them in the order QEMU prints them — its QDict hash order, computed at
// compile time by qemu_print_order() — so the order is stated once and never by hand.
//
//   template <> struct protocol::reply_schema<platform::load_average> {
//     static constexpr auto members = std::make_tuple(
//         protocol::reply_member("load1m", &platform::load_average::load1m), ...);
//   };
//   protocol::write_reply(c.out, load);   // {"load15m": ..., "load5m": ..., "load1m": ...}
//
// Member types: bool, signed and unsigned integers, double, std::string, std::optional<X>
// (the member is left out when empty, as QAPI does for an absent optional), std::vector<X>
// (a JSON array) and any struct with a reply_schema (a nested object). Everything is inline
// templates over json_writer: the code is what the hand-written key/value calls were.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "protocol/args.hpp"  // is_optional, is_vector
#include "protocol/json_writer.hpp"

namespace fleetga::protocol {

template <class T>
struct reply_schema;  // specialised per reply struct: static constexpr auto members

template <class T, class M>
struct reply_member_t {
  std::string_view name;
  M T::*ptr;
};

template <class T, class M>
constexpr reply_member_t<T, M> reply_member(std::string_view name, M T::*ptr) noexcept {
  return {name, ptr};
}

template <class T>
concept has_reply_schema = requires {
  reply_schema<T>::members;
};

template <class T>
void write_reply(json_writer& w, const T& v);

namespace reply_detail {

template <class V>
void write_value(json_writer& w, const V& v) {
  if constexpr (std::is_same_v<V, bool>) {
    w.boolean(v);
  } else if constexpr (std::is_integral_v<V> && std::is_signed_v<V>) {
    w.integer(static_cast<std::int64_t>(v));
  } else if constexpr (std::is_integral_v<V>) {
    w.uinteger(static_cast<std::uint64_t>(v));
  } else if constexpr (std::is_floating_point_v<V>) {
    w.number(static_cast<double>(v));
  } else if constexpr (std::is_convertible_v<const V&, std::string_view>) {
    w.string(std::string_view(v));
  } else if constexpr (protocol::args_detail::is_vector<V>::value) {
    w.begin_array();
    for (const auto& e : v) write_value(w, e);
    w.end_array();
  } else {
    static_assert(has_reply_schema<V>, "a reply member type needs a reply_schema");
    write_reply(w, v);
  }
}

template <class T>
constexpr auto member_names() {
  constexpr auto& m = reply_schema<T>::members;
  return std::apply([](const auto&... f) { return std::array<std::string_view, sizeof...(f)>{f.name...}; }, m);
}

}  // namespace reply_detail

// `v` as a JSON object, members in QEMU's printed order; absent optionals left out.
template <class T>
void write_reply(json_writer& w, const T& v) {
  static constexpr auto& members = reply_schema<T>::members;
  static constexpr std::size_t n = std::tuple_size_v<std::remove_cvref_t<decltype(members)>>;
  static constexpr auto order = qemu_print_order(reply_detail::member_names<T>());
  w.begin_object();
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (
        [&] {
          const auto& f = std::get<order[I]>(members);
          const auto& value = v.*(f.ptr);
          using V = std::remove_cvref_t<decltype(value)>;
          if constexpr (protocol::args_detail::is_optional<V>::value) {
            if (value) {
              w.key(f.name);
              reply_detail::write_value(w, *value);
            }
          } else {
            w.key(f.name);
            reply_detail::write_value(w, value);
          }
        }(),
        ...);
  }
  (std::make_index_sequence<n>{});
  w.end_object();
}

// A list of such structs: a JSON array of objects.
template <class T>
void write_reply(json_writer& w, const std::vector<T>& v) {
  reply_detail::write_value(w, v);
}

}  // namespace fleetga::protocol
