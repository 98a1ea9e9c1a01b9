#!/usr/bin/python3
"""Compares the tensors of two safetensors files bit for bit.

  same_weights.py A B          the trainable tensors (BatchNorm running statistics and batch
                               counts are per rank by design, so left out)
  same_weights.py --all A B    every tensor

Exit 0 when they are equal, 1 naming the first tensor that differs (or is missing), 2 when a
file cannot be read.
"""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    header.pop("__metadata__", None)
    return {name: data[t["data_offsets"][0] : t["data_offsets"][1]] for name, t in header.items()}


def main():
    args = sys.argv[1:]
    every = args[:1] == ["--all"]
    if every:
        args = args[1:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        a, b = tensors(args[0]), tensors(args[1])
    except (OSError, ValueError, KeyError, struct.error) as error:
        print(f"same_weights.py: {error}", file=sys.stderr)
        return 2
    names = sorted(set(a) | set(b))
    if not every:
        names = [n for n in names if "running_" not in n and "num_batches" not in n]
    for name in names:
        if name not in a or name not in b:
            print(f"tensor {name} only in {args[0] if name in a else args[1]}")
            return 1
        if a[name] != b[name]:
            print(f"tensor {name} differs between {args[0]} and {args[1]}")
            return 1
    print(f"{len(names)} tensors bitwise equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
