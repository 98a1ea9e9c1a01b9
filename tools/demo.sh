#!/usr/bin/env bash
# Quick start, part 1: installs the dependencies, builds dtrain, turns Debian's Fashion-MNIST
# package into ImageFolders of JPEGs (first 12,000 training images; the 10,000 test images in a
# folder of their own), trains ResNet-18 on the training images for 3 epochs at 32x32, then
# evaluates the best model on the test folder. Prints the accuracies and where the outputs are.
# DTRAIN_DEMO_BIN=PATH trains and evaluates with an installed dtrain (e.g. /usr/bin/dtrain from
# the Debian package) instead of the one built here (the converter is still built here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target dtrain fashion_mnist_to_imagefolder
dtrain=${DTRAIN_DEMO_BIN:-build/dtrain}
build/fashion_mnist_to_imagefolder --out data/fashion-mnist --test-out data/fashion-mnist-test --limit 12000
# --overwrite: each demo run replaces the previous one in runs/fashion-mnist
"$dtrain" configs/fashion-mnist.yaml --overwrite "$@"
# the held-out test images, never seen in training: results in runs/fashion-mnist/eval/fashion-mnist-test/
"$dtrain" eval configs/fashion-mnist.yaml --data data/fashion-mnist-test "$@"
