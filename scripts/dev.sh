#!/usr/bin/env bash
# Runs the webhook locally: development certificates from certs-dev/, the embedded default
# configuration, no cluster. Extra arguments go to `pullcheck serve` (e.g. --mode warn).
set -euo pipefail
cd "$(dirname "$0")/.."
out=certs-dev/out
if [ ! -s "$out/tls.crt" ] || [ ! -s "$out/tls.key" ]; then
  cargo run --quiet -- dev-certs --out "$out"
fi
exec cargo run --quiet -- serve \
  --listen 127.0.0.1:8443 \
  --tls-cert "$out/tls.crt" --tls-key "$out/tls.key" \
  --log-format text "$@"
