#!/bin/bash
# Garbage collection through the real binary: `berth gc` against a running
# server on the same store (a second process), and the server's periodic
# collection.
#   - a deleted manifest's blobs stay until gc; the dry run's figures equal
#     the real run's; the real run removes the files; the blobs then 404;
#   - the grace period keeps a layer pushed before its manifest;
#   - gc while pushes run: every committed manifest keeps its layers, a
#     racing manifest PUT fails only with MANIFEST_BLOB_UNKNOWN;
#   - repeated kill -9 of gc while pushes run: the next gc finishes, what is
#     tagged is intact;
#   - gc.interval: the server collects by itself.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/oci-lib.sh"

BR_ROOT=$BR_TMP/store
GC_CONF=$BR_TMP/gc.yaml
printf 'gc:\n  interval: 0\n' >"$GC_CONF"
gc_conf() { echo "$GC_CONF"; }
BR_START_CONFIG=gc_conf
br_start || { ok "berth starts" false; done_testing; exit 1; }
at_exit br_stop

nfiles() { find "$BR_ROOT/blobs" -type f | wc -l; }
bgc() { "$BERTH" gc -c "$GC_CONF" --root "$BR_ROOT" "$@" 2>"$BR_TMP/gc.err" | tail -n 1; }

# push_image REPO TAG SEED — config + 2 layers + manifest; prints the manifest digest.
push_image() {
    local repo=$1 tag=$2 seed=$3 d i layers=""
    printf '{"seed":"%s"}' "$seed" >"$BR_TMP/cfg"
    push_blob "$repo" "$BR_TMP/cfg" || return 1
    for i in 1 2; do
        printf 'layer %s %s' "$seed" "$i" >"$BR_TMP/l$i"
        push_blob "$repo" "$BR_TMP/l$i" || return 1
        layers="$layers${layers:+,}{\"mediaType\":\"$OCI_LAYER\",\"digest\":\"$(sha256d "$BR_TMP/l$i")\",\"size\":$(fsize "$BR_TMP/l$i")}"
    done
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[%s]}' \
        "$OCI_MANIFEST" "$OCI_CONFIG" "$(sha256d "$BR_TMP/cfg")" "$(fsize "$BR_TMP/cfg")" "$layers" >"$BR_TMP/man"
    [ "$(put_manifest "$repo" "$tag" "$BR_TMP/man" "$OCI_MANIFEST")" = 201 ] || return 1
    sha256d "$BR_TMP/man"
}

# ---- a deleted manifest: dry run, then the real run -------------------------------
man=$(push_image gc/a v1 one)
ok "push an image" [ -n "$man" ]
bytes=$(($(fsize "$BR_TMP/cfg") + $(fsize "$BR_TMP/l1") + $(fsize "$BR_TMP/l2") + $(fsize "$BR_TMP/man")))
layer=$(sha256d "$BR_TMP/l1")
is "$(nfiles)" 4 "4 files in blobs/ (config, 2 layers, manifest)"
is "$(bgc --grace 0)" "gc: 0 blobs, 0 manifests, 0 bytes reclaimed" "gc on a store with nothing to collect"
is "$(http DELETE "/v2/gc/a/manifests/$man")" 202 "delete the manifest"
is "$(nfiles)" 4 "its files stay after the delete"
is "$(bgc --dry-run --grace 0)" "gc (dry run): 4 blobs, 0 manifests, $bytes bytes would be reclaimed" "dry run reports 4 blobs, $bytes bytes"
is "$(nfiles)" 4 "the dry run removes nothing"
is "$(bgc --grace 0)" "gc: 4 blobs, 0 manifests, $bytes bytes reclaimed" "the real run reclaims the same, while the server runs"
is "$(nfiles)" 0 "the files are gone"
is "$(http GET "/v2/gc/a/blobs/$layer")" 404 "a collected layer: 404"
like "$(body)" BLOB_UNKNOWN "... BLOB_UNKNOWN"

