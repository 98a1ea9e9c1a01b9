#!/usr/bin/env bash
# The one-call GPU check: proves the CUDA backend on a machine with a GPU in one run of at most
# 8 minutes, using the bundle that tools/gpu-bundle.sh prepared (gpu-bundle/bundle.tar.xz in this
# checkout, unpacked into OUTPUT_DIR/bundle).
# That machine needs the NVIDIA driver and cuDNN 9 / NCCL / cuBLAS in the system or in its
# Python's pip wheels (nvidia-cudnn-cu13, nvidia-nccl-cu13, ...); none of our Debian libraries.
#
#   tools/gpu-check.sh OUTPUT_DIR
#
# In order, each step bounded by the time left:
#   1. the GPU, driver, CUDA runtime, and the cuDNN / NCCL libraries loaded (and PyTorch's);
#      when the bundle does not run here, builds dtrain here instead (OUTPUT_DIR/build-gpu);
#   2. the cuDNN convolution plans on the GPU against a host reference, which also writes the
#      device's property JSON (OUTPUT_DIR/deviceprop.json: copy it over
#      tests/cuda/h200-deviceprop.json), then every ResNet-18 plan built for that JSON;
#   3. every gpu-labelled test (ctest -L gpu), each op's error printed next to its tolerance;
#   4. training on the e2e test's synthetic learnable set on the GPU, with its accuracy;
#   5. training img/s at 224 px, batch 256 then 64: dtrain fp32/tf32/bf16 against torchvision
#      resnet18 (fp32, tf32, bf16 autocast; channels_last) on synthetic tensors, with ratios,
#      and dtrain end to end from JPEG files.
# Everything goes to OUTPUT_DIR/gpu-check.log; the terminal gets the verdicts and a summary.
# Exit status: 0 when every step that ran passed, 1 otherwise (also: no GPU visible), 2 usage.
# Environment: PYTHON (default python3), GPU_CHECK_BUDGET_S (default 470).
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
  note "skipped: $2 (time budget: $(left) s left, needs $1 s)"
  return 1
}
finish() {
  phase "summary ($(elapsed) s)"
  printf '%s\n' "${summary[@]}"
  echo "log: $log"
  [[ $failures -eq 0 ]] && exit 0
  echo "gpu-check: $failures failure(s)"
  exit 1
}

# ---- 0. a GPU? -------------------------------------------------------------------------------
phase "GPU"
gpus=$(nvidia-smi --query-gpu=index,name,driver_version,memory.total,pci.bus_id,compute_cap \
  --format=csv,noheader 2>&1)
if [[ $? -ne 0 || -z $gpus ]] || ! grep -q , <<<"$gpus"; then
  echo "gpu-check: no GPU visible (nvidia-smi: ${gpus:-not found})"
  exit 1
fi
note "GPU: $gpus"
compute_cap=$(head -1 <<<"$gpus" | awk -F', ' '{ print $NF }')

# ---- 1. libraries: the bundle's, and cuDNN/NCCL/cuBLAS from the system or the pip wheels ------
phase "libraries"
if [[ -f $bundle/bundle.tar.xz ]]; then # unpacked into the output folder
  rm -rf "$out/bundle" && mkdir -p "$out/bundle"
  tar -C "$out/bundle" -xJf "$bundle/bundle.tar.xz" || fail "unpacking $bundle/bundle.tar.xz"
  bundle=$out/bundle
fi
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
for so in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do
  find_lib "$so" || [[ $so == libnccl.so.2 ]] || fail "$so not found (system, CUDA_HOME, pip wheels)"
done
joined=$(printf '%s:' "${lib_dirs[@]}" | awk -v RS=: '!seen[$0]++ && NF' | paste -sd:)
export LD_LIBRARY_PATH=$bundle/lib${joined:+:$joined}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PATH:/usr/local/cuda/bin

build=$bundle/build
run_gpu_tests=("$bundle/run-gpu-tests.sh" "$root")
bundle_runs() { "$build/dtrain" --version >"$out/version.txt" 2>&1; }
if [[ -x $build/dtrain ]] && bundle_runs; then
  note "bundle: runs ($(grep -h commit "$bundle/BUILD-INFO"))"
elif [[ -x $build/dtrain ]] && LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$bundle/lib/extra bundle_runs; then
  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$bundle/lib/extra
  note "bundle: runs with its own C++ runtime (lib/extra)"
