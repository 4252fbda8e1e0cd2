#!/usr/bin/env bash
# Assembles a tiny QEMU guest from Debian packages:
#   OUT_DIR/vmlinux               Debian's kernel, the plain ELF (PVH boot: no in-guest
#                                 xz decompression under TCG); OUT_DIR/vmlinuz is the bzImage
#   OUT_DIR/initrd-fleetga.img    busybox-static + fleetga + its libraries + virtio modules
#                                 (+ ext4 for an optional disk), users root and alice, the
#                                 fsfreeze hook, /sbin power wrappers, hwclock, chpasswd
#   OUT_DIR/initrd-qemu-ga.img    the same plus Debian's /usr/sbin/qemu-ga and its libraries
#                                 (only when qemu-ga is installed on this machine)
# The kernel package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` into
# BUILD_DIR/vm-cache (reused between runs); nothing is installed on this machine.
#
# usage: build-guest.sh BUILD_DIR FLEETGA_BIN OUT_DIR
set -euo pipefail
if (($# != 3)); then
  echo "usage: $0 BUILD_DIR FLEETGA_BIN OUT_DIR" >&2
  exit 2
fi
build_dir=$(realpath -m "$1")
fleetga_bin=$(realpath "$2")
out_dir=$(realpath -m "$3")
here=$(cd "$(dirname "$0")" && pwd)
cache="$build_dir/vm-cache"
mkdir -p "$cache" "$out_dir"

for tool in busybox cpio python3 ldd apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "build-guest: missing $tool" >&2; exit 3; }
done
busybox_bin=/bin/busybox
[ -x "$busybox_bin" ] || busybox_bin=$(command -v busybox)
# busybox-static: a dynamically linked busybox would need its libraries too.
if ldd "$busybox_bin" >/dev/null 2>&1; then
  echo "build-guest: $busybox_bin is not static (install busybox-static)" >&2
  exit 3
fi

# ---- the kernel -------------------------------------------------------------------------
# linux-image-amd64 is a metapackage; the versioned package is what it depends on. An
# explicit FLEETGA_VM_KERNEL_PKG pins it.
kpkg=${FLEETGA_VM_KERNEL_PKG:-}
resolve_kpkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1
}
if [ -z "$kpkg" ] && ! ls -d "$cache"/linux-image-*-amd64/boot >/dev/null 2>&1; then
  kpkg=$(resolve_kpkg)
  # No package lists yet (a fresh container): fetch them once, as root.
  if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 || true
    kpkg=$(resolve_kpkg)
  fi
elif [ -z "$kpkg" ]; then
  # Follow the metapackage when apt knows it; else keep the cached kernel (offline).
  kpkg=$(resolve_kpkg)
  [ -n "$kpkg" ] || kpkg=$(ls -d "$cache"/linux-image-*-amd64 | head -n1 | xargs basename)
