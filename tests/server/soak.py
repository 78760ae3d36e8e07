"""Concurrency soak for berth (driven by tests/server/soak.sh; python3 stdlib only).

    soak.py run PORT STATE SECONDS CLIENTS   many clients, mixed load, for SECONDS
    soak.py verify PORT STATE LABEL          every acknowledged write is still right

`run` starts CLIENTS threads. Each owns a repository (soak/wN) and a few tags
and does, at random: monolithic pushes, chunked pushes (POST, PATCH with
Content-Range, some bodies with Transfer-Encoding: chunked, PUT with or without
a last chunk), POSTs whose body is the first chunk, pulls (GET, HEAD, Range),
cross-repository mounts, pushes of the same few blobs to one shared repository
(concurrent commits of one digest), manifest PUTs, retags, manifest and tag
deletes, listings, and connections dropped in the middle of a request or
response body. Every answer is checked as it comes (a blob GET must return the
blob's bytes, a PATCH 202 with the new Range, ...): an answer that belongs to
another request, an h2o plain-text 400, or a dropped connection is an anomaly.
Every acknowledged write (201 for blobs and manifests, 202 for deletes) goes
into STATE; `verify` checks all of it against the server.

Output: PASS/FAIL/# lines (see robust_lib.py), turned into TAP by py_checks.
"""
import hashlib
import http.client
import json
import os
import random
import socket
import sys
import threading
import time

from robust_lib import SANITIZED, check, diag

HOST = "127.0.0.1"
TIMEOUT = 120.0 if SANITIZED else 30.0
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
SHARED_REPO = "soak/shared"
SHARED_SEEDS = list(range(7000000, 7000008))


def content(seed, size):
    return random.Random(seed).randbytes(size)


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def blob_size(rnd):
    # A quarter above 1 MiB: such bodies are written in slices, one per loop
    # iteration, through the thread's wake-up socket (br_defer).
    r = rnd.random()
    if r < 0.35:
        return rnd.randint(0, 2000)
    if r < 0.75:
        return rnd.randint(2000, 300000)
    return rnd.randint(300000, 4 << 20)


class Anomaly(Exception):
    pass


class State:
    """What the server acknowledged. Shared by the workers (one lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.blobs = {}  # (repo, digest) -> (seed, size)
        self.manifests = {}  # (repo, digest) -> {"body": str, "state": present|deleted|unknown}
        self.tags = {}  # (repo, tag) -> list of possible digests (None = absent); one entry when certain
        self.anomalies = []
        self.counts = {}

    def count(self, op):
        with self.lock:
            self.counts[op] = self.counts.get(op, 0) + 1

    def anomaly(self, what):
        with self.lock:
            self.anomalies.append(what)

    def add_blob(self, repo, digest, seed, size):
        with self.lock:
            self.blobs[(repo, digest)] = (seed, size)

    def any_blob(self, rnd):
        with self.lock:
            keys = list(self.blobs)
            if not keys:
                return None
            k = rnd.choice(keys)
            return k, self.blobs[k]

    def dump(self, path):
        with self.lock:
            d = {
                "blobs": [[r, dg, s, n] for (r, dg), (s, n) in self.blobs.items()],
                "manifests": [[r, dg, m["body"], m["state"]] for (r, dg), m in self.manifests.items()],
                "tags": [[r, t, p] for (r, t), p in self.tags.items()],
            }
        with open(path + ".tmp", "w") as f:
            json.dump(d, f)
        os.replace(path + ".tmp", path)


class Client:
    """One keep-alive HTTP/1.1 connection that reconnects after errors."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None

    def req(self, method, path, body=None, headers=None, chunked=False):
        if self.c is None:
            self.c = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT)
        h = dict(headers or {})
        try:
            if chunked:
                h["Transfer-Encoding"] = "chunked"
                self.c.request(method, path, body=body, headers=h, encode_chunked=True)
            else:
                self.c.request(method, path, body=body, headers=h)
            r = self.c.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Anomaly("%s %s: connection failed: %r" % (method, path, e))
        if r.getheader("Connection", "").lower() == "close" or r.will_close:
            self.close()
        return r.status, r, data


def expect(cond, what):
    if not cond:
        raise Anomaly(what)


