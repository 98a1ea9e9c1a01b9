# shellcheck shell=bash
# Shared helpers of the benchmark scripts (bench/*.sh), sourced by them: usage text, errors, the
# work folder and the checks for built tools; generating an Animals-10-like JPEG ImageFolder,
# reading steady-state throughput from dtrain's metrics.jsonl and the time shares from its final
# "time:" line; ratios and the machine's load. Bash; needs awk, sed.

# usage: the sourcing script's header comment (its lines 2.. up to the first line that is not a
# comment), without the leading "# ".
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

# usage_unless_args "$@": the usage on stderr and exit 2 when there are no arguments; on stdout
# and exit 0 for -h or --help.
usage_unless_args() {
  [[ $# -ge 1 ]] || { usage >&2 && exit 2; }
  [[ $1 == -h || $1 == --help ]] && { usage && exit 0; }
  return 0
}

# passive_waits_unless_set: dtrain sleeps rather than spins in OpenMP waits unless
# OMP_WAIT_POLICY is set (see src/main.c); exporting that policy hands it to everything a
# benchmark starts (PyTorch peers, every rank through the launcher), so all are measured alike,
# and omp_note names it. OMP_WAIT_POLICY=ACTIVE measures spinning waits instead.
passive_waits_unless_set() { export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}; }

# spread NUMBER...: prints "LOWEST MEDIAN HIGHEST" of the numbers (the median of an even count
# is the mean of the middle two).
spread() {
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
    END { print a[1], (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2), a[NR] }'
}

# die MESSAGE...: "SCRIPT: MESSAGE" on stderr, exit 2.
die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# use_workdir PREFIX KEEP: when $workdir is empty, sets it to a new temporary folder
# ${TMPDIR:-/tmp}/PREFIX.XXXXXX, removed at exit unless KEEP is 1; then creates $workdir and makes
# it an absolute path.
use_workdir() {
  if [[ -z $workdir ]]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    [[ $2 -eq 1 ]] || trap 'rm -rf "$workdir"' EXIT
  fi
  mkdir -p "$workdir"
  workdir=$(cd "$workdir" && pwd)
}

# fashion_mnist_data BUILD_DIR LIMIT: sets data to $DATA (an existing ImageFolder), or else
# converts LIMIT Fashion-MNIST training images (Debian's dataset-fashion-mnist) into
# $workdir/fashion-mnist with BUILD_DIR's fashion_mnist_to_imagefolder; dies when that tool or
# dtrain was not built.
fashion_mnist_data() {
  local tool
  for tool in dtrain fashion_mnist_to_imagefolder; do
    [[ -x $1/$tool ]] || die "$1/$tool not found (build it first)"
  done
  data=${DATA:-$workdir/fashion-mnist}
  [[ -n ${DATA:-} ]] || "$1/fashion_mnist_to_imagefolder" --out "$data" --limit "$2" >/dev/null
}

# find_dtrain BUILD_DIR: sets dtrain to $DTRAIN_BIN or BUILD_DIR/dtrain; dies when it is not there.
find_dtrain() {
  dtrain=${DTRAIN_BIN:-$1/dtrain}
  [[ -x $dtrain ]] || die "no dtrain at $dtrain: build it (cmake --build $1 --target dtrain)"
}

# require_bench_tools BUILD_DIR NAME...: dies unless every BUILD_DIR/bench/NAME was built.
require_bench_tools() {
  local build=$1 name
  shift
  for name in "$@"; do
    [[ -x $build/bench/$name ]] ||
      die "missing $build/bench/$name: cmake --build $build --target $name"
  done
}

# make_photo_pool BUILD_DIR POOL_DIR CLASSES PER_CLASS MIN_SIDE MAX_SIDE
# Writes PER_CLASS JPEGs (quality 90) into POOL_DIR/class<k>/ for k = 0..CLASSES-1, each class
# from its own seed, with bench_make_photos. Existing complete class folders are reused.
make_photo_pool() {
  local build=$1 pool=$2 classes=$3 per_class=$4 min_side=$5 max_side=$6 k dir
  for ((k = 0; k < classes; k++)); do
    dir=$pool/class$k
    if [[ -d $dir ]] && [[ $(find "$dir" -name '*.jpg' | wc -l) -ge $per_class ]]; then continue; fi
    rm -rf "$dir" && mkdir -p "$dir"
    "$build/bench/bench_make_photos" "$dir" "$per_class" "$min_side" "$max_side" 90 $((k + 1)) \
      >/dev/null || return 1
  done
}

# make_imagefolder POOL_DIR ROOT CLASSES TOTAL
# Fills ROOT/class<k>/ with TOTAL images taken round-robin over the classes of the pool (hard
# links where the file system allows, else copies), so a run's epoch has exactly TOTAL files.
make_imagefolder() {
  local pool=$1 root=$2 classes=$3 total=$4 k i per_class name
  rm -rf "$root"
  for ((k = 0; k < classes; k++)); do
    mkdir -p "$root/class$k"
    per_class=$(((total - k + classes - 1) / classes))
    for ((i = 0; i < per_class; i++)); do
      name=$(printf 'photo%04d.jpg' "$i")
      ln "$pool/class$k/$name" "$root/class$k/$name" 2>/dev/null ||
        cp "$pool/class$k/$name" "$root/class$k/$name" || return 1
    done
  done
}

# val_fraction_for TOTAL N_VAL: a data.val_fraction that dtrain's split rounds to N_VAL of TOTAL.
val_fraction_for() {
  awk -v n="$1" -v v="$2" 'BEGIN { printf "%.9f", v / n }'
}

# steady_rate METRICS_JSONL GLOBAL_BATCH WARMUP_STEPS
# Prints "IMG_PER_S STEP_S MEASURED_STEPS MEDIAN_IMG_PER_S" over the train rows after step
# WARMUP_STEPS, from their elapsed_s: IMG_PER_S = GLOBAL_BATCH x (last step - WARMUP) / (elapsed
# at last - elapsed at WARMUP); MEDIAN_IMG_PER_S = GLOBAL_BATCH / the median single-step time,
# which a burst of load from other processes moves less. Needs a train row at step WARMUP_STEPS
# (output.log_every=1) and one after it; else "n/a n/a 0 n/a".
steady_rate() {
  awk -v batch="$2" -v warmup="$3" '
    /"event":"train"/ {
      step = $0; sub(/.*"step":/, "", step); sub(/[,}].*/, "", step)
      t = $0; sub(/.*"elapsed_s":/, "", t); sub(/[,}].*/, "", t)
      at[step + 0] = t + 0
      if (step + 0 > last_step) last_step = step + 0
    }
    END {
      n = last_step - warmup
      if (!(warmup in at) || n < 1 || at[last_step] <= at[warmup]) { print "n/a n/a 0 n/a"; exit }
      k = 0
      for (s = warmup + 1; s <= last_step; s++)
        if ((s in at) && ((s - 1) in at)) d[++k] = at[s] - at[s - 1]
      for (i = 2; i <= k; i++) { v = d[i]; for (j = i - 1; j >= 1 && d[j] > v; j--) d[j + 1] = d[j]; d[j + 1] = v }
      median = k % 2 ? d[(k + 1) / 2] : (d[k / 2] + d[k / 2 + 1]) / 2
      span = at[last_step] - at[warmup]
      printf "%.2f %.4f %d %s\n", batch * n / span, span / n, n, (median > 0 ? sprintf("%.2f", batch / median) : "n/a")
    }' "$1"
}

