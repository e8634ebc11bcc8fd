#!/usr/bin/env python3
"""tests/notify-listen.py SOCKET LOG: a service manager's NOTIFY_SOCKET for
tests. Binds a unix datagram socket at SOCKET and appends every datagram it
receives to LOG, one line per message field, flushed at once.
tests/notify-listen.py --send SOCKET TEXT sends TEXT to such a socket."""
import os
import socket
import sys

if sys.argv[1] == "--send":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(sys.argv[3].encode(), sys.argv[2])
    sys.exit(0)

path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(log, "a", buffering=1) as out:
    out.write("LISTENING\n")
    while True:
        data = s.recv(4096)
        for field in data.decode(errors="replace").split("\n"):
            if field:
                out.write(field + "\n")
