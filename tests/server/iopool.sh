#!/usr/bin/env bash
# No sync on an event-loop thread (issue #10): every fsync of a commit runs on
# berth's I/O threads. An LD_PRELOAD shim makes fsync/fdatasync/msync of files
# under the store sleep (while an "armed" file exists) and records how many
# callers sleep at once. With one event-loop thread:
#   - a manifest GET sent while a blob commit is held in its fsync is answered
#     BEFORE the commit's 201 (the loop does not wait for the disk); the same
#     for a manifest PUT and a DELETE held in their syncs;
#   - two commits sent on that one loop sleep in fsync at the same time;
#   - a client that goes away (reset over HTTP/1, RST_STREAM over HTTP/2)
#     while its commit is held: no crash, no leak
#     (sanitizer build), berth fsck finds the store consistent;
#   - kill -9 while several commits are held: every acknowledged blob is
#     there after a restart, each held one is absent or whole, fsck is clean;
#   - SIGTERM while a commit is held: answered 201 before berth exits 0.
# The shim also holds SHA-256 of large pieces (while $SHIM_HASH_ARMED exists,
# as many ms as it says) to show that uploads hash beside the loop (where the
# loops leave a core, here: one loop on at least 2 CPUs):
#   - a GET is answered while the same hash call of an upload is held;
#   - clients that go away mid-body (HTTP/1 reset and close, HTTP/2
#     RST_STREAM and connection close; monolithic POSTs and PATCHes) while
#     hash jobs run or wait: no crash, no leak, a monolithic upload
#     leaves no file, a PATCH session stays at its last durable offset;
#   - an HTTP/2 upload whose hash jobs are held while the client fills the
#     stream's window commits whole (h2o keeps a held piece's bytes in place).
# Order, not durations: the shim's sleep only has to outlast a GET.
. "$top_srcdir/tests/lib.sh"

command -v "${CC:-cc}" >/dev/null || skip_all "no C compiler for the fsync shim"
cat >"$BR_TMP/shim.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

static int cur, max_seen;

/* "<sleeping now> <most at once> <path of the newest sleeper>" into
 * $SHIM_STATE, rewritten on each change */