# time_shares LOG_FILE: prints "DATA_WAIT_PERCENT ALLREDUCE_PERCENT" from dtrain's final line
# "time: T s in all; of training steps X% waiting for data, Y% in all-reduce" (n/a if absent).
time_shares() {
  local line data reduce
  line=$(grep -a 'time: .*waiting for data' "$1" | tail -n 1)
  data=$(sed -n 's/.* \([0-9.]*\)% waiting for data.*/\1/p' <<<"$line")
  reduce=$(sed -n 's/.* \([0-9.]*\)% in all-reduce.*/\1/p' <<<"$line")
  echo "${data:-n/a} ${reduce:-n/a}"
}

# ratio A B: A / B with two decimals, or n/a when either is not a positive number.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'
}

# machine_load: the 1-minute load average and the core count, for the benchmark's header.
machine_load() {
  local load cores
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
  cores=$(nproc 2>/dev/null || echo '?')
  echo "load average $load on $cores cores"
}

# cpu_model: the CPU's model name (lscpu's "Model name"), for the benchmarks' headers.
cpu_model() {
  local model
  model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
  echo "${model:-unknown CPU}"
}

# cpu_isa_flags: the vector instruction sets the CPU reports (AVX2, AVX-512 parts, AMX), which
# decide dtrain's layout and whether bf16 exists.
cpu_isa_flags() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' |
    grep -E '^(avx2|fma|avx512f|avx512bw|avx512vl|avx512dq|avx512_vnni|avx512_bf16|avx512_fp16|amx_[a-z0-9]+)$' |
    tr '\n' ' ')
  echo "${flags:-none of avx2, avx512*, amx*}"
}

# omp_note: the OpenMP wait policy in effect, which matters on a shared machine: busy-waiting
# threads (the default) burn the time slices their descheduled partners need.
omp_note() {
  echo "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
}

# pypi_torch_python: prints the python of a virtual environment of the benchmarks' own with PyPI's
# current torch and torchvision, creating it (python3 -m venv, pip install) when it lacks them.
# Bench-only: nothing else in the repository needs it. Where: $DTRAIN_BENCH_TORCH_VENV, default
# /var/cache/dtrain/bench-torch as root, else ~/.cache/dtrain/bench-torch. Status 1 (with the
# reason on stderr) when it cannot be made, e.g. without network access to PyPI.
pypi_torch_python() {
  local venv=${DTRAIN_BENCH_TORCH_VENV:-}
  if [[ -z $venv ]]; then
    if [[ $(id -u) -eq 0 ]]; then venv=/var/cache/dtrain/bench-torch; else venv=$HOME/.cache/dtrain/bench-torch; fi
  fi
  if ! "$venv/bin/python" -c 'import torch, torchvision' 2>/dev/null; then
    echo "installing PyPI's torch and torchvision into $venv (once; a few GB)" >&2
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q --upgrade pip &&
      "$venv/bin/pip" install -q torch torchvision; } >&2 || {
      echo "could not install torch from PyPI into $venv" >&2
      return 1
    }
  fi
  echo "$venv/bin/python"
}