class Worker(threading.Thread):
    def __init__(self, idx, port, state, deadline, seed):
        super().__init__(daemon=True)
        self.idx = idx
        self.port = port
        self.st = state
        self.deadline = deadline
        self.rnd = random.Random(seed)
        self.repo = "soak/w%d" % idx
        self.cl = Client(port)
        self.n = 0
        self.seed_base = seed * 1000000
        self.my_manifests = []  # digests of present manifests in self.repo

    def next_seed(self):
        self.n += 1
        return self.seed_base + self.n

    # ---- pushes -------------------------------------------------------------------

    def push_mono(self, repo=None, seed=None, size=None):
        repo = repo or self.repo
        seed = seed if seed is not None else self.next_seed()
        size = size if size is not None else blob_size(self.rnd)
        data = content(seed, size)
        d = sha(data)
        st, r, b = self.cl.req("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data,
                               {"Content-Type": "application/octet-stream"})
        expect(st == 201, "monolithic push %s %s: %d %r" % (repo, d, st, b[:200]))
        expect(r.getheader("Docker-Content-Digest") == d, "monolithic push: digest header %r" % r.getheader("Docker-Content-Digest"))
        self.st.add_blob(repo, d, seed, size)
        return d

    def start_session(self, repo):
        st, r, b = self.cl.req("POST", "/v2/%s/blobs/uploads/" % repo)
        expect(st == 202, "POST upload: %d %r" % (st, b[:200]))
        loc = r.getheader("Location")
        expect(loc and "/blobs/uploads/" in loc, "POST upload: Location %r" % loc)
        return loc

    def push_chunked(self):
        seed, size = self.next_seed(), blob_size(self.rnd)
        data = content(seed, size)
        d = sha(data)
        loc = self.start_session(self.repo)
        cuts = sorted(set([0, size] + [self.rnd.randint(0, size) for _ in range(self.rnd.randint(0, 3))]))
        last_in_put = self.rnd.random() < 0.3 and len(cuts) > 2
        chunks = list(zip(cuts, cuts[1:]))
        if last_in_put:
            chunks, final = chunks[:-1], chunks[-1]
        for a, b in chunks:
            if a == b:
                continue
            te = self.rnd.random() < 0.3
            body = data[a:b]
            if te:
                step = max(1, (b - a) // self.rnd.randint(1, 4))
                body = [data[x:min(b, x + step)] for x in range(a, b, step)]
            st, r, rb = self.cl.req("PATCH", loc, body, {"Content-Range": "%d-%d" % (a, b - 1),
                                                         "Content-Type": "application/octet-stream"}, chunked=te)
            expect(st == 202, "PATCH %s (%d-%d%s): %d %r" % (loc, a, b - 1, ", chunked" if te else "", st, rb[:200]))
            expect(r.getheader("Range") == "0-%d" % (b - 1), "PATCH %s: Range %r, want 0-%d" % (loc, r.getheader("Range"), b - 1))
            loc = r.getheader("Location")
        body = data[final[0]:final[1]] if last_in_put else None
        hdr = {"Content-Type": "application/octet-stream"} if body else {}
        st, r, rb = self.cl.req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, body, hdr)
        expect(st == 201, "PUT %s: %d %r" % (loc, st, rb[:200]))
        expect(r.getheader("Docker-Content-Digest") == d, "PUT: digest header")
        self.st.add_blob(self.repo, d, seed, size)

    def push_post_body(self):
        """POST with a body and no digest: the body is the first chunk."""
        seed, size = self.next_seed(), self.rnd.randint(1, 200000)
        data = content(seed, size)
        d = sha(data)
        cut = self.rnd.randint(1, size)
        st, r, b = self.cl.req("POST", "/v2/%s/blobs/uploads/" % self.repo, data[:cut], {"Content-Type": "application/octet-stream"})
        expect(st == 202, "POST with first chunk: %d %r" % (st, b[:200]))
        expect(r.getheader("Range") == "0-%d" % (cut - 1), "POST with first chunk: Range %r" % r.getheader("Range"))
        loc = r.getheader("Location")
        rest = data[cut:]
        st, r, b = self.cl.req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, rest or None,
                               {"Content-Type": "application/octet-stream"} if rest else {})
        expect(st == 201, "PUT after POST with first chunk: %d %r" % (st, b[:200]))
        self.st.add_blob(self.repo, d, seed, size)

    def push_shared(self):
        seed = self.rnd.choice(SHARED_SEEDS)
        self.push_mono(SHARED_REPO, seed, 1000 + (seed % 8) * 50000)

    def mount(self):
        got = self.st.any_blob(self.rnd)
        if got is None:
            return
        (src, d), (seed, size) = got
        if src == self.repo:
            return
        st, r, b = self.cl.req("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (self.repo, d, src))
        expect(st == 201, "mount %s from %s: %d %r" % (d, src, st, b[:200]))
        self.st.add_blob(self.repo, d, seed, size)

    # ---- pulls --------------------------------------------------------------------

    def pull(self):
        got = self.st.any_blob(self.rnd)
        if got is None:
            return
        (repo, d), (seed, size) = got
        mode = self.rnd.random()
        path = "/v2/%s/blobs/%s" % (repo, d)
        if mode < 0.15:
            st, r, b = self.cl.req("HEAD", path)
            expect(st == 200 and r.getheader("Content-Length") == str(size) and r.getheader("Docker-Content-Digest") == d,
                   "HEAD %s: %d len=%r" % (path, st, r.getheader("Content-Length")))
        elif mode < 0.45 and size > 1:
            a = self.rnd.randint(0, size - 1)
            z = self.rnd.randint(a, size - 1)
            st, r, b = self.cl.req("GET", path, headers={"Range": "bytes=%d-%d" % (a, z)})
            data = content(seed, size)
            expect(st == 206 and b == data[a:z + 1] and r.getheader("Content-Range") == "bytes %d-%d/%d" % (a, z, size),
                   "GET %s Range %d-%d: %d, %d bytes, Content-Range %r" % (path, a, z, st, len(b), r.getheader("Content-Range")))
        else:
            st, r, b = self.cl.req("GET", path)
            expect(st == 200 and len(b) == size and sha(b) == d, "GET %s: %d, %d bytes (want %d) %r" % (path, st, len(b), size, b[:100]))

    # ---- manifests and tags ------------------------------------------------------

    def tag_name(self):
        return "w%d-t%d" % (self.idx, self.rnd.randint(0, 3))

    def set_tag(self, tag, possible):
        with self.st.lock:
            self.st.tags[(self.repo, tag)] = possible

    def put_manifest(self, body=None, tag=None):
        if body is None:
            with self.st.lock:
                mine = [(d, v) for (r, d), v in self.st.blobs.items() if r == self.repo]
            if len(mine) < 2:
                return
            cfg = self.rnd.choice(mine)
            layers = self.rnd.sample(mine, self.rnd.randint(1, min(3, len(mine))))
            body = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": cfg[0], "size": cfg[1][1]},
                "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": v[1]} for d, v in layers],
                "annotations": {"soak": "w%d-%d" % (self.idx, self.next_seed())},
            })
        d = sha(body.encode())
        tag = tag or self.tag_name()
        with self.st.lock:
            old = self.st.tags.get((self.repo, tag), [None])
            self.st.manifests.setdefault((self.repo, d), {"body": body, "state": "unknown"})
            if self.st.manifests[(self.repo, d)]["state"] == "deleted":
                self.st.manifests[(self.repo, d)]["state"] = "unknown"
            self.st.tags[(self.repo, tag)] = old + [d]  # until acknowledged: old or new
        st, r, b = self.cl.req("PUT", "/v2/%s/manifests/%s" % (self.repo, tag), body.encode(), {"Content-Type": OCI_MANIFEST})
        expect(st == 201, "PUT manifest %s:%s: %d %r" % (self.repo, tag, st, b[:200]))
        expect(r.getheader("Docker-Content-Digest") == d, "PUT manifest: digest header")
        with self.st.lock:
            self.st.manifests[(self.repo, d)]["state"] = "present"
        self.set_tag(tag, [d])
        if d not in self.my_manifests:
            self.my_manifests.append(d)

    def retag(self):
        if not self.my_manifests:
            return
        d = self.rnd.choice(self.my_manifests)
        with self.st.lock:
            body = self.st.manifests[(self.repo, d)]["body"]
        self.put_manifest(body, self.tag_name())

    def get_manifest(self):
        with self.st.lock:
            mine = [(t, p[0]) for (r, t), p in self.st.tags.items() if r == self.repo and len(p) == 1]
        if not mine:
            return
        tag, d = self.rnd.choice(mine)
        st, r, b = self.cl.req("GET", "/v2/%s/manifests/%s" % (self.repo, tag), headers={"Accept": OCI_MANIFEST})
        if d is None:
            expect(st == 404, "GET deleted tag %s: %d" % (tag, st))
        else:
            expect(st == 200 and sha(b) == d, "GET manifest %s:%s: %d %s, want %s" % (self.repo, tag, st, sha(b), d))

    def delete_manifest(self):
        if not self.my_manifests:
            return
        d = self.rnd.choice(self.my_manifests)
        self.my_manifests.remove(d)
        with self.st.lock:
            self.st.manifests[(self.repo, d)]["state"] = "unknown"
            for (r, t), p in self.st.tags.items():
                if r == self.repo and d in p:
                    p.append(None)
        st, r, b = self.cl.req("DELETE", "/v2/%s/manifests/%s" % (self.repo, d))
        expect(st == 202, "DELETE manifest %s@%s: %d %r" % (self.repo, d, st, b[:200]))
        with self.st.lock:
            self.st.manifests[(self.repo, d)]["state"] = "deleted"
            for (r, t), p in self.st.tags.items():
                if r == self.repo and d in p:
                    # the delete took every tag pointing at d with it
                    self.st.tags[(r, t)] = sorted(set(None if x == d else x for x in p), key=str)

    def delete_tag(self):
        with self.st.lock:
            mine = [t for (r, t), p in self.st.tags.items() if r == self.repo and len(p) == 1 and p[0] is not None]
        if not mine:
            return
        tag = self.rnd.choice(mine)
        with self.st.lock:
            self.st.tags[(self.repo, tag)].append(None)
        st, r, b = self.cl.req("DELETE", "/v2/%s/manifests/%s" % (self.repo, tag))
        expect(st == 202, "DELETE tag %s:%s: %d %r" % (self.repo, tag, st, b[:200]))
        self.set_tag(tag, [None])

    def listing(self):
        if self.rnd.random() < 0.5:
            st, r, b = self.cl.req("GET", "/v2/_catalog?n=%d" % self.rnd.randint(1, 50))
            expect(st == 200 and isinstance(json.loads(b).get("repositories"), list), "catalog: %d %r" % (st, b[:200]))
        else:
            st, r, b = self.cl.req("GET", "/v2/%s/tags/list" % self.repo)
            expect(st in (200, 404), "tags/list: %d %r" % (st, b[:200]))
            if st == 200:
                expect(json.loads(b).get("name") == self.repo, "tags/list name: %r" % b[:200])

    # ---- dropped connections ------------------------------------------------------

    def drop(self):
        """A request whose connection goes away in the middle of a body: an
        upload body (monolithic, PATCH, or chunked Transfer-Encoding), or the
        response body of a pull. Sometimes with a reset instead of a FIN."""
        s = socket.create_connection((HOST, self.port), timeout=TIMEOUT)
        try:
            kind = self.rnd.randint(0, 3)
            size = self.rnd.randint(1000, 1 << 20)
            data = content(self.next_seed(), size)
            cut = self.rnd.randint(0, size - 1)
            if kind == 0:
                head = "POST /v2/%s/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (self.repo, sha(data), size)
                s.sendall(head.encode() + data[:cut])
            elif kind == 1:
                loc = self.start_session(self.repo)
                head = "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Range: 0-%d\r\n\r\n" % (loc, size, size - 1)
                s.sendall(head.encode() + data[:cut])
            elif kind == 2:
                head = "POST /v2/%s/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % (self.repo, sha(data))
                s.sendall(head.encode() + b"%x\r\n" % size + data[:cut])
            else:
                got = self.st.any_blob(self.rnd)
                if got is None or got[1][1] < 1000:
                    return
                (repo, d), _ = got
                s.sendall(("GET /v2/%s/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (repo, d)).encode())
                s.recv(self.rnd.randint(1, 4096))
            if self.rnd.random() < 0.1:
                time.sleep(self.rnd.random() * 0.2)
            if self.rnd.random() < 0.5:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        finally:
            s.close()

    OPS = [("push_mono", 18), ("push_chunked", 14), ("push_post_body", 4), ("push_shared", 5), ("mount", 7),
           ("pull", 22), ("put_manifest", 8), ("retag", 5), ("get_manifest", 5), ("delete_manifest", 2),
           ("delete_tag", 2), ("listing", 3), ("drop", 6), ("reconnect", 3)]

    def reconnect(self):
        self.cl.close()

    def run(self):
        names = [o for o, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        while time.monotonic() < self.deadline:
            op = self.rnd.choices(names, weights)[0]
            try:
                getattr(self, op)()
                self.st.count(op)
            except Anomaly as e:
                self.st.anomaly("w%d %s: %s" % (self.idx, op, e))
                self.cl.close()
            except Exception as e:  # a checker bug must not look like a pass
                self.st.anomaly("w%d %s: driver error %r" % (self.idx, op, e))
                self.cl.close()
        self.cl.close()


def run(port, state_path, seconds, clients):
    st = State()
    deadline = time.monotonic() + seconds
    seed = int(os.environ.get("BR_SOAK_SEED", str(random.randrange(1 << 30))))
    diag("seed %d (BR_SOAK_SEED=%d reruns this mix)" % (seed, seed))
    # One blob above the spill threshold (32 MiB): its body arrives in a
    # mapped file instead of the heap.
    big = threading.Thread(target=lambda: big_push(port, st), daemon=True)
    ws = [Worker(i, port, st, deadline, seed + i) for i in range(clients)]
    big.start()
    for w in ws:
        w.start()
    for w in ws:
        w.join(seconds + 5 * TIMEOUT)
    big.join(5 * TIMEOUT)
    st.dump(state_path)
    diag("operations: " + ", ".join("%s %d" % kv for kv in sorted(st.counts.items())))
    total = sum(st.counts.values())
    check("%d clients ran %d operations in %d s" % (clients, total, seconds), total >= clients * 10, st.counts)
    for a in st.anomalies[:10]:
        diag(a)
    check("every answer during the soak was the right one (%d anomalies)" % len(st.anomalies), not st.anomalies,
          st.anomalies[:3])
    check("all clients finished", not any(w.is_alive() for w in ws))


def big_push(port, st):
    try:
        cl = Client(port)
        size = (32 << 20) + 12345
        data = content(424242, size)
        d = sha(data)
        s, r, b = cl.req("POST", "/v2/soak/big/blobs/uploads/?digest=%s" % d, data, {"Content-Type": "application/octet-stream"})
        if s != 201:
            st.anomaly("big push: %d %r" % (s, b[:200]))
        else:
            st.add_blob("soak/big", d, 424242, size)
        cl.close()
    except Exception as e:
        st.anomaly("big push: %r" % e)


def verify(port, state_path, label):
    d = json.load(open(state_path))
    cl = Client(port)
    bad = []

    def get(method, path, headers=None):
        for attempt in range(2):
            try:
                return cl.req(method, path, headers=headers)
            except Anomaly as e:
                if attempt == 1:
                    raise
                diag("retrying after: %s" % e)

    for repo, dg, seed, size in d["blobs"]:
        st, r, b = get("GET", "/v2/%s/blobs/%s" % (repo, dg))
        if not (st == 200 and len(b) == size and sha(b) == dg and r.getheader("Docker-Content-Digest") == dg):
            bad.append((repo, dg, st, len(b)))
    check("%s: %d acknowledged blobs served with their content and digest" % (label, len(d["blobs"])), not bad, bad[:3])
    bad = []
    n = {"present": 0, "deleted": 0, "unknown": 0}
    for repo, dg, body, state in d["manifests"]:
        n[state] += 1
        st, r, b = get("GET", "/v2/%s/manifests/%s" % (repo, dg), {"Accept": OCI_MANIFEST})
        if state == "present" and not (st == 200 and b == body.encode() and r.getheader("Docker-Content-Digest") == dg):
            bad.append(("present", repo, dg, st))
        elif state == "deleted" and st != 404:
            bad.append(("deleted", repo, dg, st))
        elif state == "unknown" and not (st == 404 or (st == 200 and b == body.encode())):
            bad.append(("unknown", repo, dg, st))
    check("%s: manifests: %d present, %d deleted (404), %d unacknowledged (either)" % (
        label, n["present"], n["deleted"], n["unknown"]), not bad, bad[:3])
    bad = []
    for repo, tag, possible in d["tags"]:
        st, r, b = get("GET", "/v2/%s/manifests/%s" % (repo, tag), {"Accept": OCI_MANIFEST})
        got = sha(b) if st == 200 else None if st == 404 else "status %d" % st
        if got not in possible:
            bad.append((repo, tag, got, possible))
    check("%s: %d tags point where the acknowledged PUTs and deletes left them" % (label, len(d["tags"])), not bad, bad[:3])
    cl.close()


def main():
    if sys.argv[1] == "run":
        run(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        verify(int(sys.argv[2]), sys.argv[3], sys.argv[4])


if __name__ == "__main__":
    main()
