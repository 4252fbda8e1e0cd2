#!/bin/sh
# The architecture's include rules, checked on every test run:
#   protocol/ never includes Asio, platform/, commands/ or agent/;
#   platform/ never includes protocol/, commands/ or agent/ (nor Asio);
#   commands/ never includes agent/ nor Asio (handlers don't touch the wire);
#   every .cpp of protocol/, platform/, commands/, agent/ and the C++ tests is named in its
#   CMakeLists.txt (no file(GLOB));
#   tools/ (fleetga-host) includes protocol/ and, of commands/, only the header-only schema
#   (commands/schema.hpp, commands/support_level.hpp): never platform/, agent/ or a handler.
root=${1:-.}
fail=0
check() {
  dir=$1; pattern=$2
  hits=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($pattern)" "$root/$dir"/*.hpp "$root/$dir"/*.cpp 2>/dev/null)
  if [ -n "$hits" ]; then
    echo "layering violation in $dir/:"; echo "$hits"; fail=1
  fi
}
check protocol 'boost/|asio|platform/|commands/|agent/'
check platform 'boost/asio|asio|protocol/|commands/|agent/'
check commands 'boost/asio|asio|agent/'
for dir in tools tools/attach; do
  hits=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*\"(platform/|agent/|commands/)" \
           "$root/$dir"/*.hpp "$root/$dir"/*.cpp 2>/dev/null |
         grep -vE "\"commands/(schema|support_level)\.hpp\"")
  if [ -n "$hits" ]; then
    echo "layering violation in $dir/:"; echo "$hits"; fail=1
  fi
done
# Sources are listed by name (no file(GLOB)): a .cpp its folder's CMakeLists.txt doesn't name
# would silently not be built.
for dir in protocol platform commands agent tests/unit tests/agent; do
  for f in "$root/$dir"/*.cpp; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    lists="$root/$dir/CMakeLists.txt"
    case $dir in tests/*) lists="$root/tests/CMakeLists.txt" ;; esac
    if ! grep -q "[[:space:]/]$name\b" "$lists"; then
      echo "source not listed: $dir/$name is not named in ${lists#$root/}"; fail=1
    fi
  done
done
[ $fail = 0 ] && echo "layering ok"
exit $fail
