#!/usr/bin/env python3
"""Load client for the controller's admin API over mutual TLS (wrk cannot
present a client certificate). Each worker is a process with one keep-alive
HTTPS connection; results are printed as one JSON line.

  loadclient.py rps     --url U --creds DIR [--path P] [--conns 4] [--seconds 10]
  loadclient.py create  --url U --creds DIR --prefix P --count N [--conns 8] [--seconds 600]
  loadclient.py latency --url U --creds DIR --total N [--samples 300] --mode offset|name|prefix

DIR holds cert.pem, key.pem and ca.pem (an identity file split by lib.sh).
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import ssl
import sys
import time
import urllib.parse


def connect(url, creds):
    u = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=os.path.join(creds, "ca.pem"))
    ctx.load_cert_chain(os.path.join(creds, "cert.pem"), os.path.join(creds, "key.pem"))
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def rps_worker(args, deadline, q):
    conn = connect(args.url, args.creds)
    n = errors = 0
    while time.monotonic() < deadline:
        try:
            status, _ = request(conn, "GET", args.path)
            if status == 200:
                n += 1
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = connect(args.url, args.creds)
    q.put((n, errors))


def create_worker(args, k, deadline, q):
    conn = connect(args.url, args.creds)
    n = errors = 0
    for i in range(k, args.count, args.conns):
        if time.monotonic() >= deadline:
            break
        body = json.dumps({"name": "%s-%07d" % (args.prefix, i), "roles": ["bench"]})
        try:
            status, _ = request(conn, "POST", "/v1/identities", body)
            if status in (200, 201):
                n += 1
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = connect(args.url, args.creds)
    q.put((n, errors))


def run_workers(target, args, extra):
    q = mp.Queue()
    ps = [mp.Process(target=target, args=(args,) + e + (q,)) for e in extra]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    return sum(r[0] for r in res), sum(r[1] for r in res)


def cmd_rps(args):
    start = time.monotonic()
    deadline = start + args.seconds
    n, errors = run_workers(rps_worker, args, [(deadline,)] * args.conns)
    secs = time.monotonic() - start
    print(json.dumps({"requests": n, "errors": errors, "seconds": round(secs, 2),
                      "rps": round(n / secs, 1), "conns": args.conns}))


def cmd_create(args):
    start = time.monotonic()
    deadline = start + args.seconds
    n, errors = run_workers(create_worker, args,
                            [(k, deadline) for k in range(args.conns)])
    secs = time.monotonic() - start
    print(json.dumps({"created": n, "errors": errors, "seconds": round(secs, 2),
                      "per_second": round(n / secs, 1), "conns": args.conns}))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def cmd_latency(args):
    conn = connect(args.url, args.creds)
    rng = random.Random(1)
    lat = []
    errors = 0
    for _ in range(args.samples):
        i = rng.randrange(max(1, args.total))
        if args.mode == "offset":
            path = "/v1/identities?limit=100&offset=%d" % max(0, i - 100)
        elif args.mode == "name":
            path = "/v1/identities?name=%s-%07d" % (args.prefix, i)
        else:
            path = "/v1/identities?limit=100&name=%s-%05d*" % (args.prefix, i // 100)
        t = time.perf_counter()
        status, _ = request(conn, "GET", path)
        lat.append((time.perf_counter() - t) * 1000)
        if status != 200:
            errors += 1
    print(json.dumps({"mode": args.mode, "samples": len(lat), "errors": errors,
                      "p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2),
                      "max_ms": round(max(lat), 2)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["rps", "create", "latency"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--creds", required=True)
    ap.add_argument("--path", default="/v1/identities?limit=10")
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--total", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--mode", default="offset", choices=["offset", "name", "prefix"])
    args = ap.parse_args()
    {"rps": cmd_rps, "create": cmd_create, "latency": cmd_latency}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
