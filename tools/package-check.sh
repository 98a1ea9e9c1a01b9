#!/usr/bin/env bash
# The Debian package as a user installs it: builds dtrain without CUDA in build-deb/ (the package
# for machines without the CUDA toolkit; cuDNN and NCCL are no Debian packages), makes the .deb
# with CPack (dependencies from dpkg-shlibdeps), installs it with apt, checks that dtrain on PATH
# is the package's /usr/bin/dtrain, and trains (1 epoch) and evaluates the demo with it from the
# package's own config (2,000 training images, 1 epoch; then the 10,000 test images). Run by tools/fresh-check.sh in the fresh Debian 12
# root after the two quick-start commands; as root. Prints the time of each part.
# It installs a package system-wide, so it runs only inside that root (or with --here).
set -euo pipefail
if [[ -z ${DTRAIN_FRESH_CHECK_INSIDE:-} && ${1:-} != --here ]]; then
    echo "package-check: installs dtrain system-wide; run it through tools/fresh-check.sh" \
        "(or with --here on a machine meant for it)" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
now() { date +%s; }
took() { echo "package-check: $1: $(($(now) - $2)) s"; }
t=$(now)
bash tools/install-deps.sh # the build dependencies (after tools/demo.sh: nothing to do)
bash tools/install-deps.sh file dpkg-dev # dpkg-shlibdeps, and `file` for CPack
took "dependencies" "$t"
t=$(now)
cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DDTRAIN_CUDA=OFF -DDTRAIN_TESTS=OFF >/dev/null
cmake --build build-deb -j"$(nproc)" --target dtrain fashion_mnist_to_imagefolder >/dev/null
(cd build-deb && cpack -G DEB >/dev/null)
deb=$(ls "$PWD"/build-deb/dtrain_*_*.deb)
took "build and cpack" "$t"
dpkg-deb -f "$deb" Package Version Depends

t=$(now)
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
[[ $(command -v dtrain) == /usr/bin/dtrain ]] || { echo "package-check: dtrain on PATH is $(command -v dtrain), not /usr/bin/dtrain" >&2; exit 1; }
dpkg -S /usr/bin/dtrain
took "apt install" "$t"

t=$(now)
build-deb/fashion_mnist_to_imagefolder --out data/fm-deb --test-out data/fm-deb-test \
    --limit 2000 >/dev/null
dtrain /usr/share/dtrain/configs/fashion-mnist.yaml data.root=data/fm-deb train.epochs=1 \
    output.dir=runs/fm-deb --overwrite
dtrain eval /usr/share/dtrain/configs/fashion-mnist.yaml data.root=data/fm-deb \
    output.dir=runs/fm-deb --data data/fm-deb-test | tail -n 1
took "demo from the package" "$t"
