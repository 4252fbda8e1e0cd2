#!/bin/sh
# Builds the synthetic fixture root tests/data/storage/synthetic (sh synth.sh synthetic):
#   vdb    virtio-blk disk (PCI 0000:00:04.0) with partitions vdb1, vdb2
#   sda    SCSI disk behind virtio-scsi (0000:00:05.0, host2, target 2:0:1, lun 3), partition sda1
#   sdb    SATA disk behind AHCI (0000:01:02.0 behind the bridge 0000:00:1e.0, port ata2 of
#          ata1..ata2), udev serial
#   nvme0n1 NVMe namespace (0000:00:06.0) with partitions nvme0n1p1, nvme0n1p2
#   dm-0   device-mapper "vg0-data" over vdb2 and sda1
#   md0    raid1 over nvme0n1p1 and nvme0n1p2
#   loop0  zero-sized (skipped by guest-get-disks)
# and a mountinfo with a network mount (major 0), a bind mount, a mount point with a space and
# one with a tab, and a mount whose /sys/dev/block entry is missing.
set -eu
out=${1:?usage: synth.sh <fixture-root>}
rm -rf "$out"
mkdir -p "$out/proc/self" "$out/sys/block" "$out/sys/dev/block" "$out/run/udev/data"
S=$out/sys

dev() {  # <devices-relative dir> <name> <major> <minor> <size> [partition-number]
  d=$S/devices/$1; mkdir -p "$d/slaves" "$d/holders"
  printf '%s\n' "$5" > "$d/size"
  printf '%s:%s\n' "$3" "$4" > "$d/dev"
  if [ -n "${6:-}" ]; then
    printf 'MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=partition\nPARTN=%s\n' "$3" "$4" "$2" "$6" > "$d/uevent"
    printf '%s\n' "$6" > "$d/partition"
    rmdir "$d/slaves" "$d/holders"
  else
    printf 'MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=disk\n' "$3" "$4" "$2" > "$d/uevent"
    ln -s "../devices/$1" "$S/block/$2"
  fi
  ln -s "../../devices/$1" "$S/dev/block/$3:$4"
}
driver() {  # <devices-relative pci dir> <driver>
  ln -s "../../../bus/pci/drivers/$2" "$S/devices/$1/driver"
}
slave() {  # <devices-relative holder dir> <devices-relative slave dir>
  n=${2##*/}
  ln -s "../../../../$2" "$S/devices/$1/slaves/$n"
}

V=pci0000:00/0000:00:04.0/virtio2/block/vdb
dev $V vdb 252 16 20971520
dev $V/vdb1 vdb1 252 17 2097152 1
dev $V/vdb2 vdb2 252 18 18872320 2
driver pci0000:00/0000:00:04.0 virtio-pci

Q=pci0000:00/0000:00:05.0/virtio3/host2/target2:0:1/2:0:1:3/block/sda
dev $Q sda 8 0 41943040
dev $Q/sda1 sda1 8 1 41940992 1
driver pci0000:00/0000:00:05.0 virtio-pci

A=pci0000:00/0000:00:1e.0/0000:01:02.0
B=$A/ata2/host1/target1:0:0/1:0:0:0/block/sdb
dev $B sdb 8 16 8388608
mkdir -p "$S/devices/$A/ata1"
driver pci0000:00/0000:00:1e.0 pcieport
driver $A ahci
printf 'S:disk/by-id/ata-QEMU_HARDDISK_QM00005\nE:ID_SERIAL=QEMU_HARDDISK_QM00005\nE:ID_BUS=ata\n' > "$out/run/udev/data/b8:16"

N=pci0000:00/0000:00:06.0/nvme/nvme0/nvme0n1
dev $N nvme0n1 259 0 4194304
dev $N/nvme0n1p1 nvme0n1p1 259 1 2095104 1
dev $N/nvme0n1p2 nvme0n1p2 259 2 2095104 2
driver pci0000:00/0000:00:06.0 nvme

dev virtual/block/dm-0 dm-0 253 0 60809216
mkdir -p "$S/devices/virtual/block/dm-0/dm"
printf 'vg0-data\n' > "$S/devices/virtual/block/dm-0/dm/name"
slave virtual/block/dm-0 "$V/vdb2"
slave virtual/block/dm-0 "$Q/sda1"

dev virtual/block/md0 md0 9 0 2093056
slave virtual/block/md0 "$N/nvme0n1p1"
slave virtual/block/md0 "$N/nvme0n1p2"

dev virtual/block/loop0 loop0 7 0 0

cat > "$out/proc/self/mountinfo" <<'MI'
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg0-data rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 252:17 / /boot rw,relatime shared:2 - ext2 /dev/vdb1 rw
25 22 9:0 / /srv/my\040data rw,relatime shared:3 - xfs /dev/md0 rw
26 22 0:50 / /mnt/nfs rw,relatime shared:4 - nfs4 server:/export rw,vers=4.2
27 22 8:16 / /var/lib rw,relatime shared:5 - ext4 /dev/sdb rw
28 22 8:16 /sub /mnt/bind rw,relatime shared:5 - ext4 /dev/sdb rw
29 22 259:0 / /mnt/tab\011dir rw,relatime shared:6 - vfat /dev/nvme0n1 rw
30 22 8:32 / /mnt/gone rw,relatime shared:7 - ext4 /dev/sdc rw
MI
find "$out" -type d -empty -exec touch {}/.gitkeep \;