static char last[4096] = "-";
static void note(int delta, const char *path_held)
{
    if (path_held != NULL)
        snprintf(last, sizeof(last), "%s", path_held);
    static char buf[4200];
    int c = __atomic_add_fetch(&cur, delta, __ATOMIC_SEQ_CST);
    int m = __atomic_load_n(&max_seen, __ATOMIC_SEQ_CST);
    while (c > m && !__atomic_compare_exchange_n(&max_seen, &m, c, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    const char *path = getenv("SHIM_STATE");
    if (path == NULL)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.%d.%lx", path, getpid(), (unsigned long)pthread_self());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1)
        return;
    int n = snprintf(buf, sizeof(buf), "%d %d %.4000s\n", __atomic_load_n(&cur, __ATOMIC_SEQ_CST),
                     __atomic_load_n(&max_seen, __ATOMIC_SEQ_CST), last);
    if (write(fd, buf, n) != n) {
    }
    close(fd);
    rename(tmp, path);
}

static void hold(int fd)
{
    const char *root = getenv("SHIM_ROOT"), *armed = getenv("SHIM_ARMED");
    if (root == NULL || armed == NULL || access(armed, F_OK) != 0)
        return;
    char target[4096] = "msync";
    if (fd >= 0) {
        char link[64];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            return;
        target[n] = '\0';
        if (strncmp(target, root, strlen(root)) != 0)
            return;
    }
    note(1, target);
    usleep((useconds_t)atoi(getenv("SHIM_MS") ? getenv("SHIM_MS") : "2000") * 1000);
    note(-1, NULL);
}

/* fsync and fdatasync: held, then the real one */
#define HOLD_FD(name)                                                                                                          \
    int name(int fd)                                                                                                           \
    {                                                                                                                          \
        static int (*real)(int);                                                                                               \
        if (real == NULL)                                                                                                      \
            real = (int (*)(int))dlsym(RTLD_NEXT, #name);                                                                      \
        hold(fd);                                                                                                              \
        return real(fd);                                                                                                       \
    }
HOLD_FD(fsync)
HOLD_FD(fdatasync)

/* SHA256_Update of at least 64 KiB (an upload's piece, never a manifest):
 * held first while $SHIM_HASH_ARMED exists, for the ms it holds, noted as
 * "sha256-<call number>" */
int SHA256_Update(void *ctx, const void *p, size_t n)
{
    static int (*real)(void *, const void *, size_t);
    static int calls;
    if (real == NULL)
        real = (int (*)(void *, const void *, size_t))dlsym(RTLD_NEXT, "SHA256_Update");
    const char *armed = getenv("SHIM_HASH_ARMED");
    FILE *f;
    int ms = 0;
    if (n >= 65536 && armed != NULL && (f = fopen(armed, "r")) != NULL) {
        if (fscanf(f, "%d", &ms) != 1)
            ms = 0;
        fclose(f);
        char tag[32];
        snprintf(tag, sizeof(tag), "sha256-%d", __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST));
        note(1, tag);
        usleep((useconds_t)ms * 1000);
        note(-1, NULL);
    }
    return real(ctx, p, n);
}

int msync(void *addr, size_t len, int flags)
{
    static int (*real)(void *, size_t, int);
    if (real == NULL)
        real = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");
    hold(-1);
    return real(addr, len, flags);
}
C
if ! "${CC:-cc}" -shared -fPIC -O1 -o "$BR_TMP/shim.so" "$BR_TMP/shim.c" -ldl -lpthread 2>"$BR_TMP/cc.log"; then
    sed 's/^/# /' "$BR_TMP/cc.log"
    skip_all "the fsync shim does not build"
fi

BR_ROOT=$BR_TMP/store
mkdir -p "$BR_ROOT"
export SHIM_ROOT=$(cd "$BR_ROOT" && pwd -P) SHIM_ARMED=$BR_TMP/armed SHIM_STATE=$BR_TMP/state SHIM_HASH_ARMED=$BR_TMP/hash-armed
export BERTH_THREADS=1 SHIM_MS=1000
[ "${BR_SANITIZED:-0}" = 1 ] && SHIM_MS=2000
export LD_PRELOAD=$BR_TMP/shim.so
[ "${BR_SANITIZED:-0}" = 1 ] && export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
br_start || exit 1
unset LD_PRELOAD # for curl, python and fsck

arm() { : >"$SHIM_ARMED"; }
disarm() { rm -f "$SHIM_ARMED"; }
# sleepers: how many callers sleep in the shim now; most: the most at once
sleepers() { cut -d' ' -f1 "$SHIM_STATE" 2>/dev/null || echo 0; }
most() { cut -d' ' -f2 "$SHIM_STATE" 2>/dev/null || echo 0; }
# wait_sleepers N [GLOB]: until at least N callers sleep in the shim, the
# newest on a path matching GLOB (up to 60 s)
wait_sleepers() {
    local i
    for i in $(seq 1 600); do
        # shellcheck disable=SC2053
        [ "$(sleepers)" -ge "$1" ] && [[ "$(cut -d' ' -f3- "$SHIM_STATE" 2>/dev/null)" == ${2:-*} ]] && return 0
        sleep 0.1
    done
    return 1
}
wait_quiet() {
    local i
    for i in $(seq 1 600); do
        [ "$(sleepers)" -eq 0 ] && return 0
        sleep 0.1
    done
    return 1
}

mkblob() { head -c "$2" /dev/urandom >"$BR_TMP/$1"; echo "sha256:$(sha256_of "$BR_TMP/$1")"; }
# push FILE DIGEST: monolithic POST; prints the status
push() {
    curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$BR_TMP/$1" \
        "$BR_URL/v2/io/r/blobs/uploads/?digest=$2"
}

# A manifest to GET while commits are held.
cfgd=$(mkblob cfg 100)
is "$(push cfg "$cfgd")" 201 "config blob pushed"
man='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'$cfgd'","size":100},"layers":[]}'
printf '%s' "$man" >"$BR_TMP/man"
is "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$BR_TMP/man" "$BR_URL/v2/io/r/manifests/v1")" 201 "manifest pushed"

# log_order ID...: the given request ids (X-Request-Id) in the order berth
# logged their requests as answered (waits up to 30 s for all of them)
log_order() {
    local i id all
    for i in $(seq 1 300); do
        all=1
        for id; do grep -q " $id\$" "$BR_TMP/server.log" || all=0; done
        [ $all = 1 ] && break
        sleep 0.1
    done
    grep -oE " ($(IFS='|'; echo "$*"))\$" "$BR_TMP/server.log" | tr -d ' ' | tr '\n' ' '
}
# probe ID: a manifest GET (the reader that must not wait for a commit)
probe() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 120 -H "X-Request-Id: $1" "$BR_URL/v2/io/r/manifests/v1"
}

