#!/usr/bin/env bash
# The GPU benchmark: every GPU figure the README's benchmark section promises, in one JSON file.
#
#   bash bench/gpu.sh [--out FILE] [--device cuda] [--quick] [--parts LIST] [--budget SECONDS] [--part-budget SECONDS] [--wheels DIR]
#   bash bench/gpu.sh --device cpu --quick        # a smoke run on a CPU machine (tiny sizes, few steps)
#
# --budget is the whole run's time (default 465 s, 400 s with --quick); --part-budget gives every part
# that many seconds instead of its own cap below (and, without --budget, makes the whole run the parts'
# sum plus 10 s): a slow or loaded machine (or a test that checks what the parts report, not how fast
# they are) sets it generously.
#
# Parts, each a bench script with its own time budget (timeout), run in this order:
#   extract      bench/extract.py: each method at batch 8-64 on the device, sketchKeras fp32/bf16 and bf16's error
#   eval         bench/eval.py: the FID Inception feature rate per batch size (and the rest of eval's figures)
#   loader       bench/loader.py: the loader end to end at 8 and 16 workers on JPEG shards
#   real_loader  bench/train.py --real-loader: a draft step fed by the loader from shards vs on-device batches
#   train        bench/train.py: every recipe and stage, fp32 and bf16 + channels_last, eager and torch.compile
#                (train takes the time the others left; its compiled rows stop before the total budget)
# A part that fails or runs out of time is recorded with an error and the run goes on; the exit status is
# 1 when any part failed. bench/gpu_report.py merges the parts (device, torch, wall seconds per part, the
# issue's targets as pass/fail) into --out (default: $OUT/gpu.json if OUT is set, else bench-gpu.json),
# and the parts' output goes to the same name with .log. --wheels DIR installs DIR/*.whl first (into a
# temporary folder on PYTHONPATH), for a machine without webdataset and the like.
set -u
python=${PYTHON:-python3}

out="" device=cuda quick=0 parts=extract,eval,loader,real_loader,train budget="" part_budget="" wheels=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --parts) parts=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --part-budget) part_budget=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
begun=$(date +%s)
[ -n "$out" ] || out=${OUT:+$OUT/gpu.json}
out=$(realpath -m "${out:-bench-gpu.json}")  # paths as given from here, before moving to the repository root
log="${out%.json}.log"
[ -z "$wheels" ] || wheels=$(realpath -m "$wheels")
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
work=$(mktemp -d "${TMPDIR:-/tmp}/pipe-gpu-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "$wheels" ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$wheels"/*.whl || exit 2
  export PYTHONPATH="$work/site:$PYTHONPATH"
fi

# Each part's command and time budget in seconds (cap; 0: what the others left of the total, minus 10 s for the report).
part() {
  case $quick:$1 in
    0:extract) cap=130; cmd=(bench/extract.py --device "$device" --batch-sizes 8,16,32,64 --sketchkeras --images 64 --workers 8) ;;
    1:extract) cap=90; cmd=(bench/extract.py --device "$device" --images 8 --size 64 --methods xdog --workers 1) ;;
    0:eval) cap=50; cmd=(bench/eval.py --device "$device" --images 256 --batch-sizes 32,64,128,256) ;;
    1:eval) cap=60; cmd=(bench/eval.py --device "$device" --images 4 --size 64 --batch-sizes 4 --features-only) ;;
    0:loader) cap=60; cmd=(bench/loader.py --format jpeg --size 512 --train-size 256 --workers 8,16) ;;
    1:loader) cap=90; cmd=(bench/loader.py --format jpeg --size 128 --train-size 64 --images 16 --workers 1,2 --epochs 1) ;;
    0:real_loader) cap=75; cmd=(bench/train.py --real-loader --device "$device" --recipes xu2020 --stages draft --images 256
                                --image-size 512 --loader-workers 12 --steps 100 --shard-args "--jpeg color,draft --lean-train") ;;
    1:real_loader) cap=90; cmd=(bench/train.py --real-loader --device "$device" --recipes xu2020 --stages draft --images 8
                                --image-size 128 --size 64 --batch-size 2 --loader-workers 2 --warmup 4 --steps 4 --shard-args "--jpeg color,draft --lean-train") ;;
    0:train) cap=0; cmd=(bench/train.py --device "$device" --steps 10 --compile) ;;
    1:train) cap=60; cmd=(bench/train.py --device "$device" --recipes fu2018-cnn,xu2020 --stages draft --size 64 --batch-size 2 --steps 2
                         --no-fp32 --compile) ;;
    *) echo "gpu.sh: unknown part $1 (extract, eval, loader, real_loader, train)" >&2; exit 2 ;;
  esac
}

IFS=, read -r -a names <<< "$parts"
for name in "${names[@]}"; do part "$name"; done  # unknown names stop here, before anything runs
for value in "$budget" "$part_budget"; do
  case $value in ''|*[!0-9]*) [ -z "$value" ] || { echo "gpu.sh: --budget and --part-budget take whole seconds (got $value)" >&2; exit 2; } ;; esac
done
if [ -n "$budget" ]; then total=$budget
elif [ -n "$part_budget" ]; then total=$(( ${#names[@]} * part_budget + 10 ))
elif [ "$quick" = 1 ]; then total=400
else total=465; fi
deadline=$(( begun + total ))
mkdir -p "$(dirname "$out")" && : > "$log"
echo "gpu.sh: ${parts} on ${device}$([ "$quick" = 1 ] && echo ' (quick)'), ${total} s in all; results to ${out}"
index=0
for name in "${names[@]}"; do
  index=$((index + 1))
  part "$name"
  [ -z "$part_budget" ] || cap=$part_budget
  left=$(( deadline - $(date +%s) - 10 ))  # 10 s kept for the report
  seconds=$(( cap > 0 && cap < left ? cap : left ))
  seconds=$(( seconds > 30 ? seconds : 30 ))
  [ "$name" = train ] && cmd+=(--time-budget $(( seconds - 15 )))
  cmd+=(--json "$work/$name.json")
  echo "[$index/${#names[@]}] $name (budget ${seconds} s): ${cmd[*]}"
  started=$(date +%s%N)
  timeout --kill-after=15 "$seconds" "$python" "${cmd[@]}" 2>&1 | tee "$work/$name.log" | sed -u 's/^/    /'
  rc=${PIPESTATUS[0]}
  took=$(( ($(date +%s%N) - started) / 1000000 ))
  printf '%s\t%s\t%d.%03d\t%s\t%s\n' "$name" "$rc" $((took / 1000)) $((took % 1000)) "$seconds" "${cmd[*]}" >> "$work/parts.tsv"
  { echo "== $name (exit $rc, $((took / 1000)) s): ${cmd[*]}"; cat "$work/$name.log"; } >> "$log"
  case $rc in
    0) echo "[$index/${#names[@]}] $name: done in $((took / 1000)) s" ;;
    124|137) echo "[$index/${#names[@]}] $name: TIMED OUT at ${seconds} s (what it wrote is kept)" ;;
    *) echo "[$index/${#names[@]}] $name: FAILED with exit $rc after $((took / 1000)) s" ;;
  esac
done

quick_flag=(); [ "$quick" = 1 ] && quick_flag=(--quick)
"$python" bench/gpu_report.py "$work" --out "$out" --device "$device" "${quick_flag[@]}"
