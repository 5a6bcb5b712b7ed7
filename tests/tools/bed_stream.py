#!/usr/bin/env python3
"""bed_stream: one long TCP stream with its SHA-256 checked at both ends and the
receiver's view of every stall, for the mesh failure tests.

  bed_stream.py recv PORT [--bind HOST] --stats FILE [--progress FILE]
      accepts one connection, reads it to EOF (hashing and time-stamping every
      read), answers the SHA-256 in hex and a newline, closes, and writes JSON
      stats: bytes, sha256, seconds, max_gap_ms (the longest time without a
      byte between the first and the last byte), gap_at (bytes received when
      it began), gap_end (wall-clock time, Unix seconds, when it ended: to line
      up with the routers' log timestamps), gaps_over_100ms. --progress FILE holds the byte count, updated
      every 50 ms.
  bed_stream.py send HOST:PORT --bytes N [--rate BYTES_PER_S] [--connect-for S]
      connects (retrying for --connect-for seconds: the intercept may not be up
      yet), sends N random bytes (paced at --rate), half-closes, waits for the
      answer and prints JSON: bytes, sha256, answer, match, seconds. Exit 0
      when the answer matches its own SHA-256.
Sizes take K, M, G suffixes (powers of 1024). Every wait is bounded
(--timeout, default 300 s)."""
import argparse
import hashlib
import json
import os
import socket
import sys
import time

CHUNK = 64 * 1024


def size(s):
    m = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    s = s.strip().lower()
    return int(float(s[:-1]) * m[s[-1]]) if s and s[-1] in m else int(s)


def atomic_write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def recv(a):
    lsn = socket.create_server((a.bind, a.port), reuse_port=False)
    lsn.settimeout(a.timeout)
    c, _ = lsn.accept()
    c.settimeout(a.timeout)
    h = hashlib.sha256()
    n = 0
    first = last = None
    max_gap, gap_at, gap_end, big = 0.0, 0, 0.0, 0
    last_progress = 0.0
    while True:
        d = c.recv(CHUNK * 4)
        now = time.monotonic()
        if not d:
            break
        if first is None:
            first = now
        elif now - last > max_gap:
            max_gap, gap_at, gap_end = now - last, n, time.time()
        if last is not None and now - last > 0.1:
            big += 1
        last = now
        h.update(d)
        n += len(d)
        if a.progress and now - last_progress > 0.05:
            atomic_write(a.progress, str(n))
            last_progress = now
    digest = h.hexdigest()
    if a.progress:
        atomic_write(a.progress, str(n))
    try:
        c.sendall(digest.encode() + b"\n")
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    c.close()
    st = {"bytes": n, "sha256": digest, "seconds": round((last or 0) - (first or 0), 3),
          "max_gap_ms": round(max_gap * 1000, 1), "gap_at": gap_at,
          "gap_end": round(gap_end, 3), "gaps_over_100ms": big}
    atomic_write(a.stats, json.dumps(st) + "\n")
    return 0


def connect(host, port, secs):
    end = time.monotonic() + secs
    while True:
        try:
            s = socket.create_connection((host, port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def send(a):
    host, port = a.addr.rsplit(":", 1)
    s = connect(host, int(port), a.connect_for)
    s.settimeout(a.timeout)
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    t0 = time.monotonic()
    sent = 0
    try:
        while sent < a.bytes:
            # A fresh 1 MiB of randomness is costly; rotate the block instead so
            # that no two MiB of the stream are alike (reordering would show).
            block = block[4099:] + block[:4099]
            for off in range(0, len(block), CHUNK):
                d = block[off:off + min(CHUNK, a.bytes - sent)]
                if not d:
                    break
                s.sendall(d)
                h.update(d)
                sent += len(d)
                if a.rate:
                    ahead = sent / a.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        s.shutdown(socket.SHUT_WR)
        ans = b""
        while not ans.endswith(b"\n"):
            d = s.recv(256)
            if not d:
                break
            ans += d
        err = None
    except OSError as e:
        ans, err = b"", repr(e)
    digest = h.hexdigest()
    out = {"bytes": sent, "sha256": digest, "answer": ans.decode(errors="replace").strip(),
           "match": ans.strip() == digest.encode(), "seconds": round(time.monotonic() - t0, 3),
           "error": err}
    print(json.dumps(out), flush=True)
    return 0 if out["match"] else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("port", type=int)
    r.add_argument("--bind", default="127.0.0.1")
    r.add_argument("--stats", required=True)
    r.add_argument("--progress")
    r.add_argument("--timeout", type=float, default=300)
    s = sub.add_parser("send")
    s.add_argument("addr")
    s.add_argument("--bytes", type=size, required=True)
    s.add_argument("--rate", type=size, default=0)
    s.add_argument("--connect-for", type=float, default=30)
    s.add_argument("--timeout", type=float, default=300)
    a = p.parse_args()
    return recv(a) if a.cmd == "recv" else send(a)


if __name__ == "__main__":
    sys.exit(main())