# 1. A GET is answered while a blob commit waits for the disk.
d1=$(mkblob b1 300000)
arm
(curl -s -o /dev/null -X POST -H 'Content-Type: application/octet-stream' -H 'X-Request-Id: io-w-1' \
    --data-binary "@$BR_TMP/b1" "$BR_URL/v2/io/r/blobs/uploads/?digest=$d1") &
wp=$!
ok "the commit reaches its fsync" wait_sleepers 1 "$SHIM_ROOT/uploads/*"
is "$(probe io-r-1)" 200 "the manifest GET is answered"
is "$(log_order io-w-1 io-r-1)" "io-r-1 io-w-1 " "the manifest GET is answered before the blob commit held in fsync"
wait $wp
wait_quiet

# 2. Two commits sent on the one loop thread sleep in fsync at once.
d2=$(mkblob b2 200000)
d3=$(mkblob b3 200000)
rm -f "$SHIM_STATE"
(push b2 "$d2" >"$BR_TMP/st2") &
p2=$!
(push b3 "$d3" >"$BR_TMP/st3") &
p3=$!
wait $p2 $p3
is "$(cat "$BR_TMP/st2") $(cat "$BR_TMP/st3")" "201 201" "both concurrent commits succeed"
ok "two commits of one loop thread were in fsync at once (most: $(most))" test "$(most)" -ge 2
wait_quiet

# 3. A manifest PUT and a manifest DELETE held in their syncs do not hold up
# a GET.
(curl -s -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' -H 'X-Request-Id: io-w-2' \
    --data-binary "@$BR_TMP/man" "$BR_URL/v2/io/r/manifests/v2") &
wp=$!
ok "the manifest put reaches its sync" wait_sleepers 1
is "$(probe io-r-2)" 200 "the manifest GET is answered"
is "$(log_order io-w-2 io-r-2)" "io-r-2 io-w-2 " "the manifest GET is answered before a manifest PUT held in its sync"
wait $wp
wait_quiet
(curl -s -o /dev/null -X DELETE -H 'X-Request-Id: io-w-3' "$BR_URL/v2/io/r/manifests/v2") &
wp=$!
ok "the manifest delete reaches its sync" wait_sleepers 1
is "$(probe io-r-3)" 200 "the manifest GET is answered"
is "$(log_order io-w-3 io-r-3)" "io-r-3 io-w-3 " "the manifest GET is answered before a manifest DELETE held in its sync"
wait $wp
wait_quiet

# 4. Clients that go away while their commit is held.
cat >"$BR_TMP/gone.py" <<'PY'
import socket, struct, sys, time
port, method, path, f, state = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
body = open(f, "rb").read()
open(state, "w").write("0 0 -\n")
s = socket.create_connection(("127.0.0.1", port))
s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
           % (method, path, len(body))).encode() + body)
