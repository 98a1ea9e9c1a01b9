#!/usr/bin/env bash
# The one-call GPU check: proves the CUDA backend on a machine with one GPU in one run of at most
# 8 minutes, using the bundle that tools/gpu-bundle.sh prepared (gpu-bundle/bundle.tar.xz in this
# checkout, unpacked into OUTPUT_DIR/bundle; nothing is built on the GPU machine).
# That machine needs the NVIDIA driver (R580+ for the CUDA 13 runtime linked in), cuDNN 9, cuBLAS
# and NCCL for CUDA 13 in the system or in its Python's pip wheels (nvidia-cudnn-cu13,
# nvidia-cublas, nvidia-nccl-cu13: their folders are found from python3 here); none of our
# Debian libraries (the bundle's lib/, found through the programs' $ORIGIN run path).
#
#   tools/gpu-check.sh OUTPUT_DIR
#
# In order, each step bounded by the time left:
#   1. the GPU, the libraries (each found or named missing with how to provide it), dtrain's own
#      start-up check (driver vs CUDA runtime, cuDNN's CUDA major): stops here when unusable;
#   2. the cuDNN convolution plans on the GPU against a host reference, which also writes the
#      device's property JSON (OUTPUT_DIR/deviceprop.json), then every ResNet-18 plan for it;
#   3. every gpu-labelled test: the op checks, the 3-step model check, the full-size step
#      (224 px, batch 32, loss / every gradient / parameters against the CPU twin at fp32, tf32,
#      bf16), the steady-state step (no host wait or device allocation in steps that do not
#      log, with the next batch's input prefetched; a NaN step skipped on the device; bitwise
#      repeatable deterministic runs) and the real NCCL path on one rank; a skipped test is a
#      failure here;
#   4. compute-sanitizer memcheck, racecheck, synccheck and initcheck over the op checks and the
#      3-step model check (said so when the machine has no compute-sanitizer);
#   5. training on the e2e test's synthetic learnable set on the GPU, with its accuracy;
#   6. dtrain itself at 224 px, batch 256, for fp32, tf32, bf16 against PyTorch on the same GPU
#      (torchvision resnet18, channels_last, cudnn.benchmark, fused SGD; TF32 or bf16 autocast),
#      from 224-px JPEGs in the page cache (no resize: the nearest dtrain has to in-memory
#      input), then dtrain from larger photo-like JPEG files (decode and resize) at bf16.
# Everything goes to OUTPUT_DIR/gpu-check.log; the terminal gets the verdicts and, at the end, ONE
# summary block to paste. Exit status: 0 when every step that ran passed; 1 otherwise, and when
# the GPU cannot be used (no device, driver too old, a library missing: the reason is printed);
# 2 usage. Environment: PYTHON (default python3), GPU_CHECK_BUDGET_S (default 470).
set -uo pipefail

