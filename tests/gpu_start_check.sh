#!/bin/bash
# Start-up of a CUDA build on a machine without what a GPU run needs.
#   gpu_start_check.sh linkage DTRAIN
#     no DT_NEEDED entry on libnccl in dtrain or its program module (NCCL is dlopened), and
#     `dtrain --version` runs when libnccl.so.2 cannot be loaded, saying so.
set -u
mode=$1
dtrain=$2

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

if [[ $mode == linkage ]]; then
    module=$(dirname "$(readlink -f "$dtrain")")/libdtrain_main.so
    for file in "$dtrain" "$module"; do
        needed=$(readelf -d "$file" 2>&1)
        expect_match "readelf -d $(basename "$file") runs" "$needed" "*Dynamic section*"
        expect "libnccl in the DT_NEEDED entries of $(basename "$file")" \
            "$(grep NEEDED <<<"$needed" | grep -c libnccl)" 0
    done
    out=$(DTRAIN_NCCL_LIBRARY=/nonexistent-dir/libnccl.so.2 "$dtrain" --version 2>&1)
    expect "dtrain --version without NCCL: exit code" "$?" 0
    expect_match "dtrain --version without NCCL names it" "$out" \
        "*CUDA: *nccl not loadable (libnccl.so.2: needed only by several GPU ranks)*"
    check_summary gpu_start_linkage
    exit
fi
echo "gpu_start_check.sh: unknown mode $mode" >&2
exit 2
