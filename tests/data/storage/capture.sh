#!/bin/sh
# Captures the pieces of this machine's sysfs that guest-get-fsinfo / guest-get-disks read into
# a fixture root: tests/data/storage/capture.sh tests/data/storage/<case>
#   proc/self/mountinfo, every /sys/block/<dev> and /sys/dev/block/<M:m> symlink (kept relative,
#   so they resolve inside the fixture), each device directory's size/uevent/dev (+ dm/name,
#   slaves/ links, partition subdirectories), the `driver` links of every ancestor device and
#   the ataN/hostN siblings qemu-ga counts, and udev's database entry when there is one.
# Only reads the live system.
set -eu
out=${1:?usage: capture.sh <fixture-root>}
mkdir -p "$out/proc/self" "$out/sys/block" "$out/sys/dev/block"
cp /proc/self/mountinfo "$out/proc/self/mountinfo"

copy_files() {  # <sysdir> <files...>
  d=$1; shift
  mkdir -p "$out$d"
  for f in "$@"; do [ -r "$d/$f" ] && cat "$d/$f" > "$out$d/$f" 2>/dev/null || true; done
}

copy_ancestors() {  # driver links and ata/host siblings from a device dir up to /sys/devices
  a=$1
  while [ "$a" != /sys/devices ] && [ "$a" != / ]; do
    mkdir -p "$out$a"
    if [ -L "$a/driver" ] && [ ! -L "$out$a/driver" ]; then ln -s "$(readlink "$a/driver")" "$out$a/driver"; fi
    case ${a##*/} in
      host[0-9]*|ata[0-9]*)
        p=${a%/*}
        for s in "$p"/host[0-9]* "$p"/ata[0-9]*; do [ -e "$s" ] && mkdir -p "$out$s"; done ;;
    esac
    a=${a%/*}
  done
}

copy_dev() {  # <resolved /sys/devices/... dir>
  real=$1
  copy_files "$real" size uevent dev removable ro
  [ -d "$real/dm" ] && copy_files "$real/dm" name uuid
  for sub in slaves holders; do
    [ -d "$real/$sub" ] || continue
    mkdir -p "$out$real/$sub"
    for l in "$real/$sub"/*; do [ -L "$l" ] && ln -sfn "$(readlink "$l")" "$out$l"; done
  done
  for p in "$real"/*; do
    [ -f "$p/partition" ] || continue
    copy_files "$p" size uevent dev partition
    mm=$(cat "$p/dev")
    ln -sfn "$(readlink "/sys/dev/block/$mm")" "$out/sys/dev/block/$mm"
  done
  mm=$(cat "$real/dev")
  ln -sfn "$(readlink "/sys/dev/block/$mm")" "$out/sys/dev/block/$mm"
  if [ -r "/run/udev/data/b$mm" ]; then
    mkdir -p "$out/run/udev/data"; cp "/run/udev/data/b$mm" "$out/run/udev/data/b$mm"
  fi
  copy_ancestors "${real%/*}"
}

for b in /sys/block/*; do
  name=${b##*/}
  ln -sfn "$(readlink "$b")" "$out/sys/block/$name"
  copy_dev "$(readlink -f "$b")"
done

# git keeps no empty directories, and an empty slaves/ means "dependencies": [] (a missing one:
# no member): a placeholder file, which no lookup mistakes for a device.
find "$out" -type d -empty -exec touch {}/.gitkeep \;