[[ $# -eq 1 && $1 != -h && $1 != --help ]] || {
  sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  [[ $# -eq 1 ]] && exit 0 || exit 2
}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" || exit 2
out=$(cd "$1" && pwd)
log=$out/gpu-check.log
: >"$log"
exec > >(tee -a "$log") 2>&1
start=$(date +%s)
budget=${GPU_CHECK_BUDGET_S:-470}
python=${PYTHON:-python3}
bundle=$root/gpu-bundle
failures=0
summary=()

elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((budget - $(elapsed))); }
phase() { printf '\n==== [%3d s] %s\n' "$(elapsed)" "$*"; }
note() { summary+=("$*") && echo "$*"; }
fail() { failures=$((failures + 1)) && note "FAIL: $*"; }
# runs a command with a time limit, its output into the log only
quiet() {
  local limit=$1
  shift
  echo "\$ $*" >>"$log"
  timeout --kill-after=5 "$limit" "$@" >>"$log" 2>&1
}
enough() { # SECONDS WHAT: is there time for it?
  [[ $(left) -ge $1 ]] && return 0
  note "NOT RUN: $2 (time budget: $(left) s left, needs $1 s)"
  return 1
}
finish() {
  echo
  echo "==================== GPU CHECK SUMMARY ($(elapsed) s) ===================="
  printf '%s\n' "${summary[@]}"
  if [[ $failures -eq 0 ]]; then
    echo "verdict: every step that ran passed"
  else
    echo "verdict: $failures failure(s)"
  fi
  echo "log: $log"
  echo "========================================================================="
  [[ $failures -eq 0 ]] && exit 0
  exit 1
}
gpu_unusable() { fail "the GPU cannot be used: $*" && finish; }

# ---- 1. the GPU, the libraries, dtrain's start-up check -----------------------------------------
phase "GPU"
gpus=$(nvidia-smi --query-gpu=index,name,driver_version,memory.total,pci.bus_id,compute_cap \
  --format=csv,noheader 2>&1)
if [[ $? -ne 0 || -z $gpus ]] || ! grep -q , <<<"$gpus"; then
  gpu_unusable "no GPU visible (nvidia-smi: ${gpus:-not found})"
fi
note "GPU: $gpus"

phase "libraries"
[[ -f $bundle/bundle.tar.xz ]] || { fail "no bundle: run tools/gpu-bundle.sh first" && finish; }
rm -rf "$out/bundle" && mkdir -p "$out/bundle"
tar -C "$out/bundle" -xJf "$bundle/bundle.tar.xz" || { fail "unpacking the bundle" && finish; }
bundle=$out/bundle
build=$bundle/build
for program in cuda_steady_state_check nccl_one_rank_check cuda_fullsize_check; do
  [[ -x $build/tests/$program ]] ||
    fail "the bundle has no tests/$program: rebuild it with tools/gpu-bundle.sh"
done
note "bundle: $(grep -h commit "$bundle/BUILD-INFO"), $(grep -h 'cuda architectures' "$bundle/BUILD-INFO")"
# the NVIDIA pip wheels' library folders, as this machine's python3 has them installed
wheel_dirs=$("$python" - 2>/dev/null <<'EOF'
import glob, importlib.util
spec = importlib.util.find_spec("nvidia")
for base in (spec.submodule_search_locations if spec else []):
    for d in sorted(glob.glob(base + "/*/lib")):
        print(d)
EOF
)
lib_dirs=()
find_lib() { # SONAME: adds the folder that has it (none needed when the loader knows it)
  local so=$1 d
  if ldconfig -p 2>/dev/null | grep -q "[[:space:]]$so "; then
    echo "  $so: system ($(ldconfig -p | awk -v so="$so" '$1 == so { print $NF; exit }'))"
    return 0
  fi
  for d in ${CUDA_HOME:+$CUDA_HOME/lib64} /usr/local/cuda/lib64 /usr/local/cuda/targets/*/lib \
    $wheel_dirs; do
    if [[ -e $d/$so ]]; then
      echo "  $so: $d"
      lib_dirs+=("$d")
      return 0
    fi
  done
  echo "  $so: NOT FOUND"
  return 1
}
missing=()
declare -A provide=([libcudnn.so.9]="pip install nvidia-cudnn-cu13"
  [libcublas.so.13]="pip install nvidia-cublas" [libcublasLt.so.13]="pip install nvidia-cublas"
  [libnccl.so.2]="pip install nvidia-nccl-cu13")
for so in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do
  find_lib "$so" || missing+=("$so (${provide[$so]}, or a CUDA 13 toolkit folder)")
done
joined=$(printf '%s:' "${lib_dirs[@]}" | awk -v RS=: '!seen[$0]++ && NF' | paste -sd:)
# lib/ too: the run path covers the programs' own needs, not those of the libraries they load
# (oneDNN's OpenCL loader)
export LD_LIBRARY_PATH=$bundle/lib${joined:+:$joined}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PATH:/usr/local/cuda/bin
if [[ ${#missing[@]} -gt 0 ]]; then
  note "libraries missing: ${missing[*]}"
  # NCCL alone missing: everything but the NCCL check can still run
  [[ ${#missing[@]} -eq 1 && ${missing[0]} == libnccl.so.2* ]] || gpu_unusable "${missing[*]}"
  fail "libnccl.so.2 not found: the NCCL check will fail"
else
  note "libraries: cuDNN, cuBLAS(Lt), NCCL found${joined:+ (wheels/toolkit: $joined)}"
fi

version_out=$("$build/dtrain" --version 2>&1)
rc=$?
# the CUDA module (libdtrain_cuda.so, the C++ runtime's user) is loaded by --version: its failure
# shows as "CUDA: not loadable"
if [[ $rc -ne 0 || $version_out == *"CUDA: not loadable"* ]] &&
  extra_out=$(LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$bundle/lib/extra "$build/dtrain" --version 2>&1) &&
  [[ $extra_out != *"CUDA: not loadable"* ]]; then
  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$bundle/lib/extra
  version_out=$("$build/dtrain" --version 2>&1)
  rc=$?
  note "bundle: runs with its own C++ runtime (lib/extra)"
fi
echo "$version_out" | tee "$out/version.txt"
[[ $rc -eq 0 ]] || gpu_unusable "dtrain does not start here: $(tail -1 <<<"$version_out")"
note "dtrain: $(grep -h '^CUDA:' <<<"$version_out")"
gpu_line=$(grep -h '^GPU:' <<<"$version_out")
note "dtrain start-up check: ${gpu_line#GPU: }"
[[ $gpu_line == "GPU: usable:"* ]] || gpu_unusable "${gpu_line#GPU: not usable: }"

torch_ok=0
if torch_versions=$(timeout 60 "$python" -c 'import torch, torchvision
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "nccl", ".".join(map(str, torch.cuda.nccl.version())), "gpu", torch.cuda.is_available())' 2>&1); then
  torch_ok=1
  note "pytorch: $torch_versions"
else
  note "pytorch: not usable ($(tail -1 <<<"$torch_versions")): dtrain side only"
fi

# ---- 2. cuDNN plans on the GPU, the device's property JSON, all ResNet-18 plans for it --------
phase "cuDNN convolution plans"
if enough 60 "cuDNN plan check"; then
  if quiet 150 "$build/tests/cudnn_conv_gpu_check" "$out/deviceprop.json"; then
    note "cudnn_conv_gpu_check: passed; $(grep -c tolerance "$log") errors within tolerance"
  else
    rc=$?
    [[ $rc -eq 77 ]] && fail "cudnn_conv_gpu_check SKIPPED: $(grep -h SKIPPED "$log" | tail -1)"
    [[ $rc -ne 77 ]] && fail "cudnn_conv_gpu_check (exit $rc)"
  fi
  grep -E 'tolerance|FAIL' "$log" | grep -F ' conv ' | grep -E 'FAIL|fp32 \(handle\)' | head -20
  if [[ -s $out/deviceprop.json ]]; then
    note "device properties: $out/deviceprop.json (copy over tests/cuda/h200-deviceprop.json)"
    if quiet 120 "$build/tests/test_cudnn_plans" "$out/deviceprop.json"; then
      note "test_cudnn_plans (this GPU): $(grep 'plans finalized' "$log" | tail -1)"
    else
      fail "test_cudnn_plans with this GPU's description"
    fi
  fi
fi

# ---- 3. the gpu-labelled tests ---------------------------------------------------------------
phase "gpu-labelled tests"
if enough 90 "gpu-labelled tests"; then
  mark=$(wc -l <"$log")
  # at most 200 s, leaving the sanitizers and the benchmarks theirs
  tests_limit=$(($(left) - 260))
  ((tests_limit > 200)) && tests_limit=200
  ((tests_limit < 60)) && tests_limit=60
  quiet "$tests_limit" "$bundle/run-gpu-tests.sh" "$root" cudnn_conv_gpu_check
  rc=$?
  part=$(tail -n +"$mark" "$log")
  grep -iE 'tolerance|SKIPPED|FAILED|passed,|: passed|NCCL|ncclComm|ordering' <<<"$part" |
    grep -v '^\$' | grep -v '^    ' | head -150
  skipped=$(grep -c -- '^---- .*: SKIPPED' <<<"$part")
  verdict=$(grep -h '^gpu tests:' <<<"$part" | tail -1)
  if [[ $rc -eq 0 && $skipped -eq 0 && -n $verdict ]]; then
    note "$verdict"
  elif [[ $rc -eq 0 && -n $verdict ]]; then
    fail "$verdict: a skipped GPU test proves nothing ($(grep -h '^SKIPPED' <<<"$part" | sort -u | head -1))"
  else
    fail "${verdict:-gpu tests did not finish} (exit $rc)"
  fi
  full=$(grep -E '^  full-size ' <<<"$part" | sed 's/^  full-size //')
  [[ -n $full ]] && note "full-size step (224 px, batch 32) against the CPU twin:" &&
    while read -r line; do note "  $line"; done <<<"$full"
  steady=$(grep -E '^steady-state steps|^NaN gradient at step|^runtime\.deterministic: two' <<<"$part")
  if [[ -n $steady ]]; then
    note "steady-state step (cuda_steady_state_check):"
    while read -r line; do note "  $line"; done <<<"$steady"
  else
    fail "cuda_steady_state_check printed no result (see log)"
  fi
  nccl=$(grep -E '^NCCL .* loaded|^one-rank|bucketed all-reduces|^ordering|ncclCommAbort returned' <<<"$part")
  [[ -n $nccl ]] && note "real NCCL path:" && while read -r line; do note "  $line"; done <<<"$nccl"
fi

# ---- 4. compute-sanitizer over the op checks and the 3-step model check ---------------------------
phase "compute-sanitizer"
sanitizer=$(command -v compute-sanitizer)
for candidate in /usr/local/cuda*/bin/compute-sanitizer; do
  [[ -z $sanitizer && -x $candidate ]] && sanitizer=$candidate
done
if [[ -z $sanitizer ]]; then
  for d in $wheel_dirs; do
    [[ -x ${d%/lib}/bin/compute-sanitizer ]] && sanitizer=${d%/lib}/bin/compute-sanitizer && break
  done
fi
# at most 100 s in all, leaving the benchmarks theirs: what does not fit is said NOT RUN
sanitizer_end=$(($(elapsed) + 100))
((sanitizer_end > budget - 190)) && sanitizer_end=$((budget - 190))
if [[ -z $sanitizer ]]; then
  note "compute-sanitizer: NOT RUN: not installed on this machine (no compute-sanitizer on PATH, in /usr/local/cuda*/bin or the wheels)"
else
  rows=()
  for tool in memcheck racecheck synccheck initcheck; do
    # the op table's compare mode (CUDA against the CPU backend) and the 3-step model check
    for prog in test_backend_ops cuda_model_check; do
      args=()
      [[ $prog == test_backend_ops ]] && args=(--compare cuda)
      limit=$([[ $prog == test_backend_ops ]] && echo 30 || echo 45)
      if (($(elapsed) + limit > sanitizer_end)); then
        rows+=("$tool $prog: NOT RUN (the sanitizers' 100 s share of the budget is spent)")
        continue
      fi
      mark=$(wc -l <"$log")
      t0=$(date +%s)
      quiet "$limit" "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 20 \
        "$build/tests/$prog" "${args[@]}"
      rc=$?
      took=$(($(date +%s) - t0))
      errors=$(tail -n +"$mark" "$log" | grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' || true)
      case $rc in
      0) rows+=("$tool $prog: clean in $took s (${errors:-no summary line})") ;;
      99) fail "compute-sanitizer $tool $prog: ${errors:-errors found} (see log)" ;;
      124 | 137) rows+=("$tool $prog: NOT FINISHED within $limit s (no verdict)") ;;
      77) fail "compute-sanitizer $tool $prog: the program skipped (no GPU under the tool?)" ;;
      *)
        if tail -n +"$mark" "$log" | grep -qiE 'not supported|unsupported|permission|could not'; then
          rows+=("$tool $prog: REFUSED by this machine: $(tail -n +"$mark" "$log" | grep -m1 -iE 'not supported|unsupported|permission|could not')")
        else
          fail "compute-sanitizer $tool $prog: exit $rc"
        fi
        ;;
      esac
    done
  done
  note "compute-sanitizer ($("$sanitizer" --version 2>/dev/null | grep -m1 -o 'Version.*')):"
  for r in ${rows[@]+"${rows[@]}"}; do note "  $r"; done
