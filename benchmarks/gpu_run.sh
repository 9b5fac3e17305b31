#!/usr/bin/env bash
# The GPU benchmark of lesson 05 in one go (about 5-6 minutes on one H100, machine start not counted):
#   1. the d2l-style pipeline against nin_lib's fit, seed recipe, a fixed number of steps
#      (plus fit with torch.compile), then one full epoch each with the test pass;
#   2. the seed's recipe (preset d2l) end to end for its 10 epochs with fit;
#   3. the improved preset, 10 epochs x 3 seeds (test accuracy mean and spread);
#   4. a profile of fit's training steps (which kernels take the time).
# Results: JSON files in "$OUT" (default runs/gpu); the log is what it prints (tee it). Data: NIN_DATA_DIR (default ./data/fashion-mnist).
# Needs only torch, torchvision, numpy, matplotlib and tqdm. Each part has its own time limit, so
# one part failing or running long does not lose the others.
#
# A CPU dry run of the same script (seconds, nothing meaningful measured):
#   BENCH_DEVICE=cpu STEPS=2 WARMUP=1 SEEDS=0 PRESET_ARGS="--preset-epochs 1 --subset 256 --test-subset 256" \
#   D2L_ARGS="--preset-epochs 1 --subset 256 --test-subset 256" COMPILE= SKIP_EPOCH=1 \
#   PROFILE_ARGS="--preset quick --steps 2 --warmup 1 --rows 5" OUT=/tmp/gpu-dry PYTHON=python benchmarks/gpu_run.sh
set -u
cd "$(dirname "$0")/.."
export NIN_DATA_DIR="${NIN_DATA_DIR:-$PWD/data/fashion-mnist}"
export PYTHONUNBUFFERED=1
OUT="${OUT:-runs/gpu}"
DEVICE="${BENCH_DEVICE:-cuda}"
STEPS="${STEPS:-400}"
WARMUP="${WARMUP:-50}"
SEEDS="${SEEDS:-0 1 2}"
COMPILE="${COMPILE---compile}"
PRESET_ARGS="${PRESET_ARGS:-}"
D2L_ARGS="${D2L_ARGS:-}"
PROFILE_ARGS="${PROFILE_ARGS:---preset d2l --steps 20}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  "$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || true
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

part() {  # part NAME SECONDS ARGS...: run the bench command with a time limit, results in $OUT/NAME.json
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s) ==="
  local t0=$SECONDS
  timeout "$limit" "$PY" -m nin_lib bench "$@" --device "$DEVICE" --json "$OUT/$name.json" 2>&1
  echo "=== $name: exit $? after $((SECONDS - t0)) s ==="
}

# 1. d2l-style vs fit, fixed steps (fit+compile too unless COMPILE is empty)
part pipeline 200 pipeline --steps "$STEPS" --warmup "$WARMUP" --workers 4 $COMPILE
# 1b. the same, one full epoch each with its test pass (first-epoch costs included)
[ -z "${SKIP_EPOCH:-}" ] && part pipeline_1_epoch 120 pipeline --epochs 1 --warmup "$WARMUP" --workers 4
# 2. the seed's recipe end to end, 10 epochs, with fit
part d2l_10_epochs 120 preset --preset d2l --seeds 0 $D2L_ARGS
# 3. improved preset, 10 epochs x 3 seeds
part improved 300 preset --preset improved --seeds $SEEDS $PRESET_ARGS

# 4. where the time goes in fit's steps (kernel table; printed, and kept in profile.json)
part profile 90 profile $PROFILE_ARGS

echo "=== summary ==="
"$PY" - "$OUT" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def load(name):
    p = out / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None
for name in ("pipeline", "pipeline_1_epoch"):
    p = load(name)
    if not p:
        continue
    print(name)
    for r in p["results"]:
        print(f"{r['name']:>12}: {r['images_per_s']:8.0f} images/s end to end, steady {r.get('steady_images_per_s', 0):8.0f}"
              + (f", ratio {r['ratio']:.2f}x (steady {r.get('steady_ratio', 0):.2f}x)" if 'ratio' in r else ""))
for name in ("d2l_10_epochs", "improved"):
    d = load(name)
    if d:
        s = d["summary"]
        print(f"{name}: test acc mean {s['test_acc_mean']}, std {s['test_acc_std']:.4f}, "
              f"{s['seconds_mean']:.1f} s per run, accs {[r['test_acc'] for r in d['runs']]}")
EOF
