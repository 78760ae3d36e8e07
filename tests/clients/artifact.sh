#!/bin/bash
# OCI 1.1 artifacts and the referrers API, driven with curl the way signing
# and SBOM tools (cosign, notation, oras) drive a registry.
#
# What it checks, and what that proves:
# - blob upload (POST /blobs/uploads/ then PUT <location>?digest=), including
#   the 2-byte empty config application/vnd.oci.empty.v1+json ("{}").
# - an image manifest PUT by tag, then artifact manifests PUT by digest that
#   carry "subject" (pointing at that image) and "artifactType": 201, the
#   Docker-Content-Digest is the sha256 of the bytes sent, and (spec 1.1,
#   "Pushing Manifests with Subject") the response has OCI-Subject: <subject digest>.
#   GET by digest returns the same bytes with the same Content-Type.
# - GET /v2/<name>/referrers/<digest> (spec 1.1, "Listing Referrers"): 200, an
#   application/vnd.oci.image.index.v1+json listing each referrer with its
#   mediaType, size, digest, artifactType and annotations; artifactType falls
#   back to config.mediaType when the manifest has none.
# - ?artifactType= filtering returns only matching referrers and sets
#   OCI-Filters-Applied: artifactType.
# - a digest with no referrers (even an unknown one) gives 200 and an empty
#   index; a referrer may be pushed before its subject exists.
# - deleting a referrer removes it from the list.
# distribution 2.8 implements none of the referrers API (no OCI-Subject, no
# /referrers/): with BR_TEST_REGISTRY=distribution those checks are skipped
# with a diagnostic, the rest still runs.
. "$top_srcdir/tests/lib.sh"
. "$top_srcdir/tests/clients/clients.sh"
need curl jq
registry_start || { echo "Bail out! registry did not start"; exit 1; }

REPO=artifacts/app-$$
W="$BR_TMP/art"
mkdir -p "$W"
STAMP="berth-$(date +%s)-$$-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json
EMPTY=application/vnd.oci.empty.v1+json
SIG_TYPE=application/vnd.example.berth.signature.v1
SBOM_TYPE=application/vnd.example.berth.sbom.v1+json
CFG_TYPE=application/vnd.example.berth.config.v1+json

# skip_referrers NAME — for distribution, record a TAP skip; else false.
skip_referrers() {
    distribution_is_target || return 1
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n # SKIP $1 (distribution 2.8 has no referrers API)"
}