else
  [[ -x $build/dtrain ]] && { echo "the bundle does not run here:" && cat "$out/version.txt"; }
  [[ -d $bundle/deps ]] || { fail "no usable bundle: run tools/gpu-bundle.sh first" && finish; }
  phase "building dtrain here (the bundle does not run)"
  build=$out/build-gpu
  run_gpu_tests=(ctest --test-dir "$build" -L gpu -V --timeout 150 -E)
  dir_of() { # SONAME -> the install root above its lib folder (wheel or toolkit)
    local d
    for d in "${lib_dirs[@]}"; do [[ -e $d/$1 ]] && { dirname "$d" && return; }; done
  }
  cudnn_root=$(dir_of libcudnn.so.9)
  nccl_root=$(dir_of libnccl.so.2)
  arch=${compute_cap/./}
  # link names and pkg-config files for the bundled libraries
  deps=$out/deps
  mkdir -p "$deps/lib/pkgconfig"
  ln -sfn "$bundle/deps/include" "$deps/include"
  for link in dnnl:libdnnl.so.2 yaml:libyaml-0.so.2 jpeg:libjpeg.so.62 png:libpng16.so.16 \
    png16:libpng16.so.16 z:libz.so.1; do
    [[ -f $bundle/lib/${link#*:} ]] && ln -sf "$bundle/lib/${link#*:}" "$deps/lib/lib${link%%:*}.so"
  done
  for pc in yaml-0.1:yaml libjpeg:jpeg; do
    # shellcheck disable=SC2016 # ${pcfiledir} and ${prefix} are pkg-config's, not the shell's
    printf 'prefix=${pcfiledir}/../..\nName: %s\nDescription: bundled\nVersion: 0\nLibs: -L${prefix}/lib -l%s\nCflags: -I${prefix}/include\n' \
      "${pc%%:*}" "${pc#*:}" >"$deps/lib/pkgconfig/${pc%%:*}.pc"
  done
  t0=$(date +%s)
  if PKG_CONFIG_PATH=$deps/lib/pkgconfig quiet 300 cmake -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release -DDTRAIN_CUDA=ON -DDTRAIN_MPI=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="${arch:-90}-real" ${cudnn_root:+-DCUDNN_ROOT=$cudnn_root} \
    ${nccl_root:+-DNCCL_ROOT=$nccl_root} -DDNNL_ROOT="$deps" -DCMAKE_PREFIX_PATH="$deps" &&
    quiet 300 cmake --build "$build" -j "$(nproc)" && "$build/dtrain" --version >"$out/version.txt" 2>&1; then
    note "built here in $(($(date +%s) - t0)) s"
  else
    tail -30 "$log"
    fail "building here failed (see $log)"
    finish
  fi
fi
cat "$out/version.txt"
note "dtrain: $(grep -h '^CUDA:' "$out/version.txt")"
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
    if [[ $rc -eq 77 ]]; then
      fail "cudnn_conv_gpu_check skipped: the CUDA runtime sees no GPU"
    else
      fail "cudnn_conv_gpu_check (exit $rc)"
    fi
  fi
  grep -E 'tolerance|FAIL' "$log" | grep -F ' conv ' | grep -E 'FAIL|fp32 \(handle\)' | head -20
  if [[ -s $out/deviceprop.json ]]; then
    note "device properties: $out/deviceprop.json"
    if quiet 120 "$build/tests/test_cudnn_plans" "$out/deviceprop.json"; then
      note "test_cudnn_plans (this GPU): $(grep 'plans finalized' "$log" | tail -1)"
    else
      fail "test_cudnn_plans with this GPU's description"
    fi
  fi
fi

# ---- 3. the gpu-labelled tests ---------------------------------------------------------------
phase "ctest -L gpu"
if enough 90 "gpu-labelled tests"; then
  mark=$(wc -l <"$log")
  quiet $(($(left) > 240 ? 200 : $(left) - 40)) "${run_gpu_tests[@]}" cudnn_conv_gpu_check
  rc=$?
  tail -n +"$mark" "$log" | grep -iE 'tolerance|SKIPPED|FAILED|passed,|tests passed|: passed' |
    grep -v '^\$' | head -150
  if [[ $rc -eq 0 ]]; then note "gpu tests: passed"; else fail "gpu tests (exit $rc)"; fi
fi

# ---- 4. the synthetic learnable set on the GPU -------------------------------------------------
phase "training the synthetic set on the GPU"
if enough 60 "synthetic training"; then
  data=$out/learnable
  rm -rf "$data" "$out/run-learnable"
  if quiet 60 "$build/tests/make_learnable_imagefolder" "$data" 3 80 40 5; then
    printf 'data:\n  root: %s\n  val_fraction: 0.25\n  image_size: 32\n  mean: [0.5, 0.5, 0.5]\n  std: [0.25, 0.25, 0.25]\n  workers: 4\ntrain:\n  epochs: 4\n  batch_size: 16\n  lr: 0.05\n  momentum: 0.9\n  seed: 1\nruntime:\n  device: cuda\noutput:\n  dir: %s\n  log_every: 5\n' \
      "$data" "$out/run-learnable" >"$out/learnable.yaml"
    quiet 120 "$build/dtrain" "$out/learnable.yaml"
    rc=$?
    line=$(grep -a 'done: final validation accuracy' "$log" | tail -1)
    acc=$(sed -n 's/.*final validation accuracy \([0-9.]*\).*/\1/p' <<<"$line")
    if [[ $rc -eq 0 && -n $acc ]] && awk -v a="$acc" 'BEGIN { exit !(a >= 0.9) }'; then
      note "synthetic set on the GPU: validation accuracy $acc (bar 0.9)"
    else
      fail "synthetic set on the GPU: exit $rc, accuracy ${acc:-none} (bar 0.9)"
    fi
  else
    fail "making the synthetic set"
  fi
fi

# ---- 5. throughput: dtrain against PyTorch on synthetic tensors, dtrain from JPEG files -------
phase "training img/s at 224 px (synthetic tensors)"
rows=()
rate_of() { sed -n 's/.*img_per_s=\([0-9.]*\).*/\1/p' | tail -1; }
for batch in 256 64; do
  for precision in fp32 tf32 bf16; do
    enough 45 "img/s batch $batch $precision" || continue
    mark=$(wc -l <"$log")
    quiet 60 "$build/bench/bench_train_step" --device cuda --precision "$precision" --size 224 \
      --batch "$batch" --steps 20 --warmup 5
    ours=$(tail -n +"$mark" "$log" | rate_of)
    theirs=n/a
    if [[ $torch_ok -eq 1 ]] && enough 30 "pytorch batch $batch $precision"; then
      mark=$(wc -l <"$log")
      quiet 90 "$python" "$root/bench/pytorch_gpu_train_step.py" --precision "$precision" \
        --size 224 --batch "$batch" --steps 20 --warmup 5
      theirs=$(tail -n +"$mark" "$log" | rate_of)
    fi
    ratio=n/a
    [[ -n $ours && -n $theirs && $theirs != n/a ]] &&
      ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
    rows+=("$(printf '%-6s %5d %12s %12s %7s' "$precision" "$batch" "${ours:-failed}" "$theirs" "$ratio")")
    echo "${rows[-1]}"
    [[ -n $ours ]] || fail "bench_train_step batch $batch $precision"
  done
done
if [[ ${#rows[@]} -gt 0 ]]; then
  note "img/s at 224 px:  prec  batch   dtrain   pytorch  ratio"
  for r in "${rows[@]}"; do note "  $r"; done
fi

phase "dtrain end to end from JPEG files (224 px, batch 256, bf16)"
if enough 60 "end-to-end JPEG run"; then
  # shellcheck source-path=SCRIPTDIR/..
  source "$root/bench/bench_lib.sh"
  classes=10 batch=256 warmup=3 steps=10
  total=$((batch * (warmup + steps) + classes))
  per_class=$(((total + classes - 1) / classes))
  pool=$out/photos
  pids=() # not a bare `wait`: that would also wait for the log's tee
  for ((k = 0; k < classes; k++)); do
    mkdir -p "$pool/class$k"
    timeout 60 "$build/bench/bench_make_photos" "$pool/class$k" "$per_class" 60 300 90 \
      $((k + 1)) >/dev/null &
    pids+=($!)
  done
  made=1
  for pid in "${pids[@]}"; do wait "$pid" || made=0; done
  if [[ $made -eq 1 ]] && make_imagefolder "$pool" "$out/jpeg-set" "$classes" "$total" >>"$log" 2>&1; then
    rm -rf "$out/run-jpeg"
    printf 'data:\n  root: %s\n' "$out/jpeg-set" >"$out/jpeg.yaml"
    quiet 120 "$build/dtrain" "$out/jpeg.yaml" data.image_size=224 train.epochs=1 \
      train.batch_size=$batch data.val_fraction="$(val_fraction_for "$total" "$classes")" \
      data.workers=$(($(nproc) > 4 ? $(nproc) - 2 : 2)) runtime.device=cuda \
      runtime.precision=bf16 output.dir="$out/run-jpeg" output.log_every=1
    rc=$?
    if [[ $rc -eq 0 ]]; then
      read -r rate _ measured _ < <(steady_rate "$out/run-jpeg/metrics.jsonl" "$batch" "$warmup")
      wait_line=$(grep -a '^time:' "$log" | tail -1)
      note "end to end from JPEG (bf16, batch 256): $rate img/s over $measured steps; $wait_line"
    else
      fail "end-to-end JPEG run (exit $rc)"
    fi
  else
    fail "making the JPEG set"
  fi
  rm -rf "$pool" "$out/jpeg-set"
fi
finish
