#pragma once
// fleetga-host: pieces shared by the subcommands that need no Asio (reply classification,
// latency histograms, JSON printing, the command mix), so most edits don't recompile Asio code.
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

namespace fleetga::host {

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Exit statuses shared by every subcommand.
enum exit_code : int { ok = 0, failed = 1, usage = 2, unreachable = 3 };

// An agent reply, classified cheaply. QEMU prints `return` before `id` and `id` before
// `error` (hash order, wire spec §1.3), which the fast paths rely on; anything else goes
// through simdjson.
struct reply_info {
  enum class kind : std::uint8_t { ret, error, other } type = kind::other;
  bool has_id = false;
  std::int64_t id = 0;          // the `id` member when it is an integer
  bool ret_is_int = false;
  std::int64_t ret_int = 0;     // `return` when it is an integer (sync replies)
};

// `text` must be followed by at least SIMDJSON_PADDING readable bytes (framer frames are).
reply_info classify_reply(std::string_view text, bool want_ret_int);

// The framer reports a 0xFF in the agent's output as a stray-byte error: that is how a
// client sees guest-sync-delimited's delimiter.
inline bool is_delimiter_error(std::string_view err) {
  return err.size() >= 2 && static_cast<unsigned char>(err[err.size() - 2]) == 0xFF && err.back() == '\'';
}

// Log-bucketed latency histogram (HDR style: 64 sub-buckets per power of two, < 1.6 %
// relative error), in nanoseconds. Fixed size, mergeable.
class histogram {
 public:
  static constexpr int sub_bits = 6;
  static constexpr std::size_t buckets = (64 - sub_bits + 1) << sub_bits;
  void add(std::int64_t ns);
  void merge(const histogram& o);
  std::uint64_t count() const { return n_; }
  // Value at quantile q (0..1): the upper edge of the bucket holding it.
  std::int64_t quantile(double q) const;
  std::int64_t max() const { return max_; }
  // How many values were at least `ns` (to the bucket resolution, < 1.6 %).
  std::uint64_t count_at_least(std::int64_t ns) const;
  std::int64_t min() const { return n_ ? min_ : 0; }
  double mean() const { return n_ ? static_cast<double>(sum_ / static_cast<long double>(n_)) : 0.0; }
  // The non-empty buckets as JSON, [[upper edge ns, count], ...]: runs can be merged later
  // (quantile() of a merge is the quantile of the merged runs).
  std::string json_buckets() const;

 private:
  static std::size_t index(std::uint64_t v);
  static std::int64_t upper(std::size_t idx);
  std::vector<std::uint64_t> c_ = std::vector<std::uint64_t>(buckets, 0);
  std::uint64_t n_ = 0;
  std::int64_t max_ = 0, min_ = INT64_MAX;
  long double sum_ = 0;
};

// Human-readable duration: "812ns", "34.2us", "1.25ms", "2.10s".
std::string fmt_ns(std::int64_t ns);

// JSON printing of a simdjson DOM element: compact (QEMU separators) or pretty (2 spaces).
void print_json(std::string& out, simdjson::dom::element e, bool pretty, int indent = 0);
void append_json_string(std::string& out, std::string_view s);  // standard JSON escaping

// Commands that change the system a real agent runs on. fleetga-host never sends them unless
// asked in so many words (--allow-unsafe, or a scenario that needs them with --allow-freeze).
bool is_unsafe_command(std::string_view cmd);
// Commands that answer nothing on success (success-response: false).
bool is_no_reply_command(std::string_view cmd);
// Replies whose values change from call to call: replay compares them by shape.
bool is_volatile_command(std::string_view cmd);

// One entry of a command mix. `args` is the JSON text of the arguments object, empty for
// none; sync commands get a fresh id per request instead.
struct mix_entry {
  std::string command;
  std::string args;
  double weight = 0;
};
std::vector<mix_entry> default_mix();
// "WEIGHT COMMAND [ARGS-JSON]" per line, '#' comments. Throws std::runtime_error naming the line.
std::vector<mix_entry> load_mix_file(const std::string& path);

// splitmix64: cheap, and (unlike xorshift seeded from another xorshift) generators seeded
// from consecutive outputs of one generator don't replay each other's sequences.
struct rng {
  std::uint64_t s;
  explicit rng(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

// Cumulative-weight picker over a mix.
class mix_picker {
 public:
  explicit mix_picker(const std::vector<mix_entry>& mix);
  std::size_t pick(rng& r) const;

 private:
  std::vector<double> cum_;
};

std::uint64_t random_seed();

}  // namespace fleetga::host