for _ in range(600):  # until the commit sleeps in the shim
    try:
        if int(open(state).read().split()[0]) >= 1:
            break
    except (OSError, ValueError, IndexError):
        pass
    time.sleep(0.1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # a reset
PY
d4=$(mkblob b4 150000)
rm -f "$SHIM_STATE"
python3 "$BR_TMP/gone.py" "$BR_PORT" POST "/v2/io/r/blobs/uploads/?digest=$d4" "$BR_TMP/b4" "$SHIM_STATE"
wait_quiet
# and a PATCH whose client goes away during the save
http POST /v2/io/r/blobs/uploads/ >/dev/null
loc=$(header Location)
python3 "$BR_TMP/gone.py" "$BR_PORT" PATCH "${loc#"$BR_URL"}" "$BR_TMP/b4" "$SHIM_STATE"
wait_quiet
# and HTTP/2 streams reset (RST_STREAM) while held: one in the session's
# start, one in its commit (the newest sleeper in the upload's own file)
cat >"$BR_TMP/rst.py" <<'PY'
import sys, time
from robust_lib import H2Conn, frame, hpack_block, rst, HEADERS, END_HEADERS
port, path, f, state, match = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
body = open(f, "rb").read()
open(state, "w").write("0 0 -\n")
c = H2Conn(port)
c.send(frame(HEADERS, END_HEADERS, 1, hpack_block("POST", path, extra=[("content-type", "application/octet-stream"),
                                                                       ("content-length", str(len(body)))])))
c.send_data(1, body)
for _ in range(600):
    try:
        f = open(state).read().split(" ", 2)
        if int(f[0]) >= 1 and f[2].startswith(match):
            break
    except (OSError, ValueError, IndexError):
        pass
    time.sleep(0.1)
c.send(rst(1))
time.sleep(0.5)
c.close()
PY
d5=$(mkblob b5 140000)
d7=$(mkblob b7 140000)
PYTHONPATH="$top_srcdir/tests/server" PYTHONDONTWRITEBYTECODE=1 python3 "$BR_TMP/rst.py" "$BR_PORT" \
    "/v2/io/r/blobs/uploads/?digest=$d5" "$BR_TMP/b5" "$SHIM_STATE" ""
wait_quiet
PYTHONPATH="$top_srcdir/tests/server" PYTHONDONTWRITEBYTECODE=1 python3 "$BR_TMP/rst.py" "$BR_PORT" \
    "/v2/io/r/blobs/uploads/?digest=$d7" "$BR_TMP/b7" "$SHIM_STATE" "$SHIM_ROOT/uploads/"
ok "the held commits finish" wait_quiet
disarm
for d in "$d5" "$d7"; do
    st=$(curl -s -o "$BR_TMP/got5" -w '%{http_code}' "$BR_URL/v2/io/r/blobs/$d")
    ok "the reset HTTP/2 stream's blob is whole or absent ($st)" \
        test "$st" = 404 -o \( "$st" = 200 -a "$(sha256_of "$BR_TMP/got5")" = "${d#sha256:}" \)
done
st=$(curl -s -o "$BR_TMP/got4" -w '%{http_code}' "$BR_URL/v2/io/r/blobs/$d4")
ok "the server still answers, and the reset client's blob is whole or absent ($st)" \
    test "$st" = 404 -o \( "$st" = 200 -a "$(sha256_of "$BR_TMP/got4")" = "${d4#sha256:}" \)
st=$(curl -s -o /dev/null -w "%{http_code}" "$BR_URL${loc#"$BR_URL"}")
is "$st" 204 "the session of the PATCH whose client went away is there"

# 4b. Uploads hash beside the loop (the hash pool, started on the cores the
# one event loop leaves: at least 2 CPUs needed; the patched build only, as
# only streamed pieces go to the pool)
hash_beside_checks() {
# A GET is answered while an upload's SHA-256 call is held (the same call
# still held when the answer is in; hashing on the loop would hold the GET
# until the call returned).
slow=1
[ "${BR_SANITIZED:-0}" = 1 ] && slow=2
echo $((3000 * slow)) >"$SHIM_HASH_ARMED"
rm -f "$SHIM_STATE"
d8=$(mkblob b8 1000000)
(push b8 "$d8" >"$BR_TMP/st8") &
wp=$!
ok "an upload's hash reaches the shim" wait_sleepers 1 "sha256-*"
call=$(cut -d' ' -f3- "$SHIM_STATE")
is "$(probe io-r-4)" 200 "the manifest GET is answered"
now=$(cat "$SHIM_STATE")
ok "the manifest GET is answered while the upload's hash call is held ($call; after the GET: $now)" \
    test "$(echo "$now" | cut -d' ' -f1)" -ge 1 -a "$(echo "$now" | cut -d' ' -f3-)" = "$call"
rm -f "$SHIM_HASH_ARMED"
wait $wp
is "$(cat "$BR_TMP/st8")" 201 "the upload whose hash was held is committed"
wait_quiet

# Clients that go away mid-body while their hash jobs run or wait (one hash
# thread; each large piece's hash held 300 ms): 8 MiB declared, 1 MiB sent.
cat >"$BR_TMP/abort.py" <<'PY'
import os, socket, struct, sys, threading, time
from robust_lib import H2Conn, frame, hpack_block, rst, HEADERS, END_HEADERS
port, state = int(sys.argv[1]), sys.argv[2]
TOTAL, SENT = 8 << 20, 1 << 20
held = []

def hash_held():
    for _ in range(600):
        try:
            f = open(state).read().split(" ", 2)
            if int(f[0]) >= 1 and f[2].startswith("sha256-"):
                return True
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.05)
    return False

def h1(method, path, how):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (method, path, TOTAL)).encode())
    def send():
        try:
            s.sendall(os.urandom(SENT))
        except OSError:
            pass
    threading.Thread(target=send, daemon=True).start()
    time.sleep(0.2)
    held.append(hash_held())
    if how == "reset":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()

