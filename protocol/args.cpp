// Argument decoding: simdjson on-demand builds a flat value tree of the arguments object (all
// strings stay views into the parser's string buffer until copied into the output), then the
// templates in args.hpp walk it with QEMU's qobject-input-visitor rules.
#include "protocol/args.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "protocol/json_writer.hpp"

namespace fleetga::protocol {

namespace detail {
// One on-demand parser per thread, shared with request parsing (request.cpp): nothing either
// side hands out points into the parser's memory once its call returns.
simdjson::ondemand::parser& shared_parser();
// Releases the parser's buffers when a large message made them grow (bounded memory).
void trim_shared_parser();
}  // namespace detail

namespace args_detail {

namespace {
enum class num_kind : std::uint8_t { i64, u64, dbl };
}  // namespace

struct node {
  jkind k = jkind::null;
  num_kind nk = num_kind::i64;
  bool b = false;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double d = 0;
  std::string_view str;    // decoded string value
  std::string_view key;    // decoded member name when the parent is an object
  std::uint32_t end = 0;   // index one past this node's subtree
  std::uint32_t count = 0; // children (containers)
};

namespace {

// Classifies a JSON number token the way QEMU's parser does: int64 if it fits, else uint64
// if it fits and is non-negative, else double (strtod). Anything with . e E is a double.
void classify_number(std::string_view tok, node& n) {
  while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t' || tok.back() == '\n' ||
                          tok.back() == '\r'))
    tok.remove_suffix(1);
  const char* b = tok.data();
  const char* e = b + tok.size();
  bool is_float = tok.find_first_of(".eE") != std::string_view::npos;
  if (!is_float) {
    std::int64_t i = 0;
    auto r = std::from_chars(b, e, i);
    if (r.ec == std::errc{} && r.ptr == e) {
      n.nk = num_kind::i64;
      n.i = i;
      return;
    }
    if (tok.front() != '-') {
      std::uint64_t u = 0;
      r = std::from_chars(b, e, u);
      if (r.ec == std::errc{} && r.ptr == e) {
        n.nk = num_kind::u64;
        n.u = u;
        return;
      }
    }
  }
  n.nk = num_kind::dbl;
  double d = 0;
  auto r = std::from_chars(b, e, d);
  if (r.ec != std::errc{}) {
    std::string s(tok);  // overflow/underflow: strtod's HUGE_VAL / denormal semantics
    d = std::strtod(s.c_str(), nullptr);
  }
  n.d = d;
}

// GLib 2.74 GHashTable (g_str_hash, open addressing, quadratic probing, in-place resize),
// reduced to what qobject_input_check_struct() observes: the first key iteration yields.
class glib_set {
 public:
  void insert(std::string_view key, std::uint32_t id) {
    std::uint32_t h = str_hash(key);
    std::uint32_t idx = (h * 11u) % mod_;
    std::uint32_t step = 0;
    std::int64_t tomb = -1;
    while (hashes_[idx] != 0) {
      if (hashes_[idx] == 1 && tomb < 0) tomb = idx;
      step++;
      idx = (idx + step) & mask_;
    }
    if (tomb >= 0) idx = static_cast<std::uint32_t>(tomb);
    bool was_tomb = hashes_[idx] == 1;
    hashes_[idx] = h;
    ids_[idx] = id;
    ++nnodes_;
    if (!was_tomb) {
      ++noccupied_;
      maybe_resize();
    }
  }
  void remove(std::uint32_t id) {
    for (std::size_t i = 0; i < hashes_.size(); ++i)
      if (hashes_[i] >= 2 && ids_[i] == id) {
        hashes_[i] = 1;  // tombstone
        --nnodes_;
        maybe_resize();
        return;
      }
  }
  // The id iteration yields first, or -1.
  std::int64_t first() const {
    for (std::size_t i = 0; i < hashes_.size(); ++i)
      if (hashes_[i] >= 2) return ids_[i];
    return -1;
  }

