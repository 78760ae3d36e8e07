#!/bin/bash
# kill -9 fault test. Round after round on the same store: start berth, run
# concurrent pushes (monolithic and chunked blobs, manifests with tags), kill -9
# at a random moment, restart, and verify:
#   - berth starts without repair;
#   - every blob that got a 201 is served with the right content and headers;
#   - a blob whose push did not complete is 404, or served with its digest's content;
#   - upload sessions that were in progress either resume correctly or are 404;
#   - every tag is absent or points at a complete manifest whose blobs are present.
# BR_CRASH_ROUNDS (default 15) and BR_CRASH_SECONDS (default 50) bound it.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"

ROUNDS=${BR_CRASH_ROUNDS:-15}
BUDGET=${BR_CRASH_SECONDS:-55}
LOG="$BR_TMP/pushes.jsonl"
: >"$LOG"

# The pusher: 4 threads until the server goes away (or 5 s). Every event is
# appended to the log before/after the request it describes.
cat >"$BR_TMP/pusher.py" <<'PY'
import http.client, json, os, random, sys, threading, time
port, log, rnd_seed, rnd_no = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lock = threading.Lock()
f = open(log, "a")


def rec(**kw):
    with lock:
        f.write(json.dumps(kw) + "\n")
        f.flush()


def content(seed, size):
    return random.Random(seed).randbytes(size)


def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=5)


