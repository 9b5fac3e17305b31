#!/usr/bin/env bash
# Lessons 05 and 06's GPU measurements as two commands, for a GPU machine lent for 15 minutes in all (its start,
# idle time and both commands counted). Needs only torch, torchvision, numpy, matplotlib and tqdm there.
#
#   bash benchmarks/gpu_run.sh speed     command 1, about 5.5 minutes on one H100 or H200:
#       1. nin_lib's fastest path on the seed's recipe, `python -m nin_lib train --preset d2l` (fit), 10 epochs with
#          the whole test set after every epoch, seeds 0 1 2, each written as the record d2l-gpu-seed-S with its weights;
#       2. the book's own code (benchmarks/book_code.py: d2l 1.0.3's load_data_fashion_mnist + the chapter's net +
#          train_ch6), end to end, seed 0 between fit's first and second run, seeds 1 and 2 at the end while the
#          budget allows;
#       3. the kernel profile of fit's steps (`python benchmarks/bench.py profile --preset d2l`);
#       then $OUT/gpu_speed.json: the GPU, each path's seconds and test accuracies, fit's per-epoch times, the top
#       kernels and ratio = the book's mean seconds / fit's.
#   bash benchmarks/gpu_run.sh records   command 2, about 5 minutes:
#       1. the improved preset, 10 epochs, seeds 0 1 2 (weights for seed 0), as records improved-gpu-seed-S;
#       2. lesson 06's questions at 224 px (GAP vs FC head, dropout on/off, 0/1/2 1x1 convs, BatchNorm):
#          benchmarks/experiments.py --full, seeds 0 1 2, 5 epochs each, on as many training images as the time
#          left allows (about 6,000 with the budget below), tested on all 10,000: the record experiments-gpu.
#
# The GPU tool's arguments (the estimates come from one H100: fit's 224-px epoch 3 s after an 8-s first one,
# improved 4.5 s an epoch, the book's whole run 134 s):
#   carry:      ["data/fashion-mnist", "vendor/wheels"]
#   command 1:  BUDGET_S=345 bash benchmarks/gpu_run.sh speed       timeout_s 400
#   command 2:  BUDGET_S=290 bash benchmarks/gpu_run.sh records     timeout_s 340
#               (where command 1's reply shows lease.budget_left_s under 390, use BUDGET_S = budget_left_s - 100
#               and timeout_s = BUDGET_S + 50)
#   then give_back at once. With a machine start of 1-3 minutes that is about 12.5-14.5 of the 15 minutes.
# Every part runs under its own time limit inside BUDGET_S and is skipped when its estimate no longer fits, so one
# part running long does not lose the others; each command prints its plan first.
#
# Before: the four Fashion-MNIST .gz files in data/fashion-mnist (ignored; or set NIN_DATA_DIR) and the book's wheel
# in vendor/wheels (ignored):  python -m pip download d2l==1.0.3 --no-deps -d vendor/wheels
# What comes back in $OUT (the tool returns at most 8 files of at most 16 MiB each): speed: gpu_speed.json,
# log-speed.txt, records-speed.tar (about 12 MB: three 4-MB weights files, so at most three SEEDS); records:
# log-records.txt, records-lessons.tar. A tar holds the records folder as the commands wrote it (records and weights;
# each run's record keeps its weights' sha256) and parts-*/ (each part's own output). Bringing the records in:
#   mkdir -p runs/gpu-back && for t in records-speed.tar records-lessons.tar; do tar -xf $t -C runs/gpu-back; done
#   python -m nin_lib records list --dir runs/gpu-back/records-speed
#   cp runs/gpu-back/records-speed/*.json runs/gpu-back/records-lessons/*.json nin_lib/recorded/
#   cp runs/gpu-back/records-speed/d2l-gpu-seed-N.pt nin_lib/recorded/     (the best seed's weights only)
#
# A CPU dry run of both (tiny 224-px subsets, one seed, a minute or two; nothing meaningful is measured):
#   DRY_RUN=1 OUT=runs/gpu-dry bash benchmarks/gpu_run.sh speed && DRY_RUN=1 OUT=runs/gpu-dry bash benchmarks/gpu_run.sh records
# Other settings: OUT (default runs/gpu), WORK (default runs/gpu-work), PYTHON (default python3), BENCH_DEVICE
# (default cuda), SEEDS, BOOK_SEEDS (empty: leave the book's code out), EXP_EPOCHS, EXP_TRAIN_SIZE (default: sized
# to the time left).
set -u
MODE="${1:-}"
case "$MODE" in
  speed) TAG=speed ;;
  records) TAG=lessons ;;
  *) echo "error: say which command to run, 'speed' or 'records' (got '$MODE'); see the top of benchmarks/gpu_run.sh." >&2
     exit 2 ;;