def h2(method, path, how):
    c = H2Conn(port)
    c.send(frame(HEADERS, END_HEADERS, 1, hpack_block(method, path, extra=[("content-type", "application/octet-stream"),
                                                                          ("content-length", str(TOTAL))])))
    threading.Thread(target=c.send_data, args=(1, os.urandom(SENT), False, 30.0), daemon=True).start()
    time.sleep(0.2)
    held.append(hash_held())
    if how == "rst":
        c.send(rst(1))
        time.sleep(0.3)
    c.close()

ts = []
for spec in sys.argv[3:]:
    proto, how, method, path = spec.split(" ", 3)
    ts.append(threading.Thread(target=h1 if proto == "h1" else h2, args=(method, path, how)))
for t in ts:
    t.start()
for t in ts:
    t.join()
print(sum(held), len(held))
PY
uploads() { ls "$BR_ROOT/uploads" | sort | tr '\n' ' '; }
http POST /v2/io/r/blobs/uploads/ >/dev/null
p1=$(header Location)
p1=${p1#"$BR_URL"}
http POST /v2/io/r/blobs/uploads/ >/dev/null
p2=$(header Location)
p2=${p2#"$BR_URL"}
before=$(uploads)
mono=/v2/io/r/blobs/uploads/?digest=sha256:$(printf 'cd%.0s' $(seq 32))
echo $((300 * slow)) >"$SHIM_HASH_ARMED"
rm -f "$SHIM_STATE"
got=$(PYTHONPATH="$top_srcdir/tests/server" PYTHONDONTWRITEBYTECODE=1 python3 "$BR_TMP/abort.py" "$BR_PORT" "$SHIM_STATE" \
    "h1 reset POST $mono" "h1 reset POST $mono" "h1 close POST $mono" "h1 reset PATCH $p1" \
    "h2 rst POST $mono" "h2 rst POST $mono" "h2 close POST $mono" "h2 rst PATCH $p2")
is "$got" "8 8" "every client went away while a hash job was held"
rm -f "$SHIM_HASH_ARMED"
ok "the held hash jobs finish" wait_quiet
after=$(uploads)
for i in $(seq 1 100); do
    [ "$after" = "$before" ] && break
    sleep 0.1
    after=$(uploads)
done
is "$after" "$before" "the monolithic uploads cut off during their hash jobs left no file"
for p in "$p1" "$p2"; do
    st=$(http GET "$p")
    is "$st $(header Range)" "204 0-0" "a PATCH cut off during its hash jobs: the session is at its last durable offset"
done
is "$(probe io-r-5)" 200 "the server still answers"

# An HTTP/2 upload whose pieces wait for their held hash jobs while the
# client fills the stream's window: h2o must not move a held piece's bytes
# as more DATA arrives (server/h2o/0004), so the blob commits whole.
cat >"$BR_TMP/h2held.py" <<'PY'
import hashlib, os, sys
from robust_lib import H2Conn, frame, hpack_block, HEADERS, END_HEADERS
port = int(sys.argv[1])
body = os.urandom(12 << 20)
dg = "sha256:" + hashlib.sha256(body).hexdigest()
c = H2Conn(port)
c.send(frame(HEADERS, END_HEADERS, 1, hpack_block("POST", "/v2/io/r/blobs/uploads/?digest=" + dg,
                                                  extra=[("content-type", "application/octet-stream"),
                                                         ("content-length", str(len(body)))])))
sent = c.send_data(1, body, end=True, timeout=300.0)
with c.cv:
    c.cv.wait_for(lambda: 1 in c.status or 1 in c.rsts or c.closed, 300.0)
print(sent, c.status.get(1), dg)
c.close()
PY
echo $((100 * slow)) >"$SHIM_HASH_ARMED"
set -- $(PYTHONPATH="$top_srcdir/tests/server" PYTHONDONTWRITEBYTECODE=1 python3 "$BR_TMP/h2held.py" "$BR_PORT")
rm -f "$SHIM_HASH_ARMED"
is "$1 $2" "True 201" "an HTTP/2 upload of 12 MiB whose hash jobs were held: 201"
st=$(curl -s -o "$BR_TMP/got9" -w '%{http_code}' "$BR_URL/v2/io/r/blobs/$3")
ok "... and the blob's content has its digest ($st)" test "$st" = 200 -a "sha256:$(sha256_of "$BR_TMP/got9")" = "$3"
}
case $("$BERTH" version 2>/dev/null) in
*" patched,"*) patched=1 ;;
*) patched=0 ;;
esac
if [ "$patched" = 0 ]; then
    # h2o hands the whole body at once: it is hashed in one call on the loop
    diag "this build buffers request bodies in h2o (--with-system-h2o): no hash pool, its checks skipped"
