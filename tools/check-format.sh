#!/usr/bin/env bash
# Fails when a C/CUDA source is not formatted with the repository's .clang-format. Formatting
# differs between clang-format major versions, so the check runs with the pinned major version
# (Debian 12's) and is skipped, with a one-line notice, on any other.
set -euo pipefail
cd "$(dirname "$0")/.."
pinned=14
if ! command -v clang-format >/dev/null; then
  echo "format: clang-format is not installed (bash tools/install-deps.sh installs it)" >&2
  exit 1
fi
version=$(clang-format --version | sed -n 's/.*version \([0-9][0-9]*\)\..*/\1/p')
if [ "$version" != "$pinned" ]; then
  echo "format: skipped: clang-format ${version:-of unknown version} is not the pinned major version $pinned"
  exit 0
fi
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null ||
                     find src include tests tools bench -name '*.[ch]')
((${#files[@]})) || exit 0
clang-format --dry-run -Werror -style=file "${files[@]}"
echo "format: ${#files[@]} files clean"
