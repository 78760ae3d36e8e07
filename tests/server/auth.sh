#!/bin/bash
# Authentication and authorization end to end, with curl: every decision path
# of auth/ as the router applies it (server/router.c authorize(), handle_token()).
#
# An htpasswd made with `berth hash-password`, a signing key made with
# `berth gen-key`, and one set of rules:
#   admin_group admins = [alice]; groups ci = [carol]
#   anonymous: public/** pull
#   rules: bob/** -> bob (pull, push, delete); public/** -> bob (pull, push);
#          secret/** -> nobody (shadows **); ** -> group ci (pull)
# Three servers run in turn on one store:
#   A. Basic only: 401 + Basic challenge, anonymous pull/push, good/bad/unknown
#      user, 403 DENIED, catalog filtered per caller, cross-mount with a `from`
#      the caller may or may not pull (201 / 202), automatic mount (no `from`)
#      only from a holder the caller may pull, failed-login back-off (429
#      + Retry-After, another source address unaffected), htpasswd reload (new
#      user, changed password beats the credential cache, removed user).
#   B. Basic + token issuer at /token (realm on berth's own port): the Bearer
#      challenge exactly as the Docker token spec shows it, token GET with
#      several scopes (intersection with the rules), anonymous tokens, OAuth2
#      POST (password and refresh_token grants), offline_token=true, tampered /
#      alg "none" / HS256 / refresh-as-access tokens -> invalid_token,
#      insufficient_scope, catalog scope, mounts with tokens (with and
#      without `from`); catalog paging for anonymous, Basic and token
#      callers counts and names only what each may see (bodies and Links).
#   C. expiration 1s, leeway 0s: an expired token is invalid_token.
# Finally: no password, token or Authorization value appears in the server log.
. "$top_srcdir/tests/lib.sh"

for b in python3 jq openssl base64; do command -v $b >/dev/null 2>&1 || skip_all "$b not installed"; done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

t_start=$(date +%s)
SECRETS="$BR_TMP/secrets" # every password, token and Authorization value, one a line
: >"$SECRETS"
rndpw() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
remember() { printf '%s\n' "$1" >>"$SECRETS"; }
basic_of() { printf '%s' "$1:$2" | base64 -w0; }