elif [ "$(nproc)" -ge 2 ]; then
    hash_beside_checks
else
    diag "one CPU: no hash pool, its checks skipped"
fi
ok "berth stops cleanly (no leak)" br_stop
no_sanitizer_report "$BR_TMP/server.log"
ok "berth fsck: the store is consistent" "$BERTH" fsck --root "$BR_ROOT"

# 5. kill -9 while several commits are held in the pool.
export LD_PRELOAD=$BR_TMP/shim.so
br_start || exit 1
unset LD_PRELOAD
acked=$(mkblob acked 120000)
is "$(push acked "$acked")" 201 "a blob is acknowledged before the crash"
rm -f "$SHIM_STATE"
arm
held=() hp=()
for i in 1 2 3 4; do
    held+=("$(mkblob h$i 180000)")
    (push h$i "${held[$((i - 1))]}" >/dev/null) &
    hp+=($!)
done
ok "several commits are held at once" wait_sleepers 2
br_kill9
wait "${hp[@]}" 2>/dev/null
disarm
br_start || exit 1
st=$(curl -s -o "$BR_TMP/gota" -w '%{http_code}' "$BR_URL/v2/io/r/blobs/$acked")
ok "the acknowledged blob survived kill -9" test "$st" = 200 -a "$(sha256_of "$BR_TMP/gota")" = "${acked#sha256:}"
bad=0
for d in "${held[@]}"; do
    st=$(curl -s -o "$BR_TMP/goth" -w '%{http_code}' "$BR_URL/v2/io/r/blobs/$d")
    if [ "$st" = 200 ] && [ "sha256:$(sha256_of "$BR_TMP/goth")" = "$d" ]; then
        :
    elif [ "$st" != 404 ]; then
        bad=$((bad + 1))
        diag "held blob $d: $st"
    fi
done
is "$bad" 0 "each blob held at the crash is absent or whole"
br_stop
ok "berth fsck after kill -9: the store is consistent" "$BERTH" fsck --root "$BR_ROOT"

# 6. SIGTERM while a commit is held: the drain waits for the I/O thread, the
# client gets its 201, berth exits 0, and the blob is there after a restart.
export LD_PRELOAD=$BR_TMP/shim.so
br_start || exit 1
unset LD_PRELOAD
d6=$(mkblob b6 160000)
rm -f "$SHIM_STATE"
arm
(push b6 "$d6" >"$BR_TMP/st6") &
wp=$!
ok "the commit reaches its fsync" wait_sleepers 1 "$SHIM_ROOT/uploads/*"
kill -TERM "$BR_PID"
wait $wp
is "$(cat "$BR_TMP/st6")" 201 "the commit held at SIGTERM is answered 201"
rc=0
wait "$BR_PID" || rc=$?
BR_PID=""
is "$rc" 0 "berth exits 0 after draining it"
disarm
br_start || exit 1
st=$(curl -s -o "$BR_TMP/got6" -w '%{http_code}' "$BR_URL/v2/io/r/blobs/$d6")
ok "and the blob is there after a restart" test "$st" = 200 -a "$(sha256_of "$BR_TMP/got6")" = "${d6#sha256:}"
no_sanitizer_report "$BR_TMP/server.log"

done_testing