 private:
  static std::uint32_t str_hash(std::string_view key) {
    std::uint32_t h = 5381;
    for (char c : key) {
      if (c == '\0') break;
      h = (h << 5) + h + static_cast<std::uint32_t>(static_cast<std::int32_t>(static_cast<signed char>(c)));
    }
    return h < 2 ? 2 : h;
  }
  void maybe_resize() {
    std::uint32_t size = static_cast<std::uint32_t>(hashes_.size());
    if ((size > nnodes_ * 4 && size > 8) || size <= noccupied_ + noccupied_ / 16) resize();
  }
  void set_shift(unsigned shift) {
    static constexpr std::uint32_t prime_mod[] = {
        1,         2,         3,         7,         13,        31,         61,        127,
        251,       509,       1021,      2039,      4093,      8191,       16381,     32749,
        65521,     131071,    262139,    524287,    1048573,   2097143,    4194301,   8388593,
        16777213,  33554393,  67108859,  134217689, 268435399, 536870909,  1073741789, 2147483647};
    mod_ = prime_mod[shift];
    mask_ = (1u << shift) - 1;
  }
  void resize() {
    std::size_t old_size = hashes_.size();
    std::uint32_t n = static_cast<std::uint32_t>(nnodes_ * 1.333);
    unsigned shift = 0;
    while (n) {
      ++shift;
      n >>= 1;
    }
    if (shift < 3) shift = 3;
    set_shift(shift);
    std::size_t new_size = std::size_t{1} << shift;
    if (new_size > old_size) {
      hashes_.resize(new_size, 0);
      ids_.resize(new_size, 0);
    }
    std::vector<bool> moved(std::max(new_size, old_size), false);
    for (std::size_t i = 0; i < old_size; ++i) {
      std::uint32_t node_hash = hashes_[i];
      if (node_hash < 2) {
        hashes_[i] = 0;
        continue;
      }
      if (moved[i]) continue;
      hashes_[i] = 0;
      std::uint32_t id = ids_[i];
      for (;;) {
        std::uint32_t step = 0;
        std::uint32_t hv = (node_hash * 11u) % mod_;
        while (moved[hv]) {
          step++;
          hv = (hv + step) & mask_;
        }
        moved[hv] = true;
        std::uint32_t replaced = hashes_[hv];
        hashes_[hv] = node_hash;
        std::uint32_t replaced_id = ids_[hv];
        ids_[hv] = id;
        if (replaced < 2) break;
        node_hash = replaced;
        id = replaced_id;
      }
    }
    if (new_size < old_size) {
      hashes_.resize(new_size);
      ids_.resize(new_size);
    }
    noccupied_ = nnodes_;
  }

  std::vector<std::uint32_t> hashes_ = std::vector<std::uint32_t>(8, 0);
  std::vector<std::uint32_t> ids_ = std::vector<std::uint32_t>(8, 0);
  std::uint32_t mod_ = 7, mask_ = 7;
  std::uint32_t nnodes_ = 0, noccupied_ = 0;
};

}  // namespace

struct frame_t {
  const node* obj = nullptr;
  bool has_name = false;
  std::string_view name;
  bool is_list = false;
  std::uint32_t index = 0;           // list: current element
  const node* elem = nullptr;        // list: that element (the next one is one step away)
  std::vector<std::uint8_t> visited; // object: per child
};

struct ctx::state {
  std::vector<node> nodes;
  std::vector<frame_t> stack;
  std::size_t depth = 0;  // frames in use (stack keeps its capacity)
};

