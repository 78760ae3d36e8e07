#!/bin/bash
# TLS end to end: a test CA and a server certificate for 127.0.0.1/localhost
# made with openssl at test time; berth with tls.certificate/tls.key.
#
# - curl --cacert over HTTP/1.1 and over HTTP/2 (ALPN h2) -> 200, and the
#   protocol really is the one asked for; openssl s_client sees ALPN h2 /
#   http/1.1; localhost (SAN DNS) verifies too; without the CA curl refuses.
# - plain HTTP and garbage to the TLS port fail cleanly (no 200, no hang) and
#   the server keeps serving.
# - TLS 1.0/1.1 are refused by the server (the client is made willing with
#   SECLEVEL=0, so the refusal is berth's), TLS 1.2 and 1.3 work.
# - tls.client_ca: without a client certificate, or with one from another CA,
#   the handshake fails; with one from the CA -> 200.
# - a 64 MiB random blob pushed (one POST ?digest=) and pulled over TLS h2,
#   digest verified on both sides; the push costs the server few page faults
#   (the socket buffers are not mapped and unmapped again for every refill).
. "$top_srcdir/tests/lib.sh"
for b in openssl curl sha256sum; do command -v $b >/dev/null 2>&1 || skip_all "$b not installed"; done
curl -V | grep -qi 'features:.*http2' || skip_all "curl without HTTP/2"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
t_start=$(date +%s)

# ---- certificates --------------------------------------------------------------
P="$BR_TMP/pki"
mkdir -p "$P"
mkca() { # NAME CN
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=$2" -keyout "$P/$1.key" -out "$P/$1.crt" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>>"$P/log"
}
mkleaf() { # NAME CA CN EXT
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" \
        -keyout "$P/$1.key" -out "$P/$1.csr" 2>>"$P/log" &&
        printf '%s\n' "$4" >"$P/$1.ext" &&
        openssl x509 -req -in "$P/$1.csr" -CA "$P/$2.crt" -CAkey "$P/$2.key" -CAcreateserial -days 2 \
            -extfile "$P/$1.ext" -out "$P/$1.crt" 2>>"$P/log"
}
ok "test CA" mkca ca "berth test CA"
ok "server certificate for 127.0.0.1 and localhost" mkleaf server ca 127.0.0.1 \
    "$(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE')"
ok "client CA" mkca clientca "berth test client CA"
ok "client certificate" mkleaf client clientca berth-client "$(printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE')"
ok "client certificate from another CA" mkleaf rogue ca rogue-client "$(printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE')"
ok "server certificate verifies against the CA" sh -c 'openssl verify -CAfile "$1/ca.crt" "$1/server.crt" >/dev/null' sh "$P"

PORT=$(free_port)
BR_URL="https://127.0.0.1:$PORT"
CA=(--cacert "$P/ca.crt")

write_config() { # FILE [client_ca]
    cat >"$1" <<EOF
listen: ["127.0.0.1:$PORT"]
threads: 2
storage:
  root: $BR_TMP/store
  fsync: false
log:
  access_log: true
tls:
  certificate: $P/server.crt
  key: $P/server.key
EOF
    [ -n "${2:-}" ] && printf '  client_ca: %s\n' "$2" >>"$1"
    return 0
}

cv() { curl -s -o "$BR_TMP/b" -D "$BR_TMP/h" --max-time 20 -w '%{http_code} %{http_version}' "$@"; }
alive() { [ "$(cv "${CA[@]}" "$BR_URL/v2/")" = "200 2" ]; }

# =================================================================================
write_config "$BR_TMP/tls.yaml"
ok "check-config accepts the tls section" sh -c '"$1" check-config -c "$2" >/dev/null' sh "$BERTH" "$BR_TMP/tls.yaml"
br_serve "$BR_TMP/tls.yaml" "${CA[@]}" || { echo "Bail out! berth with TLS did not start"; exit 1; }
ok "start-up log says https" grep -q "listening on 127.0.0.1:$PORT (https" "$BR_TMP/server.log"

is "$(cv "${CA[@]}" --http1.1 "$BR_URL/v2/")" "200 1.1" "curl --cacert --http1.1: 200 over HTTP/1.1"
is "$(cv "${CA[@]}" --http2 "$BR_URL/v2/")" "200 2" "curl --cacert --http2: 200 over HTTP/2 (ALPN h2)"
is "$(cv "${CA[@]}" "$BR_URL/v2/")" "200 2" "curl default negotiates h2"
is "$(cv "${CA[@]}" --resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/v2/")" "200 2" \
    "https://localhost verifies (SAN DNS:localhost)"
