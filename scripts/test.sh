#!/usr/bin/env bash
# The project's test command: formatting, lints, every test, and the OpenSSL-free check.
#
# The integration suites (tests/integration/, one test binary with the harness in tests/common/) run a real
# registry, Debian's `docker-registry` package (CNCF distribution 2.8.2), on 127.0.0.1; it is
# installed here when missing. Everything else needs only cargo.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

if [ ! -x /usr/bin/docker-registry ]; then
    step "installing docker-registry (the real registry the integration tests run)"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "/usr/bin/docker-registry is missing and there is no apt-get to install it;" >&2
        echo "install CNCF distribution 2.8 as /usr/bin/docker-registry" >&2
        exit 1
    fi
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends docker-registry
fi

for component in rustfmt clippy; do
    subcommand=${component/rustfmt/fmt}
    if ! cargo "$subcommand" --version >/dev/null 2>&1; then
        step "adding the $component component"
        rustup component add "$component"
    fi
done

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "no OpenSSL in the dependency tree"
# `cargo tree -i` fails (101) when the package is absent, but also on other errors, so the
# message is checked rather than trusting the exit status alone.
if tree_output=$(cargo tree -i openssl-sys --target all 2>&1); then
    echo "openssl-sys is linked; only rustls with ring is allowed:" >&2
    echo "$tree_output" >&2
    exit 1
elif ! grep -q "did not match any packages" <<<"$tree_output"; then
    echo "cargo tree failed:" >&2
    echo "$tree_output" >&2
    exit 1
fi
echo "none"

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --all-targets"
cargo test --all-targets

step "cargo test --doc"
cargo test --doc

step "all checks passed"
