#!/usr/bin/env bash
# Accuracy parity with PyTorch: trains ResNet-18 from scratch on the first LIMIT Fashion-MNIST
# training images (configs/fashion-mnist.yaml: batch 64, SGD lr 0.01 momentum 0.9, 3 epochs,
# shuffled, mean/std 0.286/0.353) with dtrain and with the PyTorch tutorial's pipeline
# (bench/pytorch_fashion_mnist.py) on the same files and the same train/validation split, at each
# image SIZE, and prints both validation accuracies, their difference and both wall times.
#
#   bench/bench_accuracy.sh BUILD_DIR [SIZE ...]          (default SIZE: 32)
#
# BUILD_DIR must hold dtrain and fashion_mnist_to_imagefolder (a Release build). Environment:
#   SEEDS="0" (train.seed of dtrain and --seed of PyTorch: initial weights and batch order; several
#   seeds show the run-to-run spread the difference should be judged against)
#   LIMIT=12000 EPOCHS=3 THREADS=2 (compute threads of each side) WORKERS=1 (decode threads of
#   dtrain, DataLoader workers of PyTorch) PYTHON=/usr/bin/python3 (with torch + torchvision)
#   DATA=DIR (reuse an ImageFolder instead of converting into a temporary one) KEEP=1 (keep the
#   temporary folder: data and both runs' outputs)
#   RECIPE=sgd (the config's: SGD lr 0.01 momentum 0.9) or RECIPE=adamw-ls-ema (AdamW lr 0.001,
#   weight decay 0.05 except norms and biases, label smoothing 0.1, EMA of the weights with decay
#   0.99; dtrain's train.* keys and the same options of the PyTorch peer); with EMA both sides'
#   EMA accuracies are printed too
set -euo pipefail

build=${1:?usage: bench/bench_accuracy.sh BUILD_DIR [SIZE ...]}
shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(32)
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
repo=$(cd "$here/.." && pwd)
limit=${LIMIT:-12000}
epochs=${EPOCHS:-3}
threads=${THREADS:-2}
workers=${WORKERS:-1}
python=${PYTHON:-/usr/bin/python3}
read -r -a seeds <<<"${SEEDS:-0}"
recipe=${RECIPE:-sgd}
case $recipe in
sgd)
    dtrain_recipe=()
    torch_recipe=(--lr 0.01 --momentum 0.9)
    ;;
adamw-ls-ema)
    dtrain_recipe=(train.optimizer=adamw train.lr=0.001 train.momentum=0 train.weight_decay=0.05
        train.no_weight_decay=norm_and_bias train.label_smoothing=0.1 train.ema_decay=0.99)
    torch_recipe=(--optimizer adamw --lr 0.001 --weight-decay 0.05 --no-wd-norm-bias
        --label-smoothing 0.1 --ema-decay 0.99)
    ;;
*) echo "bench_accuracy: RECIPE must be sgd or adamw-ls-ema, got '$recipe'" >&2 && exit 2 ;;
esac

"$python" -c 'import torch, torchvision' 2>/dev/null ||
    { echo "bench_accuracy: $python cannot import torch and torchvision" >&2; exit 2; }

workdir=""
use_workdir dtrain-accuracy "${KEEP:-0}"
work=$workdir
fashion_mnist_data "$build" "$limit"

now() { date +%s.%N; }

# The last "eval" row of a metrics.jsonl: prints "val_acc n ema_val_acc" (ema: - without EMA).
last_eval() {
    "$python" - "$1" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"event":"eval"' in l]
print(rows[-1]["val_acc"], rows[-1]["n"], rows[-1].get("ema_val_acc", "-"))
EOF
}

echo "machine: $(machine_load); $limit images, $epochs epochs, recipe $recipe"
results=()
for size in "${sizes[@]}"; do
  for seed in "${seeds[@]}"; do
    run="$size-seed$seed"
    out="$work/dtrain-$run"
    echo "== size $size, seed $seed"
    t0=$(now)
    "$build/dtrain" "$repo/configs/fashion-mnist.yaml" "data.root=$data" "data.image_size=$size" \
        "train.epochs=$epochs" "train.seed=$seed" runtime.device=cpu "runtime.threads=$threads" \
        "data.workers=$workers" "output.dir=$out" output.log_every=50 \
        ${dtrain_recipe[@]+"${dtrain_recipe[@]}"} >"$work/dtrain-$run.log" 2>&1 ||
        { cat "$work/dtrain-$run.log" >&2; exit 1; }
    t1=$(now)
    read -r dtrain_acc dtrain_n dtrain_ema < <(last_eval "$out/metrics.jsonl")
    grep -E '^epoch [0-9]+/[0-9]+: validation|^done' "$work/dtrain-$run.log" | sed 's/^/dtrain /' || true

    t2=$(now)
    "$python" "$here/pytorch_fashion_mnist.py" --root "$data" --size "$size" --epochs "$epochs" \
        --batch 64 "${torch_recipe[@]}" --val-fraction 0.2 --split-seed 42 --seed "$seed" \
        --threads "$threads" --workers "$workers" | tee "$work/pytorch-$run.log"
    t3=$(now)
    torch_line=$(tail -n 1 "$work/pytorch-$run.log")
    torch_acc=$(sed -n 's/^pytorch val_acc=\([0-9.]*\).*/\1/p' <<<"$torch_line")
    torch_n=$(sed -n 's/.*n_val=\([0-9]*\).*/\1/p' <<<"$torch_line")
    torch_ema=$(sed -n 's/.*ema_val_acc=\([0-9.]*\).*/\1/p' <<<"$torch_line")
    [ "$dtrain_ema" = - ] ||
        echo "EMA weights, size $size seed $seed: dtrain $dtrain_ema, PyTorch ${torch_ema:-?}" |
        tee -a "$work/ema.txt"
    if [ "$torch_n" != "$dtrain_n" ]; then
        echo "bench_accuracy: the validation sets differ: dtrain $dtrain_n images, PyTorch $torch_n" >&2
        exit 1
    fi
    results+=("$(awk -v s="$size" -v seed="$seed" -v n="$dtrain_n" -v da="$dtrain_acc" \
        -v ta="$torch_acc" -v dt="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
        -v tt="$(awk -v a="$t2" -v b="$t3" 'BEGIN{print b-a}')" \
        'BEGIN{printf "%5d %5d %6d %10.4f %10.4f %+8.4f %9.1f %9.1f %6.2f", s, seed, n, da, ta, da-ta, dt, tt, tt/dt}')")
  done
done

echo
echo "size  seed  n_val dtrain_acc  torch_acc     diff  dtrain_s   torch_s  torch/dtrain"
for line in "${results[@]}"; do echo "$line"; done
[ ! -f "$work/ema.txt" ] || cat "$work/ema.txt"
if [ ${#seeds[@]} -gt 1 ]; then
    echo "means over seeds:"
    printf '%s\n' "${results[@]}" | awk '{n[$1]++; d[$1]+=$4; t[$1]+=$5; ds[$1]+=$7; ts[$1]+=$8}
        END {for (s in n) printf "%5d  dtrain %.4f  pytorch %.4f  diff %+.4f  time dtrain %.1f s, pytorch %.1f s\n",
             s, d[s]/n[s], t[s]/n[s], (d[s]-t[s])/n[s], ds[s]/n[s], ts[s]/n[s]}' | sort -n
fi