esac
cd "$(dirname "$0")/.."
export NIN_DATA_DIR="${NIN_DATA_DIR:-$PWD/data/fashion-mnist}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
OUT="${OUT:-runs/gpu}"
WORK="${WORK:-runs/gpu-work}"
RECORDS="$WORK/records-$TAG"
PARTS="$WORK/parts-$TAG"

# estimates and limits of the parts, in seconds (the estimates decide what still fits; the limits stop a part)
EST_MACHINE=10; LIMIT_MACHINE=90
EST_FIT=45;     LIMIT_FIT=120      # d2l preset, 10 epochs: 39.3 s on one H100, plus start, confusion matrix, record
EST_BOOK=140;   LIMIT_BOOK=220     # the book's code: 134 s on one H100
EST_PROFILE=25; LIMIT_PROFILE=90
EST_IMPROVED=55; LIMIT_IMPROVED=120  # improved preset, 10 epochs: 44-51 s on one H100
EXP_RATE=14000     # training images/s of the 224-px BatchNorm net at batch 128 (improved on one H100)
EXP_OVERHEAD=3     # seconds per experiment run besides its training images (build, test pass, autotuning)
EXP_MIN_TRAIN=2000
EXP_CONFIGS="base-224 fc-head-224 no-dropout-224 one-1x1-224 no-1x1-224 no-bn-224"
RESERVE=15         # kept for writing the summary and packing the files

if [ -n "${DRY_RUN:-}" ]; then
  DEVICE=cpu
  BUDGET_S="${BUDGET_S:-600}"
  SEEDS="${SEEDS:-0}"; BOOK_SEEDS="${BOOK_SEEDS-0}"
  FIT_SIZE="--epochs 1 --subset 8 --test-subset 8 --batch-size 4"
  BOOK_SIZE="--images 10 --test-images 4 --epochs 1 --batch-size 2"
  PROFILE_ARGS="--preset quick --steps 2 --warmup 1 --rows 5"
  EXP_EPOCHS="${EXP_EPOCHS:-1}"; EXP_TRAIN_SIZE="${EXP_TRAIN_SIZE:-4}"; EXP_TEST="--test-size 4"
  DRY_FLAG="--dry-run"
else
  DEVICE="${BENCH_DEVICE:-cuda}"
  if [ "$MODE" = speed ]; then BUDGET_S="${BUDGET_S:-345}"; else BUDGET_S="${BUDGET_S:-290}"; fi
  SEEDS="${SEEDS:-0 1 2}"; BOOK_SEEDS="${BOOK_SEEDS-0 1 2}"
  FIT_SIZE=""; BOOK_SIZE=""; PROFILE_ARGS="--preset d2l --steps 20"
  EXP_EPOCHS="${EXP_EPOCHS:-5}"; EXP_TRAIN_SIZE="${EXP_TRAIN_SIZE:-}"; EXP_TEST=""
  DRY_FLAG=""
fi
T0=$SECONDS

left() { echo $(( BUDGET_S - RESERVE - (SECONDS - T0) )); }

pack() {  # the records folder and the parts' own output, as one file in $OUT (the tool returns at most 8 files)
  (cd "$WORK" && "$PY" -m tarfile -c "$OUT/records-$TAG.tar.part" "records-$TAG" "parts-$TAG") &&
    mv "$OUT/records-$TAG.tar.part" "$OUT/records-$TAG.tar"
}