PW_ALICE="Al-$(rndpw)"
PW_BOB="Bo-$(rndpw)"
PW_CAROL="Ca-$(rndpw)"
PW_DAVE="Da-$(rndpw)"
PW_BOB2="Bo2-$(rndpw)"
for p in "$PW_ALICE" "$PW_BOB" "$PW_CAROL" "$PW_DAVE" "$PW_BOB2"; do remember "$p"; done
for u in "alice:$PW_ALICE" "bob:$PW_BOB" "carol:$PW_CAROL" "dave:$PW_DAVE" "bob:$PW_BOB2" "bob:wrong" "mallory:x"; do
    remember "$(basic_of "${u%%:*}" "${u#*:}")"
done

# ---- the command line: hash-password, gen-key ---------------------------------
HT="$BR_TMP/htpasswd"
line=$(printf '%s\n' "$PW_ALICE" | "$BERTH" hash-password alice 2>"$BR_TMP/err")
like "$line" '^alice:\$2[yb]\$[0-9]{2}\$[./A-Za-z0-9]{53}$' "berth hash-password USER writes an htpasswd bcrypt line"
printf '%s\n' "$line" >"$HT"
printf '%s\n' "$PW_BOB" | "$BERTH" hash-password bob >>"$HT"
printf '%s\n' "$PW_CAROL" | "$BERTH" hash-password carol >>"$HT"
h=$(printf '%s\n' "$PW_DAVE" | "$BERTH" hash-password)
like "$h" '^\$2[yb]\$' "berth hash-password without USER writes the bare hash"
ok "hash-password output never echoes the password" sh -c '! grep -qF -- "$1" "$2"' sh "$PW_ALICE" "$HT"
KEY="$BR_TMP/token.key"
"$BERTH" gen-key "$KEY" >"$BR_TMP/out" 2>&1
is "$?:$(stat -c %a "$KEY" 2>/dev/null)" "0:600" "berth gen-key writes the key with mode 0600"
ok "gen-key wrote an EC P-256 key" sh -c 'openssl pkey -in "$1" -noout -text 2>/dev/null | grep -q "prime256v1\|P-256"' sh "$KEY"
"$BERTH" gen-key "$KEY" >/dev/null 2>&1
ok "gen-key refuses to overwrite" test $? -ne 0

# ---- servers ---------------------------------------------------------------------
PORT=$(free_port)
BR_URL="http://127.0.0.1:$PORT"
SERVICE="berth-test.local"
REALM="$BR_URL/token"

# write_config FILE MODE — MODE: basic | token | short
write_config() {
    {
        cat <<EOF
listen: ["127.0.0.1:$PORT"]
threads: 2
storage:
  root: $BR_TMP/store
  fsync: false
log:
  level: debug
  access_log: true
auth:
  realm: berth-test
  htpasswd: $HT
  max_failures: 5
  failure_window: 1m
  admin_group: admins
  groups:
    admins: [alice]
    ci: [carol]
  anonymous:
    - {repository: "public/**", actions: [pull]}
  rules:
    - {repository: "bob/**", users: [bob], actions: [pull, push, delete]}
    - {repository: "public/**", users: [bob], actions: [pull, push]}
    - {repository: "secret/**", actions: [pull]}
    - {repository: "**", groups: [ci], actions: [pull]}
EOF
        if [ "$2" != basic ]; then
            cat <<EOF
  token:
    realm: $REALM
    path: /token
    service: $SERVICE
    issuer: berth-test-issuer
    key: $KEY
EOF
            if [ "$2" = short ]; then
                printf '    expiration: 1s\n    leeway: 0s\n'
            else
                printf '    expiration: 5m\n'
            fi
        fi
    } >"$1"
}

# ---- helpers -----------------------------------------------------------------------
# code METHOD PATH [curl args] — status only (headers in $BR_TMP/h, body in $BR_TMP/b)
code() { http "$@"; }
# err_code — first OCI error code of the last body
err_code() { jq -r '.errors[0].code // empty' "$BR_TMP/b" 2>/dev/null; }

# push_blob REPO FILE [curl args] — monolithic POST ?digest=; prints the status
push_blob() {
    local repo=$1 f=$2
    shift 2
    http POST "/v2/$repo/blobs/uploads/?digest=sha256:$(sha256_of "$f")" -H 'Content-Type: application/octet-stream' \
        --data-binary "@$f" "$@"
}
# push_image REPO TAG [curl args] — a config + one layer + manifest; prints "blob blob manifest" statuses
mkfile() { printf '%s' "$2" >"$BR_TMP/$1"; echo "$BR_TMP/$1"; }
push_image() {
    local repo=$1 tag=$2 cfg lay man s1 s2 s3
    shift 2
    cfg=$(mkfile "cfg-$$" "{\"architecture\":\"amd64\",\"os\":\"linux\",\"repo\":\"$repo\"}")
    lay=$(mkfile "lay-$$" "layer of $repo $(rndpw)")
    s1=$(push_blob "$repo" "$cfg" "$@")
    s2=$(push_blob "$repo" "$lay" "$@")
    man="$BR_TMP/man-$$"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
        "$(sha256_of "$cfg")" "$(stat -c %s "$cfg")" "$(sha256_of "$lay")" "$(stat -c %s "$lay")" >"$man"
    s3=$(http PUT "/v2/$repo/manifests/$tag" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$man" "$@")
    echo "$s1 $s2 $s3"
}
catalog() { # [curl args] — sorted repositories, comma-separated
    curl -s "$@" "$BR_URL/v2/_catalog" | jq -r '.repositories | sort | join(",")' 2>/dev/null
}

# JWT helpers (shell, base64, jq, openssl: python3 starts slowly on a busy machine)
b64url_dec() {
    local s
    s=$(printf '%s' "$1" | tr '_-' '/+')
    while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done
    printf '%s' "$s" | base64 -d 2>/dev/null
}
b64url_enc() { base64 -w0 | tr '/+' '_-' | tr -d '='; }
jwt_claims() { b64url_dec "$(printf '%s' "$1" | cut -d. -f2)"; }
jwt_header() { b64url_dec "$(printf '%s' "$1" | cut -d. -f1)"; }
# jwt_forge TOKEN KIND — KIND: tamper (payload changed, old signature), none
# (alg "none", empty signature), hs256 (HMAC with a made-up key), sigbit (one
# signature character changed)
jwt_forge() {
    local h p s hdr pl evil si
    IFS=. read -r h p s <<<"$1"
    evil='[{"type":"repository","name":"secret/x","actions":["pull","push","delete"]}]'
    pl=$(b64url_dec "$p" | jq -c --argjson a "$evil" '.access = $a' | tr -d '\n' | b64url_enc)
    case $2 in
    tamper) echo "$h.$pl.$s" ;;
    none)
        hdr=$(b64url_dec "$h" | jq -c '.alg = "none"' | tr -d '\n' | b64url_enc)
        echo "$hdr.$pl."
        ;;
    hs256)
        hdr=$(b64url_dec "$h" | jq -c '.alg = "HS256"' | tr -d '\n' | b64url_enc)
        si="$hdr.$pl"
        echo "$si.$(printf '%s' "$si" | openssl dgst -sha256 -hmac guessed-secret -binary | b64url_enc)"
        ;;
    sigbit)
        local i=$((${#s} / 2)) c
        c=${s:$i:1}
        [ "$c" = A ] && c=B || c=A
        echo "$h.$p.${s:0:$i}$c${s:$((i + 1))}"
        ;;
    esac
}
# token_get QUERY [curl args] — GET /token?QUERY; prints the token (remembered)
token_get() {
    local q=$1 tok
    shift
    tok=$(curl -s "$@" "$BR_URL/token?$q" | jq -r '.token // empty')
    [ -n "$tok" ] && remember "$tok"
    printf '%s' "$tok"
}
bearer() { echo "Authorization: Bearer $1"; }

# =====================================================================================
# A. Basic only
# =====================================================================================
write_config "$BR_TMP/basic.yaml" basic
ok "berth check-config accepts the auth config" sh -c '"$1" check-config -c "$2" >/dev/null' sh "$BERTH" "$BR_TMP/basic.yaml"
br_serve "$BR_TMP/basic.yaml" || { echo "Bail out! berth (basic) did not start"; exit 1; }

st=$(code GET /v2/)
is "$st" 401 "A: anonymous GET /v2/ is 401"
is "$(header WWW-Authenticate)" 'Basic realm="berth-test"' "A: with a Basic challenge naming the realm"
is "$(err_code)" UNAUTHORIZED "A: error body code UNAUTHORIZED"
is "$(header Docker-Distribution-API-Version)" "registry/2.0" "A: 401 still carries Docker-Distribution-API-Version"
is "$(code GET /v2/ -u "alice:$PW_ALICE")" 200 "A: alice (good password) GET /v2/ is 200"
st=$(code GET /v2/ -u "alice:wrong-$PW_ALICE")
is "$st" 401 "A: alice with a bad password is 401"
is "$(header WWW-Authenticate)" 'Basic realm="berth-test"' "A: bad password: challenge again"
is "$(code GET /v2/ -u "mallory:x")" 401 "A: unknown user is 401"
is "$(code GET /v2/ -H 'Authorization: Basic !!!notbase64')" 401 "A: malformed Basic value is 401"
is "$(code GET /v2/ -H 'Authorization: Digest username="alice"')" 401 "A: unsupported scheme is 401"
is "$(code GET /v2/ -H 'Authorization: Bearer abc.def.ghi')" 401 "A: Bearer without a token section is 401"

# content, pushed by the admin
is "$(push_image public/one v1 -u "alice:$PW_ALICE")" "201 201 201" "A: admin pushes public/one"
is "$(push_image secret/x v1 -u "alice:$PW_ALICE")" "201 201 201" "A: admin pushes secret/x"
is "$(push_image team/t v1 -u "alice:$PW_ALICE")" "201 201 201" "A: admin pushes team/t"
is "$(push_image bob/app v1 -u "bob:$PW_BOB")" "201 201 201" "A: bob pushes bob/app (his rule)"
curl -s -u "alice:$PW_ALICE" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$BR_URL/v2/secret/x/manifests/v1" >"$BR_TMP/secret.man"
SECRET_LAYER=$(jq -r '.layers[0].digest' "$BR_TMP/secret.man")
curl -s -u "alice:$PW_ALICE" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$BR_URL/v2/public/one/manifests/v1" >"$BR_TMP/public.man"
PUBLIC_LAYER=$(jq -r '.layers[0].digest' "$BR_TMP/public.man")

# anonymous
is "$(code GET /v2/public/one/manifests/v1 -H 'Accept: application/vnd.oci.image.manifest.v1+json')" 200 \
    "A: anonymous pull of public/one manifest is 200"
is "$(code GET "/v2/public/one/blobs/$PUBLIC_LAYER")" 200 "A: anonymous pull of a public/one blob is 200"
is "$(code HEAD /v2/public/one/manifests/v1 -I)" 200 "A: anonymous HEAD of public/one manifest is 200"
is "$(code GET /v2/public/one/tags/list)" 200 "A: anonymous tags/list of public/one is 200"
st=$(code POST /v2/public/one/blobs/uploads/)
is "$st" 401 "A: anonymous push (POST upload) to public/one is 401"
is "$(header WWW-Authenticate)" 'Basic realm="berth-test"' "A: ... with the Basic challenge"
is "$(code PUT /v2/public/one/manifests/v2 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$BR_TMP/public.man")" 401 "A: anonymous manifest PUT to public/one is 401"
is "$(code DELETE /v2/public/one/manifests/v1)" 401 "A: anonymous DELETE in public/one is 401"
is "$(code GET /v2/secret/x/manifests/v1)" 401 "A: anonymous pull of secret/x is 401"
is "$(code GET /v2/team/t/tags/list)" 401 "A: anonymous pull of team/t is 401"

# "Basic Og==" (empty user and password, as containers/image sends without
# credentials) is anonymous: no failed login, no back-off
is "$(code GET /v2/public/one/tags/list -u ':')" 200 "A: Basic with empty user and password pulls public/one (anonymous)"
st=$(code GET /v2/secret/x/tags/list -u ':')
is "$st $(err_code)" "401 UNAUTHORIZED" "A: ... and gets 401 on a private repository"
is "$(jq -r '.errors[0].message' "$BR_TMP/b")" "authentication required" "A: ... as anonymous, not as a failed login"
for i in 1 2 3 4 5 6 7 8; do code GET /v2/ -u ':' --interface 127.0.0.4 >/dev/null; done
is "$(code GET /v2/ -u "bob:$PW_BOB" --interface 127.0.0.4)" 200 "A: eight empty Basic logins do not start the back-off"

# signed-in users without the right: 403 DENIED
st=$(code GET /v2/secret/x/manifests/v1 -u "bob:$PW_BOB")
is "$st" 403 "A: bob pulling secret/x is 403"
is "$(err_code)" DENIED "A: ... with code DENIED"
is "$(header WWW-Authenticate)" "" "A: ... and no challenge (he is signed in)"
is "$(code GET /v2/secret/x/tags/list -u "carol:$PW_CAROL")" 403 "A: carol (ci) pulling secret/x is 403 (secret/** shadows **)"
is "$(code GET /v2/bob/app/tags/list -u "carol:$PW_CAROL")" 403 "A: carol (ci) pulling bob/app is 403 (bob/** shadows **)"
is "$(code GET /v2/team/t/tags/list -u "carol:$PW_CAROL")" 200 "A: carol (ci) pulls team/t (** for ci)"
is "$(code POST /v2/team/t/blobs/uploads/ -u "carol:$PW_CAROL")" 403 "A: carol (ci, pull only) push to team/t is 403"
is "$(code GET /v2/team/t/tags/list -u "bob:$PW_BOB")" 403 "A: bob pulling team/t is 403"
is "$(code POST /v2/public/one/blobs/uploads/ -u "carol:$PW_CAROL")" 403 "A: carol push to public/one is 403"
is "$(code GET /v2/public/one/tags/list -u "carol:$PW_CAROL")" 200 "A: carol pulls public/one (anonymous grant applies to users)"
is "$(code POST /v2/public/one/blobs/uploads/ -u "bob:$PW_BOB")" 202 "A: bob may push to public/one (his rule)"
is "$(code DELETE "/v2/public/one/manifests/sha256:$(sha256_of "$BR_TMP/public.man")" -u "bob:$PW_BOB")" 403 \
    "A: bob may not delete in public/one (pull, push only)"
is "$(code GET /v2/secret/x/tags/list -u "alice:$PW_ALICE")" 200 "A: alice (admins) pulls secret/x"
is "$(code GET /v2/secret/x/tags/list -u "alice:wrong")" 401 "A: alice with a bad password is 401 on a repository route"

# catalog filtered per caller
is "$(catalog -u "alice:$PW_ALICE")" "bob/app,public/one,secret/x,team/t" "A: catalog for admin alice: everything"
is "$(catalog -u "bob:$PW_BOB")" "bob/app,public/one" "A: catalog for bob: his repositories and public ones"
is "$(catalog -u "carol:$PW_CAROL")" "public/one,team/t" "A: catalog for carol (ci, ** pull): not bob/** nor secret/** (shadowed)"
is "$(catalog)" "public/one" "A: catalog for anonymous: public only"
is "$(code GET '/v2/_catalog?n=1' -u "bob:$PW_BOB")" 200 "A: paginated catalog for bob is 200"
is "$(jq -r '.repositories | join(",")' "$BR_TMP/b")" "bob/app" "A: first page for bob holds only what he may pull"

# cross-repository mount: from must be pullable by the caller
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$SECRET_LAYER&from=secret/x" -u "bob:$PW_BOB")
is "$st" 202 "A: bob mounting from secret/x (not pullable) gets 202 (plain upload)"
like "$(header Location)" '^/v2/bob/app/blobs/uploads/' "A: ... with an upload Location"
is "$(code HEAD "/v2/bob/app/blobs/$SECRET_LAYER" -I -u "bob:$PW_BOB")" 404 "A: ... and the secret blob did not appear in bob/app"
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$PUBLIC_LAYER&from=public/one" -u "bob:$PW_BOB")
is "$st" 201 "A: bob mounting from public/one (pullable) gets 201"
is "$(code HEAD "/v2/bob/app/blobs/$PUBLIC_LAYER" -I -u "bob:$PW_BOB")" 200 "A: ... and the blob is in bob/app"
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$SECRET_LAYER" -u "bob:$PW_BOB")
is "$st" 202 "A: automatic mount (no from) of a blob only secret/x holds (bob may not pull it) is 202"
is "$(code HEAD "/v2/bob/app/blobs/$SECRET_LAYER" -I -u "bob:$PW_BOB")" 404 "A: ... and the secret blob did not appear in bob/app"
is "$(code POST "/v2/team/t/blobs/uploads/?mount=$SECRET_LAYER&from=secret/x" -u "alice:$PW_ALICE")" 201 \
    "A: admin mounting from secret/x gets 201"
is "$(code POST "/v2/public/one/blobs/uploads/?mount=$SECRET_LAYER&from=secret/x")" 401 \
    "A: anonymous mount attempt is 401 (no push)"

# automatic mount (no from): only from a repository holding the blob that the
# caller may pull
AUTO_PUB=$(mkfile auto-pub "only in public/one $(rndpw)")
AUTO_PUB_D="sha256:$(sha256_of "$AUTO_PUB")"
AUTO_TEAM=$(mkfile auto-team "only in team/t $(rndpw)")
AUTO_TEAM_D="sha256:$(sha256_of "$AUTO_TEAM")"
is "$(push_blob public/one "$AUTO_PUB" -u "bob:$PW_BOB") $(push_blob team/t "$AUTO_TEAM" -u "alice:$PW_ALICE")" "201 201" \
    "A: a blob pushed to public/one only (by bob), another to team/t only (by alice)"
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$AUTO_PUB_D" -u "bob:$PW_BOB")
is "$st" 201 "A: bob's automatic mount of the blob only public/one holds (he may pull it) is 201"
is "$(header Location)" "/v2/bob/app/blobs/$AUTO_PUB_D" "A: ... Location is the blob in bob/app"
is "$(code GET "/v2/bob/app/blobs/$AUTO_PUB_D" -u "bob:$PW_BOB")" 200 "A: ... and bob pulls it from bob/app"
ok "A: ... with the pushed content" cmp -s "$AUTO_PUB" "$BR_TMP/b"
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$AUTO_TEAM_D" -u "bob:$PW_BOB")
is "$st" 202 "A: bob's automatic mount of the blob only team/t holds (he may not pull it) is 202"
like "$(header Location)" '^/v2/bob/app/blobs/uploads/' "A: ... an upload session"
is "$(code GET "/v2/bob/app/blobs/$AUTO_TEAM_D" -u "bob:$PW_BOB")" 404 "A: ... and the blob is not readable from bob/app"
is "$(code HEAD "/v2/bob/app/blobs/$AUTO_TEAM_D" -I -u "alice:$PW_ALICE")" 404 "A: ... not even by the admin (it was never linked)"

# htpasswd reload: a new user, a changed password, a removed user
is "$(code GET /v2/ -u "dave:$PW_DAVE")" 401 "A: dave unknown before the reload"
is "$(code GET /v2/ -u "bob:$PW_BOB")" 200 "A: bob's password works (and is now cached)"
{
    grep -v '^bob:' "$HT"
    printf '%s\n' "$PW_DAVE" | "$BERTH" hash-password dave
    printf '%s\n' "$PW_BOB2" | "$BERTH" hash-password bob
} >"$HT.new"
sleep 1.1
mv "$HT.new" "$HT"
st=""
for i in $(seq 1 30); do
    st=$(code GET /v2/ -u "dave:$PW_DAVE")
    [ "$st" = 200 ] && break
    sleep 0.2
done
is "$st" 200 "A: dave signs in after the htpasswd file changed"
is "$(code GET /v2/ -u "bob:$PW_BOB")" 401 "A: bob's old password is refused at once (cache does not outlive the reload)"
is "$(code GET /v2/bob/app/tags/list -u "bob:$PW_BOB2")" 200 "A: bob's new password works"
ok "A: the reload is logged" grep -q 'reloaded .*htpasswd' "$BR_TMP/server.log"
grep -v '^dave:' "$HT" >"$HT.new" && sleep 1.1 && mv "$HT.new" "$HT"
st=""
for i in $(seq 1 30); do
    st=$(code GET /v2/ -u "dave:$PW_DAVE")
    [ "$st" = 401 ] && break
    sleep 0.2
done
is "$st" 401 "A: dave removed from the file is refused"
printf 'broken line without colon\n' >>"$HT"
sleep 1.1
touch "$HT"
sleep 1.1
is "$(code GET /v2/ -u "bob:$PW_BOB2")" 200 "A: a broken htpasswd file keeps the previous users"
ok "A: ... and is reported with the file name" grep -q "keeping the previous users.*htpasswd" "$BR_TMP/server.log"
grep -v '^broken' "$HT" >"$HT.new" && sleep 1.1 && mv "$HT.new" "$HT"

# failed-login back-off, from 127.0.0.3; 127.0.0.2 is unaffected
# (the right password and the other address are tried at once after the first
# 429: the first block lasts only 2^1 s, and a loaded machine is slow)
got429=0 n=0 st_good="" st_other=""
for i in $(seq 1 12); do
    n=$i
    st=$(code GET /v2/ -u "bob:wrong" --interface 127.0.0.3)
    if [ "$st" = 429 ]; then
        got429=1
        cp "$BR_TMP/h" "$BR_TMP/h429"
        cp "$BR_TMP/b" "$BR_TMP/b429"
        st_good=$(code GET /v2/ -u "bob:$PW_BOB2" --interface 127.0.0.3)
        st_other=$(code GET /v2/ -u "bob:$PW_BOB2" --interface 127.0.0.2)
        break
    fi
done
ok "A: repeated bad logins from 127.0.0.3 end in 429 (after $n attempts)" test $got429 -eq 1 -a $n -ge 6 -a $n -le 7
like "$(grep -i '^retry-after:' "$BR_TMP/h429" | cut -d: -f2 | tr -d ' \r')" '^[1-9][0-9]*$' "A: 429 carries Retry-After in seconds"
is "$(jq -r '.errors[0].code' "$BR_TMP/b429")" TOOMANYREQUESTS "A: 429 error body code TOOMANYREQUESTS"
is "$st_good" 429 "A: even the right password is 429 from that address"
is "$st_other" 200 "A: another address (127.0.0.2) is unaffected"
is "$(code GET /v2/ -u "bob:$PW_BOB2")" 200 "A: and 127.0.0.1 too"
is "$(code GET /v2/public/one/tags/list --interface 127.0.0.3)" 200 "A: anonymous public pull from the blocked address still works"

# interleave ADDR PATH GOOD BAD — from ADDR, GET PATH with the good user:password
# then with the bad one, up to 12 rounds; prints the round whose bad login got
# 429 (its answer stays in $BR_TMP/h, $BR_TMP/b), or "never".
interleave() {
    local addr=$1 path=$2 good=$3 bad=$4 i
    for i in $(seq 1 12); do
        code GET "$path" -u "$good" --interface "$addr" >/dev/null
        [ "$(code GET "$path" -u "$bad" --interface "$addr")" = 429 ] && { echo "$i"; return; }
    done
    echo never
}
# A success clears only that user's own failures: alice's good logins between
# guesses at carol's password do not save the guesser from the back-off
# (max_failures 5: the 6th guess is refused; 7 or 8 on a slow machine, when a
# 1 s or 2 s block ran out between two requests).
n=$(interleave 127.0.0.5 /v2/ "alice:$PW_ALICE" "carol:wrong")
like "$n" '^[678]$' "A: alice's good logins interleaved with guesses at carol from 127.0.0.5: a guess gets 429 (round $n)"
is "$(header Retry-After | grep -c '^[1-9]')" 1 "A: ... with Retry-After"
is "$(code GET /v2/ -u "carol:$PW_CAROL" --interface 127.0.0.5)" 429 "A: ... and carol's right password from there too"
# rotating the guessed user name, with good logins in between, blocks the address
rot=""
for u in x1 x2 x3 x4 x5; do
    rot="$rot$(code GET /v2/ -u "alice:$PW_ALICE" --interface 127.0.0.6) "
    code GET /v2/ -u "$u:wrong" --interface 127.0.0.6 >/dev/null
done
is "$rot$(code GET /v2/ -u "alice:$PW_ALICE" --interface 127.0.0.6)" "200 200 200 200 200 429" \
    "A: guesses at five user names between alice's good logins from 127.0.0.6: the address is blocked"
ok "A: server still alive" kill -0 "$BR_PID"
ok "A: berth stops cleanly" br_stop

# =====================================================================================
# B. token issuer
# =====================================================================================
write_config "$BR_TMP/token.yaml" token
br_serve "$BR_TMP/token.yaml" || { echo "Bail out! berth (token) did not start"; exit 1; }
SCOPE_HDR="Bearer realm=\"$REALM\",service=\"$SERVICE\""

st=$(code GET /v2/)
is "$st" 401 "B: anonymous GET /v2/ is 401"
is "$(header WWW-Authenticate)" "$SCOPE_HDR" "B: challenge is Bearer realm=\"…\",service=\"…\""
st=$(code POST /v2/bob/app/blobs/uploads/)
is "$st" 401 "B: anonymous push is 401"
is "$(err_code): $(jq -r '.errors[0].message' "$BR_TMP/b")" "UNAUTHORIZED: authentication required" \
    "B: ... UNAUTHORIZED: authentication required"
is "$(header WWW-Authenticate)" "$SCOPE_HDR,scope=\"repository:bob/app:pull,push\"" \
    "B: push challenge exactly as the token spec shows it: scope=\"repository:<name>:pull,push\""
code GET /v2/secret/x/manifests/v1 >/dev/null
is "$(header WWW-Authenticate)" "$SCOPE_HDR,scope=\"repository:secret/x:pull\"" "B: pull challenge: scope=\"repository:<name>:pull\""
code DELETE /v2/bob/app/manifests/v1 >/dev/null
is "$(header WWW-Authenticate)" "$SCOPE_HDR,scope=\"repository:bob/app:delete\"" "B: delete challenge: scope=\"repository:<name>:delete\""
code GET /v2/_catalog -u "bob:wrong" >/dev/null
code GET /v2/_catalog -H 'Authorization: Bearer x.y.z' >/dev/null
is "$(header WWW-Authenticate)" "$SCOPE_HDR,scope=\"registry:catalog:*\",error=\"invalid_token\"" \
    "B: catalog challenge: scope=\"registry:catalog:*\" (with error=\"invalid_token\" for a bad token)"
code POST "/v2/bob/app/blobs/uploads/?mount=$PUBLIC_LAYER&from=public/one" >/dev/null
is "$(header WWW-Authenticate)" "$SCOPE_HDR,scope=\"repository:bob/app:pull,push repository:public/one:pull\"" \
    "B: mount challenge asks for the from repository too"
is "$(code GET /v2/public/one/tags/list)" 200 "B: anonymous pull of public/one still needs no token"
is "$(code GET /v2/ -u "bob:$PW_BOB2")" 200 "B: Basic credentials still work with a token section"

# token GET with several scopes: each intersected with bob's rules
q="service=$SERVICE&scope=repository:bob/app:pull,push,delete&scope=repository:secret/x:pull,push&scope=repository:public/one:pull,push,delete&scope=repository:team/t:pull"
st=$(code GET "/token?$q" -u "bob:$PW_BOB2")
is "$st" 200 "B: GET /token with Basic and four scopes is 200"
is "$(header Cache-Control)" "no-store" "B: token response is Cache-Control: no-store"
TOK_BOB=$(jq -r .token "$BR_TMP/b")
remember "$TOK_BOB"
like "$TOK_BOB" '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "B: token is a JWS compact JWT"
is "$(jq -r .access_token "$BR_TMP/b")" "$TOK_BOB" "B: access_token equals token"
like "$(jq -r .expires_in "$BR_TMP/b")" '^300$' "B: expires_in is the configured 5m"
like "$(jq -r .issued_at "$BR_TMP/b")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(\.[0-9]+)?Z$' "B: issued_at is RFC 3339"
is "$(jq -r '.refresh_token // "none"' "$BR_TMP/b")" none "B: no refresh token unless asked"
claims=$(jwt_claims "$TOK_BOB")
is "$(jq -r '[.iss, .sub, (.aud|if type=="array" then .[0] else . end)] | join(" ")' <<<"$claims")" \
    "berth-test-issuer bob $SERVICE" "B: claims iss, sub, aud"
ok "B: exp - iat is 300" test "$(jq '.exp - .iat' <<<"$claims")" = 300
acc() { jq -r --arg n "$2" '[.access[]? | select(.type=="repository" and .name==$n) | .actions[]] | sort | join(",")' <<<"$1"; }
is "$(acc "$claims" bob/app)" "delete,pull,push" "B: bob/app: all three asked, all granted"
is "$(acc "$claims" public/one)" "pull,push" "B: public/one: pull,push,delete asked, pull,push granted"
is "$(acc "$claims" secret/x)" "" "B: secret/x: nothing granted"
is "$(acc "$claims" team/t)" "" "B: team/t: nothing granted"
is "$(jwt_header "$TOK_BOB" | jq -r .alg)" ES256 "B: signed ES256 (the gen-key default)"

is "$(code GET /v2/bob/app/tags/list -H "$(bearer "$TOK_BOB")")" 200 "B: the token pulls bob/app"
is "$(push_image bob/app v2 -H "$(bearer "$TOK_BOB")")" "201 201 201" "B: the token pushes to bob/app"
is "$(code GET /v2/public/one/tags/list -H "$(bearer "$TOK_BOB")")" 200 "B: the token pulls public/one"
st=$(code GET /v2/secret/x/tags/list -H "$(bearer "$TOK_BOB")")
is "$st" 401 "B: the token on secret/x is 401"
is "$(header WWW-Authenticate)" "$SCOPE_HDR,scope=\"repository:secret/x:pull\",error=\"insufficient_scope\"" \
    "B: ... error=\"insufficient_scope\" with the scope needed"
is "$(err_code)" UNAUTHORIZED "B: ... code UNAUTHORIZED"
is "$(code GET /v2/ -H "$(bearer "$TOK_BOB")")" 200 "B: GET /v2/ with a valid token is 200"

# a pull-only token and a push
TOK_PULL=$(token_get "service=$SERVICE&scope=repository:bob/app:pull" -u "bob:$PW_BOB2")
is "$(acc "$(jwt_claims "$TOK_PULL")" bob/app)" "pull" "B: a pull-only token grants pull only"
st=$(code POST /v2/bob/app/blobs/uploads/ -H "$(bearer "$TOK_PULL")")
is "$st" 401 "B: pushing with a pull-only token is 401"
is "$(header WWW-Authenticate)" "$SCOPE_HDR,scope=\"repository:bob/app:pull,push\",error=\"insufficient_scope\"" \
    "B: ... insufficient_scope, scope pull,push (a signed-in caller lacking the right)"
is "$(code DELETE "/v2/bob/app/manifests/v2" -H "$(bearer "$TOK_PULL")")" 401 "B: deleting with it is 401"

# anonymous tokens
TOK_ANON=$(token_get "service=$SERVICE&scope=repository:public/one:pull,push&scope=repository:bob/app:pull")
like "$TOK_ANON" '\.' "B: anonymous token GET is 200"
c=$(jwt_claims "$TOK_ANON")
is "$(acc "$c" public/one)/$(acc "$c" bob/app)/$(jq -r '.sub' <<<"$c")" "pull//" "B: anonymous token: public/one pull only, nothing else, empty sub"
is "$(code GET /v2/public/one/tags/list -H "$(bearer "$TOK_ANON")")" 200 "B: anonymous token pulls public/one"
is "$(code POST /v2/public/one/blobs/uploads/ -H "$(bearer "$TOK_ANON")")" 401 "B: anonymous token may not push"
# a token issued to nobody is no sign-in: answered as a request without
# credentials, so that docker says "unauthorized: authentication required",
# not "denied" (which it makes of insufficient_scope)
is "$(err_code): $(jq -r '.errors[0].message' "$BR_TMP/b")" "UNAUTHORIZED: authentication required" \
    "B: ... UNAUTHORIZED: authentication required"
is "$(header WWW-Authenticate)" "$SCOPE_HDR,scope=\"repository:public/one:pull,push\"" "B: ... a challenge without error=\"insufficient_scope\""
# (docker's client makes a bare code of a body whose message is the code's
# standard text, retries it five times and prints only "unauthorized")
like "$(jq -r '.errors[0].detail // empty' "$BR_TMP/b")" '.' "B: ... with a detail"
code DELETE /v2/bob/app/manifests/v1 -H "$(bearer "$TOK_ANON")" >/dev/null
is "$(err_code): $(jq -r '.errors[0].message' "$BR_TMP/b") $(header WWW-Authenticate | grep -c error=)" \
    "UNAUTHORIZED: authentication required 0" "B: anonymous token DELETE in bob/app: the same"

# admin, carol
TOK_ALICE=$(token_get "service=$SERVICE&scope=repository:secret/x:pull,push,delete&scope=registry:catalog:*" -u "alice:$PW_ALICE")
is "$(acc "$(jwt_claims "$TOK_ALICE")" secret/x)" "delete,pull,push" "B: admin token: everything on secret/x"
is "$(code GET /v2/secret/x/tags/list -H "$(bearer "$TOK_ALICE")")" 200 "B: admin token pulls secret/x"
TOK_CAROL=$(token_get "service=$SERVICE&scope=repository:team/t:pull,push" -u "carol:$PW_CAROL")
is "$(acc "$(jwt_claims "$TOK_CAROL")" team/t)" "pull" "B: carol asks pull,push on team/t, gets pull"

# token endpoint errors
st=$(code GET "/token?service=wrong.example&scope=repository:bob/app:pull" -u "bob:$PW_BOB2")
is "$st" 400 "B: token GET for an unknown service is 400"
st=$(code GET "/token?service=$SERVICE&scope=repository:bob/app:pull" -u "bob:wrong")
is "$st" 401 "B: token GET with a bad password is 401"
like "$(header WWW-Authenticate)" '^Basic realm=' "B: ... with a Basic challenge"
is "$(code GET "/token?service=$SERVICE&scope=repository:bob/app:pull" -u "mallory:x")" 401 "B: token GET for an unknown user is 401"
is "$(code PUT "/token" --data-binary x)" 405 "B: PUT /token is 405"
st=$(code GET "/token?service=$SERVICE&scope=repository:bob/app:pull&scope=repository:bob/app:pull&service=$SERVICE" -u "bob:$PW_BOB2")
is "$st" 400 "B: a repeated service parameter is 400"
st=$(code GET "/token?service=$SERVICE&scope=repository:Bad..Name:pull&scope=nonsense&scope=repository:bob/app:fly" -u "bob:$PW_BOB2")
is "$st" 200 "B: unknown scopes grant nothing but are no error"
is "$(jwt_claims "$(jq -r .token "$BR_TMP/b")" | jq '[.access[]? | .actions[]] | length')" 0 "B: ... and nothing is granted"
remember "$(jq -r .token "$BR_TMP/b")"

# offline_token=true (GET) -> refresh token; OAuth2 POST grants
st=$(code GET "/token?service=$SERVICE&scope=repository:bob/app:pull&offline_token=true&client_id=berth-test" -u "bob:$PW_BOB2")
is "$st" 200 "B: GET /token?offline_token=true is 200"
REFRESH=$(jq -r '.refresh_token // empty' "$BR_TMP/b")
remember "$REFRESH"
remember "$(jq -r .token "$BR_TMP/b")"
like "$REFRESH" '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "B: ... with a refresh_token"
st=$(code GET /v2/bob/app/tags/list -H "$(bearer "$REFRESH")")
is "$st" 401 "B: a refresh token is not an access token (401)"
like "$(header WWW-Authenticate)" 'error="invalid_token"' "B: ... invalid_token"

st=$(code POST /token --data-urlencode grant_type=password --data-urlencode username=bob \
    --data-urlencode "password=$PW_BOB2" --data-urlencode "service=$SERVICE" \
    --data-urlencode "scope=repository:bob/app:pull,push repository:secret/x:pull" --data-urlencode client_id=berth-test \
    --data-urlencode access_type=offline)
is "$st" 200 "B: OAuth2 POST grant_type=password is 200"
T=$(jq -r .access_token "$BR_TMP/b")
R2=$(jq -r '.refresh_token // empty' "$BR_TMP/b")
remember "$T"
remember "$R2"
c=$(jwt_claims "$T")
is "$(acc "$c" bob/app)|$(acc "$c" secret/x)" "pull,push|" "B: ... space-separated scopes, intersected"
ok "B: ... access_type=offline gives a refresh_token" test -n "$R2"
is "$(code GET /v2/bob/app/tags/list -H "$(bearer "$T")")" 200 "B: the OAuth2 access token works"

st=$(code POST /token --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH" \
    --data-urlencode "service=$SERVICE" --data-urlencode "scope=repository:bob/app:pull,push" --data-urlencode client_id=berth-test)
is "$st" 200 "B: OAuth2 POST grant_type=refresh_token is 200"
T2=$(jq -r .access_token "$BR_TMP/b")
remember "$T2"
is "$(jq -r .sub <<<"$(jwt_claims "$T2")")/$(acc "$(jwt_claims "$T2")" bob/app)" "bob/pull,push" \
    "B: the refreshed token is bob's, scope intersected with his rules"
is "$(code POST /v2/bob/app/blobs/uploads/ -H "$(bearer "$T2")")" 202 "B: the refreshed token pushes"

st=$(code POST /token --data-urlencode grant_type=password --data-urlencode username=bob \
    --data-urlencode password=wrong --data-urlencode "service=$SERVICE" --data-urlencode client_id=berth-test)
like "$st" '^40[01]$' "B: OAuth2 password grant with a bad password is refused ($st)"
is "$(jq -r .error "$BR_TMP/b")" invalid_grant "B: ... error invalid_grant"
st=$(code POST /token --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$T" \
    --data-urlencode "service=$SERVICE" --data-urlencode client_id=berth-test)
is "$(jq -r .error "$BR_TMP/b")" invalid_grant "B: an access token is not a refresh token (invalid_grant)"
st=$(code POST /token --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$(jwt_forge "$REFRESH" sigbit)" \
    --data-urlencode "service=$SERVICE" --data-urlencode client_id=berth-test)
is "$(jq -r .error "$BR_TMP/b")" invalid_grant "B: a tampered refresh token is invalid_grant"
st=$(code POST /token --data-urlencode grant_type=client_credentials --data-urlencode "service=$SERVICE")
is "$st/$(jq -r .error "$BR_TMP/b")" "400/unsupported_grant_type" "B: grant_type=client_credentials: 400 unsupported_grant_type"
st=$(code POST /token --data-urlencode "service=$SERVICE" --data-urlencode username=bob)
is "$st/$(jq -r .error "$BR_TMP/b")" "400/invalid_request" "B: POST without grant_type: 400 invalid_request"

# forged tokens
for kind in tamper none hs256 sigbit; do
    f=$(jwt_forge "$TOK_BOB" $kind)
    st=$(code GET /v2/secret/x/tags/list -H "$(bearer "$f")")
    is "$st" 401 "B: $kind token is 401"
    like "$(header WWW-Authenticate)" 'error="invalid_token"' "B: $kind token: error=\"invalid_token\""
done
f=$(jwt_forge "$TOK_BOB" none)
is "$(code GET /v2/bob/app/tags/list -H "$(bearer "$f")")" 401 "B: alg none is refused even for a repository the user may pull"
is "$(code GET /v2/bob/app/tags/list -H "Authorization: Bearer ${TOK_BOB}x")" 401 "B: a token with a trailing byte is 401"
is "$(code GET /v2/bob/app/tags/list -H "Authorization: Bearer $TOK_BOB$TOK_BOB")" 401 "B: two tokens glued together are 401"

# bob's catalog through a token
st=$(code GET /v2/_catalog -H "$(bearer "$TOK_BOB")")
is "$st" 401 "B: catalog with a token without registry:catalog:* is 401"
like "$(header WWW-Authenticate)" 'scope="registry:catalog:\*",error="insufficient_scope"' "B: ... insufficient_scope registry:catalog:*"
TOK_BOBC=$(token_get "service=$SERVICE&scope=registry:catalog:*" -u "bob:$PW_BOB2")
is "$(catalog -H "$(bearer "$TOK_BOBC")")" "bob/app,public/one" "B: catalog with bob's catalog token: his and public"
is "$(catalog -H "$(bearer "$TOK_ALICE")")" "bob/app,public/one,secret/x,team/t" "B: catalog with alice's token: everything"
TOK_ANONC=$(token_get "service=$SERVICE&scope=registry:catalog:*")
is "$(catalog -H "$(bearer "$TOK_ANONC")")" "public/one" "B: catalog with an anonymous catalog token: public only"
is "$(catalog)" "public/one" "B: anonymous catalog without a token: public only"

# mounts with tokens: from must be in the token's grants
TOK_M=$(token_get "service=$SERVICE&scope=repository:bob/app:pull,push&scope=repository:public/one:pull&scope=repository:secret/x:pull" -u "bob:$PW_BOB2")
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$SECRET_LAYER&from=secret/x" -H "$(bearer "$TOK_M")")
is "$st" 202 "B: token mount from secret/x (not granted) is 202"
TOK_M2=$(token_get "service=$SERVICE&scope=repository:bob/app:pull,push" -u "bob:$PW_BOB2")
PUB2=$(jq -r '.config.digest' "$BR_TMP/public.man")
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$PUB2&from=public/one" -H "$(bearer "$TOK_M2")")
is "$st" 202 "B: token mount from public/one without public/one in the token is 202"
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$PUB2&from=public/one" -H "$(bearer "$TOK_M")")
is "$st" 201 "B: token mount from public/one with repository:public/one:pull granted is 201"

# automatic mounts with a token: holders are tried in name order, and berth's
# own tokens also carry their subject's rules (br_auth_may). a/first (after
# the catalog checks above, which it would change) sorts before public/one.
AUTO_A=$(mkfile auto-a "in a/first and public/one $(rndpw)")
AUTO_A_D="sha256:$(sha256_of "$AUTO_A")"
AUTO_ONLY=$(mkfile auto-only "only in a/first $(rndpw)")
AUTO_ONLY_D="sha256:$(sha256_of "$AUTO_ONLY")"
is "$(push_blob a/first "$AUTO_A" -u "alice:$PW_ALICE") $(push_blob public/one "$AUTO_A" -u "bob:$PW_BOB2") $(push_blob a/first "$AUTO_ONLY" -u "alice:$PW_ALICE")" \
    "201 201 201" "B: one blob in a/first and public/one, another in a/first only"
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$AUTO_ONLY_D" -H "$(bearer "$TOK_M2")")
is "$st" 202 "B: token automatic mount of a blob only a/first holds (bob may not pull it) is 202"
is "$(code GET "/v2/bob/app/blobs/$AUTO_ONLY_D" -H "$(bearer "$TOK_M2")")" 404 "B: ... and the blob is not readable from bob/app"
st=$(code POST "/v2/bob/app/blobs/uploads/?mount=$AUTO_A_D" -H "$(bearer "$TOK_M2")")
is "$st" 201 "B: token automatic mount of a blob in a/first and public/one is 201 (a/first refused, public/one taken)"
is "$(code GET "/v2/bob/app/blobs/$AUTO_A_D" -H "$(bearer "$TOK_M2")")" 200 "B: ... and the token pulls it from bob/app"
ok "B: ... with the pushed content" cmp -s "$AUTO_A" "$BR_TMP/b"

# the token issuer's back-off: bob's good logins (GET with Basic, then the
# OAuth2 password grant) between guesses at carol's password
n=$(interleave 127.0.0.7 "/token?service=$SERVICE" "bob:$PW_BOB2" "carol:wrong")
like "$n" '^[678]$' "B: token GET: bob's good logins interleaved with guesses at carol: a guess gets 429 (round $n)"
is "$(err_code)" TOOMANYREQUESTS "B: ... TOOMANYREQUESTS"
n=never
for i in $(seq 1 12); do
    code POST /token --interface 127.0.0.8 --data-urlencode grant_type=password --data-urlencode username=bob \
        --data-urlencode "password=$PW_BOB2" --data-urlencode "service=$SERVICE" >/dev/null
    st=$(code POST /token --interface 127.0.0.8 --data-urlencode grant_type=password --data-urlencode username=carol \
        --data-urlencode password=wrong --data-urlencode "service=$SERVICE")
    [ "$st" = 429 ] && { n=$i; break; }
done
like "$n" '^[678]$' "B: token POST: bob's good password grants interleaved with guesses at carol: a guess gets 429 (round $n)"

# catalog paging counts and names only what the caller may see: up to n
# visible names a page, the Link's last is the page's last name, and no Link
# after the last visible name. Hidden names before (a/first), between (m/hidden)
# and after (secret/x, team/t, zz/last) the visible ones.
is "$(push_image m/hidden v1 -u "alice:$PW_ALICE") $(push_image public/two v1 -u "alice:$PW_ALICE") $(push_image zz/last v1 -u "alice:$PW_ALICE")" \
    "201 201 201 201 201 201 201 201 201" "B: admin pushes m/hidden, public/two and zz/last"
urldecode() { local s=${1//+/ }; printf '%b' "${s//%/\\x}"; }
# page_catalog N [curl args] — follows the Link headers from ?n=N; prints the
# pages ("a,b|c"), with "!last=X" where a Link's last is not the page's last
# name. Every header and body seen is appended to $BR_TMP/pages.
page_catalog() {
    local url="/v2/_catalog?n=$1" out="" names link i=0
    shift
    : >"$BR_TMP/pages"
    while [ -n "$url" ] && [ $i -lt 10 ]; do
        i=$((i + 1))
        http GET "$url" "$@" >/dev/null
        cat "$BR_TMP/h" "$BR_TMP/b" >>"$BR_TMP/pages"
        names=$(jq -r '.repositories | join(",")' "$BR_TMP/b")
        out="$out${out:+|}$names"
        link=$(header Link)
        url=$(printf '%s' "$link" | sed -n 's/^<\([^>]*\)>; rel="next"$/\1/p')
        [ -z "$link" ] || [ "$(urldecode "${url##*last=}")" = "${names##*,}" ] || out="$out!last=$(urldecode "${url##*last=}")"
    done
    printf '%s' "$out"
}
# hidden_seen NAME... — prints those of the names that a page seen holds (plain or URL-encoded)
hidden_seen() {
    local h
    for h in "$@"; do grep -qF -e "$h" -e "${h//\//%2F}" "$BR_TMP/pages" && printf '%s ' "$h"; done
}
# 600 more hidden names (hid/000 ..) between bob/app and m/hidden: the
# filtered scan reads 512 names a transaction and must carry on across that.
HIDF=$(mkfile hid "one blob for many repositories")
hid_args=()
for i in $(seq -w 0 599); do
    hid_args+=(--next -s -o /dev/null -w '%{http_code}\n' -u "alice:$PW_ALICE" -H 'Content-Type: application/octet-stream'
        --data-binary "@$HIDF" "$BR_URL/v2/hid/$i/blobs/uploads/?digest=sha256:$(sha256_of "$HIDF")")
done
is "$(curl "${hid_args[@]:1}" | sort | uniq -c | tr -s ' ')" " 600 201" "B: admin pushes a blob to each of hid/000 .. hid/599"
ANON_HIDDEN="a/first bob/app hid/ m/hidden secret/x team/t zz/last"
BOB_HIDDEN="a/first hid/ m/hidden secret/x team/t zz/last"
for n in 1 2; do
    want1="public/one|public/two" want2="public/one,public/two"
    is "$(page_catalog $n)" "$(eval echo \$want$n)" "B: anonymous catalog, n=$n: exactly the public names, no Link after the last"
    is "$(hidden_seen $ANON_HIDDEN)" "" "B: ... no hidden name in any body or Link"
    is "$(page_catalog $n -H "$(bearer "$TOK_ANONC")")" "$(eval echo \$want$n)" "B: anonymous catalog token, n=$n: the same pages"
    is "$(hidden_seen $ANON_HIDDEN)" "" "B: ... no hidden name in any body or Link"
    want1="bob/app|public/one|public/two" want2="bob/app,public/one|public/two"
    is "$(page_catalog $n -u "bob:$PW_BOB2")" "$(eval echo \$want$n)" "B: bob (Basic) catalog, n=$n: his and the public names"
    is "$(hidden_seen $BOB_HIDDEN)" "" "B: ... no hidden name in any body or Link"
    is "$(page_catalog $n -H "$(bearer "$TOK_BOBC")")" "$(eval echo \$want$n)" "B: bob's catalog token, n=$n: the same pages"
    is "$(hidden_seen $BOB_HIDDEN)" "" "B: ... no hidden name in any body or Link"
done
is "$(page_catalog 3 -u "bob:$PW_BOB2")" "bob/app,public/one,public/two" "B: bob, n=3: one page, no Link (nothing visible follows)"
all=$(curl -s -u "alice:$PW_ALICE" "$BR_URL/v2/_catalog" | jq -r '.repositories | join(",")')
pages=$(page_catalog 250 -u "alice:$PW_ALICE")
n_all=$(tr ',' '\n' <<<"$all" | wc -l)
is "${pages//|/,}" "$all" "B: admin alice, n=250: the pages hold every name ($n_all), in order"
is "$(tr '|' '\n' <<<"$pages" | awk -F, '{ printf "%d ", NF }')" "250 250 $((n_all - 500)) " "B: ... 250 a page, no empty page at the end"
# one connection (one thread, whose listing cache must never serve a
# filtered page): alice, anonymous, bob, alice again, each its own view
out=$(curl -s -u "alice:$PW_ALICE" "$BR_URL/v2/_catalog?n=3" --next -s "$BR_URL/v2/_catalog?n=3" \
    --next -s -u "bob:$PW_BOB2" "$BR_URL/v2/_catalog?n=3" --next -s -u "alice:$PW_ALICE" "$BR_URL/v2/_catalog?n=3" |
    jq -r '.repositories | join(",")' | tr '\n' ' ')
is "$out" "a/first,bob/app,hid/000 public/one,public/two bob/app,public/one,public/two a/first,bob/app,hid/000 " \
    "B: one connection, the same catalog URL as alice, anonymous, bob, alice: each sees only its own names"
http GET "/v2/_catalog?n=1&last=public%2Fone" >/dev/null
is "$(jq -c .repositories "$BR_TMP/b") $(header Link)" '["public/two"] ' "B: anonymous, last=public/one: public/two and no Link"
ok "B: berth stops cleanly" br_stop

# =====================================================================================
# C. short-lived tokens
# =====================================================================================
write_config "$BR_TMP/short.yaml" short
br_serve "$BR_TMP/short.yaml" || { echo "Bail out! berth (short) did not start"; exit 1; }
st=$(code GET "/token?service=$SERVICE&scope=repository:bob/app:pull" -u "bob:$PW_BOB2")
TOK_S=$(jq -r .token "$BR_TMP/b")
remember "$TOK_S"
is "$st/$(jq -r .expires_in "$BR_TMP/b")" "200/1" "C: token with expires_in 1"
st=$(code GET /v2/bob/app/tags/list -H "$(bearer "$TOK_S")")
ok "C: fresh token works (or expired already on a slow machine: $st)" test "$st" = 200 -o "$st" = 401
sleep 2.2
st=$(code GET /v2/bob/app/tags/list -H "$(bearer "$TOK_S")")
is "$st" 401 "C: the expired token is 401"
like "$(header WWW-Authenticate)" 'error="invalid_token"' "C: ... error=\"invalid_token\""
ok "C: a token from server B (different exp) still verifies with the same key" sh -c \
    'test "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $1" "$2/v2/bob/app/tags/list")" = 200' sh "$T" "$BR_URL"
ok "C: berth stops cleanly" br_stop

# =====================================================================================
# the log
# =====================================================================================
leaks=0
while IFS= read -r s; do
    [ -n "$s" ] || continue
    if grep -qF -- "$s" "$BR_TMP/server.log"; then
        leaks=$((leaks + 1))
        diag "secret found in the log: ${s:0:12}..."
    fi
    # a token's signature alone, too (a log could cut the token)
    case $s in *.*.*) sig=${s##*.}; [ ${#sig} -ge 40 ] && grep -qF -- "$sig" "$BR_TMP/server.log" && { leaks=$((leaks + 1)); diag "token signature in the log"; } ;; esac
done <"$SECRETS"
is "$leaks" 0 "no password, token or Authorization value in the server log ($(wc -l <"$SECRETS") checked)"
ok "no Authorization header text in the log" sh -c '! grep -qiE "authorization:|Basic [A-Za-z0-9+/=]{8,}|Bearer [A-Za-z0-9_-]{8,}" "$1"' sh "$BR_TMP/server.log"
ok "the access log has the requests (the log was not empty)" grep -q '/v2/bob/app' "$BR_TMP/server.log"
no_sanitizer_report "$BR_TMP/server.log"
diag "runtime $(($(date +%s) - t_start)) s"
done_testing