# ---- grace: a layer pushed before its manifest --------------------------------------
printf 'early layer' >"$BR_TMP/early"
push_blob gc/b "$BR_TMP/early"
early=$(sha256d "$BR_TMP/early")
is "$(bgc)" "gc: 0 blobs, 0 manifests, 0 bytes reclaimed" "gc with the default grace (1h) keeps the fresh layer"
is "$(http GET "/v2/gc/b/blobs/$early")" 200 "still served"
printf '{}' >"$BR_TMP/cfg2"
push_blob gc/b "$BR_TMP/cfg2"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":2},"layers":[{"mediaType":"%s","digest":"%s","size":%s}]}' \
    "$OCI_MANIFEST" "$OCI_CONFIG" "$(sha256d "$BR_TMP/cfg2")" "$OCI_LAYER" "$early" "$(fsize "$BR_TMP/early")" >"$BR_TMP/man2"
is "$(put_manifest gc/b v1 "$BR_TMP/man2" "$OCI_MANIFEST")" 201 "its manifest, pushed after the collection, is accepted"
is "$(bgc --grace 0)" "gc: 0 blobs, 0 manifests, 0 bytes reclaimed" "once tagged, even grace 0 keeps it"

is "$("$BERTH" gc --grace soon --root "$BR_ROOT" >/dev/null 2>&1; echo $?)" 2 "a bad --grace: exit 2"
is "$("$BERTH" gc --root "$BR_TMP/nowhere" 2>&1; echo "rc=$?")" "berth gc: no store at $BR_TMP/nowhere
rc=1" "no store at --root: exit 1, nothing created"
ok "... and no directory made" [ ! -e "$BR_TMP/nowhere" ]

# ---- gc while pushes run -----------------------------------------------------------
cat >"$BR_TMP/pusher.py" <<'PY'
import hashlib, http.client, json, random, sys, threading, time
port, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
pushed, refused, bad = [], [0], []
OCT = {"Content-Type": "application/octet-stream"}

def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

def req(c, m, p, body=None, h=None):
    c.request(m, p, body=body, headers=h or {})
    r = c.getresponse()
    return r.status, r.read(), r

def worker(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    end = time.time() + seconds
    i = 0
    while time.time() < end:
        i += 1
        repo = "race/r%d" % (n % 2)
        # layer 0 is one of a few shared blobs, pushed, deleted and collected over and over
        blobs = [b"shared %d" % (i % 3), b"unique %d %d" % (n, i), b'{"n":%d,"i":%d}' % (n, i)]
        man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(blobs[2]), "size": len(blobs[2])},
                          "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(b), "size": len(b)} for b in blobs[:2]]}).encode()
        tag = "t%d-%d" % (n, i)
        # As a client does after MANIFEST_BLOB_UNKNOWN: push the blobs again, retry.
        for attempt in range(5):
            ok = True
            for b in blobs:
                st, body, _ = req(c, "POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, sha(b)), b, OCT)
                if st != 201:
                    bad.append("blob %d %s" % (st, body[:200])); ok = False
            if not ok:
                break
            st, body, _ = req(c, "PUT", "/v2/%s/manifests/%s" % (repo, tag), man, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            if st == 400 and b"MANIFEST_BLOB_UNKNOWN" in body:
                with lock: refused[0] += 1
                continue
            break
        if not ok or st == 400 and b"MANIFEST_BLOB_UNKNOWN" in body:
            continue
        if st != 201:
            bad.append("manifest %d %s" % (st, body[:200])); continue
        if i % 2 == 0:
            st, body, _ = req(c, "DELETE", "/v2/%s/manifests/%s" % (repo, sha(man)))
            if st != 202:
                bad.append("delete %d" % st)
        else:
            with lock: pushed.append((repo, tag, sha(man), [sha(b) for b in blobs]))

ts = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
# Everything still tagged must be whole: manifest and every blob, bytes checked.
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for repo, tag, md, ds in pushed:
    st, body, r = req(c, "GET", "/v2/%s/manifests/%s" % (repo, tag), None, {"Accept": "application/vnd.oci.image.manifest.v1+json"})
    if st != 200 or sha(body) != md:
        bad.append("lost manifest %s:%s %d" % (repo, tag, st)); continue
    for d in ds:
        st, body, _ = req(c, "GET", "/v2/%s/blobs/%s" % (repo, d))
        if st != 200 or sha(body) != d:
            bad.append("lost blob %s in %s:%s (%d)" % (d, repo, tag, st))
json.dump({"pushed": len(pushed), "refused": refused[0], "bad": bad[:20], "nbad": len(bad)}, open(out, "w"))
PY

SECS=${BR_GC_RACE_SECONDS:-6}
"$PY" "$BR_TMP/pusher.py" "$BR_PORT" "$SECS" "$BR_TMP/race.json" &
pusher=$!
runs=0 fails=0
while kill -0 "$pusher" 2>/dev/null; do
    out=$(bgc --grace 0)
    case $out in "gc: "*" reclaimed") ;; *) fails=$((fails + 1)); diag "gc: $out $(cat "$BR_TMP/gc.err")" ;; esac
    runs=$((runs + 1))
    sleep "0.$((RANDOM % 2))$((RANDOM % 10))" # back to back, a loaded machine may let no push through
