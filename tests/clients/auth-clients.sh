#!/bin/bash
# Real clients against berth with TLS and authentication. The test CA and the
# server certificate (127.0.0.1, localhost) are made with openssl at test time
# and given to each client; no client is told to skip verification.
#
# Part 1, Basic auth (htpasswd from `berth hash-password`):
#   skopeo login/copy (--cert-dir, authfile and --dest-creds/--src-creds),
#   podman login + push/pull (--cert-dir with the CA as ca.crt),
#   docker login + push/pull through a private dockerd,
#   ctr images push/pull --user with --tlscacert (and a hosts.toml pinning
#   https: containerd 1.6 otherwise talks plain HTTP to 127.0.0.1), and the CA
#   from a hosts.toml, through a private containerd.
# Part 2, token auth (berth's own issuer at https://127.0.0.1:PORT/token, a
# key from `berth gen-key`): docker, skopeo, podman and ctr again.
# Each part also checks a refusal (bob may not push outside bob/**), that
# docker push without login says "unauthorized: authentication required" (not
# "denied"), and that a client without the CA fails verification (so the CA
# really is used).
#
# dockerd: 127.0.0.0/8 is hard-coded as an "insecure registry" in moby
# (registry.LoadInsecureRegistries), and for those dockerd talks TLS with
# verification off and never reads certs.d, so no certs.d entry can make it
# verify berth's certificate, and none is written (nothing outside $BR_TMP is
# touched). What the docker steps prove is TLS + auth (berth listens only
# with TLS, so every byte went over it), not certificate verification.
#
# Every client call is bounded (`t`, BR_CLIENT_TIMEOUT); a missing client
# skips its steps (TAP "# SKIP"), not the script.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/clients/clients.sh"
need skopeo umoci jq curl openssl
. "$top_srcdir/tests/clients/images.sh"
t_start=$(date +%s)

# skip NAME REASON — one TAP skip
skip() {
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n - $1 # SKIP $2"
}
have() { command -v "$1" >/dev/null 2>&1; }

_clients_setup_env
SECRETS="$BR_TMP/secrets"
: >"$SECRETS"
rndpw() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
PW_ALICE="Al-$(rndpw)"
PW_BOB="Bo-$(rndpw)"
printf '%s\n%s\n' "$PW_ALICE" "$PW_BOB" >>"$SECRETS"
printf '%s' "alice:$PW_ALICE" | base64 -w0 >>"$SECRETS"
echo >>"$SECRETS"
printf '%s' "bob:$PW_BOB" | base64 -w0 >>"$SECRETS"
echo >>"$SECRETS"

# ---- PKI -----------------------------------------------------------------------
P="$BR_TMP/pki"
mkdir -p "$P"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=berth clients test CA" \
    -keyout "$P/ca.key" -out "$P/ca.crt" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>>"$P/log" &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$P/server.key" -out "$P/server.csr" 2>>"$P/log" &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$P/server.ext" &&
    openssl x509 -req -in "$P/server.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
        -extfile "$P/server.ext" -out "$P/server.crt" 2>>"$P/log"
ok "test CA and server certificate" test -s "$P/server.crt"
# containers/image cert dir: *.crt files are CAs
CERTS="$BR_TMP/certs"
mkdir -p "$CERTS"
cp "$P/ca.crt" "$CERTS/ca.crt"

# ctr: without a hosts.toml, containerd 1.6 talks plain HTTP to a localhost
# registry; a hosts dir per case pins https (with and without the CA).
mkhosts() { # DIR [CA]
    mkdir -p "$1/127.0.0.1:$PORT"
    {
        # (containerd 1.6 refuses a file without a [host] table)
        printf 'server = "https://127.0.0.1:%s"\n' "$PORT"
        [ -n "${2:-}" ] && printf 'ca = "%s"\n' "$2"
        printf '[host."https://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve", "push"]\n' "$PORT"
        [ -n "${2:-}" ] && printf '  ca = "%s"\n' "$2"
    } >"$1/127.0.0.1:$PORT/hosts.toml"
}
HT="$BR_TMP/htpasswd"
printf '%s\n' "$PW_ALICE" | "$BERTH" hash-password alice >"$HT"
printf '%s\n' "$PW_BOB" | "$BERTH" hash-password bob >>"$HT"
ok "htpasswd from berth hash-password" test "$(grep -c ':\$2' "$HT")" = 2
ok "token key from berth gen-key" quiet "$BERTH" gen-key "$BR_TMP/token.key"