# push_blob FILE — monolithic upload in two requests: POST, then PUT ?digest=.
# Prints nothing; returns non-zero (with a diagnostic) unless the PUT says 201.
push_blob() {
    local f=$1 d loc code
    d=$(digest_of "$f")
    code=$(t curl -s -o /dev/null -D "$W/h" -w '%{http_code}' -X POST "$BR_URL/v2/$REPO/blobs/uploads/")
    [ "$code" = 202 ] || { diag "POST upload: $code"; return 1; }
    loc=$(grep -i '^location:' "$W/h" | head -n1 | cut -d' ' -f2- | tr -d '\r')
    case $loc in
    http://* | https://*) ;;
    /*) loc="$BR_URL$loc" ;;
    *) diag "odd Location: $loc"; return 1 ;;
    esac
    case $loc in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
    code=$(t curl -s -o /dev/null -D "$W/h" -w '%{http_code}' -X PUT \
        -H 'Content-Type: application/octet-stream' --data-binary "@$f" "$loc")
    [ "$code" = 201 ] || { diag "PUT upload $d: $code"; return 1; }
    [ "$(hdr Docker-Content-Digest)" = "$d" ] || { diag "PUT upload: digest header $(hdr Docker-Content-Digest)"; return 1; }
}

# put_manifest FILE REF MEDIATYPE — PUT a manifest; leaves headers in $W/h,
# prints the status.
put_manifest() {
    t curl -s -o "$W/put.body" -D "$W/h" -w '%{http_code}' -X PUT -H "Content-Type: $3" \
        --data-binary "@$1" "$BR_URL/v2/$REPO/manifests/$2"
}

hdr() { grep -i "^$1:" "$W/h" | head -n1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'; }

# descriptor FILE MEDIATYPE — {"mediaType","digest","size"} of a file.
descriptor() {
    jq -cn --arg mt "$2" --arg d "$(digest_of "$1")" --argjson s "$(stat -c %s "$1")" \
        '{mediaType: $mt, digest: $d, size: $s}'
}

# --- subject: an ordinary image --------------------------------------------
mkdir -p "$W/root"
head -c 20000 /dev/urandom >"$W/root/payload"
tar -C "$W/root" -cf - payload | gzip -n >"$W/layer.tar.gz"
diff_id=$(gzip -dc "$W/layer.tar.gz" | sha256sum | cut -d' ' -f1)
printf '{"architecture":"amd64","os":"linux","config":{"Labels":{"stamp":"%s"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$STAMP" "$diff_id" >"$W/config.json"
ok "upload image config blob" push_blob "$W/config.json"
ok "upload image layer blob" push_blob "$W/layer.tar.gz"
jq -cn --argjson c "$(descriptor "$W/config.json" application/vnd.oci.image.config.v1+json)" \
    --argjson l "$(descriptor "$W/layer.tar.gz" application/vnd.oci.image.layer.v1.tar+gzip)" \
    '{schemaVersion: 2, mediaType: "'$OCI_MANIFEST'", config: $c, layers: [$l]}' >"$W/image.json"
subject=$(digest_of "$W/image.json")
is "$(put_manifest "$W/image.json" v1 $OCI_MANIFEST)" 201 "PUT subject image manifest by tag"
is "$(hdr Docker-Content-Digest)" "$subject" "subject Docker-Content-Digest"

# --- artifacts --------------------------------------------------------------
printf '{}' >"$W/empty.json"
is "$(digest_of "$W/empty.json")" "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" \
    "empty config is the well-known {} blob"
ok "upload empty config blob" push_blob "$W/empty.json"
printf '{"critical":{"image":{"docker-manifest-digest":"%s"},"type":"berth signature"},"optional":{"stamp":"%s"}}' \
    "$subject" "$STAMP" >"$W/sig.json"
ok "upload signature payload blob" push_blob "$W/sig.json"
printf '{"spdxVersion":"SPDX-2.3","name":"%s"}' "$STAMP" >"$W/sbom.json"
ok "upload SBOM payload blob" push_blob "$W/sbom.json"
printf '{"kind":"berth-test-config","stamp":"%s"}' "$STAMP" >"$W/cfgart.json"
ok "upload typed config blob" push_blob "$W/cfgart.json"

subj_desc=$(descriptor "$W/image.json" $OCI_MANIFEST)
empty_desc=$(descriptor "$W/empty.json" $EMPTY)

# artifact_manifest OUT ARTIFACTTYPE CONFIG_DESC LAYER_DESC SUBJECT_DESC ANNOTATION
artifact_manifest() {
    jq -cn --arg at "$2" --argjson c "$3" --argjson l "$4" --argjson s "$5" --arg ann "$6" \
        '{schemaVersion: 2, mediaType: "'$OCI_MANIFEST'"}
         + (if $at == "" then {} else {artifactType: $at} end)
         + {config: $c, layers: [$l], subject: $s,
            annotations: {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "org.example.berth.kind": $ann}}' >"$1"
}
artifact_manifest "$W/a-sig.json" "$SIG_TYPE" "$empty_desc" "$(descriptor "$W/sig.json" application/vnd.example.berth.signature.v1+json)" \
    "$subj_desc" signature
artifact_manifest "$W/a-sbom.json" "$SBOM_TYPE" "$empty_desc" "$(descriptor "$W/sbom.json" $SBOM_TYPE)" "$subj_desc" sbom
# no artifactType: the referrers list must report config.mediaType instead
artifact_manifest "$W/a-cfg.json" "" "$(descriptor "$W/cfgart.json" $CFG_TYPE)" "$(descriptor "$W/sbom.json" $SBOM_TYPE)" \
    "$subj_desc" typed-config
sig=$(digest_of "$W/a-sig.json")
sbom=$(digest_of "$W/a-sbom.json")
cfgart=$(digest_of "$W/a-cfg.json")

for a in sig sbom cfg; do
    f="$W/a-$a.json"
    d=$(digest_of "$f")
    is "$(put_manifest "$f" "$d" $OCI_MANIFEST)" 201 "PUT $a artifact manifest (with subject) by digest"
    is "$(hdr Docker-Content-Digest)" "$d" "$a artifact Docker-Content-Digest"
    if ! skip_referrers "$a artifact: OCI-Subject response header"; then
        is "$(hdr OCI-Subject)" "$subject" "$a artifact: OCI-Subject response header names the subject"
    fi
    code=$(curl -s -o "$W/got" -D "$W/h" -w '%{http_code}' -H "Accept: $OCI_MANIFEST" "$BR_URL/v2/$REPO/manifests/$d")
    is "$code $(digest_of "$W/got")" "200 $d" "$a artifact GET by digest returns the bytes pushed"
    is "$(hdr Content-Type)" "$OCI_MANIFEST" "$a artifact Content-Type"
done

# --- referrers ---------------------------------------------------------------
# referrers DIGEST [QUERY] — GET the referrers list; status printed, body in $W/ref.
referrers() {
    t curl -s -o "$W/ref" -D "$W/h" -w '%{http_code}' -H "Accept: $OCI_INDEX" "$BR_URL/v2/$REPO/referrers/$1${2:+?$2}"
}
if distribution_is_target; then
    code=$(referrers "$subject")
    diag "distribution 2.8: GET /referrers/ answers $code; referrers checks skipped"
    skip_referrers "referrers list: index, descriptors, artifactType filter, OCI-Filters-Applied, empty results"
else
    is "$(referrers "$subject")" 200 "GET referrers/<subject> is 200"
    ctype=$(hdr Content-Type)
    is "${ctype%%;*}" "$OCI_INDEX" "referrers Content-Type is an OCI index"
    is "$(jq -r '.schemaVersion, .mediaType' "$W/ref" | paste -sd' ')" "2 $OCI_INDEX" "referrers body is an OCI image index"
    is "$(jq -r '[.manifests[].digest] | sort | join(" ")' "$W/ref")" \
        "$(printf '%s\n' "$sig" "$sbom" "$cfgart" | sort | paste -sd' ')" "lists all three referrers"
    is "$(jq -r --arg d "$sig" '.manifests[] | select(.digest == $d) | [.mediaType, .size, .artifactType] | join(" ")' "$W/ref")" \
        "$OCI_MANIFEST $(stat -c %s "$W/a-sig.json") $SIG_TYPE" "signature descriptor: mediaType, size, artifactType"
    is "$(jq -r --arg d "$sig" '.manifests[] | select(.digest == $d) | .annotations["org.example.berth.kind"]' "$W/ref")" \
        signature "descriptor carries the manifest's annotations"
    is "$(jq -r --arg d "$cfgart" '.manifests[] | select(.digest == $d) | .artifactType' "$W/ref")" "$CFG_TYPE" \
        "no artifactType: config.mediaType reported instead"

    is "$(referrers "$subject" "artifactType=$SIG_TYPE")" 200 "?artifactType= filter is 200"
    is "$(jq -r '[.manifests[].digest] | join(" ")' "$W/ref")" "$sig" "filter returns only the signature"
    is "$(hdr OCI-Filters-Applied)" artifactType "OCI-Filters-Applied: artifactType"

    is "$(referrers "$subject" "artifactType=application/vnd.example.none")" 200 "filter matching nothing is 200"
    is "$(jq -r '.manifests | length' "$W/ref")" 0 "... with an empty list"

    unknown="sha256:$(printf '%s' "nothing-$STAMP" | sha256sum | cut -d' ' -f1)"
    is "$(referrers "$unknown")" 200 "referrers of an unknown digest is 200"
    is "$(jq -r '.manifests | length' "$W/ref") $(jq -r .mediaType "$W/ref")" "0 $OCI_INDEX" "... with an empty index"
fi

# --- a referrer pushed before its subject exists ---------------------------
later="sha256:$(printf '%s' "later-$STAMP" | sha256sum | cut -d' ' -f1)"
artifact_manifest "$W/a-early.json" "$SIG_TYPE" "$empty_desc" "$(descriptor "$W/sig.json" application/vnd.example.berth.signature.v1+json)" \
    "$(jq -cn --arg d "$later" '{mediaType: "'$OCI_MANIFEST'", digest: $d, size: 123}')" early
early=$(digest_of "$W/a-early.json")
is "$(put_manifest "$W/a-early.json" "$early" $OCI_MANIFEST)" 201 "PUT referrer whose subject does not exist (yet)"
if ! skip_referrers "referrer of a missing subject is listed"; then
    is "$(hdr OCI-Subject)" "$later" "OCI-Subject for a missing subject"
    referrers "$later" >/dev/null
    is "$(jq -r '[.manifests[].digest] | join(" ")' "$W/ref")" "$early" "referrer of a missing subject is listed"
fi

# --- delete a referrer -------------------------------------------------------
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$BR_URL/v2/$REPO/manifests/$sbom")
is "$code" 202 "DELETE the SBOM artifact manifest"
is "$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $OCI_MANIFEST" "$BR_URL/v2/$REPO/manifests/$sbom")" 404 \
    "deleted artifact is 404"
if ! skip_referrers "deleted referrer leaves the list"; then
    referrers "$subject" >/dev/null
    is "$(jq -r '[.manifests[].digest] | sort | join(" ")' "$W/ref")" \
        "$(printf '%s\n' "$sig" "$cfgart" | sort | paste -sd' ')" "deleted referrer leaves the list"
fi
is "$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $OCI_MANIFEST" "$BR_URL/v2/$REPO/manifests/v1")" 200 \
    "subject still there"

done_testing
