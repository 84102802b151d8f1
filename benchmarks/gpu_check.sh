#!/usr/bin/env bash
# The GPU check, as one prepared script: run it once on a machine with a CUDA GPU (in this
# project: the H200 the `device` tool lends some sessions), then read the tables it prints.
#
#   bash benchmarks/gpu_check.sh OUTDIR        # at most 9.5 minutes; results in OUTDIR
#
# Each part runs under its own time limit (570 s in all, so one 10-minute call holds it):
#   1. benchmarks/train_step.py, eager: `paper`, `public` and `small` in plain fp32,
#      PyTorch's default TF32 and the optimized path (bf16 autocast, TF32, fused Adam,
#      foreach EMA): the ">= 1.5x plain fp32" target of the training engine.
#   2. benchmarks/train_step.py, `paper` at batch 16, eager and compiled (torch.compile +
#      channels_last): the ">= 40 % MFU in bf16" target.
#   3. the real trainer (`palette train`) on the installed photos: 8 steps, then a resume to 12
#      (CUDA RNG and fused-Adam state through a checkpoint); its log's images/s and MFU columns.
#   4. the CUDA-only tests: the U-Net on CUDA in fp32 and bf16, channels_last, against the CPU;
#      a training step that queues its GPU work without a host sync (none may skip).
# With DEVICE=cuda (the default) and no usable CUDA, it stops at once, exit 1, with the reason.
# Environment: PYTHON (default python3), DEVICE (cuda), PRESETS (paper,public,small),
# COMPILED_PRESET (paper), TRAIN_PRESET (public: small checkpoints), TRAIN_SIZE (256), SCALE (1; 0.1 shrinks every
# time limit for a smoke run). On a CPU: DEVICE=cpu PRESETS=tiny COMPILED_PRESET=tiny
# TRAIN_PRESET=tiny TRAIN_SIZE=32 bash benchmarks/gpu_check.sh /tmp/check checks the script itself.
# The trainer validates its config with jsonschema; where the machine lacks it (the device
# tool's image does), carry wheels in .whl/ (gitignored locally via .git/info/exclude):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d .whl jsonschema jsonschema-specifications referencing rpds-py
set -u
out=$(mkdir -p "${1:?usage: gpu_check.sh OUTDIR}" && cd "$1" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ! ${PYTHON:-python3} -c "import jsonschema" 2>/dev/null; then
    ${PYTHON:-python3} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/palette_site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/palette_site"
fi
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
presets=${PRESETS:-paper,public,small}
compiled_preset=${COMPILED_PRESET:-paper}
train_preset=${TRAIN_PRESET:-public}
train_size=${TRAIN_SIZE:-256}
scale=${SCALE:-1}
status=0

part() {  # part NAME SECONDS COMMAND...: run COMMAND under a time limit, log to OUTDIR/NAME.log
    local name=$1 seconds
    seconds=$(awk -v s="$2" -v k="$scale" 'BEGIN { printf "%d", s * k + 1 }')
    shift 2
    echo "=== $name (limit ${seconds} s): $*"
    local started=$SECONDS
    timeout --signal=TERM --kill-after=20 "$seconds" "$@" >"$out/$name.log" 2>&1
    local code=$?
    tail -n 25 "$out/$name.log"
    echo "=== $name: exit $code after $((SECONDS - started)) s"
    [ "$code" -eq 0 ] || status=1
}

{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
} | tee "$out/machine.txt"
# CUDA asked for (the default) but absent: stop now with the reason. Left to run, every part fails
# slowly, and the CUDA tests' part alone would pass: its tests all skip and pytest exits 0.
if [ "$device" = cuda ]; then
    "$python" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else
        f'gpu_check.sh: DEVICE=cuda but torch.cuda.is_available() is False (torch {torch.__version__}, '
        f'CUDA build {torch.version.cuda}, no usable GPU here); run it on a CUDA machine, or with DEVICE=cpu '
        f'(and the tiny presets) to check the script itself')" || exit 1
fi

# 1. eager, like against like: batch 4 for `paper` and 8 for `public` (plain fp32 needs about 4x
#    the memory of bf16: 136 GiB for 8 `paper` images on an H200 without the optimizer state)
part train_step 150 "$python" benchmarks/train_step.py --device "$device" --presets "$presets" \
    --modes plain,fp32_defaults,optimized --batch "${EAGER_BATCHES:-paper=4,public=8,small=64,tiny=16}" \
    --steps 6 --warmup 2 --json "$out/train_step.json"
# 2. the paper's per-chip batch (1024 images over 64 TPU v4 chips): eager, then compiled
part train_step_compiled 300 "$python" benchmarks/train_step.py --device "$device" --presets "$compiled_preset" \
    --modes optimized,compiled --batch "${COMPILED_BATCH:-16}" --steps 6 --warmup 2 --json "$out/train_step_compiled.json"
# 3. the trainer on the GPU: 8 steps, then a resume to 12 (CUDA RNG state, fused Adam state and
#    the bf16 path through a checkpoint), with images/s and MFU in its log
cat >"$out/train.yaml" <<EOF
name: gpu_check
task: inpainting
preset: $train_preset
image_size: $train_size
batch_size: 8
steps: 8
warmup_steps: 2
log_every: 4
checkpoint_every: 4
num_workers: 4
device: $device
tensorboard: false
progress_bar: false
EOF
part trainer 45 "$python" -m palette.cli train --config "$out/train.yaml" --workdir "$out/train_run" --no-lease
part trainer_resumed 30 "$python" -m palette.cli train --config "$out/train.yaml" --workdir "$out/train_run" --no-lease --steps 12
cp "$out/train_run/log.csv" "$out/train_log.csv" 2>/dev/null && cat "$out/train_log.csv"
rm -rf "$out/train_run"  # checkpoints are large; the log is what we want back
part cuda_tests 45 "$python" -m pytest -q -rs -p no:cacheprovider tests/test_unet.py tests/test_train_parts.py -k cuda
# on a CUDA device none of them may skip (a skip there is a test that checked nothing)
if [ "$device" = cuda ] && grep -q "skipped" "$out/cuda_tests.log"; then
    echo "=== cuda_tests: tests skipped on DEVICE=cuda (see $out/cuda_tests.log)"
    status=1
fi
exit $status
