#!/usr/bin/env bash
# The Compose Specification's JSON schema, for tests/unit/test_compose.py.
#
#   scripts/compose-schema.sh [DEST]   (default .venv/share/compose-spec/compose_spec.json)
#
# Not committed (third-party file): taken once from the docker-compose 1.29.2
# wheel on PyPI (compose/config/compose_spec.json) and cached at DEST.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/.venv/share/compose-spec/compose_spec.json}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3

if [ -s "$DEST" ]; then
    exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
    docker-compose==1.29.2 -d "$WORK"
mkdir -p "$(dirname "$DEST")"
"$PYTHON" - "$WORK" "$DEST" <<'PY'
import glob
import sys
import zipfile

wheel, = glob.glob(f"{sys.argv[1]}/docker_compose-1.29.2-*.whl")
with zipfile.ZipFile(wheel) as archive:
    data = archive.read("compose/config/compose_spec.json")
with open(sys.argv[2], "wb") as out:
    out.write(data)
PY
echo "compose schema: $DEST"