def req(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    r.read()
    return r.status, r


def sha(b):
    import hashlib
    return "sha256:" + hashlib.sha256(b).hexdigest()


def push_blob(c, repo, seed, size, chunked):
    data = content(seed, size)
    d = sha(data)
    rec(ev="attempt", repo=repo, digest=d, size=size, seed=seed)
    if not chunked:
        st, r = req(c, "POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data, {"Content-Type": "application/octet-stream"})
    else:
        st, r = req(c, "POST", "/v2/%s/blobs/uploads/" % repo)
        loc = r.getheader("Location")
        cut = [0] + sorted(random.Random(seed + 1).sample(range(1, size), 2)) + [size] if size > 3 else [0, size]
        for a, b in zip(cut, cut[1:]):
            if a == b:
                continue
            st, r = req(c, "PATCH", loc, data[a:b], {"Content-Range": "%d-%d" % (a, b - 1), "Content-Type": "application/octet-stream"})
            if st != 202:
                return None
            loc = r.getheader("Location")
            rec(ev="session", repo=repo, loc=loc, digest=d, size=size, seed=seed, acked=b)
        st, r = req(c, "PUT", loc + "?digest=" + d)
    if st == 201:
        rec(ev="created", repo=repo, digest=d, size=size)
        return d, size
    return None


def worker(i):
    rnd = random.Random(rnd_seed * 100 + i)
    c = conn()
    n = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 5:
            n += 1
            repo = "crash/r%d" % (i % 2)
            seed = rnd_seed * 1000000 + i * 10000 + n
            if i == 3:
                # manifests: a config and a layer, then PUT under a tag
                cfg = push_blob(c, repo, seed, rnd.randint(50, 300), False)
                lay = push_blob(c, repo, seed + 5000, rnd.randint(1, 3 << 20), bool(n % 2))
                if not cfg or not lay:
                    continue
                man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg[0], "size": cfg[1]},
                                  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": lay[0], "size": lay[1]}]}).encode()
                for tag in ("latest", "round%d-%d" % (rnd_no, n)):
                    rec(ev="mattempt", repo=repo, tag=tag, digest=sha(man))
                    st, r = req(c, "PUT", "/v2/%s/manifests/%s" % (repo, tag), man,
                                {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
                    if st == 201:
                        rec(ev="mcreated", repo=repo, tag=tag, digest=sha(man))
            else:
                push_blob(c, repo, seed, rnd.randint(1, 3 << 20), rnd.random() < 0.5)
    except Exception:
        pass


ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
PY

# The checker: verifies the store against the log after a restart.
cat >"$BR_TMP/verify.py" <<'PY'
import hashlib, http.client, json, random, sys
from robust_lib import check, diag
port, log, final = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
ev = [json.loads(l) for l in open(log) if l.strip().endswith("}")]


def get(method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    b = r.read()
    c.close()
    return r.status, r, b


created = {(e["repo"], e["digest"]): e["size"] for e in ev if e["ev"] == "created"}
attempts = {(e["repo"], e["digest"]): e for e in ev if e["ev"] == "attempt"}
rnd = random.Random()
# This round's blobs all; older ones sampled, all in the last round.
keys = list(created)
if not final and len(keys) > 40:
    keys = keys[-25:] + rnd.sample(keys[:-25], 15)
bad = []
for repo, d in keys:
    st, r, b = get("GET", "/v2/%s/blobs/%s" % (repo, d))
    okb = (st == 200 and "sha256:" + hashlib.sha256(b).hexdigest() == d and len(b) == created[(repo, d)]
           and r.getheader("Docker-Content-Digest") == d and r.getheader("Content-Length") == str(len(b)))
    if not okb:
        bad.append((repo, d, st, len(b)))
check("%d acknowledged blobs served with the right content and headers" % len(keys), not bad, bad[:3])
bad, served = [], 0
for (repo, d), e in attempts.items():
    if (repo, d) in created:
        continue
    st, r, b = get("GET", "/v2/%s/blobs/%s" % (repo, d))
    if st == 200:
        served += 1
        if "sha256:" + hashlib.sha256(b).hexdigest() != d:
            bad.append((repo, d, st, len(b)))
    elif st != 404:
        bad.append((repo, d, st))
check("unacknowledged blobs: 404 or complete (%d of %d served, all matching)" % (
    served, len([k for k in attempts if k not in created])), not bad, bad[:3])
# In-progress sessions: last event per location, for blobs not acknowledged.
sessions = {}
for e in ev:
    if e["ev"] == "session":
        sessions[e["loc"].split("/")[-1]] = e
todo = [e for e in sessions.values() if (e["repo"], e["digest"]) not in created and not e.get("done")]
resumed = gone = 0
bad = []
for e in todo[-3:]:
    st, r, _ = get("GET", e["loc"])
    if st == 404:
        gone += 1
        continue
    rng = r.getheader("Range") or ""
    try:
        have = int(rng.split("-")[1]) + 1 if rng != "0-0" else 0
    except (IndexError, ValueError):
        bad.append(("bad Range", rng))
        continue
    if st != 204 or have < e["acked"] or have > e["size"]:
        bad.append((e["loc"], st, rng, e["acked"], e["size"]))
        continue
    data = random.Random(e["seed"]).randbytes(e["size"])
    loc = e["loc"]
    if have < e["size"]:
        st, r, b = get("PATCH", loc, data[have:], {"Content-Range": "%d-%d" % (have, e["size"] - 1),
                                                   "Content-Type": "application/octet-stream"})
        if st != 202:
            bad.append(("PATCH", loc, st, b[:200]))
            continue
        loc = r.getheader("Location")
    st, r, b = get("PUT", loc + "?digest=" + e["digest"])
    st2, _, b2 = get("GET", "/v2/%s/blobs/%s" % (e["repo"], e["digest"]))
    if st != 201 or st2 != 200 or b2 != data:
        bad.append(("PUT", loc, st, b[:200], st2))
        continue
    resumed += 1
    print(json.dumps({"ev": "created", "repo": e["repo"], "digest": e["digest"], "size": e["size"]}), file=open(log, "a"))
check("interrupted upload sessions: %d resumed to a correct blob, %d gone (404)" % (resumed, gone), not bad, bad[:3])
# Tags: absent, or a complete manifest whose blobs are all present.
tags = {}
for e in ev:
    if e["ev"] in ("mattempt", "mcreated"):
        tags.setdefault((e["repo"], e["tag"]), set()).add(e["ev"])
bad, present = [], 0
for (repo, tag), kinds in tags.items():
    st, r, b = get("GET", "/v2/%s/manifests/%s" % (repo, tag), headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    if st == 404:
        if "mcreated" in kinds:
            bad.append(("acknowledged tag missing", repo, tag))
        continue
    if st != 200:
        bad.append((repo, tag, st))
        continue
    present += 1
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    if r.getheader("Docker-Content-Digest") != d:
        bad.append(("digest header", repo, tag))
    try:
        m = json.loads(b)
        for desc in [m["config"]] + m["layers"]:
            st, r, _ = get("HEAD", "/v2/%s/blobs/%s" % (repo, desc["digest"]))
            if st != 200 or r.getheader("Content-Length") != str(desc["size"]):
                bad.append(("blob of manifest", repo, tag, desc["digest"], st))
    except (ValueError, KeyError) as ex:
        bad.append(("manifest body", repo, tag, repr(ex)))
    st, _, b2 = get("GET", "/v2/%s/manifests/%s" % (repo, d), headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    if st != 200 or b2 != b:
        bad.append(("by digest", repo, tag, st))
check("%d tags: each absent or a complete manifest with all blobs present (%d present)" % (len(tags), present), not bad, bad[:3])
PY

t_start=$(date +%s)
round=0
while [ "$round" -lt "$ROUNDS" ] && [ $(($(date +%s) - t_start)) -lt "$BUDGET" ]; do
    round=$((round + 1))
    if ! br_start >/dev/null; then
        ok "round $round: berth starts on the crashed store without repair" false
        sed 's/^/#   /' "$BR_TMP/server.log" | tail -20
        break
    fi
    timeout 20 python3 "$BR_TMP/pusher.py" "$BR_PORT" "$LOG" "$RANDOM" "$round" &
    pusher=$!
    # Wait (at most 3 s) until this round has acknowledged a few pushes, so
    # the kill lands among pushes in flight rather than before the first.
    before=$(grep -c '"created"' "$LOG")
    for _ in $(seq 1 60); do
        [ "$(grep -c '"created"' "$LOG")" -ge $((before + 3)) ] && break
        sleep 0.05
    done
    sleep "0.$(printf '%03d' $((RANDOM % 300)))"
    br_kill9
    wait "$pusher" 2>/dev/null
    t0=$(date +%s%N)
    ok "round $round: berth restarts on the crashed store without repair" br_start
    diag "round $round: restart took $((($(date +%s%N) - t0) / 1000000)) ms"
    [ -n "$BR_PID" ] || break
    final=0
    if [ "$round" -ge "$ROUNDS" ] || [ $(($(date +%s) - t_start)) -ge "$BUDGET" ]; then final=1; fi
    py_checks "$BR_TMP/verify.py" "$BR_PORT" "$LOG" "$final"
    ok "round $round: clean exit" br_stop
done
diag "$round rounds in $(($(date +%s) - t_start)) s; $(grep -c '"created"' "$LOG") blobs acknowledged, $(grep -c '"attempt"' "$LOG") attempted, $(grep -c '"mcreated"' "$LOG") manifest PUTs acknowledged"
ok "at least 5 rounds ran" test "$round" -ge 5
ok "no sanitizer report or crash in the server log" server_log_clean
done_testing
