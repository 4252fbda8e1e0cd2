#!/bin/sh
# The architecture's include rules, checked on every test run:
#   protocol/ never includes Asio, platform/, commands/ or agent/;
#   platform/ never includes protocol/, commands/ or agent/ (nor Asio);
#   commands/ never includes agent/ nor Asio (handlers don't touch the wire).
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
[ $fail = 0 ] && echo "layering ok"
exit $fail
