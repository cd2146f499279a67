#!/usr/bin/env python3
"""Resident memory of a running server with many keep-alive connections.

Usage: loadtest/idle-memory.py PORT PID [CONNECTIONS]

Opens CONNECTIONS (default 1000) connections to 127.0.0.1:PORT and prints the RSS of
process PID (from /proc) at start, with the connections idle, and after one
`GET /healthz` on each (kept alive). Raise the open-file limit first (`ulimit -n 4096`).
Loopback only; it ends by itself.
"""

import socket
import sys
import time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    print(f"at start: {rss_mb(pid):.1f} MB")
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    time.sleep(1)
    print(f"{count} idle connections: {rss_mb(pid):.1f} MB")
    for conn in conns:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    for conn in conns:
        conn.recv(4096)
    time.sleep(1)
    print(f"after one request each (kept alive): {rss_mb(pid):.1f} MB")
    for conn in conns:
        conn.close()


if __name__ == "__main__":
    main()