is "$(grep -i '^docker-distribution-api-version:' "$BR_TMP/h" | tr -d '\r' | cut -d' ' -f2)" "registry/2.0" \
    "API version header over TLS"
cv "$BR_URL/v2/" >/dev/null
rc=$?
is "$rc" 60 "without the CA, curl refuses the certificate (exit 60)"
out=$(echo | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$P/ca.crt" -alpn h2,http/1.1 2>&1)
like "$out" 'ALPN protocol: h2' "openssl s_client: ALPN selects h2"
like "$out" 'Verify return code: 0 \(ok\)' "openssl s_client: chain verifies"
out=$(echo | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$P/ca.crt" -alpn http/1.1 2>&1)
like "$out" 'ALPN protocol: http/1.1' "openssl s_client: ALPN http/1.1 when only that is offered"

# plain HTTP and garbage to the TLS port
t0=$(date +%s)
st=$(curl -s -o /dev/null --max-time 15 -w '%{http_code}' "http://127.0.0.1:$PORT/v2/")
rc=$?
ok "plain HTTP to the TLS port gets no 200 (status '$st', curl exit $rc)" test "$st" != 200
ok "... and does not hang ($(($(date +%s) - t0)) s)" test $(($(date +%s) - t0)) -lt 15
st=$(curl -s -o /dev/null --max-time 15 --http2-prior-knowledge -w '%{http_code}' "http://127.0.0.1:$PORT/v2/")
ok "h2c prior knowledge to the TLS port gets no 200 ($st)" test "$st" != 200
ok "garbage bytes to the TLS port are dropped" timeout 15 bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/$1; head -c 4096 /dev/urandom >&3; cat <&3 >/dev/null; true' sh "$PORT"
pids=""
for i in 1 2 3 4 5 6 7 8; do
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/v2/" &
    pids="$pids $!"
done
for p in $pids; do wait "$p"; done
ok "the server keeps serving TLS after all that" alive
ok "server still running" kill -0 "$BR_PID"

# protocol versions: make the client willing (SECLEVEL=0) so the refusal is berth's
sc() { echo | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$P/ca.crt" "$@" 2>&1; }
out=$(sc -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0')
# (refused = no certificate seen, no cipher agreed; berth closes the connection)
refused() { printf '%s' "$1" | grep -q 'Cipher is (NONE)' && printf '%s' "$1" | grep -q 'no peer certificate available'; }
ok "TLS 1.1 handshake refused" refused "$out"
out=$(sc -tls1 -cipher 'DEFAULT:@SECLEVEL=0')
ok "TLS 1.0 handshake refused" refused "$out"
st=$(curl -s -o /dev/null --max-time 15 "${CA[@]}" --tlsv1.1 --tls-max 1.1 --ciphers 'DEFAULT:@SECLEVEL=0' \
    -w '%{http_code}' "$BR_URL/v2/" 2>/dev/null)
ok "curl --tls-max 1.1 gets no answer ($st)" test "$st" != 200
like "$(sc -tls1_2)" 'New, TLSv1\.2, Cipher is [A-Z]|Protocol *: TLSv1\.2' "TLS 1.2 accepted"
like "$(sc -tls1_3)" 'New, TLSv1\.3, Cipher is [A-Z]|Protocol *: TLSv1\.3' "TLS 1.3 accepted"
is "$(cv "${CA[@]}" --tlsv1.2 --tls-max 1.2 "$BR_URL/v2/")" "200 2" "curl over TLS 1.2: 200"
ok "still serving" alive

# 64 MiB random blob over TLS h2
head -c $((64 * 1024 * 1024)) /dev/urandom >"$BR_TMP/big"
D=$(sha256_of "$BR_TMP/big")
t0=$(date +%s)
minflt() { awk '{print $10}' "/proc/$BR_PID/stat"; }
f0=$(minflt)
st=$(cv "${CA[@]}" --http2 -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$BR_TMP/big" \
    --max-time 300 "$BR_URL/v2/tls/big/blobs/uploads/?digest=sha256:$D")
f1=$(minflt)
is "$st" "201 2" "64 MiB blob POST ?digest= over TLS h2: 201"
# The streamed body passes through h2o's socket buffers, which are freed and
# allocated again as they drain and refill: with glibc's adaptive malloc
# thresholds every refill faulted its pages in again (about one minor fault
# per 4 KiB received, ~16,000 for this body); berth fixes the thresholds
# (server/main.c keep_freed_buffers). Only in the streaming build without
# sanitizers (their allocator ignores mallopt; the system build maps a spill
# file on purpose).
case $("$BERTH" version 2>/dev/null) in
*" patched,"*)
    if [ "${BR_SANITIZED:-0}" != 1 ] && [ -z "${GLIBC_TUNABLES:-}" ]; then
        ok "the 64 MiB TLS h2 upload cost the server few page faults ($((f1 - f0)), bound 4096)" test $((f1 - f0)) -lt 4096
    fi ;;
esac
is "$(grep -i '^docker-content-digest:' "$BR_TMP/h" | tr -d '\r' | cut -d' ' -f2)" "sha256:$D" "... Docker-Content-Digest is the blob's"
st=$(curl -s --max-time 300 "${CA[@]}" --http2 -o "$BR_TMP/big.out" -w '%{http_code} %{http_version} %{size_download}' \
    "$BR_URL/v2/tls/big/blobs/sha256:$D")
is "$st" "200 2 $((64 * 1024 * 1024))" "64 MiB blob GET over TLS h2: 200, full size"
is "$(sha256_of "$BR_TMP/big.out")" "$D" "pulled blob has the pushed digest"
diag "64 MiB up and down over TLS h2 in $(($(date +%s) - t0)) s"
# and chunked over HTTP/1.1 TLS, in two PATCHes
st=$(curl -s -o /dev/null -D "$BR_TMP/h" --max-time 60 "${CA[@]}" --http1.1 -X POST -w '%{http_code}' \
    "$BR_URL/v2/tls/chunked/blobs/uploads/")
loc=$(grep -i '^location:' "$BR_TMP/h" | tr -d '\r' | cut -d' ' -f2)
is "$st" 202 "upload started over TLS HTTP/1.1"
head -c $((8 * 1024 * 1024)) "$BR_TMP/big" >"$BR_TMP/c1"
tail -c +$((8 * 1024 * 1024 + 1)) "$BR_TMP/big" | head -c $((8 * 1024 * 1024)) >"$BR_TMP/c2"
cat "$BR_TMP/c1" "$BR_TMP/c2" >"$BR_TMP/c12"
case $loc in http*) u=$loc ;; *) u="$BR_URL$loc" ;; esac
st=$(curl -s -o /dev/null -D "$BR_TMP/h" --max-time 120 "${CA[@]}" --http1.1 -X PATCH -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 0-$((8 * 1024 * 1024 - 1))" --data-binary "@$BR_TMP/c1" -w '%{http_code}' "$u")
loc=$(grep -i '^location:' "$BR_TMP/h" | tr -d '\r' | cut -d' ' -f2)
case $loc in http*) u=$loc ;; *) u="$BR_URL$loc" ;; esac
st2=$(curl -s -o /dev/null -D "$BR_TMP/h" --max-time 120 "${CA[@]}" --http1.1 -X PATCH -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: $((8 * 1024 * 1024))-$((16 * 1024 * 1024 - 1))" --data-binary "@$BR_TMP/c2" -w '%{http_code}' "$u")
loc=$(grep -i '^location:' "$BR_TMP/h" | tr -d '\r' | cut -d' ' -f2)
case $loc in http*) u=$loc ;; *) u="$BR_URL$loc" ;; esac
case $u in *\?*) sep='&' ;; *) sep='?' ;; esac
st3=$(curl -s -o /dev/null --max-time 60 "${CA[@]}" --http1.1 -X PUT -w '%{http_code}' "$u${sep}digest=sha256:$(sha256_of "$BR_TMP/c12")")
is "$st $st2 $st3" "202 202 201" "two 8 MiB PATCHes + PUT over TLS HTTP/1.1"
is "$(curl -s --max-time 60 "${CA[@]}" --http1.1 "$BR_URL/v2/tls/chunked/blobs/sha256:$(sha256_of "$BR_TMP/c12")" | sha256sum | cut -d' ' -f1)" \
    "$(sha256_of "$BR_TMP/c12")" "chunked blob pulls back intact over TLS HTTP/1.1"
