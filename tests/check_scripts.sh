#!/bin/bash
# Syntax-checks the shell scripts (launch/, cluster/, tests/*.sh, tests/testlib/*.sh, tests/slurm/,
# bench/*.sh, tools/*.sh) with `bash -n`, and lints them with the shellcheck linter when it is
# installed (following the files they source). Usage: check_scripts.sh SOURCE_DIR [LINTER]
set -u
source_dir=$1
shellcheck=${2:-}
[[ $shellcheck == *NOTFOUND* ]] && shellcheck=""

passed=0
failed=0
scripts=()
for file in "$source_dir"/launch/* "$source_dir"/cluster/* "$source_dir"/tests/*.sh \
    "$source_dir"/tests/testlib/*.sh "$source_dir"/tests/slurm/*.sh "$source_dir"/tests/shards/*.sh "$source_dir"/bench/*.sh \
    "$source_dir"/tools/*.sh; do
    [[ -f $file ]] || continue
    # Shell scripts: *.sh, *.sbatch, or a bash/sh shebang (README.md and the like are skipped).
    if [[ $file == *.sh || $file == *.sbatch ]] || head -n 1 "$file" | grep -qE '^#!.*\b(ba)?sh\b'; then
        scripts+=("$file")
    fi
done

if [[ ${#scripts[@]} -lt 10 ]]; then
    echo "check_scripts.sh: expected the repository's scripts, found ${#scripts[@]}" >&2
    failed=$((failed + 1))
fi
for script in "${scripts[@]}"; do
    if bash -n "$script"; then
        passed=$((passed + 1))
    else
        echo "check_scripts.sh: bash -n failed: $script" >&2
        failed=$((failed + 1))
    fi
    if [[ -n $shellcheck ]]; then
        if "$shellcheck" --external-sources --shell=bash --severity=style "$script"; then
            passed=$((passed + 1))
        else
            echo "check_scripts.sh: shellcheck failed: $script" >&2
            failed=$((failed + 1))
        fi
    fi
done
echo "scripts (${#scripts[@]} files${shellcheck:+, shellcheck}): $passed passed, $failed failed"
[[ $failed -eq 0 ]]
