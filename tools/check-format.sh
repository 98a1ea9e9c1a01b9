#!/usr/bin/env bash
# Fails when a C/CUDA source is not formatted with the repository's .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null ||
                     find src include tests tools bench -name '*.[ch]')
((${#files[@]})) || exit 0
clang-format --dry-run -Werror -style=file "${files[@]}"
echo "format: ${#files[@]} files clean"