namespace {
thread_local ctx::state* tls_free_state = nullptr;
thread_local std::uint64_t tls_list_steps = 0;  // list_steps()

bool build(simdjson::ondemand::value v, std::vector<node>& nodes, std::string_view key) {
  std::size_t me = nodes.size();
  nodes.emplace_back();
  nodes[me].key = key;
  simdjson::ondemand::json_type t;
  if (v.type().get(t)) return false;
  switch (t) {
    case simdjson::ondemand::json_type::object: {
      nodes[me].k = jkind::object;
      simdjson::ondemand::object o;
      if (v.get_object().get(o)) return false;
      std::uint32_t cnt = 0;
      for (auto f : o) {
        simdjson::ondemand::field fld;
        if (std::move(f).get(fld)) return false;
        std::string_view k;
        if (fld.unescaped_key().get(k)) return false;
        if (!build(fld.value(), nodes, k)) return false;
        ++cnt;
      }
      nodes[me].count = cnt;
      break;
    }
    case simdjson::ondemand::json_type::array: {
      nodes[me].k = jkind::array;
      simdjson::ondemand::array a;
      if (v.get_array().get(a)) return false;
      std::uint32_t cnt = 0;
      for (auto e : a) {
        simdjson::ondemand::value ev;
        if (std::move(e).get(ev)) return false;
        if (!build(ev, nodes, {})) return false;
        ++cnt;
      }
      nodes[me].count = cnt;
      break;
    }
    case simdjson::ondemand::json_type::number: {
      nodes[me].k = jkind::number;
      std::string_view tok;
      tok = v.raw_json_token();
      classify_number(tok, nodes[me]);
      break;
    }
    case simdjson::ondemand::json_type::string: {
      nodes[me].k = jkind::string;
      std::string_view s;
      if (v.get_string().get(s)) return false;
      nodes[me].str = s;
      break;
    }
    case simdjson::ondemand::json_type::boolean: {
      nodes[me].k = jkind::boolean;
      bool b = false;
      if (v.get_bool().get(b)) return false;
      nodes[me].b = b;
      break;
    }
    case simdjson::ondemand::json_type::null:
      nodes[me].k = jkind::null;
      if (!v.is_null()) return false;
      break;
  }
  nodes[me].end = static_cast<std::uint32_t>(nodes.size());
  return true;
}

// An upper bound of the values in a JSON text: every value but the first follows a '[', a ':'
// or a ','. For a large text the node vector is reserved once from it instead of growing
// through a chain of copies (a 3 MB list of 1M elements: 72 MB of nodes, not 144 MB copied).
// Strings are skipped with memchr (a 48 MB guest-file-write buffer costs next to nothing).
std::size_t max_values(std::string_view json) noexcept {
  std::size_t n = 1;
  const char* p = json.data();
  const char* const end = p + json.size();
  while (p < end) {
    const char c = *p++;
    if (c == '"') {
      // A short string ends within a few bytes (no call); a long one is skipped with memchr.
      const char* const near = end - p > 16 ? p + 16 : end;
      while (p < near && *p != '"' && *p != '\\') ++p;
      if (p < near && *p == '"') {
        ++p;
        continue;
      }
      for (;;) {  // to the closing quote: one after an even run of backslashes
        const char* q = static_cast<const char*>(std::memchr(p, '"', static_cast<std::size_t>(end - p)));
        if (!q) return n;
        std::size_t backslashes = 0;
        for (const char* b = q; b > p && b[-1] == '\\'; --b) ++backslashes;
        p = q + 1;
        if (backslashes % 2 == 0) break;
      }
    } else if (c == ',' || c == ':' || c == '[') {
      ++n;
    }
  }
  return n;
}
constexpr std::size_t reserve_from = std::size_t{64} << 10;  // bytes of arguments text

const node* first_child(const node* v) { return v + 1; }
const node* next_sibling(const node* base, const node* c) { return base + c->end; }

}  // namespace

ctx::~ctx() {
  if (!s_) return;
  detail::trim_shared_parser();  // the tree's string views die with this ctx
  if (s_->nodes.capacity() > 65536) {
    delete s_;
  } else if (!tls_free_state) {
    tls_free_state = s_;
  } else {
    delete s_;
  }
  s_ = nullptr;
}

void ctx::fail(std::string msg) {
  if (!failed_) {
    failed_ = true;
    err_ = std::move(msg);
  }
}