PORT=$(free_port)
REG="127.0.0.1:$PORT"
BR_URL="https://$REG"
SERVICE="berth-clients.test"
HOSTS_CA="$BR_TMP/hosts-ca"
HOSTS_NOCA="$BR_TMP/hosts-noca"
mkhosts "$HOSTS_CA" "$P/ca.crt"
mkhosts "$HOSTS_NOCA"

write_config() { # FILE basic|token
    cat >"$1" <<EOF
listen: ["$REG"]
storage:
  root: $BR_TMP/store
  fsync: false
log:
  access_log: true
tls:
  certificate: $P/server.crt
  key: $P/server.key
auth:
  realm: berth-clients
  # wrong-password steps (ctr sends several requests in parallel, dockerd
  # retries) would otherwise put 127.0.0.1 into the back-off that auth.sh tests
  max_failures: 1000
  htpasswd: $HT
  admin_group: admins
  groups: {admins: [alice]}
  anonymous:
    - {repository: "public/**", actions: [pull]}
  rules:
    - {repository: "bob/**", users: [bob], actions: [pull, push, delete]}
EOF
    [ "$2" = token ] && cat >>"$1" <<EOF
  token:
    realm: https://$REG/token
    path: /token
    service: $SERVICE
    issuer: berth-clients
    key: $BR_TMP/token.key
    expiration: 5m
EOF
    return 0
}
# manifest digest of REPO:TAG as the registry serves it (as alice)
served_digest() {
    curl -s --cacert "$P/ca.crt" -u "alice:$PW_ALICE" -o /dev/null -D - \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "$BR_URL/v2/$1/manifests/$2" |
        tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

ok "build small OCI image" img_build_small
cfg=$(jq -r .config.digest "$(layout_blob "$IMG_SMALL" "$(layout_digest "$IMG_SMALL" v1)")")
id=${cfg#sha256:}
want=$(layout_digest "$IMG_SMALL" v1)
sk copy -q "oci:$IMG_SMALL:v1" "docker-archive:$BR_TMP/small-docker.tar:berth/small:v1" >/dev/null 2>&1 &&
    sk copy -q "oci:$IMG_SMALL:v1" "oci-archive:$BR_TMP/small-oci.tar:v1" >/dev/null 2>&1
ok "export it as docker-archive and OCI archive" test $? -eq 0

# ---- client wrappers --------------------------------------------------------------
pm() { private_ns podman --root "$CLIENTS_STORAGE_ROOT" --runroot "$CLIENTS_STORAGE_RUNROOT" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend none "$@"; }

DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker 2>/dev/null) || DOCKER=""
D="$BR_TMP/docker"
dk() { DOCKER_HOST="unix://$D/docker.sock" DOCKER_CONFIG="$D/cli" t "$DOCKER" "$@"; }

C="$BR_TMP/containerd"
cr() { CONTAINERD_SNAPSHOTTER=native t ctr --address "$C/containerd.sock" --namespace berth-auth "$@"; }
image_target() { cr images ls 2>/dev/null | awk -v n="$1" '$1 == n { print $3 }'; }

# Start the daemons once, up front (they outlive the berth restarts).
HAVE_DOCKER=""
if [ -n "$DOCKER" ] && have dockerd && have unshare; then
    if dockerd_start "$D" 900; then HAVE_DOCKER=yes; else diag "dockerd did not start: docker steps fail"; HAVE_DOCKER=broken; fi
fi
HAVE_CTR=""
if have containerd && have ctr && have unshare; then
    if containerd_start "$C"; then HAVE_CTR=yes; else HAVE_CTR=broken; fi
fi
[ "$HAVE_CTR" = yes ] && ok "ctr images import (OCI archive)" quiet cr images import --base-name berth/small "$BR_TMP/small-oci.tar"
if [ "$HAVE_DOCKER" = yes ]; then
    out=$(dk load -i "$BR_TMP/small-docker.tar" 2>&1)
    like "$out" 'Loaded image: berth/small:v1' "docker load"
fi
if have podman; then
    ok "podman load (OCI archive)" quiet pm load -i "$BR_TMP/small-oci.tar"
fi

# run_clients MODE — every client against the running berth (MODE: basic | token)
run_clients() {
    local m=$1 out st
    # ---- skopeo -------------------------------------------------------------------
    sk inspect --raw --creds "bob:$PW_BOB" "docker://$REG/public/none:v1" >"$BR_TMP/sk.err" 2>&1
    st=$?
    ok "[$m] skopeo without the CA fails verification (x509)" test $st -ne 0 -a -n "$(grep -i 'x509\|certificate' "$BR_TMP/sk.err")"
    ok "[$m] skopeo login (--cert-dir, authfile)" quiet sk login --cert-dir "$CERTS" -u alice --password-stdin "$REG" <<<"$PW_ALICE"
    ok "[$m] ... wrote the authfile" grep -q "$REG" "$REGISTRY_AUTH_FILE"
    ok "[$m] skopeo copy with the authfile (alice -> public/skopeo-$m)" \
        quiet sk copy -q --dest-cert-dir "$CERTS" "oci:$IMG_SMALL:v1" "docker://$REG/public/skopeo-$m:v1"
    is "$(served_digest "public/skopeo-$m" v1)" "$want" "[$m] registry serves the manifest skopeo pushed"
    ok "[$m] skopeo logout" quiet sk logout "$REG"
    ok "[$m] skopeo copy --dest-creds bob (-> bob/skopeo-$m)" \
        quiet sk copy -q --dest-cert-dir "$CERTS" --dest-creds "bob:$PW_BOB" "oci:$IMG_SMALL:v1" "docker://$REG/bob/skopeo-$m:v1"
    ok "[$m] skopeo copy --src-creds bob back out" \
        quiet sk copy -q --src-cert-dir "$CERTS" --src-creds "bob:$PW_BOB" "docker://$REG/bob/skopeo-$m:v1" "dir:$BR_TMP/out-sk-$m"
    is "$(digest_of "$BR_TMP/out-sk-$m/manifest.json")" "$want" "[$m] pulled manifest is the pushed one"
    ok "[$m] pulled blobs are intact" same_blobs_in_dir "$BR_TMP/out-sk-$m/manifest.json" "$BR_TMP/out-sk-$m"
    ok "[$m] anonymous skopeo pull of public/skopeo-$m works" \
        quiet sk copy -q --src-cert-dir "$CERTS" --src-no-creds "docker://$REG/public/skopeo-$m:v1" "dir:$BR_TMP/out-anon-$m"
    ok "[$m] anonymous skopeo pull of bob/skopeo-$m is refused" \
        fails sk inspect --raw --cert-dir "$CERTS" --no-creds "docker://$REG/bob/skopeo-$m:v1"
    ok "[$m] skopeo push by bob outside bob/** is refused" \
        fails sk copy -q --dest-cert-dir "$CERTS" --dest-creds "bob:$PW_BOB" "oci:$IMG_SMALL:v1" "docker://$REG/secret/skopeo-$m:v1"
    ok "[$m] skopeo with a wrong password is refused" \
        fails sk inspect --raw --cert-dir "$CERTS" --creds "bob:wrong" "docker://$REG/bob/skopeo-$m:v1"
    ok "[$m] skopeo login with a wrong password fails" fails sk login --cert-dir "$CERTS" -u bob -p wrong "$REG"

    # ---- podman -------------------------------------------------------------------
    if have podman; then
        ok "[$m] podman login --cert-dir" quiet pm login --cert-dir "$CERTS" -u bob --password-stdin "$REG" <<<"$PW_BOB"
        pm push --cert-dir "$CERTS" --digestfile "$BR_TMP/pm.digest" "$id" "docker://$REG/bob/podman-$m:v1" >"$BR_TMP/pm.out" 2>&1
        ok "[$m] podman push" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/pm.out" | tail -n 10
        is "$(served_digest "bob/podman-$m" v1)" "$(cat "$BR_TMP/pm.digest" 2>/dev/null)" "[$m] registry serves what podman pushed"
        ok "[$m] podman rmi" quiet pm rmi -f "$id"
        pm pull --cert-dir "$CERTS" "$REG/bob/podman-$m:v1" >"$BR_TMP/pm.out" 2>&1
        ok "[$m] podman pull" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/pm.out" | tail -n 10
        is "$(pm image inspect --format '{{.Id}}' "$REG/bob/podman-$m:v1" 2>&1)" "$id" "[$m] pulled image has the same ID"
        ok "[$m] podman push outside bob/** is refused" \
            fails pm push --cert-dir "$CERTS" "$id" "docker://$REG/secret/podman-$m:v1"
        ok "[$m] podman logout" quiet pm logout "$REG"
        ok "[$m] podman pull after logout is refused" fails pm pull --cert-dir "$CERTS" "$REG/bob/podman-$m:v1"
    else
        skip "[$m] podman" "podman not installed"
    fi

    # ---- docker -------------------------------------------------------------------
    if [ -n "$HAVE_DOCKER" ]; then
        out=$(dk login --username bob --password-stdin "$REG" <<<"$PW_BOB" 2>&1)
        like "$out" 'Login Succeeded' "[$m] docker login"
        ok "[$m] docker tag" dk tag berth/small:v1 "$REG/bob/docker-$m:v1"
        dk push "$REG/bob/docker-$m:v1" >"$BR_TMP/dk.out" 2>&1
        ok "[$m] docker push" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/dk.out" | tail -n 10
        pushed=$(sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\) size.*/\1/p' "$BR_TMP/dk.out")
        is "$(served_digest "bob/docker-$m" v1)" "$pushed" "[$m] registry serves the digest docker printed"
        ok "[$m] docker rmi" quiet dk rmi "$REG/bob/docker-$m:v1"
        dk pull "$REG/bob/docker-$m:v1" >"$BR_TMP/dk.out" 2>&1
        ok "[$m] docker pull" test $? -eq 0 || sed 's/^/#   /' "$BR_TMP/dk.out" | tail -n 10
        is "$(dk image inspect --format '{{.Id}}' "$REG/bob/docker-$m:v1" 2>&1)" "$cfg" "[$m] pulled image has the same ID"
        ok "[$m] docker tag outside bob/**" dk tag berth/small:v1 "$REG/secret/docker-$m:v1"
        ok "[$m] docker push outside bob/** is refused" fails dk push "$REG/secret/docker-$m:v1"
        ok "[$m] docker logout" quiet dk logout "$REG"
        # Without credentials docker must be told to sign in, not "denied"
        # (with token auth it fetches a token for nobody first, which used to
        # get insufficient_scope, and docker printed "denied: requested
        # access to the resource is denied").
        dk push "$REG/bob/docker-$m:v1" >"$BR_TMP/dk.out" 2>&1
        ok "[$m] docker push without login is refused" test $? -ne 0
        # (with Basic auth docker itself says "no basic auth credentials")
        [ "$m" = token ] && like "$(tail -n 3 "$BR_TMP/dk.out")" '^unauthorized: authentication required$' \
            "[$m] ... docker says 'unauthorized: authentication required' (at once, no retries)"
        ok "[$m] ... and not 'denied'" sh -c '! grep -qi "denied\|retrying" "$1"' sh "$BR_TMP/dk.out"
        ok "[$m] docker login with a wrong password fails" fails dk login --username bob --password-stdin "$REG" <<<"wrong"
    else
        skip "[$m] docker" "dockerd/docker CLI not installed"
    fi

    # ---- ctr ----------------------------------------------------------------------
    if [ -n "$HAVE_CTR" ]; then
        cr images push --user "bob:$PW_BOB" --hosts-dir "$HOSTS_NOCA" "$REG/bob/ctr-$m:v1" berth/small:v1 >"$BR_TMP/ctr.err" 2>&1
        st=$?
        ok "[$m] ctr push over https without the CA fails verification (x509)" \
            test $st -ne 0 -a -n "$(grep -i 'x509\|certificate' "$BR_TMP/ctr.err")"
        ok "[$m] ctr images push --user --tlscacert (https pinned by hosts.toml)" \
            quiet cr images push --user "bob:$PW_BOB" --tlscacert "$P/ca.crt" --hosts-dir "$HOSTS_NOCA" "$REG/bob/ctr-$m:v1" berth/small:v1
        is "$(served_digest "bob/ctr-$m" v1)" "$want" "[$m] registry serves the imported manifest byte for byte"
        ok "[$m] ctr push with a wrong password fails" \
            fails cr images push --user "bob:wrong" --tlscacert "$P/ca.crt" --hosts-dir "$HOSTS_NOCA" "$REG/bob/ctr-$m:v2" berth/small:v1
        ok "[$m] ctr push outside bob/** fails" \
            fails cr images push --user "bob:$PW_BOB" --tlscacert "$P/ca.crt" --hosts-dir "$HOSTS_NOCA" "$REG/secret/ctr-$m:v1" berth/small:v1
        ok "[$m] ctr images pull --user (CA from hosts.toml)" \
            quiet cr images pull --user "bob:$PW_BOB" --hosts-dir "$HOSTS_CA" "$REG/bob/ctr-$m:v1"
        is "$(image_target "$REG/bob/ctr-$m:v1")" "$want" "[$m] pulled image has the pushed digest"
        ok "[$m] ctr pull without credentials is refused" \
            fails cr images pull --hosts-dir "$HOSTS_CA" "$REG/bob/ctr-$m:v1"
    else
        skip "[$m] ctr" "containerd/ctr not installed"
    fi
}

# =================================================================================
write_config "$BR_TMP/basic.yaml" basic
br_serve "$BR_TMP/basic.yaml" --cacert "$P/ca.crt" || { echo "Bail out! berth (TLS + Basic) did not start"; exit 1; }
code=$(curl -s -o /dev/null -D "$BR_TMP/h" --cacert "$P/ca.crt" -w '%{http_code}' "$BR_URL/v2/")
is "$code $(grep -i '^www-authenticate:' "$BR_TMP/h" | tr -d '\r' | cut -d' ' -f2-)" '401 Basic realm="berth-clients"' \
    "berth with TLS + Basic: 401 + Basic challenge"
run_clients basic
ok "berth (basic) stops cleanly" br_stop

write_config "$BR_TMP/token.yaml" token
br_serve "$BR_TMP/token.yaml" --cacert "$P/ca.crt" || { echo "Bail out! berth (TLS + token) did not start"; exit 1; }
code=$(curl -s -o /dev/null -D "$BR_TMP/h" --cacert "$P/ca.crt" -w '%{http_code}' "$BR_URL/v2/")
is "$code $(grep -i '^www-authenticate:' "$BR_TMP/h" | tr -d '\r' | cut -d' ' -f2-)" \
    "401 Bearer realm=\"https://$REG/token\",service=\"$SERVICE\"" "berth with TLS + token: 401 + Bearer challenge"
# containers/image, dockerd and containerd cache tokens per scope; a fresh login
rm -f "$REGISTRY_AUTH_FILE" && echo '{"auths":{}}' >"$REGISTRY_AUTH_FILE"
run_clients token
n_token=$(grep -c ' /token' "$BR_TMP/server.log")
ok "the clients fetched tokens from berth's issuer ($n_token requests)" test "$n_token" -gt 0
ok "berth (token) stops cleanly" br_stop

# ---- secrets never logged ----------------------------------------------------------
leaks=0
while IFS= read -r s; do
    [ -n "$s" ] && grep -qF -- "$s" "$BR_TMP/server.log" && leaks=$((leaks + 1))
done <"$SECRETS"
is "$leaks" 0 "no password or Basic credential in the server log"
ok "no bearer token in the server log" sh -c '! grep -Eq "eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}" "$1"' sh "$BR_TMP/server.log"
no_sanitizer_report "$BR_TMP/server.log"
diag "runtime $(($(date +%s) - t_start)) s"
done_testing
