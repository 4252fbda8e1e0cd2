#pragma once
// Typed decoding of a command's "arguments" object with qemu-ga's semantics
// (qapi/qobject-input-visitor.c + the generated qmp_marshal_* functions):
//
//  * declared members are visited in schema order (the order of arg_schema<T>::members) and
//    the first failure wins;
//  * members nobody visited are reported only after every declared member validated
//    ("Parameter 'foo' is unexpected"); with several, the one GLib's hash table iterates
//    first (emulated) is reported;
//  * texts (full_name = QEMU's dotted/indexed path, e.g. "vcpus[0].online", "arg[0]"):
//      missing required member      Parameter '<full_name>' is missing
//      unvisited member             Parameter '<full_name>' is unexpected
//      wrong JSON type              Invalid parameter type for '<full_name>', expected: integer
//                                   (also string, boolean, number, array, object)
//      int out of int64, 1.5, 1e3   Invalid parameter type for '<full_name>', expected: integer
//      uint64 not an integer        Parameter '<full_name>' expects uint64
//                                   (negative int64 values are accepted, wrapped, like QEMU)
//      bad enum value               Parameter '<name>' does not accept value '<value>'
//      alternate, no branch         Invalid parameter type for '<name>', expected: <TypeName>
//    The last two use the member's own name, not the full path, exactly like QEMU (inside a
//    list the name is "null").
//  * an optional member that is present with the value null is a type error (QEMU too).
//
// Usage (handler side):
//
//   enum class whence_enum { set, cur, end };
//   template <> struct fleetga::protocol::enum_schema<whence_enum> {
//     static constexpr std::array<std::string_view, 3> names{"set", "cur", "end"};
//     static constexpr std::string_view type_name = "QGASeek";
//   };
//   struct whence_alt : fleetga::protocol::alternate<std::int64_t, whence_enum> {
//     using alternate::alternate;
//   };
//   template <> struct fleetga::protocol::alternate_schema<whence_alt> {
//     static constexpr std::string_view type_name = "GuestFileWhence";
//   };
//   struct seek_args { std::int64_t handle = 0; std::int64_t offset = 0; whence_alt whence; };
//   template <> struct fleetga::protocol::arg_schema<seek_args> {
//     static constexpr auto members = std::make_tuple(
//         member("handle", &seek_args::handle), member("offset", &seek_args::offset),
//         member("whence", &seek_args::whence));
//   };
//   ...
//   seek_args a;
//   if (auto e = decode_args(req.arguments, a)) return *e;   // GenericError
//   if (auto* n = std::get_if<std::int64_t>(&a.whence)) ...   // alternate is a std::variant
//
// Supported member types: bool, std::int64_t, std::uint64_t, double, std::string, enums with
// enum_schema, std::optional<X> (optional member), std::vector<X>, nested structs with
// arg_schema, alternate<...> (branch chosen by JSON type like QEMU: number -> the
// int64/uint64/double branch, string -> string/enum branch, true/false -> bool, object ->
// struct, array -> vector). An alternate is itself a std::variant.
//
// Padding assumption: `json` must be followed by at least input_padding (64) readable bytes
// (it is a view into the framer's buffer or the request parser's padded scratch), because it is
// re-iterated in place with simdjson on-demand. The decoder does not keep any view into
// `json` after decode_args returns: strings are copied into the output.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/error.hpp"

namespace fleetga::protocol {

template <class S, class F>
struct member_t {
  std::string_view name;
  F S::*ptr;
};
template <class S, class F>
constexpr member_t<S, F> member(std::string_view n, F S::*p) {
  return {n, p};
}

// Specialise with `static constexpr auto members = std::make_tuple(member(...), ...);` listing
// the members in schema order.
template <class T>
struct arg_schema;
// Specialise for an enum: `static constexpr std::array<std::string_view, N> names{...};`
// (index == enum value) and `static constexpr std::string_view type_name = "...";`.
template <class E>
struct enum_schema;

template <class... Alts>
struct alternate : std::variant<Alts...> {
  using std::variant<Alts...>::variant;
  std::variant<Alts...>& as_variant() noexcept { return *this; }
  const std::variant<Alts...>& as_variant() const noexcept { return *this; }
};
// Specialise for a named alternate: `static constexpr std::string_view type_name = "...";`
template <class A>
struct alternate_schema;

// A command without arguments: any member is unexpected.
struct no_args {};
template <>
struct arg_schema<no_args> {
  static constexpr auto members = std::tuple<>{};
};

namespace args_detail {

struct node;  // one parsed JSON value, defined in args.cpp

enum class jkind : std::uint8_t { null, boolean, number, string, array, object };

// The type-erased cursor the templates below drive; all of it lives in args.cpp (simdjson,
// the flat value tree, QEMU's full_name() and the unvisited-member bookkeeping).
class ctx {
 public:
  ctx() = default;
  ctx(const ctx&) = delete;
  ctx& operator=(const ctx&) = delete;
  ~ctx();

  // Parses `json` (empty == {}); false + error on malformed input (cannot happen for text
  // that came through the framer).
  bool load(std::string_view json);
  const node* root() const noexcept;
  bool failed() const noexcept { return failed_; }
  error take_error() { return generic(std::move(err_)); }

  static jkind kind(const node* v) noexcept;

  // Structs. `name` == nullptr for the root and for list elements.
  bool begin_struct(const node* v, const std::string_view* name);
  // The member `name` of the struct being visited, or nullptr. consume=true marks it visited.
  const node* member(std::string_view name, bool consume);
  void missing(std::string_view name);
  bool end_struct();  // unexpected-member check, then pop

