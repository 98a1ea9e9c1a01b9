#!/usr/bin/env bash
# `dtrain pack` output read by the Python webdataset package: makes a venv with webdataset and
# Pillow from PyPI ($DTRAIN_TEST_WDS_VENV, else /var/cache/dtrain/webdataset-venv, kept so that
# it is made once), packs a generated ImageFolder into several shards and runs
# webdataset_check.py on them. Fails, saying so, when pip cannot install the packages.
# Usage: webdataset_check.sh DTRAIN MAKE_IMAGEFOLDER
set -euo pipefail
dtrain=$1
make_folder=$2
here=$(cd "$(dirname "$0")" && pwd)
venv="${DTRAIN_TEST_WDS_VENV:-/var/cache/dtrain/webdataset-venv}"
requirements=(webdataset==1.0.2 pillow==11.3.0)
stamp="$venv/.dtrain-requirements"
if ! [ -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  mkdir -p "$(dirname "$venv")"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"; then
    echo "pip could not install ${requirements[*]} into $venv" >&2
    exit 1
  fi
  echo "${requirements[*]}" > "$stamp"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-wds-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$make_folder" "$work/folder" 4 30 48 3 > /dev/null
# a name with dots and a PNG: keys are the path without the extension, dots made '_'
cp "$work/folder/class01/img0003.jpg" "$work/folder/class01/a.b.c.jpg"
"$dtrain" pack "$work/folder" "$work/shards" --shard-size 0.05 > /dev/null # several shards
"$venv/bin/python" "$here/webdataset_check.py" "$work/folder" "$work/shards"
