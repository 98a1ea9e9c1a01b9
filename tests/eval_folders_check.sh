#!/bin/bash
# dtrain eval's own folder and data.val_root:
#   eval_folders_check.sh DTRAIN MAKE_LEARNABLE_IMAGEFOLDER
# - a training run's files are byte-identical after dtrain eval (default folder
#   output.dir/eval/<data folder name>/, --out DIR, and --out at the run's folder, refused);
# - the eval report names the model file, its config hash, the data and the split ("test" for a
#   whole folder), and has no training curves;
# - data.val_root: the whole of it is the validation set, data.root all training data; a given
#   data.val_fraction is an error; class folders that differ are named (missing and extra).
set -u
dtrain=$1
make_imagefolder=$2 # ROOT CLASSES PER_CLASS SIDE

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$make_imagefolder" "$work/train" 3 12 16 >/dev/null || exit 1
"$make_imagefolder" "$work/fm-test" 3 4 16 >/dev/null || exit 1
cat >"$work/run.yaml" <<YAML
data: {root: $work/train, image_size: 16, workers: 1}
train: {epochs: 1, batch_size: 4}
runtime: {device: cpu, threads: 1}
output: {dir: $work/out, log_every: 4, tensorboard: false}
YAML

"$dtrain" "$work/run.yaml" >"$work/train.log" 2>&1
expect "training exit code" "$?" 0
run_files() { (cd "$work/out" && find . -path ./eval -prune -o -type f -print | sort | xargs sha256sum); }
run_files >"$work/before"
expect_match "the run has a report" "$(cat "$work/before")" "*./predictions.csv*./report.html*"

# A whole folder: split "test", written to output.dir/eval/fm-test/.
out=$("$dtrain" eval "$work/run.yaml" --data "$work/fm-test" 2>&1)
expect "eval --data exit code" "$?" 0
hash=$(grep -ao '"config_hash":"[0-9a-f]*"' "$work/out/best.safetensors" | cut -d'"' -f4)
expect_match "the model's config hash is recorded" "$hash" "????????????????"
expect_match "eval names model, hash, data and split" "$(head -n1 <<<"$out")" \
    "dtrain eval: $work/out/best.safetensors (config hash $hash) on 12 images of $work/fm-test (split: test, the whole folder)"
expect_match "eval says where it wrote" "$(tail -n1 <<<"$out")" \
    "test accuracy *, 0 images skipped; wrote * to $work/out/eval/fm-test/"
page=$(cat "$work/out/eval/fm-test/report.html" 2>/dev/null)
expect_match "the report names the model" "$page" \
    "*<h1>dtrain evaluation: $work/out/best.safetensors</h1>*"
expect_match "the report says the split" "$page" "*Test accuracy <span id=\"accuracy\">*"
expect_match "the report's evaluation table" "$page" \
    "*<th class=\"name\">model config hash</th><td>$hash</td>*<th class=\"name\">data</th><td>$work/fm-test</td>*<th class=\"name\">split</th><td>test</td>*"
expect "the eval report has no training curves" "$(grep -c 'optimizer step' <<<"$page")" 0
expect "predictions of the test images only" "$(($(wc -l <"$work/out/eval/fm-test/predictions.csv") - 1))" 12

# The held-out split by default, into output.dir/eval/train/; --out elsewhere.
"$dtrain" eval "$work/run.yaml" >"$work/eval2.log" 2>&1
expect "eval of the held-out split exit code" "$?" 0
expect_match "held-out split named" "$(head -n1 "$work/eval2.log")" \
    "*(split: validation, held out of data.root)*"
check "held-out results in output.dir/eval/train/" test -s "$work/out/eval/train/report.html"
"$dtrain" eval "$work/run.yaml" --data "$work/fm-test" --out "$work/elsewhere" >/dev/null 2>&1
expect "eval --out exit code" "$?" 0
check "--out DIR holds the results" test -s "$work/elsewhere/classification_report.txt"

# Never over a training run: --out at output.dir is refused (exit 2) and writes nothing.
out=$("$dtrain" eval "$work/run.yaml" --out "$work/out" 2>&1)
expect "eval --out at the run's folder exit code" "$?" 2
expect_match "refusal names the folder" "$out" \
    "dtrain: error: $work/out holds a training run's files: *"
expect "the training run's files are byte-identical after the evaluations" "$(run_files)" \
    "$(cat "$work/before")"

# data.val_root: all of fm-test is the validation set, all of train the training data.
"$dtrain" "$work/run.yaml" "data.val_root=$work/fm-test" "output.dir=$work/out2" \
    >"$work/val_root.log" 2>&1
expect "training with data.val_root exit code" "$?" 0
expect_match "36 training and 12 validation images" "$(cat "$work/val_root.log")" \
    "*48 images in 3 classes (36 train, 12 val)*"
expect_match "the written config names data.val_root" "$(cat "$work/out2/config.yaml")" \
    "*val_root: $work/fm-test*"
"$dtrain" "$work/out2/config.yaml" --print-config >/dev/null 2>&1
expect "the written config loads back" "$?" 0
out=$("$dtrain" "$work/run.yaml" "data.val_root=$work/fm-test" data.val_fraction=0.3 \
    "output.dir=$work/out3" 2>&1)
expect "data.val_fraction with data.val_root exit code" "$?" 2
expect_match "data.val_fraction with data.val_root is named" "$out" \
    "*data.val_fraction: not used with data.val_root*"
mkdir -p "$work/odd/class00" "$work/odd/class02" "$work/odd/zebra"
cp "$work/fm-test/class00/"* "$work/odd/class00/"
cp "$work/fm-test/class02/"* "$work/odd/class02/"
cp "$work/fm-test/class02/"* "$work/odd/zebra/"
out=$("$dtrain" "$work/run.yaml" "data.val_root=$work/odd" "output.dir=$work/out3" 2>&1)
expect "class folders that differ exit code" "$?" 2
expect_match "missing and extra classes are named" "$out" \
    "*data.val_root $work/odd: its class folders differ from data.root $work/train's: missing class01; extra zebra*"
out=$("$dtrain" "$work/run.yaml" "data.val_root=$work/none" "output.dir=$work/out3" 2>&1 >/dev/null)
expect "a missing data.val_root exit code" "$?" 2
expect "a missing folder is named once, with its key" "$out" \
    "dtrain: error: data.val_root: $work/none: No such file or directory"
out=$("$dtrain" eval "$work/run.yaml" --data "$work/odd" 2>&1)
expect "eval --data on other class folders exit code" "$?" 2
expect_match "eval names the folders that differ from the model's classes" "$out" \
    "*$work/odd: its class folders (class00, class02, zebra) are not the classes of $work/out/best.safetensors (class00,class01,class02)*"
check "nothing written for it" test ! -e "$work/out/eval/odd"
check_summary eval_folders
