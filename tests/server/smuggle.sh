#!/bin/bash
# Request smuggling through chunk sizes (issue 9 item 2). h2o 2.2.5's bundled
# decoder reads a size line like `0x5`, `5<NUL>`, `5 ` or one ending in a bare
# LF leniently, so a body ends where a front proxy would not think it does and
# the bytes after it run as a request of their own. berth replaces the decoder
# (server/h1chunk.c): every malformed size line is one 400 (a POST /v2/ is 405
# on its head in the patched build, its body never read) with
# `Connection: close`, the connection closes, and the request hidden behind it
# (a DELETE of a blob) never runs. Checked on uploads (PATCH, PUT, POST), a
# manifest PUT and /v2/, over plain HTTP/1.1 and over TLS; valid chunked bodies
# (extensions, trailers, many chunks, size lines split across reads, a request
# pipelined after the body) keep working.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/server/robust_lib.sh"
command -v openssl >/dev/null 2>&1 || skip_all "openssl not installed"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

cat >"$BR_TMP/check.py" <<'PY'
import hashlib, json, os, socket, ssl, sys, time
from robust_lib import check, diag, parse_response, statuses, SLOWDOWN

port, mode = int(sys.argv[1]), sys.argv[2]
TIMEOUT = 10.0 * SLOWDOWN


def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    return s


