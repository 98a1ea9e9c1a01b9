#!/usr/bin/env bash
# Quick start, part 2 (and CI): installs the dependencies, builds with warnings as errors (the
# CUDA parts too when the toolkit is present), runs the whole test suite, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite there too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
# For the tests only, so not in the demo's list: the cluster/ scripts on a throwaway Slurm
# (tests/slurm; on a systemd machine the munge service starts, slurmd and slurmctld stay off
# without /etc/slurm/slurm.conf), dtrain under valgrind and gdb (tests/CMakeLists.txt, section
# startup), Lmod for the installed module file (section install), and the namespace cluster of
# tests/multinode (ip from iproute2, pgrep from procps, python3 for its launch agent).
bash tools/install-deps.sh slurm-wlm munge valgrind gdb lmod iproute2 procps python3
jobs=$(nproc)

echo "== format check"
bash tools/check-format.sh

echo "== release build (-Werror)"
cmake -S . -B build/ci -DCMAKE_BUILD_TYPE=Release -DDTRAIN_WERROR=ON >/dev/null
cmake --build build/ci -j"$jobs"
(cd build/ci && ctest --output-on-failure -j"$jobs")

echo "== sanitizer build (ASan + UBSan, -Werror)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DDTRAIN_WERROR=ON -DDTRAIN_SANITIZE=ON \
  -DDTRAIN_CUDA=OFF >/dev/null
cmake --build build/asan -j"$jobs"
# Leak checking is on. LeakSanitizer's tracer crashed (signal 11 while it scanned thread-local
# storage) at the exit of a training run whose program module the former launcher dlopened, so
# the tests that run the dtrain executable had it off; dtrain is now one executable, and those
# that have run with leak checking since have it on again. The rest still turn it off in their
# ctest ENVIRONMENT: the MPI jobs (the comm section of tests/CMakeLists.txt says why) and the
# tests not yet rerun with it. Address and undefined-behaviour checks stay on for every test.
export ASAN_OPTIONS="detect_leaks=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd build/asan && ctest --output-on-failure -j"$jobs")
