# shellcheck shell=bash
# Shared helpers of the training benchmarks (bench_train.sh, bench_scaling.sh), sourced by them:
# generating an Animals-10-like JPEG ImageFolder, reading steady-state throughput from dtrain's
# metrics.jsonl and the time shares from its final "time:" line. Bash; needs awk, sed.

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

# omp_note: the OpenMP wait policy in effect, which matters on a shared machine: busy-waiting
# threads (the default) burn the time slices their descheduled partners need.
omp_note() {
  echo "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
}