fi
[ -n "$kpkg" ] || { echo "build-guest: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 3; }
kdir="$cache/$kpkg"
if [ ! -d "$kdir/boot" ]; then
  echo "build-guest: fetching $kpkg" >&2
  dl="$cache/dl"
  rm -rf "$dl" "$kdir.tmp" && mkdir -p "$dl"
  # _apt can't write to a root-only cache dir; the download then runs as root (a warning).
  (cd "$dl" && apt-get download -q "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  deb=$(ls "$dl"/"$kpkg"_*.deb 2>/dev/null | head -n1)
  [ -n "$deb" ] || { echo "build-guest: apt-get download $kpkg failed" >&2; exit 3; }
  dpkg-deb -x "$deb" "$kdir.tmp"
  rm -rf "$dl"
  mv "$kdir.tmp" "$kdir"
fi
kver=$(ls "$kdir/lib/modules" | head -n1)
vmlinuz="$kdir/boot/vmlinuz-$kver"
if [ ! -s "$kdir/vmlinux" ]; then
  # The bzImage holds an xz stream; the plain ELF boots through PVH without the guest
  # decompressing ~65 MB under TCG.
  python3 - "$vmlinuz" "$kdir/vmlinux" <<'EOF'
import lzma, sys, zlib
data = open(sys.argv[1], 'rb').read()
for magic, make in ((b'\xfd7zXZ\x00', lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ)),
                    (b'\x1f\x8b\x08', lambda: zlib.decompressobj(31))):
    at = data.find(magic)
    while at >= 0:
        try:
            out = make().decompress(data[at:])
            if out[:4] == b'\x7fELF':
                open(sys.argv[2] + '.tmp', 'wb').write(out)
                import os; os.replace(sys.argv[2] + '.tmp', sys.argv[2])
                sys.exit(0)
        except (lzma.LZMAError, zlib.error):
            pass
        at = data.find(magic, at + 1)
sys.exit('no ELF kernel inside ' + sys.argv[1])
EOF
fi
cp -f "$kdir/vmlinux" "$out_dir/vmlinux.tmp" && mv -f "$out_dir/vmlinux.tmp" "$out_dir/vmlinux"
cp -f "$vmlinuz" "$out_dir/vmlinuz"

# ---- initramfs --------------------------------------------------------------------------
stage=$(mktemp -d "$build_dir/vm-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/base"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,etc,var,lib/modules,usr/bin,usr/sbin}
cp "$busybox_bin" "$root/bin/busybox"
for applet in $("$busybox_bin" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$here/init" "$root/init"
chmod 755 "$root/init"
# Accounts: root and alice (ssh keys, chpasswd). cpio stores everything as 0:0; init chowns
# /home/alice at boot. glibc (>= 2.34) has nss_files built in; nsswitch.conf says so anyway.
mkdir -p "$root/root" "$root/home/alice" "$root/var/log" "$root/mnt" "$root/etc/qemu/fsfreeze-hook.d"
printf '%s\n' "root:x:0:0:root:/root:/bin/sh" "alice:x:1000:1000:Alice:/home/alice:/bin/sh" > "$root/etc/passwd"
printf '%s\n' "root:*:19000:0:99999:7:::" "alice:!:19000:0:99999:7:::" > "$root/etc/shadow"
chmod 600 "$root/etc/shadow"
printf '%s\n' "root:x:0:" "alice:x:1000:" > "$root/etc/group"
printf '%s\n' "passwd: files" "group: files" "shadow: files" > "$root/etc/nsswitch.conf"
echo "fleetga-vm" > "$root/etc/hostname"

# /sbin: what the agents run by absolute path. hwclock is busybox's behind a wrapper that logs
# its arguments to /run/hwclock.log (init removes it when the kernel command line says
# fga.nohwclock). poweroff/reboot/halt are wrappers too: busybox's
# applets without -f only signal pid 1 (SIGUSR2/SIGTERM/SIGUSR1, what busybox init expects),
# and this guest's pid 1 is a shell script - the kernel drops signals pid 1 has no handler
# for, so nothing would happen. With -f they sync and call reboot(2) directly: poweroff ends
# QEMU (ACPI), reboot resets the machine (QEMU restarts it unless run with -no-reboot).
# shutdown(8) is there for agents that call it (qemu-ga <= 10.1: shutdown -h -P|-H|-r +0 MSG).
printf '#!/bin/sh\necho "hwclock $*" >> /run/hwclock.log\nexec /bin/busybox hwclock "$@"\n' > "$root/sbin/hwclock"
chmod 755 "$root/sbin/hwclock"
for verb in poweroff reboot halt; do
  printf '#!/bin/sh\n# test guest: see tests/vm/build-guest.sh\necho "FLEETGA-VM: /sbin/%s $*" >/dev/console\nexec /bin/busybox %s -f\n' \
    "$verb" "$verb" > "$root/sbin/$verb"
  chmod 755 "$root/sbin/$verb"
done
cat > "$root/sbin/shutdown" <<'EOS'
#!/bin/sh
# test guest: shutdown(8) as qemu-ga <= 10.1 calls it (-h -P|-H|-r +0 MESSAGE).
verb=poweroff
for a; do case "$a" in -r) verb=reboot ;; -H) verb=halt ;; -P) verb=poweroff ;; esac; done
echo "FLEETGA-VM: /sbin/shutdown $*" >/dev/console
exec /bin/busybox "$verb" -f
EOS
chmod 755 "$root/sbin/shutdown"

