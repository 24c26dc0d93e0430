#!/usr/bin/env bash
# Train (and evaluate) a detector.
#
#   bash scripts/train.sh                      demo: set up the environment, generate the synthetic
#                                              shapes set (dataset/demo_shapes) if missing, train the
#                                              small PP-YOLOE of configs/ppyoloe/ppyoloe_crn_s_shapes.yml
#                                              and print its COCO evaluation
#   bash scripts/train.sh CONFIG [ARGS...]     train CONFIG; ARGS go to tools/train.py
#                                              (-o key=value ..., --eval, --amp, -r CKPT)
#
# With more than one visible GPU, training runs under `python -m paddle.distributed.launch`.
set -eo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$PPDET_LITE_ROOT"

if [ $# -eq 0 ]; then
    "$PY" -m ppdet_lite.data.synthetic
    set -- configs/ppyoloe/ppyoloe_crn_s_shapes.yml --eval
fi
config="$1"
shift
if [ "$config" = "-c" ] || [ "$config" = "--config" ]; then
    echo "train.sh: give the config as the first argument, without -c:" \
         "bash scripts/train.sh CONFIG [tools/train.py arguments]" >&2
    exit 2
fi
if [ ! -f "$config" ]; then
    echo "train.sh: config file not found: $config" >&2
    exit 2
fi

gpus="$("$PY" -c "import paddle; print(paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0)" 2>/dev/null || echo 0)"
if [ "${gpus:-0}" -gt 1 ]; then
    ids="$(seq -s, 0 $((gpus - 1)))"
    echo "train.sh: $gpus GPUs visible: running paddle.distributed.launch --gpus $ids" >&2
    exec "$PY" -m paddle.distributed.launch --gpus "$ids" tools/train.py -c "$config" "$@"
fi
exec "$PY" tools/train.py -c "$config" "$@"
