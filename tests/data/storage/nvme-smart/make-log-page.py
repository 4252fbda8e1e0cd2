#!/usr/bin/env python3
"""Writes log-page.bin: a synthetic NVMe SMART / Health Information log page (log 02h,
512 bytes; this machine has no NVMe controller to capture one from). Reserved bytes are
filled with 0xA5 so a parser that reads them shows up in the unit test."""
import struct

page = bytearray(b"\xa5" * 512)
page[0] = 0x04                                   # critical warning: reliability degraded
struct.pack_into("<H", page, 1, 321)             # composite temperature, Kelvin (unaligned)
page[3], page[4], page[5] = 100, 10, 3           # spare, spare threshold, percentage used
counters = [
    (0x0102030405060708, 1),                     # data units read (lo, hi)
    (123456789, 0),                              # data units written
    (0xFFFFFFFFFFFFFFFF, 0),                     # host read commands: max uint64
    (42, 0),                                     # host write commands
    (7, 0),                                      # controller busy time
    (19, 0),                                     # power cycles
    (1234, 0),                                   # power on hours
    (5, 0),                                      # unsafe shutdowns
    (0, 0),                                      # media errors
    (2, 0x8000000000000000),                     # number of error log entries
]
for i, (lo, hi) in enumerate(counters):
    struct.pack_into("<QQ", page, 32 + 16 * i, lo, hi)
with open("log-page.bin", "wb") as f:
    f.write(page)
