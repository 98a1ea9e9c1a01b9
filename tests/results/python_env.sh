#!/usr/bin/env bash
# Test set-up: a Python virtual environment with TensorBoard (its event-file reader), scikit-learn
# (the classification report reference) and Pillow (PNG decoding), installed from PyPI with pip.
# Kept outside the build folder so that rebuilds reuse it: $DTRAIN_TEST_VENV, else
# /var/cache/dtrain/test-venv. Prints the venv's python on success; fails when PyPI is unreachable.
set -euo pipefail
venv="${DTRAIN_TEST_VENV:-/var/cache/dtrain/test-venv}"
requirements=(tensorboard==2.21.0 scikit-learn==1.7.2 pillow==11.3.0)
stamp="$venv/.dtrain-requirements"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${requirements[*]}" ]; then
  echo "$venv/bin/python"
  exit 0
fi
mkdir -p "$(dirname "$venv")"
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2
"$venv/bin/python" -c "import tensorboard, sklearn, PIL" >&2
echo "${requirements[*]}" > "$stamp"
echo "$venv/bin/python"