  // Lists: returns false (error set) if `v` is not an array.
  bool begin_list(const node* v, const std::string_view* name, std::size_t& count);
  // Marks element i as the current (consumed) one. Elements are visited in order (i = 0, 1,
  // ...): each call steps once from the previous element, so a list costs O(n).
  const node* list_elem(std::size_t i);
  void end_list();

  // Scalars; on failure the error is recorded and false returned.
  bool get(const node* v, const std::string_view* name, bool& out);
  bool get(const node* v, const std::string_view* name, std::int64_t& out);
  bool get(const node* v, const std::string_view* name, std::uint64_t& out);
  bool get(const node* v, const std::string_view* name, double& out);
  bool get(const node* v, const std::string_view* name, std::string& out);
  // Enum: index into `names`.
  bool get_enum(const node* v, const std::string_view* name, const std::string_view* names,
                std::size_t count, std::size_t& index);
  void alternate_mismatch(const std::string_view* name, std::string_view type_name);

  struct state;  // implementation detail (args.cpp)

 private:
  state* s_ = nullptr;
  bool failed_ = false;
  std::string err_;
  void fail(std::string msg);
};

// Test hook: sibling steps list_elem() has taken on this thread (linear decoding: one per
// element after the first, whatever the list's length).
std::uint64_t list_steps() noexcept;

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <class... A>
std::variant<A...>* variant_base(alternate<A...>* p) {
  return p;
}
template <class T>
concept is_alternate = requires(T* p) { args_detail::variant_base(p); };
template <class T>
concept has_arg_schema = requires { arg_schema<T>::members; };
template <class T>
concept has_enum_schema = std::is_enum_v<T> && requires { enum_schema<T>::names; };

// Which JSON kind a (non-alternate) type accepts, for alternate branch selection.
template <class T>
constexpr jkind kind_of() {
  if constexpr (std::is_same_v<T, bool>) return jkind::boolean;
  else if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint64_t> ||
                     std::is_same_v<T, double>)
    return jkind::number;
  else if constexpr (std::is_same_v<T, std::string> || has_enum_schema<T>) return jkind::string;
  else if constexpr (is_vector<T>::value) return jkind::array;
  else return jkind::object;
}

template <class T>
bool decode_value(ctx& c, const node* v, const std::string_view* name, T& out);

template <class S>
bool decode_members(ctx& c, S& out) {
  return std::apply(
      [&](const auto&... m) {
        bool ok = true;
        // Schema order, stop at the first failure.
        ((ok = ok && [&] {
            using F = std::remove_reference_t<decltype(out.*(m.ptr))>;
            F& field = out.*(m.ptr);
            if constexpr (is_optional<F>::value) {
              const node* v = c.member(m.name, false);
              if (!v) return true;
              return decode_value(c, v, &m.name, field.emplace());
            } else {
              const node* v = c.member(m.name, false);
              if (!v) {
                c.missing(m.name);
                return false;
              }
              return decode_value(c, v, &m.name, field);
            }
          }()),
         ...);
        return ok;
      },
      arg_schema<S>::members);
}

template <class Var, std::size_t I = 0>
bool decode_alternate(ctx& c, const node* v, const std::string_view* name, Var& var,
                      std::string_view type_name) {
  if constexpr (I == std::variant_size_v<Var>) {
    c.alternate_mismatch(name, type_name);
    return false;
  } else {
    using B = std::variant_alternative_t<I, Var>;
    if (kind_of<B>() == ctx::kind(v)) return decode_value(c, v, name, var.template emplace<I>());
    return decode_alternate<Var, I + 1>(c, v, name, var, type_name);
  }
}

template <class T>
bool decode_value(ctx& c, const node* v, const std::string_view* name, T& out) {
  if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::int64_t> ||
                std::is_same_v<T, std::uint64_t> || std::is_same_v<T, double> ||
                std::is_same_v<T, std::string>) {
    if (name) c.member(*name, true);
    return c.get(v, name, out);
  } else if constexpr (has_enum_schema<T>) {
    if (name) c.member(*name, true);
    constexpr auto& names = enum_schema<T>::names;
    std::size_t idx = 0;
    if (!c.get_enum(v, name, names.data(), names.size(), idx)) return false;
    out = static_cast<T>(idx);
    return true;
  } else if constexpr (is_vector<T>::value) {
    if (name) c.member(*name, true);
    std::size_t n = 0;
    if (!c.begin_list(v, name, n)) return false;
    out.clear();
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const node* e = c.list_elem(i);
      if (!decode_value(c, e, nullptr, out.emplace_back())) return false;
    }
    c.end_list();
    return true;
  } else if constexpr (is_alternate<T>) {
    // QEMU's start_alternate peeks without consuming; the chosen branch consumes.
    return decode_alternate(c, v, name, *args_detail::variant_base(&out),
                            alternate_schema<T>::type_name);
  } else {
    static_assert(has_arg_schema<T>, "argument type needs an arg_schema specialisation");
    if (name) c.member(*name, true);
    if (!c.begin_struct(v, name)) return false;
    if (!decode_members(c, out)) return false;
    return c.end_struct();
  }
}

}  // namespace args_detail

// Decodes `json` (the raw arguments object text as given by request::arguments, padded by
// >= 64 readable bytes; empty view == no arguments given, treated as {}) into `out`.
// Returns the GenericError on failure; `out` is then partially filled.
template <class T>
std::optional<error> decode_args(std::string_view json, T& out) {
  static_assert(args_detail::has_arg_schema<T>, "decode_args needs an arg_schema<T>");
  args_detail::ctx c;
  if (!c.load(json)) return c.take_error();
  if (!args_detail::decode_value(c, c.root(), nullptr, out)) return c.take_error();
  return std::nullopt;
}

}  // namespace fleetga::protocol