done
wait "$pusher"
is "$fails" 0 "$runs collections with grace 0 while 4 clients pushed and deleted"
diag "pusher: $(cat "$BR_TMP/race.json")"
is "$(jq .nbad "$BR_TMP/race.json")" 0 "every tagged image is whole; only MANIFEST_BLOB_UNKNOWN refusals"
ok "images were pushed" [ "$(jq .pushed "$BR_TMP/race.json")" -gt 0 ]

# ---- kill -9 during collections, with pushes ------------------------------------------
"$PY" "$BR_TMP/pusher.py" "$BR_PORT" "$SECS" "$BR_TMP/kill.json" &
pusher=$!
kills=0
while kill -0 "$pusher" 2>/dev/null; do
    "$BERTH" gc -c "$GC_CONF" --root "$BR_ROOT" --grace 0 >/dev/null 2>&1 &
    g=$!
    sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
    if kill -KILL "$g" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$g" 2>/dev/null
done
wait "$pusher"
ok "gc killed with SIGKILL $kills times during pushes" [ "$kills" -gt 0 ]
is "$(jq .nbad "$BR_TMP/kill.json")" 0 "every tagged image is whole after the kills"
out=$(bgc --grace 0)
like "$out" '^gc: [0-9]+ blobs, [0-9]+ manifests, [0-9]+ bytes reclaimed$' "the next gc finishes"
is "$(bgc --dry-run --grace 0)" "gc (dry run): 0 blobs, 0 manifests, 0 bytes would be reclaimed" "and leaves nothing behind"
is "$(find "$BR_ROOT/trash" -type f | wc -l)" 0 "trash/ is empty"
out=$("$BERTH" fsck -c "$GC_CONF" --root "$BR_ROOT" 2>&1)
is "$?" 0 "berth fsck (blobs re-hashed, with the server running): exit 0"
like "$(printf '%s\n' "$out" | tail -n 1)" '^fsck: [1-9][0-9]* blobs, [1-9][0-9]* manifests checked, 0 problems$' "... 0 problems"

# ---- fsck finds damage --------------------------------------------------------------
man=$(push_image gc/f v1 fsck)
layer_f=$(sha256_of "$BR_TMP/l1")
victim="$BR_ROOT/blobs/sha256/${layer_f:0:2}/$layer_f"
printf 'layer fsck 9' >"$victim" # same size, other bytes
out=$("$BERTH" fsck --root "$BR_ROOT" 2>&1)
is "$?" 1 "fsck of a store with a corrupted blob: exit 1"
like "$out" "sha256:$layer_f: content hashes to" "... names the blob"
like "$(printf '%s\n' "$out" | tail -n 1)" '^fsck: [0-9]+ blobs, [0-9]+ manifests checked, 1 problems$' "... 1 problem"
printf 'layer fsck 1' >"$victim"
orphan=$(printf 'an orphan' | sha256sum | cut -c1-64)
mkdir -p "$BR_ROOT/blobs/sha256/${orphan:0:2}"
printf 'an orphan' >"$BR_ROOT/blobs/sha256/${orphan:0:2}/$orphan"
out=$("$BERTH" fsck --root "$BR_ROOT" 2>&1)
is "$?" 1 "an orphan file: exit 1"
like "$out" "sha256:$orphan: orphan file \(9 bytes\)" "... named as an orphan"
out=$("$BERTH" fsck --root "$BR_ROOT" --repair 2>&1)
is "$?" 0 "fsck --repair: exit 0 once everything found is repaired"
like "$out" "orphan file removed \(nothing references it\)" "... it removed the orphan"
ok "... whose file is gone" [ ! -e "$BR_ROOT/blobs/sha256/${orphan:0:2}/$orphan" ]
out=$("$BERTH" fsck --root "$BR_ROOT" 2>&1)
is "$?:$(printf '%s\n' "$out" | tail -n 1 | sed 's/[0-9]* blobs, [0-9]* manifests/N blobs, M manifests/')" "0:fsck: N blobs, M manifests checked, 0 problems" "then fsck is clean"
is "$("$BERTH" fsck --root "$BR_TMP/nowhere" >/dev/null 2>&1; echo $?)" 1 "fsck with no store: exit 1"
no_sanitizer_report "$BR_TMP/server.log"

