#!/usr/bin/env python3
"""Checks that a file written by dtrain's safetensors writer loads in the Python `safetensors`
library (numpy backend) with the right dtypes, shapes and values, and that it is byte-identical
to what `safetensors.numpy.save_file` writes for the same tensors and metadata.

Usage: safetensors_interop.py PATH/TO/test_safetensors [WORK_DIR]
Needs `pip install safetensors numpy`; exits 77 (skipped) when they are missing. Not part of CI.
"""
import os
import subprocess
import sys
import tempfile


def expected_tensors(np):
    weights = np.arange(24, dtype=np.float32) * np.float32(0.5) - np.float32(3.0)
    return {
        "layer1.0.conv1.weight": weights.reshape(2, 3, 2, 2),
        "fc.bias": weights[:4].copy(),
        "half": np.array([1.0, -0.5, 65504.0], dtype=np.float16),
        "doubles": np.array([1.0 / 3.0, -2.5e300], dtype=np.float64),
        "bn1.num_batches_tracked": np.array(42, dtype=np.int64),
        "labels": np.array([0, -1, 2, 2147483647], dtype=np.int32),
        "mask": np.array([True, False, True], dtype=np.bool_),
        'name "with" quotes\\': np.array([1, 0, 1], dtype=np.uint8),
    }


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    try:
        import numpy as np
        import safetensors
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file
    except ImportError as missing:
        print(f"skipped: {missing}")
        return 77
    work_dir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="st_interop_")
    ours = os.path.join(work_dir, "dtrain.safetensors")
    theirs = os.path.join(work_dir, "python.safetensors")
    subprocess.run([sys.argv[1], "--write-sample", ours], check=True)

    failures = 0
    loaded = load_file(ours)
    expected = expected_tensors(np)
    if sorted(loaded) != sorted(expected):
        print(f"FAIL: names {sorted(loaded)} != {sorted(expected)}")
        failures += 1
    for name, want in expected.items():
        got = loaded.get(name)
        if got is None or got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
            print(f"FAIL: tensor {name!r}: got {got!r}, want {want!r}")
            failures += 1
    with safe_open(ours, framework="numpy") as f:
        if f.metadata() != {"format": "pt"}:
            print(f"FAIL: metadata {f.metadata()}")
            failures += 1

    save_file(expected, theirs, metadata={"format": "pt"})
    with open(ours, "rb") as a, open(theirs, "rb") as b:
        ours_bytes, theirs_bytes = a.read(), b.read()
    if ours_bytes != theirs_bytes:
        n = int.from_bytes(theirs_bytes[:8], "little")
        print("FAIL: files differ")
        print("  dtrain:", ours_bytes[8 : 8 + int.from_bytes(ours_bytes[:8], "little")])
        print("  python:", theirs_bytes[8 : 8 + n])
        failures += 1

    print(
        f"safetensors {safetensors.__version__}, numpy {np.__version__}: "
        f"{len(expected)} tensors checked, files {'identical' if ours_bytes == theirs_bytes else 'DIFFERENT'} "
        f"({len(ours_bytes)} bytes), {failures} failures"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
