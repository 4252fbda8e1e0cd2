#!/usr/bin/env python3
"""Writes the utmp fixtures: glibc's struct utmpx on 64-bit Linux (384 bytes per record:
type, pid, line[32], id[4], user[32], host[256], exit, session, tv{int32 sec, int32 usec},
addr_v6[4], unused[20]). Run from this directory; the outputs are committed."""
import os
import struct

BOOT_TIME, INIT_PROCESS, LOGIN_PROCESS, USER_PROCESS, DEAD_PROCESS = 2, 5, 6, 7, 8


def rec(typ, user="", line="", ident="", host="", sec=0, usec=0, pid=0):
    b = struct.pack("<hxxi32s4s32s256shhiii16s20x", typ, pid, line.encode(), ident.encode(),
                    user.encode(), host.encode(), 0, 0, 0, sec, usec, b"")
    assert len(b) == 384
    return b


def write(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"".join(records))


# Users alice (twice, the later record logged in earlier), bob, root; other record types.
write("utmp/var/run/utmp", [
    rec(BOOT_TIME, "reboot", "~", "~~", "6.1.0-13-amd64", 1699999000, 5),
    rec(INIT_PROCESS, "", "", "si", "", 1699999001, 0, pid=200),
    rec(LOGIN_PROCESS, "LOGIN", "tty1", "tty1", "", 1699999002, 0, pid=612),
    rec(USER_PROCESS, "alice", "pts/0", "ts/0", "10.0.0.5", 1700000100, 250000, pid=1001),
    rec(USER_PROCESS, "bob", "pts/1", "ts/1", "10.0.0.6", 1700000200, 1, pid=1002),
    rec(USER_PROCESS, "alice", "pts/2", "ts/2", "10.0.0.5", 1700000050, 999999, pid=1003),
    rec(DEAD_PROCESS, "carol", "pts/3", "ts/3", "", 1700000300, 0, pid=1004),
    rec(USER_PROCESS, "root", "tty2", "tty2", "", 1700000000, 0, pid=1005),
    rec(USER_PROCESS, "bob", "pts/4", "ts/4", "10.0.0.6", 1700000400, 500000, pid=1006),
])

# Odd ones: a 32-byte user name (no NUL in ut_user; qemu-ga reads on into ut_host), a
# non-ASCII name, and a trailing partial record.
write("utmp-odd/var/run/utmp", [
    rec(USER_PROCESS, "abcdefghijklmnopqrstuvwxyz012345", "pts/0", "ts/0", "host.example", 1700000000, 1),
    rec(USER_PROCESS, "j\u00fcrgen", "pts/1", "ts/1", "", 1700000001, 2),
    rec(USER_PROCESS, "partial", "pts/2", "ts/2", "", 1700000002, 3)[:200],
])
