// Option values shared by fleetga-host and fleetga-host-attach.
#include <cstdlib>
#include <string>

#include "tools/subcommands.hpp"

namespace fleetga::host {

double parse_seconds(const std::string& v, const std::string& opt) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(d >= 0) || d > 1e7) throw usage_error(opt + ": expected seconds, got '" + v + "'");
  return d;
}

long long parse_count(const std::string& v, const std::string& opt) {
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < 0) throw usage_error(opt + ": expected a count, got '" + v + "'");
  return n;
}

}  // namespace fleetga::host