bool ctx::load(std::string_view json) {
  if (tls_free_state) {
    s_ = tls_free_state;
    tls_free_state = nullptr;
  } else {
    s_ = new state;
  }
  s_->nodes.clear();
  s_->depth = 0;
  if (json.empty()) {
    node n;
    n.k = jkind::object;
    n.end = 1;
    s_->nodes.push_back(n);
    return true;
  }
  if (json.size() >= reserve_from) s_->nodes.reserve(max_values(json));
  auto& parser = detail::shared_parser();
  simdjson::ondemand::document doc;
  bool ok = !parser.iterate(json.data(), json.size(), json.size() + simdjson::SIMDJSON_PADDING)
                 .get(doc);
  if (ok) {
    simdjson::ondemand::value root;
    ok = !doc.get_value().get(root) && build(root, s_->nodes, {});
  }
  if (!ok) {
    fail("JSON parse error, invalid arguments");
    return false;
  }
  return true;
}

const node* ctx::root() const noexcept { return s_->nodes.data(); }

jkind ctx::kind(const node* v) noexcept { return v->k; }

namespace {
// QEMU full_name_nth(qiv, name, 0).
std::string full_name(const ctx::state& s, const std::string_view* name) {
  std::string out;
  bool have_name = name != nullptr;
  std::string_view nm = name ? *name : std::string_view{};
  for (std::size_t d = s.depth; d-- > 0;) {
    const frame_t& so = s.stack[d];
    if (!so.is_list) {
      out.insert(0, have_name ? nm : std::string_view{"<anonymous>"});
      out.insert(out.begin(), '.');
    } else {
      out.insert(0, "[" + std::to_string(so.index) + "]");
    }
    have_name = so.has_name;
    nm = so.name;
  }
  if (have_name) {
    out.insert(0, nm);
  } else if (!out.empty() && out[0] == '.') {
    out.erase(0, 1);
  } else if (out.empty()) {
    return "<anonymous>";
  }
  return out;
}
}  // namespace

bool ctx::begin_struct(const node* v, const std::string_view* name) {
  if (v->k != jkind::object) {
    fail("Invalid parameter type for '" + full_name(*s_, name) + "', expected: object");
    return false;
  }
  if (s_->stack.size() <= s_->depth) s_->stack.emplace_back();
  frame_t& f = s_->stack[s_->depth++];
  f.obj = v;
  f.has_name = name != nullptr;
  f.name = name ? *name : std::string_view{};
  f.is_list = false;
  f.index = 0;
  f.visited.assign(v->count, 0);
  return true;
}

const node* ctx::member(std::string_view name, bool consume) {
  frame_t& f = s_->stack[s_->depth - 1];
  const node* base = s_->nodes.data();
  const node* c = first_child(f.obj);
  for (std::uint32_t i = 0; i < f.obj->count; ++i, c = next_sibling(base, c)) {
    if (c->key == name) {
      if (consume) f.visited[i] = 1;
      return c;
    }
  }
  return nullptr;
}

void ctx::missing(std::string_view name) {
  fail("Parameter '" + full_name(*s_, &name) + "' is missing");
}

bool ctx::end_struct() {
  frame_t& f = s_->stack[s_->depth - 1];
  bool any = false;
  for (auto b : f.visited) any |= !b;
  if (any) {
    // The GHashTable of unvisited keys was filled in qdict (QEMU hash) order.
    const node* base = s_->nodes.data();
    std::vector<const node*> kids;
    kids.reserve(f.obj->count);
    const node* c = first_child(f.obj);
    for (std::uint32_t i = 0; i < f.obj->count; ++i, c = next_sibling(base, c)) kids.push_back(c);
    std::vector<std::uint32_t> order(kids.size());
    for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      auto ba = qemu_bucket(kids[a]->key), bb = qemu_bucket(kids[b]->key);
      if (ba != bb) return ba < bb;
      return a > b;  // later insertion first within a bucket
    });
    glib_set h;
    for (auto i : order) h.insert(kids[i]->key, i);
    for (std::uint32_t i = 0; i < kids.size(); ++i)
      if (f.visited[i]) h.remove(i);
    std::int64_t first = h.first();
    std::string_view key = kids[static_cast<std::size_t>(first)]->key;
    fail("Parameter '" + full_name(*s_, &key) + "' is unexpected");
    return false;
  }
  --s_->depth;
  return true;
}

