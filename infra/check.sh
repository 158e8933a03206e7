#!/usr/bin/env bash
# Static checks of the Terraform in infra/. Terraform's providers are not
# needed: nothing here plans or applies.
#
#   1. every .tf file parses (python-hcl2);
#   2. checkov reports no failed check in any module or example, and every
#      suppression carries a reason;
#   3. terraform fmt, when a terraform binary is installed (it needs no
#      provider);
#   4. the agreement test (infra/tests) between the Terraform, the local
#      topology and docs/ARCHITECTURE.md.
#
# Tools live in virtualenvs under .venv-infra/ at the repository root,
# created on the first run and reinstalled only when a requirements file
# changes. Exits non-zero on the first failure.
set -euo pipefail

INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$INFRA")"
VENV="$ROOT/.venv-infra"
PYTHON="${PYTHON:-python3}"

step() { printf '\n== %s\n' "$*"; }

# ensure_venv DIR REQUIREMENTS: a virtualenv at DIR with REQUIREMENTS installed.
ensure_venv() {
  local dir=$1 requirements=$2
  if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
  fi
  if ! cmp -s "$requirements" "$dir/.installed-requirements"; then
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$dir/.installed-requirements"
  fi
}

started=$SECONDS

step "tools"
mkdir -p "$VENV"
ensure_venv "$VENV/tools" "$INFRA/requirements.txt"
ensure_venv "$VENV/checkov" "$INFRA/requirements-checkov.txt"
echo "python-hcl2 $("$VENV/tools/bin/python" -c 'import importlib.metadata as m; print(m.version("python-hcl2"))'), checkov $("$VENV/checkov/bin/checkov" --version)"

step "parse every .tf file with python-hcl2"
"$VENV/tools/bin/python" - "$INFRA" <<'PY'
import os, sys
import hcl2

root = sys.argv[1]
files, errors = 0, []
for folder, dirs, names in os.walk(root):
    dirs[:] = [d for d in dirs if d != ".terraform"]
    for name in sorted(names):
        if name.endswith(".tf"):
            path = os.path.join(folder, name)
            files += 1
            try:
                with open(path, encoding="utf-8") as f:
                    hcl2.load(f)
            except Exception as err:  # noqa: BLE001 - report every parse error
                errors.append(f"{os.path.relpath(path, root)}: {err}")
for e in errors:
    print(e, file=sys.stderr)
print(f"{files} files parsed, {len(errors)} failed")
sys.exit(1 if errors or files == 0 else 0)
PY

step "checkov suppressions carry a reason"
bad=$(grep -rn --include='*.tf' 'checkov:skip' "$INFRA" | grep -Ev '#checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+:.{20,}' || true)
if [ -n "$bad" ]; then
  echo "checkov suppressions without a reason:" >&2
  echo "$bad" >&2
  exit 1
fi
grep -rho --include='*.tf' 'checkov:skip=[A-Z0-9_]*' "$INFRA" | sort | uniq -c || true

step "checkov"
# One run per module and example: a single run over infra/ attributes each
# module's resources to only one of its callers, so some combinations of
# inputs would go unchecked.
dirs=()
for d in "$INFRA"/modules/* "$INFRA"/examples/*; do
  [ -d "$d" ] && dirs+=("$d")
done
for d in "${dirs[@]}"; do
  if out=$("$VENV/checkov/bin/checkov" --directory "$d" --framework terraform \
    --skip-download --compact --quiet 2>&1); then
    printf -- '-- %s: %s\n' "${d#"$ROOT"/}" "$(echo "$out" | grep -E 'Passed checks' || echo "$out" | tail -1)"
  else
    echo "checkov failed in ${d#"$ROOT"/}:" >&2
    echo "$out" >&2
    exit 1
  fi
done

step "terraform fmt"
if command -v terraform >/dev/null 2>&1; then
  TF_CLI_CONFIG_FILE="${TF_CLI_CONFIG_FILE:-/dev/null}" terraform fmt -check -recursive -diff "$INFRA"
  echo "formatted"
else
  echo "terraform is not installed: skipped (the other checks do not need it)"
fi

step "agreement test"
cd "$ROOT"
"$VENV/tools/bin/python" -m pytest -q -p no:cacheprovider "$INFRA/tests"

echo
echo "infra/check.sh: all checks passed in $((SECONDS - started)) s"