fi

# ---- 5. the synthetic learnable set on the GPU -------------------------------------------------
phase "training the synthetic set on the GPU"
if enough 50 "synthetic training"; then
  data=$out/learnable
  rm -rf "$data" "$out/run-learnable"
  if quiet 60 "$build/tests/make_learnable_imagefolder" "$data" 3 80 40 5; then
    printf 'data:\n  root: %s\n  val_fraction: 0.25\n  image_size: 32\n  mean: [0.5, 0.5, 0.5]\n  std: [0.25, 0.25, 0.25]\n  workers: 4\ntrain:\n  epochs: 4\n  batch_size: 16\n  lr: 0.05\n  momentum: 0.9\n  seed: 1\nruntime:\n  device: cuda\noutput:\n  dir: %s\n  log_every: 5\n' \
      "$data" "$out/run-learnable" >"$out/learnable.yaml"
    quiet 120 "$build/dtrain" "$out/learnable.yaml"
    rc=$?
    line=$(grep -a 'done: final validation accuracy' "$log" | tail -1)
    acc=$(sed -n 's/.*final validation accuracy \([0-9.]*\).*/\1/p' <<<"$line")
    precision=$(grep -a '^precision:' "$log" | tail -1)
    if [[ $rc -eq 0 && -n $acc ]] && awk -v a="$acc" 'BEGIN { exit !(a >= 0.9) }'; then
      note "synthetic set on the GPU: validation accuracy $acc (bar 0.9); $precision"
    else
      fail "synthetic set on the GPU: exit $rc, accuracy ${acc:-none} (bar 0.9)"
    fi
  else
    fail "making the synthetic set"
  fi