# chpasswd: Debian's busybox-static has no chpasswd applet. This one does what the agents
# need (user:password lines on stdin, -e for an already crypted password; sha512 otherwise)
# and logs its arguments to /run/chpasswd.log so a test can see -e.
cat > "$root/usr/sbin/chpasswd" <<'EOS'
#!/bin/sh
enc=0
for a; do case "$a" in -e|--encrypted) enc=1 ;; esac; done
echo "chpasswd $*" >> /run/chpasswd.log
status=0
while IFS= read -r line || [ -n "$line" ]; do
  user=${line%%:*}
  pass=${line#*:}
  if [ "$user" = "$line" ] || [ -z "$user" ]; then echo "chpasswd: line without ':'" >&2; status=1; continue; fi
  grep -q "^$user:" /etc/shadow || { echo "chpasswd: user '$user' does not exist" >&2; status=1; continue; }
  if [ $enc = 1 ]; then hash=$pass; else hash=$(printf '%s' "$pass" | mkpasswd -m sha512 -P 0) || exit 1; fi
  U=$user H=$hash D=$(($(date +%s) / 86400)) awk -F: -v OFS=: \
    '$1 == ENVIRON["U"] { $2 = ENVIRON["H"]; $3 = ENVIRON["D"] } { print }' /etc/shadow > /etc/shadow.new &&
    chmod 600 /etc/shadow.new && mv /etc/shadow.new /etc/shadow || exit 1
done
exit $status
EOS
chmod 755 "$root/usr/sbin/chpasswd"

# The fsfreeze hook: the repo's runner (packaging/fsfreeze-hook) at qemu-ga's default path,
# plus a hook.d script that logs each call to tmpfs and, on freeze, starts a probe that
# writes to /mnt/data once the agent marked itself frozen: its "done" line can only reach
# the console after the thaw when the filesystem was really frozen.
if [ -f "$here/../../packaging/fsfreeze-hook" ]; then
  cp "$here/../../packaging/fsfreeze-hook" "$root/etc/qemu/fsfreeze-hook"
  chmod 755 "$root/etc/qemu/fsfreeze-hook"
else
  echo "build-guest: no packaging/fsfreeze-hook: the guest has no fsfreeze hook" >&2
fi
cat > "$root/etc/qemu/fsfreeze-hook.d/50-fleetga-vm" <<'EOS'
#!/bin/sh
echo "$1 $(cut -d' ' -f1 /proc/uptime)" >> /run/fsfreeze-hook.log
if [ "$1" = freeze ] && grep -q " /mnt/data " /proc/mounts; then
  (
    i=0
    while [ ! -e /run/agent/qga.state.isfrozen ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
    usleep 500000
    n=$(cat /proc/sys/kernel/random/uuid)
    echo "FLEETGA-VM: freeze probe $n write start"
    echo "$n" >> /mnt/data/.freeze-probe  # appends: frees no block (a free would make ext4 trim again)
    echo "FLEETGA-VM: freeze probe $n write done"
  ) </dev/null >/dev/console 2>&1 &
fi
exit 0
EOS
chmod 755 "$root/etc/qemu/fsfreeze-hook.d/50-fleetga-vm"
cat > "$root/etc/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
EOF

# Copies a binary and everything `ldd` names (plus the dynamic loader) into $1.
add_elf() {
  local dest=$1 bin=$2 target=$3
  mkdir -p "$dest$(dirname "$target")"
  cp -L "$bin" "$dest$target"
  # Debug info only costs guest RAM (the initramfs lives in it): an ASan build is ~70 MB.
  strip --strip-debug "$dest$target" 2>/dev/null || true
  ldd "$bin" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r lib; do
    [ -e "$dest$lib" ] && continue
    mkdir -p "$dest$(dirname "$lib")"
    cp -L "$lib" "$dest$lib"
    strip --strip-debug "$dest$lib" 2>/dev/null || true
  done
}
add_elf "$root" "$fleetga_bin" /usr/sbin/fleetga
# The benchmark's transport reference (static: no libraries to copy).
if command -v cc >/dev/null; then
  cc -O2 -static -o "$root/usr/sbin/vm-responder" "$here/responder.c"
  strip "$root/usr/sbin/vm-responder"
  # test_vsock.py's AF_VSOCK client (talks to an agent over the vsock_loopback transport).
  cc -O2 -static -Wall -o "$root/usr/sbin/vsock-client" "$here/vsock_client.c"
  strip "$root/usr/sbin/vsock-client"
fi

# Kernel modules in dependency order (read from each module's .modinfo), loaded by init with
# insmod: the package has no modules.dep (depmod runs at install time).
python3 - "$kdir/lib/modules/$kver" "$root/lib/modules" "$kdir/lib/modules/$kver/modules.builtin" <<'EOF'
import os, re, shutil, sys
src, dst, builtin = sys.argv[1:4]
wanted = ['virtio_pci', 'virtio_console', 'virtio_blk', 'virtio_net']
# Loaded by init only when there is a disk (/sys/block/vda): ext4 and what it needs. Its
# softdep on crypto-crc32c would make the kernel call /sbin/modprobe, which this guest lacks,
# so the generic crc32c (no SSE4.2 under TCG's default CPU) is loaded up front.
wanted_disk = ['crc32c_generic', 'ext4']
# Never loaded by init: test_vsock.py insmods them with guest-exec (the in-guest vsock
# loopback transport, CID 1; the host has no vhost-vsock for a virtio-vsock device).
wanted_vsock = ['vsock_loopback']
paths = {}
for d, _, files in os.walk(src):
    for f in files:
        if f.endswith('.ko'):
            paths[f[:-3].replace('-', '_')] = os.path.join(d, f)
built_in = {os.path.basename(l.strip())[:-3].replace('-', '_') for l in open(builtin)}
order = []
def visit(m, stack=()):
    if m in order or m in built_in or m in stack:
        return
    if m not in paths:
        sys.exit('module %s not found' % m)
    info = open(paths[m], 'rb').read()
    deps = re.search(rb'\x00depends=([^\x00]*)\x00', info)
    for dep in (deps.group(1).decode().split(',') if deps and deps.group(1) else []):
        visit(dep.replace('-', '_'), stack + (m,))
    order.append(m)
for m in wanted:
    visit(m)
base = list(order)
for m in wanted_disk:
    visit(m)
disk = order[len(base):]
for m in wanted_vsock:
    visit(m)
vsock = order[len(base) + len(disk):]
for name, mods in (('load-order', base), ('load-order-disk', disk), ('load-order-vsock', vsock)):
    with open(os.path.join(dst, name), 'w') as lst:
        for m in mods:
            shutil.copy(paths[m], os.path.join(dst, m + '.ko'))
            lst.write(m + '\n')
EOF

mkcpio() {  # dir out
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$2"
}
# Uncompressed: the kernel unpacks it faster under TCG than it inflates gzip.
mkcpio "$root" "$stage/base.cpio"
cp "$stage/base.cpio" "$out_dir/initrd-fleetga.img.tmp"
mv -f "$out_dir/initrd-fleetga.img.tmp" "$out_dir/initrd-fleetga.img"

# The reference agent as a second variant: a second cpio appended to the first (the kernel
# unpacks concatenated archives in order).
rm -f "$out_dir/initrd-qemu-ga.img"
if [ -x /usr/sbin/qemu-ga ]; then
  qroot="$stage/qemu-ga"
  mkdir -p "$qroot"
  add_elf "$qroot" /usr/sbin/qemu-ga /usr/sbin/qemu-ga
  # Files the base archive already has would just be overwritten with identical copies.
  mkcpio "$qroot" "$stage/qemu-ga.cpio"
  cat "$stage/base.cpio" "$stage/qemu-ga.cpio" > "$out_dir/initrd-qemu-ga.img.tmp"
  mv -f "$out_dir/initrd-qemu-ga.img.tmp" "$out_dir/initrd-qemu-ga.img"
fi
echo "$kver" > "$out_dir/kernel-version"
echo "build-guest: $out_dir (kernel $kver, modules: $(tr '\n' ' ' < "$root/lib/modules/load-order")+ with a disk: $(tr '\n' ' ' < "$root/lib/modules/load-order-disk"))" >&2
