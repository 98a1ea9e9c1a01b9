#!/bin/bash
# What dtrain does to output.dir when it is hostile or unlucky: planted symlinks are never
# followed (nothing outside output.dir is written), --resume of another run's checkpoint into a
# folder is refused, other programs' files are never emptied or deleted (--overwrite removes only
# what .dtrain-manifest names), a folder moved mid-run ends the run, an interrupted resume from an
# older checkpoint resumes from the same place, a killed first checkpoint starts over under
# --resume, a FIFO or a link loop at checkpoints/latest neither hangs nor hides the cause, and
# config.yaml and classes.txt are replaced, never rewritten in place.
#   output_dir_check.sh DTRAIN MAKE_LEARNABLE_IMAGEFOLDER
set -u
dtrain=$1
make_imagefolder=$2

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
background=""
cleanup() {
    [[ -n ${KEEP_WORK:-} ]] && { echo "kept $work"; return; }
    [[ -n $background ]] && kill -9 "$background" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
export OMP_NUM_THREADS=1

"$make_imagefolder" data 2 8 16 >/dev/null || exit 1
# 12 training images, batch 2: 6 steps an epoch, a checkpoint every 2 steps
cat >run.yaml <<YAML
data: {root: $work/data, image_size: 16, val_fraction: 0.25}
train: {epochs: 2, batch_size: 2}
runtime: {device: cpu, threads: 1}
output: {dir: $work/out, log_every: 1, checkpoint_every: 2}
YAML

# run LOG OUT_DIR [ARGS...]: dtrain on run.yaml with output.dir OUT_DIR; the exit code in $rc
run() {
    local log=$1 out=$2
    shift 2
    timeout 120 "$dtrain" run.yaml "output.dir=$work/$out" "$@" >"$log.log" 2>&1
    rc=$?
}
# the rows of metrics.csv as "event,epoch,step" (what a resumed history must reproduce)
rows() { cut -d, -f1-3 "$1/metrics.csv" | tr '\n' ' '; }
has() { grep -q -- "$2" "$1.log"; }
same() { cmp -s "$1" "$2"; }

run full full
expect "an uninterrupted run" "$rc" 0
full_rows=$(rows full)

# ---- 1. planted symlinks ------------------------------------------------------------------
mkdir outside
for f in lock report model best confusion predictions events; do echo "precious $f" >"outside/$f"; done
mkdir links
ln -s "$work/outside/report" links/report.html.tmp
ln -s "$work/outside/model" links/model.safetensors.tmp
ln -s "$work/outside/best" links/best.safetensors.tmp
ln -s "$work/outside/confusion" links/confusion_matrix.csv.tmp
ln -s "$work/outside/predictions" links/predictions.csv.tmp
run links links
expect "links at temporary names: the run ends" "$rc" 0
for f in report model best confusion predictions; do
    expect "links at temporary names: outside/$f untouched" "$(head -c 40 "outside/$f" | tr -cd "[:print:]")" "precious $f"
done
check "model.safetensors is a file of its own" test -f links/model.safetensors -a ! -L links/model.safetensors

mkdir lockdir
ln -s "$work/outside/lock" lockdir/.dtrain.lock
run lock lockdir
expect "a symlinked lock: refused" "$rc" 2
expect "a symlinked lock: its target untouched" "$(cat outside/lock)" "precious lock"

mkdir -p tbdir outside/tb
echo "another tool" >outside/tb/events.out.tfevents.1.other
ln -s "$work/outside/tb" tbdir/tensorboard
run tb tbdir
expect "a symlinked tensorboard/: refused" "$rc" 2
check "a symlinked tensorboard/: the message says why" has tb "tensorboard is a symbolic link"
expect "a symlinked tensorboard/: the other tool's file untouched" \
    "$(cat outside/tb/events.out.tfevents.1.other)" "another tool"
check "a symlinked tensorboard/: no file written there" test "$(find outside/tb -mindepth 1 | wc -l)" -eq 1

mkdir ckdir outside/ck
ln -s "$work/outside/ck" ckdir/checkpoints
run ck ckdir
expect "a symlinked checkpoints/: refused" "$rc" 2
check "a symlinked checkpoints/: nothing written there" test -z "$(ls -A outside/ck)"

mkdir dangling
ln -s "$work/outside/new-metrics" dangling/metrics.jsonl
ln -s "$work/outside/new-config" dangling/config.yaml
ln -s "$work/outside/classes" dangling/classes.txt
run dangling dangling
expect "dangling links at run files: an earlier run" "$rc" 2
check "dangling links: nothing created at their targets" \
    test ! -e outside/new-metrics -a ! -e outside/new-config -a ! -e outside/classes
run dangling-over dangling --overwrite
expect "dangling links with --overwrite: refused (not dtrain's)" "$rc" 2
check "dangling links with --overwrite: named" has dangling-over "config.yaml"
check "dangling links with --overwrite: kept" test -L dangling/config.yaml

# ---- 3. --resume PATH into a folder holding another run -----------------------------------
cp -a full other
run other-run other train.seed=7 --overwrite
expect "a second run" "$rc" 0
cp other/metrics.csv other-metrics.csv
run foreign other --resume "$work/full/checkpoints/step-00000008"
expect "--resume of another run's checkpoint into a run folder: refused" "$rc" 2
check "--resume into another run: message" has foreign "holds another run"
check "--resume into another run: its metrics untouched" same other/metrics.csv other-metrics.csv
run fork fork --resume "$work/full/checkpoints/step-00000008"
expect "--resume of a checkpoint into an empty folder" "$rc" 0
expect "--resume into an empty folder: the history from step 8 on" "$(rows fork | grep -c eval)" 1

# ---- 4. other programs' TensorBoard files -------------------------------------------------
mkdir -p shared/tensorboard
echo "another tool" >shared/tensorboard/events.out.tfevents.1.other
run shared shared
expect "a folder with another program's event file: an earlier run" "$rc" 2
expect "another program's event file untouched" \
    "$(cat shared/tensorboard/events.out.tfevents.1.other)" "another tool"

# ---- 8. --overwrite removes only what dtrain wrote ----------------------------------------
cp -a full mixed
echo "a user's weights" >mixed/checkpoints/resnet50_epoch90.pt
echo "another tool" >mixed/tensorboard/events.out.tfevents.1.other
run mixed mixed --overwrite
expect "--overwrite with files dtrain did not write: refused" "$rc" 2
check "--overwrite: the foreign checkpoint file named" has mixed "checkpoints/resnet50_epoch90.pt"
check "--overwrite: the foreign event file named" has mixed "tensorboard/events.out.tfevents.1.other"
check "--overwrite refused: nothing removed" test -f mixed/checkpoints/resnet50_epoch90.pt \
    -a -d mixed/checkpoints/step-00000012 -a -f mixed/model.safetensors
mkdir usercfg
echo "my own notes" >usercfg/config.yaml
run usercfg usercfg --overwrite
expect "--overwrite of a folder with a user's config.yaml: refused" "$rc" 2
expect "the user's config.yaml kept" "$(cat usercfg/config.yaml)" "my own notes"
rm mixed/checkpoints/resnet50_epoch90.pt mixed/tensorboard/events.out.tfevents.1.other
run mixed-ok mixed --overwrite
expect "--overwrite of dtrain's own files" "$rc" 0
expect "--overwrite: a new history" "$(rows mixed)" "$full_rows"

# ---- 5. output.dir moved mid-run ----------------------------------------------------------
DTRAIN_TEST_STEP_DELAY_MS=400 timeout 120 "$dtrain" run.yaml "output.dir=$work/moving" >moving.log 2>&1 &
background=$!
for _ in $(seq 600); do [[ -e moving/checkpoints/latest ]] && break; sleep 0.1; done
mv moving moved
wait "$background"
rc=$?
background=""
expect "output.dir moved mid-run: exit 1" "$rc" 1
check "output.dir moved mid-run: the message names the folder" has moving "output.dir $work/moving was"
check "output.dir moved mid-run: not created again" test ! -e moving

# ---- 6. an interrupted resume from an older checkpoint ------------------------------------
cp -a full older
# killed writing its first checkpoint (step 10), after the history was cut back to step 8
DTRAIN_TEST_CKPT_CRASH=model DTRAIN_TEST_CKPT_CRASH_STEP=10 \
    run older-killed older --resume "$work/older/checkpoints/step-00000008"
check "the resume from step 8 was killed" test "$rc" -ne 0
expect "latest names the checkpoint resumed from" "$(cat older/checkpoints/latest)" "step-00000008"
run older-again older --resume
expect "the next --resume" "$rc" 0
check "the next --resume continues from step 8" has older-again "epoch 2, step 8"
expect "the history after two resumes" "$(rows older)" "$full_rows"

# ---- 7. a killed first checkpoint ---------------------------------------------------------
DTRAIN_TEST_CKPT_CRASH=model DTRAIN_TEST_CKPT_CRASH_STEP=2 run first-killed first
check "the first checkpoint was killed" test "$rc" -ne 0
run first-resume first --resume
expect "--resume without a complete checkpoint starts over" "$rc" 0
check "--resume without a complete checkpoint: says so" has first-resume "starting over"
expect "--resume without a complete checkpoint: a whole history" "$(rows first)" "$full_rows"
cp -a full nolatest
rm nolatest/checkpoints/latest
run nolatest nolatest --resume train.epochs=3
expect "--resume without latest" "$rc" 0
check "--resume without latest takes the newest step folder" has nolatest "step-00000012: epoch 2, step 12"
run fresh fresh --resume
expect "--resume in a new folder starts a run" "$rc" 0

# ---- 9 and 16. FIFO and link loop at latest -----------------------------------------------
cp -a full fifo
rm fifo/checkpoints/latest
mkfifo fifo/checkpoints/latest
run fifo fifo --resume train.epochs=3
expect "latest a FIFO: no hang, the newest complete checkpoint" "$rc" 0
check "latest a FIFO: says why" has fifo "latest: not a regular file (a FIFO)"
# SIGTERM during the start-up of such a resume ends it promptly: 75 with a checkpoint, or 143
cp -a full fifo-term
rm fifo-term/checkpoints/latest
mkfifo fifo-term/checkpoints/latest
"$dtrain" run.yaml "output.dir=$work/fifo-term" --resume train.epochs=3 >fifo-term.log 2>&1 &
background=$!
sleep 0.5
kill -TERM "$background"
for _ in $(seq 600); do kill -0 "$background" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$background" 2>/dev/null; then
    check_fail "SIGTERM during the start-up of a resume: still running after 60 s"
    kill -9 "$background"
fi
wait "$background"
rc=$?
background=""
check "SIGTERM during start-up: exit 75 or 143 (got $rc)" test "$rc" -eq 75 -o "$rc" -eq 143
if [[ $rc == 75 ]]; then
    check "SIGTERM during start-up: latest names a complete checkpoint" \
        test -f "fifo-term/checkpoints/$(cat fifo-term/checkpoints/latest)/state.json"
fi
cp -a full loop
rm loop/checkpoints/latest
ln -s latest loop/checkpoints/latest
run loop loop --resume train.epochs=3
expect "latest a link loop: the newest complete checkpoint" "$rc" 0
check "latest a link loop: says why" has loop "symbolic links"

# ---- 16. config.yaml and classes.txt replaced on resume; --resume of a missing folder -------
cp -a full linked
ln linked/config.yaml config-hardlink
ln linked/classes.txt classes-hardlink
cp linked/config.yaml config-before
cp linked/classes.txt classes-before
run linked linked --resume train.epochs=3 output.log_every=3
expect "a resume with other output keys" "$rc" 0
check "config.yaml replaced, not rewritten in place" same config-hardlink config-before
check "classes.txt replaced, not rewritten in place" same classes-hardlink classes-before
# the same classes are written again: only a new file (another inode) tells a replacement
check "classes.txt is a new file" test "$(stat -c %i linked/classes.txt)" != "$(stat -c %i classes-hardlink)"
check "config.yaml has the new values" grep -q "log_every: 3" linked/config.yaml
run missing full --resume "$work/no-such-folder"
expect "--resume of a missing folder" "$rc" 2
check "--resume of a missing folder: named" has missing "no-such-folder: no such checkpoint folder"

# ---- 16. the evaluation files are fsynced before their rename --------------------------------
if strace -f -o /dev/null true 2>/dev/null; then
    strace --seccomp-bpf -f -y -e trace=fsync -o fsync.trace \
        "$dtrain" run.yaml "output.dir=$work/synced" train.epochs=1 >synced.log 2>&1
    expect "a run under strace" "$?" 0
    for f in report.html confusion_matrix.csv predictions.csv classes.txt config.yaml; do
        check "$f fsynced before its rename" grep -q "$f.tmp>" fsync.trace
    done
else
    echo "strace cannot trace here: the fsync of each output file is not checked"
fi

check_summary output_dir
