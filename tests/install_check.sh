#!/bin/bash
# The install rules, as a site installs dtrain:
#   install_check.sh BUILD_DIR SOURCE_DIR MAKE_LEARNABLE_IMAGEFOLDER
# `cmake --install BUILD_DIR --prefix P` into a temporary prefix; then, from a folder outside the
# source and build trees with a PATH that has neither: the installed dtrain runs a tiny training
# from the installed example config (a CUDA build's module found relative to itself, also through
# a symlink and after the prefix is moved), dtrain-run finds the dtrain beside itself, the Lmod
# module file puts the prefix on PATH and MANPATH (when Lmod is installed), and the manual page
# and --help cover every command and option.
set -u
build=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
make_imagefolder=$3

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1
expect "cmake --install exit code" "$?" 0
for f in bin/dtrain bin/dtrain-run share/dtrain/configs/fashion-mnist.yaml \
    share/dtrain/cluster/single-node.sbatch share/dtrain/cluster/preemptible.sbatch \
    share/dtrain/docs/README.md share/dtrain/docs/launch.md share/man/man1/dtrain.1 \
    share/dtrain/modulefiles/dtrain/0.1.0.lua; do
    check "installed: $f" test -s "$prefix/$f"
done
check "dtrain-run is executable" test -x "$prefix/bin/dtrain-run"

"$make_imagefolder" "$work/data" 2 8 16 >/dev/null || exit 1
mkdir -p "$work/elsewhere"
cd "$work/elsewhere" || exit 1
[[ $PWD != "$source_dir"/* && $PWD != "$build"/* ]] ||
    check_fail "the check must run outside the source and build trees ($PWD)"
# A PATH without the build or source trees (nor any other dtrain).
clean_path=/usr/local/bin:/usr/bin:/bin
run_clean() { env -i HOME="$HOME" PATH="$1" OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 "${@:2}"; }

out=$(run_clean "$clean_path" "$prefix/bin/dtrain" --version 2>&1)
expect_match "the installed dtrain runs" "$out" "dtrain 0.1.0*backends: cpu*"
tiny=(data.root="$work/data" data.image_size=16 data.val_fraction=0.25 train.epochs=1
    train.batch_size=4 runtime.device=cpu runtime.threads=1 data.workers=1 output.tensorboard=false)
out=$(run_clean "$clean_path" "$prefix/bin/dtrain" "$prefix/share/dtrain/configs/fashion-mnist.yaml" \
    "${tiny[@]}" output.dir=run1 2>&1)
expect "a tiny training with the installed dtrain and config exit code" "$?" 0
expect_match "it ends with its summary line" "$(tail -n1 <<<"$out")" "done: final validation accuracy *"
check "its model is written" test -s "$work/elsewhere/run1/model.safetensors"

# Through a symlink on PATH, and from a copy of the prefix elsewhere (relocatable).
mkdir -p "$work/links"
ln -s "$prefix/bin/dtrain" "$work/links/dtrain"
out=$(run_clean "$work/links:$clean_path" dtrain -V 2>&1)
expect_match "dtrain through a symlink on PATH" "$out" "dtrain 0.1.0*"
cp -a "$prefix" "$work/moved"
out=$(run_clean "$clean_path" "$work/moved/bin/dtrain" -V 2>&1)
expect_match "a moved prefix still runs" "$out" "dtrain 0.1.0*"
if [[ $out == *"backends: cpu cuda"* ]]; then # a CUDA build: its module installed and found
    check "installed: lib/dtrain/libdtrain_cuda.so" test -s "$prefix/lib/dtrain/libdtrain_cuda.so"
    expect "the moved prefix's dtrain finds its CUDA module" \
        "$(grep -c 'CUDA module libdtrain_cuda.so is missing' <<<"$out")" 0
fi
mkdir -p "$work/bin-only"
cp "$prefix/bin/dtrain" "$work/bin-only/"
out=$(run_clean "$clean_path" "$work/bin-only/dtrain" -V 2>&1)
expect "the executable alone exit code" "$?" 0
if [[ $out == *"backends: cpu cuda"* ]]; then # without its CUDA module: says where it looked
    expect_match "the executable alone says where it looked for its CUDA module" "$out" \
        "*GPU: not usable: the CUDA module libdtrain_cuda.so is missing (looked beside $work/bin-only/ and in $work/bin-only/../lib/dtrain)*"
fi

# dtrain-run runs the dtrain beside itself (1 rank: no mpirun).
out=$(run_clean "$clean_path" "$prefix/bin/dtrain-run" -n 1 \
    "$prefix/share/dtrain/configs/fashion-mnist.yaml" "${tiny[@]}" output.dir=run2 2>&1)
expect "dtrain-run -n 1 exit code" "$?" 0
check "dtrain-run's run wrote its model" test -s "$work/elsewhere/run2/model.safetensors"
out=$(run_clean "$clean_path" "$prefix/bin/dtrain-run" --print -n 2 x.yaml 2>&1)
expect_match "dtrain-run -n 2 starts the installed dtrain" "$out" "*mpirun *$prefix/bin/dtrain x.yaml"

# The Lmod module file (Lmod: tools/test.sh installs it).
lmod_init=/usr/share/lmod/lmod/init/bash
if [[ -r $lmod_init ]]; then
    out=$(run_clean "$clean_path" bash -c "source $lmod_init && module use '$work/moved/share/dtrain/modulefiles' &&
        module load dtrain && command -v dtrain && echo \"MANPATH=\$MANPATH\" && echo \"HOME=\$DTRAIN_HOME\" &&
        dtrain --version" 2>&1)
    expect_match "module load dtrain puts the (moved) prefix on PATH" "$out" \
        "$work/moved/bin/dtrain*MANPATH=$work/moved/share/man*HOME=$work/moved*dtrain 0.1.0*"
else
    echo "Lmod not installed ($lmod_init): the module file is not loaded"
fi

# --help names every command; the manual page every option of every command's --help.
help=$(run_clean "$clean_path" "$prefix/bin/dtrain" --help)
for c in "--resume" "--overwrite" "--print-config" "dtrain predict" "dtrain eval" "dtrain pack" \
    "-V | --version" \
    "-h | --help"; do
    expect_match "dtrain --help names $c" "$help" "*$c*"
done
options=$( (
    echo "$help"
    run_clean "$clean_path" "$prefix/bin/dtrain" predict --help
    run_clean "$clean_path" "$prefix/bin/dtrain" eval --help
    run_clean "$clean_path" "$prefix/bin/dtrain" pack --help
) | grep -o -- '--[a-z][a-z-]*' | sort -u)
manual=$(sed 's/\\-/-/g' "$prefix/share/man/man1/dtrain.1")
for option in $options; do
    expect_match "the manual page has $option" "$manual" "*$option*"
done
((${#options} > 100)) || check_fail "too few options found in the --help texts: $options"
check_summary install
