#!/usr/bin/env bash
# Installs what dtrain needs to build, test and run its demo on Debian 12 (as root, or with
# sudo): compiler and CMake, oneDNN, libjpeg-turbo, libpng, libyaml, Open MPI, the
# Fashion-MNIST data package (gcc brings the sanitizer runtimes), Chromium and python3-venv for the
# report and TensorBoard tests. The CUDA toolkit, cuDNN and NCCL are
# not Debian packages: when present (nvcc on PATH) the CUDA parts are built too.
# With package names as arguments it installs those instead (tools/fresh-check.sh: debootstrap).
set -euo pipefail
packages=(build-essential cmake pkg-config clang-format
          libdnnl-dev libjpeg62-turbo-dev libjpeg-turbo-progs libpng-dev
          zlib1g-dev libyaml-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist
          chromium python3-venv) # the report and TensorBoard tests (tests/CMakeLists.txt, section results)
(($# == 0)) || packages=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