part() {  # part NAME ESTIMATE LIMIT COMMAND...: run COMMAND under min(LIMIT, time left); skipped if ESTIMATE does not fit
  local name=$1 estimate=$2 limit=$3
  shift 3
  local rest
  rest=$(left)
  if (( rest < estimate )); then
    echo "=== $name: skipped, its estimate of ${estimate} s does not fit the ${rest} s left ==="
    printf '%s\tskipped\t0\t%s\n' "$name" "$rest" >> "$PARTS/parts.tsv"
    return 0
  fi
  (( limit > rest )) && limit=$rest
  echo "=== $name (estimate ${estimate} s, limit ${limit} s, ${rest} s left) ==="
  local t0 ms status
  t0=$(date +%s%N)
  timeout -k 5 "$limit" "$@"
  status=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))  # from starting the command to its exit
  echo "=== $name: exit $status after $((ms / 1000)) s ==="
  printf '%s\t%s\t%d.%03d\t%s\n' "$name" "$status" $((ms / 1000)) $((ms % 1000)) "$limit" >> "$PARTS/parts.tsv"
  pack
}

check_inputs() {
  local f
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    if [ ! -f "$NIN_DATA_DIR/$f" ]; then
      echo "error: $f is not in $NIN_DATA_DIR; copy the four Fashion-MNIST .gz files into data/fashion-mnist (and carry it) or set NIN_DATA_DIR." >&2
      return 1
    fi
  done
}

describe_machine() {  # the machine, into $PARTS/machine.txt; fails when the device cannot run a convolution
  local out="$PARTS/machine.txt" status
  date -u +"%Y-%m-%dT%H:%M:%SZ" > "$out"
  timeout "$LIMIT_MACHINE" "$PY" -c "
import torch, torchvision
d = torch.device('$DEVICE')
x = torch.nn.functional.conv2d(torch.ones(8, 1, 32, 32, device=d), torch.ones(4, 1, 3, 3, device=d)).sum().item()
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'device', d,
      torch.cuda.get_device_name(0) if d.type == 'cuda' else '')" >> "$out" 2>&1
  status=$?
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
    echo "cpus $(getconf _NPROCESSORS_ONLN)"
    df -h /dev/shm 2>/dev/null | tail -1; } >> "$out" 2>&1
  cat "$out"
  return $status
}

fit_d2l() {  # the train command of fit's run SEED (a record with its weights)
  echo "$PY -m nin_lib train --preset d2l --device $DEVICE --seed $1 $FIT_SIZE --no-progress --record d2l-gpu-seed-$1 --record-dir $RECORDS --weights d2l-gpu-seed-$1 --out $PARTS/train-d2l-seed-$1"
}

book() {  # the book's code, run SEED
  echo "$PY benchmarks/book_code.py run --seed $1 $BOOK_SIZE --json $PARTS/book-seed-$1.json"
}

improved() {  # the train command of the improved preset's run SEED (weights for seed 0 only)
  local weights=""
  [ "$1" = 0 ] && weights="--weights improved-gpu-seed-0"
  echo "$PY -m nin_lib train --preset improved --device $DEVICE --seed $1 $FIT_SIZE --no-progress --record improved-gpu-seed-$1 --record-dir $RECORDS $weights --out $PARTS/train-improved-seed-$1"
}

experiment_train_size() {  # training images per experiment run that fit the time left (or EXP_TRAIN_SIZE)
  if [ -n "$EXP_TRAIN_SIZE" ]; then echo "$EXP_TRAIN_SIZE"; return; fi
  local runs=$(( $(wc -w <<< "$EXP_CONFIGS") * $(wc -w <<< "$SEEDS") ))
  local per_run_ms=$(( $(left) * 1000 / runs - EXP_OVERHEAD * 1000 ))
  # a run costs EXP_OVERHEAD + (EXP_EPOCHS + 1/3) * N / EXP_RATE seconds (the third: measuring train accuracy)
  local n=$(( per_run_ms * EXP_RATE * 3 / ((3 * EXP_EPOCHS + 1) * 1000) / 1000 * 1000 ))
  (( n > 60000 )) && n=60000
  (( n < EXP_MIN_TRAIN )) && n=$EXP_MIN_TRAIN
  echo "$n"
}

