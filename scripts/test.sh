#!/usr/bin/env bash
# Runs the test suite. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k workspace -x`.
set -eo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$PPDET_LITE_ROOT"
exec "$PY" -m pytest tests "$@"
