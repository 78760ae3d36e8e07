#!/usr/bin/env bash
# TLS certificate and key are reloaded on SIGHUP without dropping connections:
# a connection opened before the reload keeps working on the old certificate,
# new connections get the new one, and a broken replacement keeps the old one.
. "$top_srcdir/tests/lib.sh"
command -v openssl >/dev/null || skip_all "openssl not installed"

mkcert() { # mkcert NAME CN — self-signed cert + key for 127.0.0.1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -keyout "$BR_TMP/$1.key" -out "$BR_TMP/$1.crt" -subj "/CN=$2" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
}
mkcert a berth-a
mkcert b berth-b
cp "$BR_TMP/a.crt" "$BR_TMP/server.crt"
cp "$BR_TMP/a.key" "$BR_TMP/server.key"
BR_PORT=$(free_port)
cat >"$BR_TMP/berth.yaml" <<YAML
listen: "127.0.0.1:$BR_PORT"
storage:
  root: $BR_TMP/store
tls:
  certificate: $BR_TMP/server.crt
  key: $BR_TMP/server.key
YAML
URL="https://127.0.0.1:$BR_PORT"
BR_URL=$URL
br_serve "$BR_TMP/berth.yaml" -k || { echo "Bail out! berth (tls) did not start"; exit 1; }

# Subject CN the server presents to a new connection.
served_cn() {
    openssl s_client -connect "127.0.0.1:$BR_PORT" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -subject 2>/dev/null | sed 's/.*CN *= *//'
}
is "$(served_cn)" berth-a "before reload: certificate A"
is "$(curl -s --cacert "$BR_TMP/a.crt" -o /dev/null -w '%{http_code}' "$URL/v2/")" 200 "curl trusting A: 200"

# A connection held open across the reload (HTTP/1.1 keep-alive over TLS).
python3 - "$BR_PORT" "$BR_TMP" >"$BR_TMP/held.out" 2>&1 <<'PY' &
import socket, ssl, sys, time, os
port, tmp = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=os.path.join(tmp, "a.crt"))
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
def get():
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < n:
        body += s.recv(4096)
    return head.split(b" ")[1].decode()
print("first", get(), flush=True)
open(os.path.join(tmp, "held.ready"), "w").close()
while not os.path.exists(os.path.join(tmp, "reloaded")):
    time.sleep(0.05)
print("second", get(), flush=True)
PY
held=$!
for i in $(seq 1 100); do [ -f "$BR_TMP/held.ready" ] && break; sleep 0.1; done

cp "$BR_TMP/b.crt" "$BR_TMP/server.crt"
cp "$BR_TMP/b.key" "$BR_TMP/server.key"
kill -HUP "$BR_PID"
for i in $(seq 1 50); do grep -q "reloaded" "$BR_TMP/server.log" && break; sleep 0.1; done
sleep 0.3 # every thread picks the new context up within one loop pass (100 ms)
ok "server logged the reload" grep -q "certificate and key reloaded" "$BR_TMP/server.log"
is "$(served_cn)" berth-b "after reload: new connections get certificate B"
is "$(curl -s --cacert "$BR_TMP/b.crt" -o /dev/null -w '%{http_code}' "$URL/v2/")" 200 "curl trusting B: 200"
touch "$BR_TMP/reloaded"
wait "$held"
is "$(tr '\n' ' ' <"$BR_TMP/held.out")" "first 200 second 200 " "connection opened before the reload still served after it"

# A broken replacement (key does not match) is refused; B stays in service.
cp "$BR_TMP/a.key" "$BR_TMP/server.key"
kill -HUP "$BR_PID"
for i in $(seq 1 50); do grep -q "reload failed" "$BR_TMP/server.log" && break; sleep 0.1; done
ok "broken reload reported" grep -q "reload failed" "$BR_TMP/server.log"
is "$(served_cn)" berth-b "after a failed reload: still certificate B"
ok "server exits cleanly" br_stop
done_testing
