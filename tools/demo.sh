#!/usr/bin/env bash
# Quick start, part 1: installs the dependencies, builds dtrain, turns Debian's Fashion-MNIST
# package into an ImageFolder of JPEGs (first 12,000 training images) and trains ResNet-18 on it
# for 3 epochs at 32x32. Prints the validation accuracy and where the outputs are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target dtrain fashion_mnist_to_imagefolder
build/fashion_mnist_to_imagefolder --out data/fashion-mnist --limit 12000
# --overwrite: each demo run replaces the previous one in runs/fashion-mnist
build/dtrain configs/fashion-mnist.yaml --overwrite "$@"
