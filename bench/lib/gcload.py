#!/usr/bin/env python3
"""Load for the gc measurement (bench/gc.sh): THREADS keep-alive HTTP/1.1
clients GET a live manifest by tag, then one of its layers, over and over,
until SECONDS pass or the file STOP exists. Prints JSON: per kind the number
of requests, errors (anything but 200, or wrong bytes), p50 and p99 in ms."""
import hashlib, http.client, json, os, random, sys, threading, time

port, live_file, threads, seconds, stop = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
live = [line.split() for line in open(live_file)]
lat = {"manifest": [], "blob": []}
errors = {"manifest": 0, "blob": 0}
lock = threading.Lock()
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


def worker(seed):
    rnd = random.Random(seed)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    mine = {"manifest": [], "blob": []}
    bad = {"manifest": 0, "blob": 0}
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        if n % 64 == 0 and os.path.exists(stop):
            break
        repo, tag, mdg, ldg = rnd.choice(live)
        for kind, path, want, hdr in (("manifest", "/v2/%s/manifests/%s" % (repo, tag), mdg, ACCEPT),
                                      ("blob", "/v2/%s/blobs/%s" % (repo, ldg), ldg, {})):
            t0 = time.perf_counter()
            try:
                c.request("GET", path, headers=hdr)
                r = c.getresponse()
                body = r.read()
                ok = r.status == 200 and "sha256:" + hashlib.sha256(body).hexdigest() == want
            except Exception:
                ok = False
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine[kind].append((time.perf_counter() - t0) * 1000)
            bad[kind] += not ok
    with lock:
        for k in lat:
            lat[k] += mine[k]
            errors[k] += bad[k]


ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
t0 = time.monotonic()
[t.start() for t in ts]
[t.join() for t in ts]
elapsed = time.monotonic() - t0


def pct(v, p):
    v = sorted(v)
    return round(v[min(len(v) - 1, int(len(v) * p))], 2) if v else None


print(json.dumps({k: {"requests": len(lat[k]), "errors": errors[k], "p50_ms": pct(lat[k], 0.50), "p99_ms": pct(lat[k], 0.99),
                      "max_ms": round(max(lat[k]), 2) if lat[k] else None} for k in lat} | {"seconds": round(elapsed, 1)}))