# ---- berth du ---------------------------------------------------------------------
man1=$(push_image du/one v1 du)
one=$(($(fsize "$BR_TMP/cfg") + $(fsize "$BR_TMP/l1") + $(fsize "$BR_TMP/l2") + $(fsize "$BR_TMP/man")))
man2=$(push_image du/two v1 du) # the same image: every byte shared
printf 'only in one' >"$BR_TMP/only"
push_blob du/one "$BR_TMP/only"
out=$("$BERTH" du --root "$BR_ROOT" 'du/**')
is "$?" 0 "berth du: exit 0"
is "$(printf '%s\n' "$out" | awk '$1 == "du/one" {print $2, $3, $4, $5}')" "5 $((one + 11)) 11 $one" \
    "du/one: 5 blobs, unique = the blob only it holds, shared = the image"
is "$(printf '%s\n' "$out" | awk '$1 == "du/two" {print $2, $3, $4, $5}')" "4 $one 0 $one" "du/two: all shared"
is "$(printf '%s\n' "$out" | grep -c '^gc/')" 0 "the glob leaves other repositories out"
is "$("$BERTH" du --root "$BR_ROOT" 'du/t*' | awk 'NR > 1 && !/^du:/ {print $1}')" "du/two" "'du/t*' lists du/two only"
store=$(find "$BR_ROOT/blobs" -type f -printf '%s\n' | awk '{n++; b += $1} END {print n, b}')
like "$(printf '%s\n' "$out" | tail -n 1)" "^du: 2 repositories listed; store: ${store% *} blobs, ${store#* } bytes; reclaimable now: 0 bytes\$" \
    "last line: the store's blobs and bytes (as on disk), nothing reclaimable within the grace period"
is "$(http DELETE "/v2/du/two/manifests/$man2")" 202 "delete du/two's manifest"
printf 'gc:\n  interval: 0\n  grace: 0\n' >"$BR_TMP/grace0.yaml"
want=$(bgc --dry-run --grace 0 | sed -E 's/.*manifests, ([0-9]+) bytes.*/\1/')
like "$("$BERTH" du -c "$BR_TMP/grace0.yaml" --root "$BR_ROOT" | tail -n 1)" "reclaimable now: $want bytes\$" \
    "reclaimable now = what gc --dry-run would reclaim ($want bytes)"
is "$("$BERTH" du --root "$BR_ROOT" a b >/dev/null 2>&1; echo $?)" 2 "two globs: exit 2"

# ---- the server's periodic collection -------------------------------------------------
bgc --grace 0 >/dev/null # start from a collected store
br_stop
printf 'gc:\n  interval: 1s\n  grace: 0\n' >"$GC_CONF"
br_start || { ok "berth restarts with gc.interval 1s" false; done_testing; exit 1; }
man=$(push_image gc/p v1 periodic)
before=$(nfiles)
is "$(http DELETE "/v2/gc/p/manifests/$man")" 202 "delete a manifest"
for i in $(seq 1 100); do
    [ "$(nfiles)" -le $((before - 4)) ] && break
    sleep 0.1
done
is "$(nfiles)" $((before - 4)) "the server collected its 4 blobs by itself"
like "$(cat "$BR_TMP/server.log")" 'gc: [1-9][0-9]* blobs, 0 manifests, [0-9]+ bytes reclaimed' "and logged it"
rc=0
br_stop || rc=$?
is "$rc" 0 "the server stops cleanly with the collector running"
no_sanitizer_report "$BR_TMP/server.log"

done_testing
