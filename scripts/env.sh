#!/usr/bin/env bash
# Source me from bash: prepares the Python environment and exports PY (the interpreter to use).
#
#   PPDET_LITE_PYTHON=/path/to/python  use that interpreter as it is (nothing is installed)
#   PADDLE_PKG=paddlepaddle-gpu         install the GPU build instead of the CPU one
#   PADDLE_VERSION=3.3.1                pin the Paddle version
#
# On first use a .venv is created at the repository root and requirements.txt, Paddle and
# ppdet_lite (editable) are installed. A stamp keyed on everything that decides the install makes
# later calls return at once.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PPDET_LITE_ROOT="$ROOT"

_ppdet_lite_env() {
    if [ -n "${PPDET_LITE_PYTHON:-}" ]; then
        # absolute, because the scripts change directory before running it
        PY="$(command -v "$PPDET_LITE_PYTHON")" || {
            echo "env.sh: PPDET_LITE_PYTHON=$PPDET_LITE_PYTHON is not an executable" >&2; return 1; }
        PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
        if ! "$PY" -c "import paddle, yaml, cv2, pycocotools" >/dev/null 2>&1; then
            echo "env.sh: PPDET_LITE_PYTHON=$PY lacks paddle/PyYAML/opencv/pycocotools;" \
                 "install requirements.txt and Paddle into it, or unset PPDET_LITE_PYTHON." >&2
            return 1
        fi
        # ppdet_lite is not installed there: make the checkout importable
        export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
        return 0
    fi

    local venv="$ROOT/.venv"
    local paddle_spec="${PADDLE_PKG:-paddlepaddle}${PADDLE_VERSION:+==$PADDLE_VERSION}"
    PY="$venv/bin/python"
    local key
    key="$( (cat "$ROOT/requirements.txt" "$ROOT/setup.py"; echo "$paddle_spec") | sha256sum | cut -d' ' -f1)"
    local stamp="$venv/.ppdet_lite_stamp"
    if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
        return 0
    fi

    echo "env.sh: setting up $venv (Paddle: $paddle_spec) ..." >&2
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
        # missing, or left half-made by an earlier failure: start again
        rm -rf "$venv"
        if ! python3 -m venv "$venv"; then
            rm -rf "$venv"
            echo "env.sh: could not create $venv (need python3 with the venv module," \
                 "e.g. apt-get install python3-venv)" >&2
            return 1
        fi
    fi
    "$PY" -m pip install -q -r "$ROOT/requirements.txt" >&2 || return 1
    "$PY" -m pip install -q "$paddle_spec" >&2 || return 1
    if "$PY" -c "import sys, paddle; sys.exit(not paddle.__version__.startswith('2.'))" 2>/dev/null; then
        # paddle2onnx 2.x (requirements.txt) needs Paddle 3; 1.2.x converts Paddle 2.6 exports
        "$PY" -m pip install -q "paddle2onnx>=1.2.3,<1.3" >&2 || return 1
    fi
    "$PY" -m pip install -q --no-deps -e "$ROOT" >&2 || return 1
    "$PY" -c "import paddle; print('env.sh: Paddle', paddle.__version__, file=__import__('sys').stderr)" || return 1
    echo "$key" > "$stamp"
}

_ppdet_lite_env || { echo "env.sh: environment setup failed" >&2; return 1 2>/dev/null || exit 1; }
export PY