bool ctx::begin_list(const node* v, const std::string_view* name, std::size_t& count) {
  if (v->k != jkind::array) {
    fail("Invalid parameter type for '" + full_name(*s_, name) + "', expected: array");
    return false;
  }
  if (s_->stack.size() <= s_->depth) s_->stack.emplace_back();
  frame_t& f = s_->stack[s_->depth++];
  f.obj = v;
  f.has_name = name != nullptr;
  f.name = name ? *name : std::string_view{};
  f.is_list = true;
  f.index = 0;
  f.elem = nullptr;
  f.visited.clear();
  count = v->count;
  return true;
}

const node* ctx::list_elem(std::size_t i) {
  frame_t& f = s_->stack[s_->depth - 1];
  const node* base = s_->nodes.data();
  // Elements are visited in order: the next one is one step from the current one (a walk
  // from the first element for every index made a list of n elements cost n*(n-1)/2 steps).
  const node* c;
  std::size_t k;
  if (f.elem && i == std::size_t{f.index} + 1) {
    c = f.elem;
    k = f.index;
  } else {
    c = first_child(f.obj);
    k = 0;
  }
  for (; k < i; ++k) {
    c = next_sibling(base, c);
    ++tls_list_steps;
  }
  f.index = static_cast<std::uint32_t>(i);
  f.elem = c;
  return c;
}

std::uint64_t list_steps() noexcept { return tls_list_steps; }

void ctx::end_list() { --s_->depth; }

namespace {
std::string type_error(const ctx::state& s, const std::string_view* name, const char* what) {
  return "Invalid parameter type for '" + full_name(s, name) + "', expected: " + what;
}
}  // namespace

bool ctx::get(const node* v, const std::string_view* name, bool& out) {
  if (v->k != jkind::boolean) {
    fail(type_error(*s_, name, "boolean"));
    return false;
  }
  out = v->b;
  return true;
}

bool ctx::get(const node* v, const std::string_view* name, std::int64_t& out) {
  if (v->k != jkind::number || v->nk != num_kind::i64) {
    fail(type_error(*s_, name, "integer"));
    return false;
  }
  out = v->i;
  return true;
}

bool ctx::get(const node* v, const std::string_view* name, std::uint64_t& out) {
  if (v->k == jkind::number && v->nk == num_kind::u64) {
    out = v->u;
    return true;
  }
  if (v->k == jkind::number && v->nk == num_kind::i64) {
    out = static_cast<std::uint64_t>(v->i);  // negatives accepted, wrapped (QEMU compat)
    return true;
  }
  fail("Parameter '" + full_name(*s_, name) + "' expects uint64");
  return false;
}

bool ctx::get(const node* v, const std::string_view* name, double& out) {
  if (v->k != jkind::number) {
    fail(type_error(*s_, name, "number"));
    return false;
  }
  switch (v->nk) {
    case num_kind::i64: out = static_cast<double>(v->i); break;
    case num_kind::u64: out = static_cast<double>(v->u); break;
    case num_kind::dbl: out = v->d; break;
  }
  return true;
}

bool ctx::get(const node* v, const std::string_view* name, std::string& out) {
  if (v->k != jkind::string) {
    fail(type_error(*s_, name, "string"));
    return false;
  }
  out.assign(v->str);
  return true;
}

bool ctx::get_enum(const node* v, const std::string_view* name, const std::string_view* names,
                   std::size_t count, std::size_t& index) {
  if (v->k != jkind::string) {
    fail(type_error(*s_, name, "string"));
    return false;
  }
  for (std::size_t i = 0; i < count; ++i)
    if (names[i] == v->str) {
      index = i;
      return true;
    }
  std::string msg = "Parameter '";
  msg += name ? *name : std::string_view{"null"};
  msg += "' does not accept value '";
  msg += v->str;
  msg += '\'';
  fail(std::move(msg));
  return false;
}

void ctx::alternate_mismatch(const std::string_view* name, std::string_view type_name) {
  std::string msg = "Invalid parameter type for '";
  msg += name ? *name : std::string_view{"null"};
  msg += "', expected: ";
  msg += type_name;
  fail(std::move(msg));
}

}  // namespace args_detail
}  // namespace fleetga::protocol
