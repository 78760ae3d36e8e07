#!/usr/bin/python3
"""berth benchmark helper: uploads, seeding, image building, parsers, sampler.

Called by bench/run; every subcommand is bounded in request count and in time.
Only talks to 127.0.0.1. Standard library only (matplotlib lives in agg.py).

Raw results are tab-separated lines appended to a file:
    round  server  workload  metric  value
where value is a number, "error" (the server failed the workload) or
"n/a" (the server does not offer the feature).
"""
import argparse
import concurrent.futures as cf
import gzip
import hashlib
import http.client
import io
import json
import mmap
import os
import re
import signal
import sys
import tarfile
import threading
import time
import urllib.parse

MiB = 1 << 20
GiB = 1 << 30
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
SUFFIX = 16  # unique bytes appended to every uploaded blob
TIMEOUT = 120  # seconds, per socket operation


def log(*a):
    print("[bb]", *a, file=sys.stderr, flush=True)


def record(out, rnd, server, workload, metric, value):
    if isinstance(value, float):
        value = "%.6g" % value
    with open(out, "a") as f:
        f.write("%s\t%s\t%s\t%s\t%s\n" % (rnd, server, workload, metric, value))


def parse_targets(items):
    """name=url[,pid=..,kind=..,root=..] items -> dict of dicts."""
    res = {}
    for it in items:
        name, rest = it.split("=", 1)
        parts = rest.split(",")
        d = {"url": parts[0]}
        for p in parts[1:]:
            k, v = p.split("=", 1)
            d[k] = v
        res[name] = d
    return res