plan() {
  echo "plan for '$MODE' on $DEVICE within ${BUDGET_S} s (${RESERVE} s kept for the summary), seeds $SEEDS:"
  if [ "$MODE" = speed ]; then
    local first=${BOOK_SEEDS%% *} n_fit book_s=0
    local extra=${BOOK_SEEDS#"$first"}
    n_fit=$(wc -w <<< "$SEEDS")
    [ -n "$first" ] && book_s=$EST_BOOK
    echo "  machine check ${EST_MACHINE} s; fit d2l seed ${SEEDS%% *} ${EST_FIT} s; the book's code seed ${first:-(none)}"
    echo "  ${book_s} s; fit d2l for the other seeds ${EST_FIT} s each; profile ${EST_PROFILE} s: about"
    echo "  $((EST_MACHINE + n_fit * EST_FIT + book_s + EST_PROFILE)) s; then the book's code for seeds${extra:- (none)}, each only if it still fits"
  else
    echo "  machine check ${EST_MACHINE} s; improved seeds $SEEDS ${EST_IMPROVED} s each; then the 224-px experiments"
    echo "  ($EXP_CONFIGS) over seeds $SEEDS, $EXP_EPOCHS epoch(s) each, on the training images the time left allows"
  fi
}

speed() {
  local first_fit=${SEEDS%% *} first_book=${BOOK_SEEDS%% *} s
  part "fit d2l seed $first_fit" "$EST_FIT" "$LIMIT_FIT" $(fit_d2l "$first_fit")
  [ -n "$first_book" ] && part "book's code seed $first_book" "$EST_BOOK" "$LIMIT_BOOK" $(book "$first_book")
  for s in ${SEEDS#"$first_fit"}; do
    part "fit d2l seed $s" "$EST_FIT" "$LIMIT_FIT" $(fit_d2l "$s")
  done
  part "profile" "$EST_PROFILE" "$LIMIT_PROFILE" "$PY" benchmarks/bench.py profile $PROFILE_ARGS --device "$DEVICE" \
    --json "$PARTS/profile.json"
  local measured
  measured=$("$PY" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['seconds']) + 10)" \
    "$PARTS/book-seed-$first_book.json" 2>/dev/null || echo "$EST_BOOK")
  for s in ${BOOK_SEEDS#"$first_book"}; do
    part "book's code seed $s" "$measured" "$LIMIT_BOOK" $(book "$s")
  done
  shopt -s nullglob
  local fits=()
  for s in $SEEDS; do fits+=("d2l-gpu-seed-$s"); done
  echo "=== summary ==="
  timeout 60 "$PY" benchmarks/book_code.py compare --book "$PARTS"/book-seed-*.json --records "$RECORDS" \
    --fit "${fits[@]}" --profile "$PARTS/profile.json" --parts "$PARTS/parts.tsv" --env "$PARTS/machine.txt" \
    --budget "$BUDGET_S" $DRY_FLAG --json "$OUT/gpu_speed.json"
}

records() {
  local s
  for s in $SEEDS; do
    part "improved seed $s" "$EST_IMPROVED" "$LIMIT_IMPROVED" $(improved "$s")
  done
  local size runs estimate
  size=$(experiment_train_size)
  runs=$(( $(wc -w <<< "$EXP_CONFIGS") * $(wc -w <<< "$SEEDS") ))
  estimate=$(( runs * (EXP_OVERHEAD + (3 * EXP_EPOCHS + 1) * size / (3 * EXP_RATE)) ))
  echo "experiments: $runs runs of $EXP_EPOCHS epochs on $size training images, about $estimate s"
  part "experiments at 224 px" "$estimate" "$(left)" "$PY" benchmarks/experiments.py --device "$DEVICE" --full \
    --epochs "$EXP_EPOCHS" --train-size "$size" $EXP_TEST --seeds $SEEDS --only $EXP_CONFIGS \
    --out "$RECORDS/experiments-gpu.json"
}

main() {
  check_inputs || return 2
  rm -rf "$RECORDS" "$PARTS"
  mkdir -p "$RECORDS" "$PARTS"
  plan
  echo "=== machine ==="
  describe_machine || { echo "error: the device '$DEVICE' cannot run a convolution here; nothing else was run." >&2; return 1; }
  if [ "$MODE" = speed ]; then speed; else records; fi
  echo "=== records written ==="
  timeout 60 "$PY" -m nin_lib records list --dir "$RECORDS"
  pack
  echo "=== done in $((SECONDS - T0)) s of the ${BUDGET_S} s budget; parts: ==="
  cat "$PARTS/parts.tsv"
}

mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/log-$MODE.txt" "$OUT/records-$TAG.tar"
[ "$MODE" = speed ] && rm -f "$OUT/gpu_speed.json"
set -o pipefail
main 2>&1 | tee "$OUT/log-$MODE.txt"
exit "${PIPESTATUS[0]}"
