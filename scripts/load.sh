#!/usr/bin/env bash
# Load test of the cached review path over real HTTPS, on loopback only.
#
# Starts a real registry (Debian's docker-registry, plain HTTP on 127.0.0.1), pushes five tiny
# images, starts a release build of `pullcheck serve` with development certificates, sends one
# review to fill the answer cache, then has wrk POST the same 5-container Deployment review for
# DURATION seconds over CONNECTIONS connections. Every review after the first is answered from
# the cache, so this measures what each pod of a rollout costs the webhook.
#
#   ./scripts/load.sh                  # 15 s, 16 connections
#   DURATION=30 CONNECTIONS=64 ./scripts/load.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-16}

need() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! need wrk || [ ! -x /usr/bin/docker-registry ]; then
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk docker-registry curl
fi

cargo build --release --quiet --bin pullcheck
bin="${CARGO_TARGET_DIR:-target}/release/pullcheck"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 100); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# A real registry, plain HTTP (pullcheck is told it is insecure).
reg_port=$(free_port)
reg="http://127.0.0.1:$reg_port"
cat >"$work/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$reg_port, secret: load-test}
health: {storagedriver: {enabled: false}}
EOF
/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
wait_for "$reg/v2/"

digest() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
push_blob() { # repo file
    local loc sep
    loc=$(curl -sf -D - -o /dev/null -X POST "$reg/v2/$1/blobs/uploads/" | awk 'tolower($1)=="location:"{print $2}' | tr -d '\r')
    case $loc in http*) ;; *) loc="$reg$loc" ;; esac
    sep='?'; [[ $loc == *\?* ]] && sep='&'
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc${sep}digest=$(digest "$2")"
}
images=()
for i in 1 2 3 4 5; do
    repo="load/app$i"
    printf 'layer %s' "$i" >"$work/layer"
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' "$(digest "$work/layer")" >"$work/config"
    push_blob "$repo" "$work/layer"
    push_blob "$repo" "$work/config"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
        "$(digest "$work/config")" "$(stat -c %s "$work/config")" "$(digest "$work/layer")" "$(stat -c %s "$work/layer")" >"$work/manifest"
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$work/manifest" "$reg/v2/$repo/manifests/v1.0.$i"
    images+=("127.0.0.1:$reg_port/$repo:v1.0.$i")
done

# The webhook, with development certificates and no cluster.
"$bin" dev-certs --out "$work/certs" >/dev/null
hook_port=$(free_port)
"$bin" serve --listen "127.0.0.1:$hook_port" --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
    --insecure-registry "127.0.0.1:$reg_port" --log warn --log-format json >"$work/pullcheck.log" 2>&1 &
pids+=($!)
wait_for "https://127.0.0.1:$hook_port/readyz"

containers=""
for i in "${!images[@]}"; do
    containers+="{\"name\":\"c$i\",\"image\":\"${images[$i]}\",\"imagePullPolicy\":\"IfNotPresent\",\"resources\":{\"requests\":{\"cpu\":\"100m\"}}},"
done
cat >"$work/review.json" <<EOF
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"load","kind":{"group":"apps","version":"v1","kind":"Deployment"},"resource":{"group":"apps","version":"v1","resource":"deployments"},"namespace":"default","name":"web","operation":"CREATE","userInfo":{"username":"load"},"object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[${containers%,}]}}}},"oldObject":null,"dryRun":false}}
EOF
url="https://127.0.0.1:$hook_port/validate"
first=$(curl -s --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' --data-binary "@$work/review.json" "$url")
case $first in *'"allowed":true'*) echo "warm-up review: allowed" ;; *) echo "warm-up review was not allowed: $first" >&2; exit 1 ;; esac

cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/review.json", "r")
wrk.body = f:read("*a")
f:close()
EOF
threads=$((CONNECTIONS < 2 ? CONNECTIONS : 2)) # wrk needs a connection per thread
echo "wrk: $DURATION s, $CONNECTIONS connections, $threads threads, 5-container Deployment, answers cached"
wrk -t"$threads" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" "$url"