rm -f "$BR_TMP/big" "$BR_TMP/big.out" "$BR_TMP/c1" "$BR_TMP/c2" "$BR_TMP/c12"

# The sweep's HTTP/1 rules apply on a TLS-only server too: headers trickled over
# TLS are cut after ~10 s, and on SIGTERM an idle TLS keep-alive connection is
# closed at once instead of holding the shutdown for drain_timeout (30 s).
tls_py() { # MODE — slowloris: prints seconds until the server closed; idle: holds one idle keep-alive
    python3 - "$1" "$PORT" "$P/ca.crt" <<'PY'
import socket, ssl, sys, time
mode, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="127.0.0.1")
if mode == "slowloris":
    t0 = time.time()
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: t\r\n")
    try:
        for i in range(40):
            time.sleep(1)
            s.sendall(b"X-Slow-%d: 1\r\n" % i)
            s.settimeout(0.01)
            try:
                if s.recv(1) == b"":
                    break
            except socket.timeout:
                pass
            s.settimeout(30)
    except (OSError, ssl.SSLError):
        pass
    print("%.1f" % (time.time() - t0))
else:
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: t\r\n\r\n")
    s.recv(65536)
    print("ready", flush=True)
    try:
        while s.recv(65536):
            pass
    except (OSError, ssl.SSLError):
        pass
