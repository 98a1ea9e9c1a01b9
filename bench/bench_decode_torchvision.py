"""Single-threaded images/s of the PyTorch tutorial's data path on a folder of images:
torchvision's ImageFolder loader (PIL open + convert("RGB")), Resize((SIZE, SIZE)), ToTensor,
Normalize; and PIL decode only. Run with the Debian python (/usr/bin/python3) that has
torch + torchvision. Prints key=value lines for bench/bench_decode.sh.

usage: bench_decode_torchvision.py DIR [SIZE=224] [REPEAT=3]
"""
import os
import sys
import time

import torch
from torchvision import transforms
from torchvision.datasets.folder import default_loader


def main():
    folder = sys.argv[1]
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 224
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    torch.set_num_threads(1)
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if name.lower().endswith((".jpg", ".jpeg", ".png")) and not name.startswith("."))
    transform = transforms.Compose([
        transforms.Resize((size, size)),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    for path in paths:  # untimed pass: page cache warm
        default_loader(path)
    checksum = 0.0
    start = time.perf_counter()
    for _ in range(repeat):
        for path in paths:
            checksum += float(transform(default_loader(path))[0, 0, 0])
    pipeline = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeat):
        for path in paths:
            checksum += default_loader(path).size[0]
    decode = time.perf_counter() - start
    images = len(paths) * repeat
    print(f"files={len(paths)}")
    print(f"torchvision_pipeline_img_per_s={images / pipeline:.1f}")
    print(f"pil_decode_img_per_s={images / decode:.1f}")
    print(f"checksum={checksum:.3f}")


if __name__ == "__main__":
    main()