def read_until_close(s, timeout=TIMEOUT):
    """(data, closed): everything the server sent until it closed or timeout."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            return data, False
        except (OSError, ssl.SSLError):
            return data, True
        if not d:
            return data, True
        data += d
    return data, False


def exchange(pieces, gap=0.0, timeout=TIMEOUT):
    s = connect()
    try:
        for p in pieces:
            try:
                s.sendall(p)
            except OSError:
                # the server answered and closed before the whole body was
                # sent (a 413 mid-body); its answer is still there to read
                break
            if gap:
                time.sleep(gap)
        return read_until_close(s, timeout)
    finally:
        s.close()


def head(method, path, headers=()):
    h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    return (h + "".join("%s: %s\r\n" % kv for kv in headers)).encode()


def request(method, path, headers=(), body=b""):
    if body:
        headers = tuple(headers) + (("Content-Length", str(len(body))),)
    data, _ = exchange([head(method, path, tuple(headers) + (("Connection", "close"),)) + b"\r\n" + body])
    return parse_response(data)


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def push_blob(repo, data):
    st, _, _ = request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, digest(data)),
                       (("Content-Type", "application/octet-stream"),), data)
    return st == 201


def blob_there(repo, d):
    return request("HEAD", "/v2/%s/blobs/%s" % (repo, d))[0] == 200


def new_session(repo):
    st, h, _ = request("POST", "/v2/%s/blobs/uploads/" % repo)
    return h.get("location", "") if st == 202 else None


def error_code(hdrs, body):
    try:
        assert hdrs.get("content-type", "").startswith("application/json")
        return json.loads(body)["errors"][0]["code"]
    except Exception:
        return None


def with_query(loc, q):
    return loc + ("&" if "?" in loc else "?") + q


HELLO = b"hello"
OCT = ("Content-Type", "application/octet-stream")
MT = "application/vnd.oci.image.manifest.v1+json"

# A manifest to carry as a chunked body: its config and layer must exist.
cfg, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(1000)
check("%s: push the manifest's config and layer" % mode, push_blob("carry", cfg) and push_blob("carry", layer))
manifest = json.dumps({"schemaVersion": 2, "mediaType": MT,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(cfg),
                                  "size": len(cfg)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer),
                                   "size": len(layer)}]}).encode()


# Carriers: (name, function giving the request head); the body is always one
# chunk of 5 bytes whose size line is malformed ("hello" for the uploads).
def carriers():
    loc = new_session("carry")
    yield "PATCH upload", head("PATCH", loc, (OCT, ("Transfer-Encoding", "chunked")))
    loc = new_session("carry")
    yield "PUT upload", head("PUT", with_query(loc, "digest=" + digest(HELLO)), (OCT, ("Transfer-Encoding", "chunked")))
    yield "POST monolithic", head("POST", "/v2/carry/blobs/uploads/?digest=" + digest(HELLO),
                                  (OCT, ("Transfer-Encoding", "chunked")))
    yield "PUT manifest", head("PUT", "/v2/carry/manifests/v1", (("Content-Type", MT), ("Transfer-Encoding", "chunked")))
    yield "POST /v2/", head("POST", "/v2/", (("Transfer-Encoding", "chunked"),))


# Malformed size lines, each framed so that a lenient decoder finds a complete
# body and then the smuggled request.
BAD = [
    ("0x5", b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("5 NUL", b"5\x00\r\nhello\r\n0\r\n\r\n"),
    ("0 NUL", b"0\x00\r\n\r\n"),
    ("+5", b"+5\r\nhello\r\n0\r\n\r\n"),
    ("space 5", b" 5\r\nhello\r\n0\r\n\r\n"),
    ("5 space", b"5 \r\nhello\r\n0\r\n\r\n"),
    ("0 space", b"0 \r\n\r\n"),
    ("bare LF", b"5\nhello\n0\n\n"),
    ("bare LF after data", b"5\r\nhello\n0\r\n\r\n"),
    ("CR CR LF", b"5\r\r\nhello\r\n0\r\n\r\n"),
    ("17 hex digits", b"00000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("CTL in extension", b"5;a\x01b\r\nhello\r\n0\r\n\r\n"),
]

n = 0
for bad_name, bad in BAD:
    for carrier_name, req_head in carriers():
        n += 1
        victim = os.urandom(64) + str(n).encode()
        if not push_blob("victim", victim):
            check("%s: push victim blob %d" % (mode, n), False)
            continue
        hidden = head("DELETE", "/v2/victim/blobs/" + digest(victim)) + b"\r\n"
        # berth closes at once; a server that keeps the connection open fails after 2 s
        data, closed = exchange([req_head + b"\r\n" + bad + hidden], timeout=2.0 * SLOWDOWN)
        st = statuses(data)
        status, hdrs, body = parse_response(data)
        name = "%s: %s, size line %s" % (mode, carrier_name, bad_name)
        # /v2/ takes no POST: the patched build answers 405 on the head, before
        # reading the body (router.c "request bodies"), the system build 400
        want = ([400], [405]) if carrier_name == "POST /v2/" else ([400],)
        check(name + ": one %s and nothing else" % " or ".join(str(w[0]) for w in want), st in want, st)
        check(name + ": OCI error body", error_code(hdrs, body) == "UNSUPPORTED", body[:200])
        check(name + ": Connection: close, then closed",
              hdrs.get("connection", "").lower() == "close" and closed, "%s closed=%s" % (hdrs, closed))
        check(name + ": the hidden DELETE did not run", blob_there("victim", digest(victim)))
diag("%s: %d malformed bodies sent" % (mode, n))

# ---- valid chunked bodies keep working ------------------------------------------
def chunked(data, sizes, ext=b"", trailers=b""):
    """Size lines alternate lower-case, upper-case and zero-padded hex."""
    out, i, k = b"", 0, 0
    while i < len(data):
        m = min(sizes[k % len(sizes)], len(data) - i)
        size = (b"%x", b"%X", b"%016x")[k % 3] % m
        out += size + ext + b"\r\n" + data[i:i + m] + b"\r\n"
        i, k = i + m, k + 1
    return out + b"0\r\n" + trailers + b"\r\n"


# many chunks, extensions, trailers, upper-case hex and leading zeros, one PATCH
# sent a few bytes per write so size lines are split across reads
blob = os.urandom(40000)
loc = new_session("good")
body = chunked(blob[:3000], [1, 2, 3, 250, 0x1ff], b";name=val;q=\"a b\"", b"X-Checksum: abc\r\nOther:\tv\r\n")
pieces = [head("PATCH", loc, (OCT, ("Transfer-Encoding", "chunked"))) + b"\r\n"]
pieces += [body[i:i + 3] for i in range(0, len(body), 3)]
data, _ = exchange(pieces + [b""], gap=0.0005)
st, h, _ = parse_response(data)
check("%s: PATCH of 3000 bytes in small chunks with extensions and trailers, sent 3 bytes a write: 202" % mode,
      st == 202 and h.get("range") == "0-2999", "%s %s" % (st, h.get("range")))
# the rest in one chunked PUT, with a request pipelined after it on the connection
s = connect()
s.sendall(head("PUT", with_query(loc, "digest=" + digest(blob)), (OCT, ("Transfer-Encoding", "chunked"))) + b"\r\n" +
          chunked(blob[3000:], [4096, 7, 10000]) + head("HEAD", "/v2/good/blobs/" + digest(blob), (("Connection", "close"),)) +
          b"\r\n")
data, closed = read_until_close(s)
s.close()
check("%s: closing chunked PUT then a pipelined HEAD on the same connection: 201, 200" % mode,
      statuses(data) == [201, 200], statuses(data))
st, _, got = request("GET", "/v2/good/blobs/" + digest(blob))
check("%s: the blob pushed in chunks reads back whole" % mode, st == 200 and got == blob, st)

big = os.urandom(300000)
data, _ = exchange([head("POST", "/v2/good/blobs/uploads/?digest=" + digest(big),
                         (OCT, ("Transfer-Encoding", "chunked"), ("Connection", "close"))) + b"\r\n" +
                    chunked(big, [1000, 1, 65536, 333])])
check("%s: monolithic chunked POST of 300 kB in ~430 chunks: 201" % mode, statuses(data) == [201], statuses(data))
check("%s: ... and it reads back" % mode, request("GET", "/v2/good/blobs/" + digest(big))[2] == big)

data, _ = exchange([head("PUT", "/v2/carry/manifests/v1", (("Content-Type", MT), ("Transfer-Encoding", "chunked"),
                                                           ("Connection", "close"))) + b"\r\n" + chunked(manifest, [17])])
check("%s: chunked manifest PUT: 201" % mode, statuses(data) == [201], statuses(data))

# over the body limit (BERTH_LIMITS_MAX_BODY_SIZE below): h2o's own 413, with an OCI body too
big = os.urandom(3 << 20)
data, _ = exchange([head("POST", "/v2/good/blobs/uploads/?digest=" + digest(big),
                         (OCT, ("Transfer-Encoding", "chunked"), ("Connection", "close"))) + b"\r\n" +
                    chunked(big, [65536])])
status, hdrs, body = parse_response(data)
check("%s: chunked body over the limit: 413 SIZE_INVALID" % mode, status == 413 and error_code(hdrs, body) == "SIZE_INVALID",
      "%s %s" % (status, body[:200]))
PY

run_checks() { # MODE PORT
    py_checks "$BR_TMP/check.py" "$2" "$1"
    ok "$1: server still running" server_alive
    ok "$1: server log clean" server_log_clean
    # every refused body is in the access log; no smuggled DELETE ever is
    is "$(grep -cE 'access .* (400|405) ' "$BR_TMP/server.log")" $((12 * 5 * ${3:-1})) "$1: each refused body logged once as 400 (or 405)"
    ok "$1: no DELETE in the access log" sh -c '! grep -q "\"DELETE /v2/victim" "$1"' sh "$BR_TMP/server.log"
}
export BERTH_LIMITS_MAX_BODY_SIZE=2MiB BERTH_LOG_ACCESS_LOG=true

# ---- plain HTTP/1.1 ------------------------------------------------------------
ok "berth starts" br_start
[ -n "$BR_PID" ] || { done_testing; exit 1; }
run_checks plain "$BR_PORT"
ok "plain: berth stops cleanly" br_stop

# ---- TLS -------------------------------------------------------------------------
ok "self-signed certificate" openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "$BR_TMP/key.pem" -out "$BR_TMP/cert.pem" \
    2>"$BR_TMP/openssl.log"
PORT=$(free_port)
BR_URL="https://127.0.0.1:$PORT"
cat >"$BR_TMP/tls.yaml" <<EOF
listen: ["127.0.0.1:$PORT"]
storage:
  root: $BR_TMP/store
  fsync: false
tls:
  certificate: $BR_TMP/cert.pem
  key: $BR_TMP/key.pem
EOF
br_serve "$BR_TMP/tls.yaml" -k || { done_testing; exit 1; }
run_checks tls "$PORT" 2
ok "tls: berth stops cleanly" br_stop
done_testing
