#!/usr/bin/env python3
"""torchvision's side of bench/bench_augment.sh: the same ops on one SIZE x SIZE uint8 tensor,
one thread, in images per CPU second (the rates `bench_augment ops SIZE` prints).

    python3 bench/bench_augment_torchvision.py [SIZE=224]
"""
import sys
import time

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import TrivialAugmentWide, _apply_op


def rate(fn, img, min_seconds=1.0):
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < min_seconds:
        fn(img)
        n += 1
    return n / (time.process_time() - t0)


def main():
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 224
    torch.set_num_threads(1)
    torch.manual_seed(0)
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    img = torch.stack([(x * 200 // size + y * 55 // size + c * 30) % 256 for c in range(3)])
    img = (img + torch.randint(0, 16, img.shape)).clamp(0, 255).to(torch.uint8)
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    erasing = T.RandomErasing(0.25)
    trivial = TrivialAugmentWide()
    settings = {
        "jitter": jitter,
        "erasing": lambda i: erasing(i.float()),  # RandomErasing works on the float tensor
        "trivial": trivial,
        "all": lambda i: erasing(jitter(trivial(i)).float()),
    }
    for name, fn in settings.items():
        print(f"setting_{name}_img_per_cpu_s={rate(fn, img):.0f}")
    space = trivial._augmentation_space(31)
    for op_name, (magnitudes, _signed) in space.items():
        magnitude = float(magnitudes[15].item()) if magnitudes.ndim > 0 else 0.0
        fn = lambda i: _apply_op(i, op_name, magnitude, InterpolationMode.NEAREST, None)  # noqa
        print(f"op_{op_name}_img_per_cpu_s={rate(fn, img):.0f}")
    for name, fn in (("brightness", lambda i: F.adjust_brightness(i, 1.2)),
                     ("contrast", lambda i: F.adjust_contrast(i, 1.2)),
                     ("saturation", lambda i: F.adjust_saturation(i, 1.2)),
                     ("hue", lambda i: F.adjust_hue(i, 0.05))):
        print(f"jitter_{name}_img_per_cpu_s={rate(fn, img):.0f}")


if __name__ == "__main__":
    main()
