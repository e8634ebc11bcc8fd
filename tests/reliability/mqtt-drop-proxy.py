#!/usr/bin/env python3
"""A TCP proxy between an MQTT client and its broker that drops the
broker's PUBACKs while a control file exists (a broker that keeps the
connection but stops acknowledging). Usage:
    mqtt-drop-proxy.py LISTEN_PORT BROKER_PORT CONTROL_FILE LOG_FILE
Prints "listening" on stdout once bound; logs each dropped PUBACK."""
import os
import socket
import sys
import threading

listen_port, broker_port, control, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
log_lock = threading.Lock()


def log(line):
    with log_lock, open(log_path, "a") as f:
        f.write(line + "\n")


def pipe_raw(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pipe_packets(src, dst):
    """broker -> client: whole MQTT packets, PUBACKs dropped on demand"""
    buf = b""
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            buf += b
            while True:
                if len(buf) < 2:
                    break
                # remaining length: 1-4 bytes, 7 bits each
                n, mult, i = 0, 1, 1
                while i < len(buf) and i <= 4:
                    n += (buf[i] & 0x7F) * mult
                    mult *= 128
                    if not buf[i] & 0x80:
                        break
                    i += 1
                else:
                    break
                if i >= len(buf):
                    break
                total = i + 1 + n
                if len(buf) < total:
                    break
                pkt, buf = buf[:total], buf[total:]
                if pkt[0] >> 4 == 4 and os.path.exists(control):
                    log("dropped PUBACK id %d" % int.from_bytes(pkt[i + 1:i + 3], "big"))
                    continue
                dst.sendall(pkt)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(16)
print("listening", flush=True)
while True:
    c, _ = srv.accept()
    try:
        b = socket.create_connection(("127.0.0.1", broker_port))
    except OSError:
        c.close()
        continue
    log("connection")
    threading.Thread(target=pipe_raw, args=(c, b), daemon=True).start()
    threading.Thread(target=pipe_packets, args=(b, c), daemon=True).start()