fi

# ---- 6. dtrain itself against PyTorch at 224 px, batch 256 -------------------------------------
# shellcheck source-path=SCRIPTDIR/..
source "$root/bench/bench_lib.sh"
classes=10 batch=256 warmup=2 steps=6
total=$((batch * (warmup + steps) + classes))
workers=$(($(nproc) > 4 ? $(nproc) - 2 : 2))
# make_set NAME MIN_SIDE MAX_SIDE: a JPEG ImageFolder of $total files under /dev/shm when it can
make_set() {
  local name=$1 pool k made=1 pids=()
  local base=/dev/shm
  [[ -d $base && -w $base ]] || base=$out
  pool=$base/dtrain-gpu-check-$name-pool
  rm -rf "$pool" && mkdir -p "$pool"
  for ((k = 0; k < classes; k++)); do
    mkdir -p "$pool/class$k"
    timeout 90 "$build/bench/bench_make_photos" "$pool/class$k" $(((total + classes - 1) / classes)) \
      "$2" "$3" 90 $((k + 1)) >/dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || made=0; done
  [[ $made -eq 1 ]] && make_imagefolder "$pool" "$base/dtrain-gpu-check-$name" "$classes" "$total" >>"$log" 2>&1
  rm -rf "$pool"
  echo "$base/dtrain-gpu-check-$name"
}
# dtrain_rate SET PRECISION: steady img/s of dtrain on SET (and its data-wait share)
dtrain_rate() {
  local run rate
  run=$out/run-$2-$(basename "$1")
  rm -rf "$run"
  printf 'data:\n  root: %s\n' "$1" >"$out/bench.yaml"
  quiet 120 "$build/dtrain" "$out/bench.yaml" data.image_size=224 train.epochs=1 \
    train.batch_size=$batch data.val_fraction="$(val_fraction_for "$total" "$classes")" \
    data.workers=$workers runtime.device=cuda runtime.precision="$2" output.dir="$run" \
    output.log_every=1 || return 1
  read -r rate _ _ _ < <(steady_rate "$run/metrics.jsonl" "$batch" "$warmup")
  echo "$rate $(time_shares "$log" | awk '{ print $1 }')"
}
phase "training img/s at 224 px, batch 256: dtrain against PyTorch"
if enough 120 "dtrain against PyTorch"; then
  set_dir=$(make_set cached 224 224)
  note "input: $total 224-px JPEGs in $(dirname "$set_dir") (no resize; page cache), $workers decode workers"
  rows=()
  for precision in fp32 tf32 bf16; do
    enough 40 "img/s $precision" || continue
    read -r ours wait_share < <(dtrain_rate "$set_dir" "$precision" || echo "failed n/a")
    theirs=n/a
    if [[ $torch_ok -eq 1 ]] && enough 25 "pytorch $precision"; then
      mark=$(wc -l <"$log")
      quiet 90 "$python" "$root/bench/pytorch_gpu_train_step.py" --precision "$precision" \
        --size 224 --batch "$batch" --steps 15 --warmup 5
      theirs=$(tail -n +"$mark" "$log" | sed -n 's/.*img_per_s=\([0-9.]*\).*/\1/p' | tail -1)
    fi
    rows+=("$(printf '%-5s %10s %10s %6s  (dtrain waiting for data: %s%%)' "$precision" \
      "${ours:-failed}" "${theirs:-failed}" "$(ratio "${ours:-x}" "${theirs:-x}")" "${wait_share:-n/a}")")
    echo "${rows[-1]}"
    [[ $ours =~ ^[0-9.]+$ ]] || fail "dtrain at $precision: no steady img/s (see log)"
  done
  note "img/s, 224 px, batch 256:  prec  dtrain  pytorch  ratio"
  for r in ${rows[@]+"${rows[@]}"}; do note "  $r"; done
  rm -rf "$set_dir"
fi

phase "dtrain from JPEG files (decode and resize), bf16"
if enough 60 "dtrain from JPEG files"; then
  set_dir=$(make_set photos 256 512)
  read -r ours wait_share < <(dtrain_rate "$set_dir" bf16 || echo "failed n/a")
  if [[ $ours =~ ^[0-9.]+$ ]]; then
    note "from JPEG files (256-512 px photos, resized; bf16, batch 256): $ours img/s, waiting for data $wait_share%"
  else
    fail "dtrain from JPEG files (see log)"
  fi
  rm -rf "$set_dir"
fi
finish