class Conn:
    """A keep-alive HTTP/1.1 connection to one 127.0.0.1 server."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        assert u.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
        self.host, self.port = u.hostname, u.port
        self.c = None

    def _conn(self):
        if self.c is None:
            self.c = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT,
                                                blocksize=4 * MiB)
        return self.c

    def request(self, method, path, body_parts=(), length=None, headers=None):
        """Sends a request whose body is the concatenation of body_parts
        (bytes/memoryview). Returns (status, headers dict lower-case, body)."""
        h = dict(headers or {})
        if length is None:
            length = sum(len(p) for p in body_parts)
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.putrequest(method, path, skip_accept_encoding=True)
                for k, v in h.items():
                    c.putheader(k, v)
                if method in ("POST", "PUT", "PATCH") or length:
                    c.putheader("Content-Length", str(length))
                c.endheaders()
                for p in body_parts:
                    c.send(p)
                r = c.getresponse()
                body = r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    self.close()
                return r.status, hdrs, body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # a keep-alive connection the server closed while idle: retry once
                # on a new connection, but only before any of this request ran
                self.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def loc_path(loc):
    """Location header (absolute or relative) -> path?query for our connection."""
    u = urllib.parse.urlsplit(loc)
    return u.path + ("?" + u.query if u.query else "")


def add_query(path, q):
    return path + ("&" if "?" in path else "?") + q


class Unsupported(Exception):
    pass


class BlobSource:
    """Blobs of a few fixed sizes made of a shared random prefix (mmapped base
    file) plus SUFFIX fresh random bytes, so every upload is a new blob while
    its digest costs only a hash-state copy."""

    def __init__(self, base, sizes):
        self.f = open(base, "rb")
        self.mm = mmap.mmap(self.f.fileno(), 0, prot=mmap.PROT_READ)
        self.mv = memoryview(self.mm)
        self.states = {}
        h = hashlib.sha256()
        pos = 0
        for s in sorted(set(sizes)):
            n = s - SUFFIX
            if n > len(self.mm):
                raise SystemExit("base file %s too small for %d bytes" % (base, s))
            while pos < n:
                step = min(n - pos, 64 * MiB)
                h.update(self.mv[pos:pos + step])
                pos += step
            self.states[s] = h.copy()

    def new(self, size):
        suf = os.urandom(SUFFIX)
        h = self.states[size].copy()
        h.update(suf)
        return "sha256:" + h.hexdigest(), self.mv[:size - SUFFIX], suf


def upload_one(conn, repo, flow, size, src, chunk, blob=None):
    dg, prefix, suf = blob or src.new(size)
    octet = {"Content-Type": "application/octet-stream"}
    base = "/v2/%s/blobs/uploads/" % repo
    if flow == "mono":
        st, h, _ = conn.request("POST", base + "?digest=" + dg, (prefix, suf), headers=octet)
        if st == 202:
            # the server ignored ?digest= and opened a session: no single-request upload
            if "location" in h:
                conn.request("DELETE", loc_path(h["location"]))
            raise Unsupported("POST ?digest= answered 202")
        if st != 201:
            raise RuntimeError("mono POST %s" % st)
        return dg, size
    st, h, _ = conn.request("POST", base)
    if st != 202:
        raise RuntimeError("POST %s" % st)
    loc = loc_path(h["location"])
    if flow == "postput":
        st, h, _ = conn.request("PUT", add_query(loc, "digest=" + dg), (prefix, suf), headers=octet)
        if st != 201:
            raise RuntimeError("PUT %s" % st)
        return dg, size
    # chunked: PATCH with Content-Range, then PUT ?digest= with no body
    whole = size - SUFFIX
    off = 0
    while off < size:
        end = min(off + chunk, size)
        parts = []
        if off < whole:
            parts.append(prefix[off:min(end, whole)])
        if end > whole:
            parts.append(suf[max(off, whole) - whole:end - whole])
        hh = dict(octet)
        hh["Content-Range"] = "%d-%d" % (off, end - 1)
        st, h, _ = conn.request("PATCH", loc, parts, headers=hh)
        if st != 202:
            raise RuntimeError("PATCH %s" % st)
        loc = loc_path(h["location"])
        off = end
    st, h, _ = conn.request("PUT", add_query(loc, "digest=" + dg))
    if st != 201:
        raise RuntimeError("final PUT %s" % st)
    return dg, size


def cpu_ticks(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)
    except (OSError, ValueError, IndexError):
        return None


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def cleanup_blobs(t, repo, digests):
    """Give the disk back: DELETE through the API, then unlink the blob data
    file, since both servers keep content until a garbage collection (berth:
    <root>/blobs/sha256/<2 hex>/<hex>; distribution:
    <root>/docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data). These digests
    (random suffixes) are never asked for again."""
    c = Conn(t["url"])
    for dg in digests:
        try:
            c.request("DELETE", "/v2/%s/blobs/%s" % (repo, dg))
        except Exception:
            c.close()
        hexd = dg.split(":", 1)[1]
        p = None
        if t.get("kind") == "distribution" and t.get("root"):
            p = os.path.join(t["root"], "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")
        elif t.get("kind") == "berth" and t.get("root"):
            p = os.path.join(t["root"], "blobs/sha256", hexd[:2], hexd)
        if p:
            try:
                os.unlink(p)
            except OSError:
                pass
    c.close()


def upload_specs(mode):
    """(flow, size, count, concurrency, chunk) per workload."""
    if mode == "quick":
        sizes = [(MiB, 32, 1), (MiB, 64, 16), (64 * MiB, 1, 1), (64 * MiB, 4, 16), (GiB, 1, 1)]
    else:
        sizes = [(MiB, 64, 1), (MiB, 256, 16), (64 * MiB, 2, 1), (64 * MiB, 8, 16), (GiB, 1, 1)]
    chunks = {MiB: 256 * 1024, 64 * MiB: 8 * MiB, GiB: 64 * MiB}
    res = []
    for flow in ("mono", "postput", "chunked"):
        for size, count, conc in sizes:
            if flow == "chunked" and size == GiB:  # the 1 GiB pushes: mono and POST+PUT
                continue
            res.append((flow, size, count, conc, chunks[size]))
    return res


def hsize(n):
    if n >= GiB:
        return "%dGiB" % (n // GiB)
    if n >= MiB:
        return "%dMiB" % (n // MiB)
    return "%dKiB" % (n // 1024)


def cmd_upload(a):
    targets = parse_targets(a.target)
    specs = upload_specs(a.mode)
    src = BlobSource(a.base, [s[1] for s in specs])
    deadline = time.monotonic() + a.time_limit
    unsupported = set()
    for flow, size, count, conc, chunk in specs:
        wl = "upload.%s.%sx%d.c%d" % (flow, hsize(size), count, conc)
        for name, t in targets.items():
            if time.monotonic() > deadline or t["url"] == "down":
                record(a.out, a.round, name, wl, "MB/s", "error")
                continue
            if (name, flow) in unsupported:
                record(a.out, a.round, name, wl, "MB/s", "n/a")
                continue
            need = size * count * 2 + GiB
            if free_bytes(a.scratch) < need:
                log("%s: not enough free disk for %s, skipped" % (name, wl))
                record(a.out, a.round, name, wl, "MB/s", "error")
                continue
            repo = "bench/upload"
            done = []
            lock = threading.Lock()
            conns = [Conn(t["url"]) for _ in range(conc)]
            idx = iter(range(count))
            err = []

            def worker(k):
                while True:
                    with lock:
                        i = next(idx, None)
                    if i is None or err:
                        return
                    try:
                        dg, n = upload_one(conns[k], repo, flow, size, src, chunk)
                    except Exception as e:  # recorded as error / n/a below
                        err.append(e)
                        return
                    with lock:
                        done.append(dg)

            c0 = cpu_ticks(t.get("pid"))
            t0 = time.monotonic()
            with cf.ThreadPoolExecutor(conc) as ex:
                list(ex.map(worker, range(conc)))
            dt = time.monotonic() - t0
            c1 = cpu_ticks(t.get("pid"))
            for c in conns:
                c.close()
            if err and isinstance(err[0], Unsupported):
                unsupported.add((name, flow))
                log("%s: %s unsupported (%s)" % (name, wl, err[0]))
                record(a.out, a.round, name, wl, "MB/s", "n/a")
            elif err:
                log("%s: %s failed: %r" % (name, wl, err[0]))
                record(a.out, a.round, name, wl, "MB/s", "error")
            else:
                mbs = size * count / dt / 1e6
                record(a.out, a.round, name, wl, "MB/s", mbs)
                if c0 is not None and c1 is not None:
                    cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK")
                    with open(a.cpu_out, "a") as f:
                        f.write("%s\t%s\t%.3f\t%d\n" % (a.round, name, cpu, size * count))
                log("%-10s %-32s %8.1f MB/s (%.2fs)" % (name, wl, mbs, dt))
            cleanup_blobs(t, repo, done)


def cmd_upload_many(a):
    """COUNT new blobs of SIZE uploaded at once, one per connection, either by
    COUNT forked processes (--procs COUNT) or by one process with a thread per
    upload (--procs 1): a load generator that is one process competes for the
    2 cores differently, and the issue asks for both. berth gets the
    single-request POST ?digest=, distribution (which has none) POST + PUT.
    Records one MB/s line (aggregate), prints the wall seconds."""
    t = list(parse_targets([a.target]).values())[0]
    flow = "mono" if t.get("kind") == "berth" else "postput"
    wl = a.workload.replace("{flow}", flow)
    need = a.size * a.count * 2 + GiB
    if free_bytes(a.scratch) < need:
        log("%s: not enough free disk for %s, skipped" % (a.name, wl))
        record(a.out, a.round, a.name, wl, "MB/s", "error")
        return
    src = BlobSource(a.base, [a.size])
    blobs = [src.new(a.size) for _ in range(a.count)]
    repo = "bench/upload-many"

    def one(i):
        c = Conn(t["url"])
        try:
            upload_one(c, repo, flow, a.size, src, 0, blobs[i])
        finally:
            c.close()

    deadline = time.monotonic() + a.time_limit
    ok = True
    if a.started:
        open(a.started, "w").close()
    t0 = time.monotonic()
    if a.procs == 1:
        with cf.ThreadPoolExecutor(a.count) as ex:
            futs = [ex.submit(one, i) for i in range(a.count)]
            for f in futs:
                try:
                    f.result(timeout=max(1, deadline - time.monotonic()))
                except Exception as e:  # recorded as error below
                    log("%s: %s failed: %r" % (a.name, wl, e))
                    ok = False
    else:
        kids = []
        for i in range(a.count):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    one(i)
                    code = 0
                except Exception as e:
                    log("%s: %s upload %d failed: %r" % (a.name, wl, i, e))
                finally:
                    os._exit(code)
            kids.append(pid)
        for pid in kids:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    ok = ok and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    ok = False
                    break
                time.sleep(0.05)
    dt = time.monotonic() - t0
    if a.ended:
        open(a.ended, "w").close()
    if ok:
        mbs = a.size * a.count / dt / 1e6
        record(a.out, a.round, a.name, wl, "MB/s", mbs)
        log("%-10s %-32s %8.1f MB/s (%.2fs, %d process(es))" % (a.name, wl, mbs, dt, a.procs))
    else:
        record(a.out, a.round, a.name, wl, "MB/s", "error")
    print("%.3f" % dt)
    cleanup_blobs(t, repo, [b[0] for b in blobs])


# ---------------------------------------------------------------- seeding

def push_blob(conn, repo, data):
    dg = "sha256:" + hashlib.sha256(data).hexdigest()
    st, h, _ = conn.request("HEAD", "/v2/%s/blobs/%s" % (repo, dg))
    if st == 200:
        return dg
    st, h, _ = conn.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, dg), (data,),
                            headers={"Content-Type": "application/octet-stream"})
    if st == 201:
        return dg
    if st != 202:
        raise RuntimeError("blob POST %s" % st)
    loc = loc_path(h["location"])
    st, h, _ = conn.request("PUT", add_query(loc, "digest=" + dg), (data,),
                            headers={"Content-Type": "application/octet-stream"})
    if st != 201:
        raise RuntimeError("blob PUT %s" % st)
    return dg


def mount_or_push(conn, repo, src_repo, data):
    dg = "sha256:" + hashlib.sha256(data).hexdigest()
    st, h, _ = conn.request("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (repo, dg, src_repo))
    if st == 201:
        return dg
    if st == 202 and "location" in h:
        loc = loc_path(h["location"])
        st, h, _ = conn.request("PUT", add_query(loc, "digest=" + dg), (data,),
                                headers={"Content-Type": "application/octet-stream"})
        if st == 201:
            return dg
    raise RuntimeError("mount %s" % st)


def make_manifest(cfg, cfg_dg, layer, layer_dg, note):
    m = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_dg, "size": len(cfg)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_dg, "size": len(layer)}],
        "annotations": {"org.berth.bench": note},
    }
    return json.dumps(m, separators=(",", ":")).encode()


def put_manifest(conn, repo, ref, body):
    st, h, _ = conn.request("PUT", "/v2/%s/manifests/%s" % (repo, ref), (body,),
                            headers={"Content-Type": OCI_MANIFEST})
    if st != 201:
        raise RuntimeError("manifest PUT %s" % st)
    return "sha256:" + hashlib.sha256(body).hexdigest()


def parallel(n, conc, url, fn, deadline):
    """Runs fn(conn, i) for i in range(n) on conc keep-alive connections."""
    lock = threading.Lock()
    it = iter(range(n))
    errs = []

    def worker(_):
        c = Conn(url)
        while True:
            with lock:
                i = next(it, None)
            if i is None or errs or time.monotonic() > deadline:
                c.close()
                return
            try:
                fn(c, i)
            except Exception as e:
                errs.append(e)
    with cf.ThreadPoolExecutor(conc) as ex:
        list(ex.map(worker, range(conc)))
    if errs:
        raise errs[0]
    if time.monotonic() > deadline:
        raise RuntimeError("seeding ran out of time")


def cmd_seed(a):
    """Seeds one server (or, with --static, writes the same bytes as files for
    nginx). Writes a JSON state with the paths the load tools use."""
    deadline = time.monotonic() + a.time_limit
    rnd = bytes(range(256)) * 16  # deterministic small payloads
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = hashlib.sha256(b"berth-bench-layer").digest() * 64
    cfg_dg = "sha256:" + hashlib.sha256(cfg).hexdigest()
    layer_dg = "sha256:" + hashlib.sha256(layer).hexdigest()
    man = make_manifest(cfg, cfg_dg, layer, layer_dg, "manifest-get")
    man_dg = "sha256:" + hashlib.sha256(man).hexdigest()
    small = [rnd[:4096 - 8] + ("%08d" % i).encode() for i in range(a.small_blobs)]
    small_dg = ["sha256:" + hashlib.sha256(b).hexdigest() for b in small]
    # the large download blob: the first big_size bytes of the base file
    big_dg = None
    if a.big_size:
        h = hashlib.sha256()
        with open(a.base, "rb") as f:
            left = a.big_size
            while left:
                b = f.read(min(left, 16 * MiB))
                h.update(b)
                left -= len(b)
        big_dg = "sha256:" + h.hexdigest()
    state = {"manifest_repo": "bench/manifest", "manifest_tag": "v1", "manifest_digest": man_dg,
             "manifest_size": len(man), "dl_repo": "bench/dl", "small": small_dg,
             "big": big_dg, "big_size": a.big_size, "tags_repo": "bench/tags",
             "tags": a.tags, "repos": a.repos}

    if a.static:
        root = a.static
        def wfile(path, data):
            p = os.path.join(root, path.lstrip("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
        wfile("/v2/bench/manifest/manifests/v1", man)
        wfile("/v2/bench/manifest/manifests/" + man_dg, man)
        for b, dg in zip(small, small_dg):
            wfile("/v2/bench/dl/blobs/" + dg, b)
        if big_dg:
            p = os.path.join(root, "v2/bench/dl/blobs", big_dg)
            with open(a.base, "rb") as f, open(p, "wb") as o:
                left = a.big_size
                while left:
                    b = f.read(min(left, 16 * MiB))
                    o.write(b)
                    left -= len(b)
        json.dump(state, open(a.state, "w"))
        return

    url = a.url
    c = Conn(url)
    for repo in ("bench/manifest", "bench/tags"):
        push_blob(c, repo, cfg)
        push_blob(c, repo, layer)
    put_manifest(c, "bench/manifest", "v1", man)
    parallel(len(small), 8, url, lambda cc, i: push_blob(cc, "bench/dl", small[i]), deadline)
    if big_dg:
        st, h, _ = c.request("HEAD", "/v2/bench/dl/blobs/" + big_dg)
        if st != 200:
            with open(a.base, "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
                mv = memoryview(mm)
                st, h, _ = c.request("POST", "/v2/bench/dl/blobs/uploads/")
                if st != 202:
                    raise RuntimeError("big POST %s" % st)
                st, h, _ = c.request("PUT", add_query(loc_path(h["location"]), "digest=" + big_dg),
                                     (mv[:a.big_size],),
                                     headers={"Content-Type": "application/octet-stream"})
                mv.release()
                mm.close()
                if st != 201:
                    raise RuntimeError("big PUT %s" % st)
    c.close()

    # 10,000 tags in one repository: distinct small manifests, one PUT each
    mans = [make_manifest(cfg, cfg_dg, layer, layer_dg, "tag-%05d" % i) for i in range(a.tags)]
    t0 = time.monotonic()
    parallel(a.tags, a.conc, url,
             lambda cc, i: put_manifest(cc, "bench/tags", "t%05d" % i, mans[i]), deadline)
    dt = time.monotonic() - t0
    if a.out and a.tags:
        record(a.out, 0, a.name, "seed.manifest-put.c%d" % a.conc, "req/s", a.tags / dt)
    log("%s: %d tags in %.1fs (%.0f manifest PUT/s)" % (a.name, a.tags, dt, a.tags / dt))

    # 10,000 repositories: blobs mounted from bench/tags, one manifest each
    def one_repo(cc, i):
        repo = "cat/r%05d" % i
        mount_or_push(cc, repo, "bench/tags", cfg)
        mount_or_push(cc, repo, "bench/tags", layer)
        put_manifest(cc, repo, "latest", man)
    t0 = time.monotonic()
    parallel(a.repos, a.conc, url, one_repo, deadline)
    dt = time.monotonic() - t0
    if a.out and a.repos:
        record(a.out, 0, a.name, "seed.repo-create.c%d" % a.conc, "repos/s", a.repos / dt)
    log("%s: %d repositories in %.1fs" % (a.name, a.repos, dt))
    json.dump(state, open(a.state, "w"))


# ---------------------------------------------------------------- image

def cmd_mkimage(a):
    """An OCI image layout with a.layers random tar layers: uncompressed, or
    with --gzip already compressed (a gzip stream of stored blocks, level 0,
    which clients recognise by its magic and push as it is instead of
    compressing it themselves)."""
    d = a.dir
    os.makedirs(os.path.join(d, "blobs/sha256"), exist_ok=True)

    def put(data):
        hx = hashlib.sha256(data).hexdigest()
        with open(os.path.join(d, "blobs/sha256", hx), "wb") as f:
            f.write(data)
        return "sha256:" + hx

    layers, diff_ids = [], []
    for i in range(a.layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            payload = os.urandom(a.layer_size)
            ti = tarfile.TarInfo("data/layer%d.bin" % i)
            ti.size = len(payload)
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(payload))
        data = buf.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(data).hexdigest())
        if a.gzip:
            data = gzip.compress(data, compresslevel=0, mtime=0)
        dg = put(data)
        layers.append({"mediaType": OCI_LAYER + ("+gzip" if a.gzip else ""), "digest": dg,
                       "size": len(data)})
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Cmd": ["/data"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cdg = put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": OCI_CONFIG, "digest": cdg, "size": len(cfg)},
                      "layers": layers}).encode()
    mdg = put(man)
    with open(os.path.join(d, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": mdg, "size": len(man),
             "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
    print(sum(l["size"] for l in layers) + len(cfg) + len(man))


# ---------------------------------------------------------------- parsers

def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[m.group(2)]


def cmd_parse(a):
    """Parses the output of wrk / h2load / ab into 'req/s p99_ms' or 'error'.
    A run with more than 1% failed or non-2xx answers is an error."""
    txt = open(a.file, errors="replace").read()
    rps = p99 = None
    total = bad = 0
    if a.tool == "wrk":
        m = re.search(r"Requests/sec:\s*([\d.]+)", txt)
        rps = float(m.group(1)) if m else None
        m = re.search(r"^\s*99%\s+(\S+)", txt, re.M)
        p99 = to_ms(m.group(1)) if m else None
        m = re.search(r"(\d+) requests in", txt)
        total = int(m.group(1)) if m else 0
        m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", txt)
        bad += int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
        if m:
            bad += sum(int(x) for x in m.groups())
    elif a.tool == "h2load":
        m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", txt)
        rps = float(m.group(2)) if m else None
        m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", txt)
        if m:
            total = int(m.group(2))
            bad += int(m.group(4)) + int(m.group(5))
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", txt)
        if m:
            bad += int(m.group(3)) + int(m.group(4))
        if a.log and os.path.exists(a.log):
            lat = []
            for line in open(a.log):
                p = line.split()
                if len(p) >= 3:
                    lat.append(int(p[2]))
            if lat:
                lat.sort()
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000.0
                total = max(total, len(lat))
    elif a.tool == "ab":
        m = re.search(r"Requests per second:\s*([\d.]+)", txt)
        rps = float(m.group(1)) if m else None
        m = re.search(r"Complete requests:\s*(\d+)", txt)
        total = int(m.group(1)) if m else 0
        m = re.search(r"Failed requests:\s*(\d+)", txt)
        bad += int(m.group(1)) if m else 0
        m = re.search(r"Non-2xx responses:\s*(\d+)", txt)
        bad += int(m.group(1)) if m else 0
        if a.log and os.path.exists(a.log):  # ab -e CSV: percentage,ms
            for line in open(a.log):
                p = line.strip().split(",")
                if p[0] == "99":
                    p99 = float(p[1])
        if p99 is None:
            m = re.search(r"^\s*99%\s+(\d+)", txt, re.M)
            p99 = float(m.group(1)) if m else None
    if rps is None or total == 0 or bad > total * 0.01:
        print("error")
    else:
        print("%.6g %s" % (rps, "%.6g" % p99 if p99 is not None else "n/a"))


def cmd_sample(a):
    """Samples /proc/PID/status until the process is gone or SIGTERM; keeps the
    maximum VmRSS and RssAnon and the last VmHWM in a small key=value file."""
    mx = {"VmRSS": 0, "RssAnon": 0, "VmHWM": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.monotonic() + a.time_limit
    while not stop and time.monotonic() < end:
        try:
            with open("/proc/%d/status" % a.pid) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in mx:
                        mx[k] = max(mx[k], int(v.split()[0]))
        except OSError:
            break
        with open(a.out + ".tmp", "w") as f:
            for k, v in mx.items():
                f.write("%s=%d\n" % (k, v))
        os.replace(a.out + ".tmp", a.out)
        time.sleep(a.interval)


def main():
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="cmd", required=True)
    u = sp.add_parser("upload")
    u.add_argument("--target", action="append", required=True,
                   help="name=URL[,pid=N,kind=berth|distribution,root=DIR]")
    u.add_argument("--base", required=True)
    u.add_argument("--mode", default="default")
    u.add_argument("--round", type=int, default=1)
    u.add_argument("--out", required=True)
    u.add_argument("--cpu-out", required=True)
    u.add_argument("--scratch", default="/tmp")
    u.add_argument("--time-limit", type=float, default=900)
    s = sp.add_parser("seed")
    s.add_argument("--url")
    s.add_argument("--name", default="")
    s.add_argument("--static")
    s.add_argument("--base")
    s.add_argument("--big-size", type=int, default=0)
    s.add_argument("--small-blobs", type=int, default=100)
    s.add_argument("--tags", type=int, default=10000)
    s.add_argument("--repos", type=int, default=10000)
    s.add_argument("--conc", type=int, default=16)
    s.add_argument("--state", required=True)
    s.add_argument("--out")
    s.add_argument("--time-limit", type=float, default=600)
    m = sp.add_parser("mkimage")
    m.add_argument("--dir", required=True)
    m.add_argument("--layers", type=int, default=4)
    m.add_argument("--layer-size", type=int, default=32 * MiB)
    m.add_argument("--gzip", action="store_true")
    um = sp.add_parser("upload-many")
    um.add_argument("--target", required=True, help="name=URL,pid=N,kind=berth|distribution,root=DIR")
    um.add_argument("--name", required=True)
    um.add_argument("--workload", required=True, help="line name; {flow} becomes mono or postput")
    um.add_argument("--base", required=True)
    um.add_argument("--size", type=int, required=True)
    um.add_argument("--count", type=int, default=16)
    um.add_argument("--procs", type=int, default=16, help="16: a process per upload; 1: threads")
    um.add_argument("--round", type=int, default=1)
    um.add_argument("--out", required=True)
    um.add_argument("--scratch", default="/tmp")
    um.add_argument("--time-limit", type=float, default=900)
    um.add_argument("--started", help="file made when the uploads start")
    um.add_argument("--ended", help="file made when they have all ended")
    r = sp.add_parser("parse")
    r.add_argument("tool", choices=["wrk", "h2load", "ab"])
    r.add_argument("file")
    r.add_argument("--log")
    sm = sp.add_parser("sample")
    sm.add_argument("--pid", type=int, required=True)
    sm.add_argument("--out", required=True)
    sm.add_argument("--interval", type=float, default=0.2)
    sm.add_argument("--time-limit", type=float, default=7200)
    a = p.parse_args()
    {"upload": cmd_upload, "upload-many": cmd_upload_many, "seed": cmd_seed, "mkimage": cmd_mkimage,
     "parse": cmd_parse, "sample": cmd_sample}[a.cmd](a)


if __name__ == "__main__":
    main()
