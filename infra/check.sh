#!/usr/bin/env bash
# Static checks of the Terraform in infra/. Terraform's providers are not
# needed: nothing here plans or applies.
#
#   1. every .tf file parses (python-hcl2);
#   2. the provider schema check (infra/tests/schema_check.py): every
#      resource and data source type, argument, nested block and attribute
#      reference exists in hashicorp/aws (or hashicorp/random) at the version
#      the modules pin as their floor, required ones are present, and module
#      calls and outputs match (what `terraform validate` would say, without
#      the provider);
#   3. checkov reports no failed check in any module or example, and every
#      suppression carries a reason;
#   4. terraform fmt, when a terraform binary is installed (it needs no
#      provider);
#   5. the tests of infra/tests: the agreement between the Terraform, the
#      local topology and docs/ARCHITECTURE.md, the variable validations and
#      preconditions, the dashboard, the README tables, and the schema check
#      failing on each kind of mistake (a misspelled argument among them).
#
# Tools live under .venv-infra/ at the repository root: virtualenvs created
# on the first run and reinstalled only when a requirements file changes,
# and the provider schemas, extracted once from the PyPI packages
# cdktf-cdktf-provider-aws and cdktf-cdktf-provider-random (pinned in
# infra/tests/provider_schema.py; about 60 MB and 110 kB, downloaded by pip
# on the first run) and cached as JSON. A first run
# on a fresh machine takes about 75 s of CPU (installing checkov most of it),
# a later one about 30 s, nearly all of it checkov's five runs; on an idle
# two-core machine that is about 100 s and 55 s.
# Exits non-zero on the first failure.
set -euo pipefail

INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$INFRA")"
VENV="$ROOT/.venv-infra"
PYTHON="${PYTHON:-python3}"

step() { printf '\n== %s (at %d s)\n' "$*" "$((SECONDS - started))"; }

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
# The two virtualenvs are independent: installed side by side, and the
# provider schema (download and extraction, the first time) meanwhile.
ensure_venv "$VENV/tools" "$INFRA/requirements.txt" &
tools_job=$!
ensure_venv "$VENV/checkov" "$INFRA/requirements-checkov.txt" &
checkov_job=$!
wait "$tools_job"
"$VENV/tools/bin/python" "$INFRA/tests/schema_check.py" --prepare &
schema_job=$!
wait "$checkov_job"
wait "$schema_job"
# Versions from the packages' metadata: asking checkov itself costs a start.
echo "python-hcl2 $("$VENV/tools/bin/python" -c 'import importlib.metadata as m; print(m.version("python-hcl2"))'), checkov $("$VENV/checkov/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))')"

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

step "provider schema check"
"$VENV/tools/bin/python" "$INFRA/tests/schema_check.py"

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
# inputs would go unchecked (and one run with several --directory scans the
# first only). Most of a run is checkov starting up, so as many run at once
# as there are cores; a folder without resources (sns-principals) is skipped.
dirs=()
for d in "$INFRA"/modules/* "$INFRA"/examples/*; do
  if [ -d "$d" ] && grep -q '^resource "' "$d"/*.tf; then dirs+=("$d"); fi
done
jobs="$(nproc 2>/dev/null || echo 2)"
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
i=0
for d in "${dirs[@]}"; do
  (
    status=0
    "$VENV/checkov/bin/checkov" --directory "$d" --framework terraform \
      --skip-download --compact --quiet >"$results/$i.out" 2>&1 || status=$?
    echo "$status" >"$results/$i.status"
  ) &
  i=$((i + 1))
  if [ $((i % jobs)) -eq 0 ]; then wait; fi
done
wait
failed=0
i=0
for d in "${dirs[@]}"; do
  out="$(cat "$results/$i.out")"
  if [ "$(cat "$results/$i.status")" = 0 ]; then
    summary="$(echo "$out" | grep -E 'Passed checks' || true)"
    printf -- '-- %s: %s\n' "${d#"$ROOT"/}" "${summary:-no resource checkov has a check for}"
  else
    echo "checkov failed in ${d#"$ROOT"/}:" >&2
    echo "$out" >&2
    failed=1
  fi
  i=$((i + 1))
done
[ "$failed" -eq 0 ] || exit 1

step "terraform fmt"
if command -v terraform >/dev/null 2>&1; then
  TF_CLI_CONFIG_FILE="${TF_CLI_CONFIG_FILE:-/dev/null}" terraform fmt -check -recursive -diff "$INFRA"
  echo "formatted"
else
  echo "terraform is not installed: skipped (the other checks do not need it)"
fi

step "tests (infra/tests)"
cd "$ROOT"
"$VENV/tools/bin/python" -m pytest -q -p no:cacheprovider "$INFRA/tests"

echo
echo "infra/check.sh: all checks passed in $((SECONDS - started)) s"