PY
}
cut_after=$(tls_py slowloris)
ok "TLS slowloris (headers trickled 1 line/s) is cut after ~10 s (${cut_after} s)" \
    awk -v t="$cut_after" 'BEGIN { exit !(t >= 9 && t <= 14) }'
ok "still serving after the TLS slowloris" alive
exec 5< <(tls_py idle)
read -r -t 20 ready <&5
is "${ready:-}" ready "an idle TLS HTTP/1.1 keep-alive connection is open"
t0=$(date +%s%3N)
br_stop
rc=$?
t1=$(date +%s%3N)
is "$rc" 0 "berth (tls) stops cleanly"
exec 5<&-
ok "... within 5 s despite the idle TLS keep-alive connection ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 5000

# =================================================================================
# client certificates
write_config "$BR_TMP/mtls.yaml" "$P/clientca.crt"
ok "check-config accepts tls.client_ca" sh -c '"$1" check-config -c "$2" >/dev/null' sh "$BERTH" "$BR_TMP/mtls.yaml"
CC=(--cert "$P/client.crt" --key "$P/client.key")
br_serve "$BR_TMP/mtls.yaml" "${CA[@]}" "${CC[@]}" || { echo "Bail out! berth with client_ca did not start"; exit 1; }
is "$(cv "${CA[@]}" "${CC[@]}" --http2 "$BR_URL/v2/")" "200 2" "with a client certificate from client_ca: 200 (h2)"
is "$(cv "${CA[@]}" "${CC[@]}" --http1.1 "$BR_URL/v2/")" "200 1.1" "with a client certificate from client_ca: 200 (HTTP/1.1)"
st=$(cv "${CA[@]}" "$BR_URL/v2/" 2>/dev/null)
rc=$?
ok "without a client certificate: no response (curl exit $rc, '$st')" test $rc -ne 0 -a "${st%% *}" != 200
st=$(cv "${CA[@]}" --tlsv1.2 --tls-max 1.2 "$BR_URL/v2/" 2>/dev/null)
rc=$?
ok "without a client certificate over TLS 1.2: handshake fails (curl exit $rc)" test $rc -eq 35 -o $rc -eq 56 -o $rc -eq 58
out=$(echo | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$P/ca.crt" -tls1_2 2>&1)
like "$out" 'alert handshake failure|certificate required|alert|error' "openssl s_client without a certificate: handshake alert"
st=$(cv "${CA[@]}" --cert "$P/rogue.crt" --key "$P/rogue.key" "$BR_URL/v2/" 2>/dev/null)
rc=$?
ok "client certificate from another CA: refused (curl exit $rc)" test $rc -ne 0 -a "${st%% *}" != 200
is "$(cv "${CA[@]}" "${CC[@]}" "$BR_URL/v2/")" "200 2" "the right certificate still works afterwards"
ok "berth (mtls) stops cleanly" br_stop

no_sanitizer_report "$BR_TMP/server.log"
diag "runtime $(($(date +%s) - t_start)) s"
done_testing
