#!/usr/bin/env python3
"""Writes tests/reference/augment_ops.safetensors: torchvision's functional tensor ops on a small
seeded uint8 image with fixed parameters, for tests/test_data_augment.c.

Run by hand (never by CI) with torchvision 0.29:

    VENV/bin/python tests/reference/make_augment_fixture.py   # VENV: torch 2.15, torchvision 0.29

The file holds `input` (24 x 24 x 3 uint8, HWC), one `case.NAME` output per case (HWC uint8),
TrivialAugmentWide's magnitude tables as torchvision builds them (`magnitudes.OP`, float64 of the
float32 values, 31 bins), and metadata: `cases` (the names, comma-separated), `op.NAME` and
`param.NAME` (the parameter as a repr of the Python float passed to torchvision), and
`input.NAME` when a case starts from `input_corners` (the same image with its last two rows
replaced by corner cases: grays, black, white, primaries, ties between channels).
"""
import argparse
import os

import numpy as np

# the safetensors writer of the ResNet fixtures (this folder's make_fixtures.py)
from make_fixtures import write_safetensors
import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import TrivialAugmentWide, _apply_op

SIZE = 24


def seeded_image():
    """A smooth picture with texture, kept inside [30, 220] so that autocontrast and equalize
    have work to do."""
    rng = np.random.default_rng(20261206)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    img = np.zeros((SIZE, SIZE, 3), np.int64)
    for c in range(3):
        img[..., c] = 30 + (x * 5 + y * 3 + c * 40) % 150 + rng.integers(0, 40, (SIZE, SIZE))
    return np.clip(img, 30, 220).astype(np.uint8)


def corner_image():
    """seeded_image with its last two rows replaced by the corner cases"""
    img = seeded_image()
    # the last two rows: the corner cases of the HSV round trip and of the clamps (grays, black,
    # white, pure and mixed primaries, ties between the largest channels)
    special = [(0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (0, 255, 0),
               (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (200, 200, 10),
               (10, 200, 200), (200, 10, 200), (1, 0, 0), (0, 1, 1), (254, 255, 255),
               (90, 30, 30), (30, 90, 30), (30, 30, 90), (250, 3, 128), (7, 250, 190),
               (60, 60, 61), (255, 128, 0), (0, 128, 255), (17, 17, 16)]
    for i, rgb in enumerate(special * 2):
        img[SIZE - 2 + i // SIZE, i % SIZE] = rgb
    return img


# (name, op, parameter): the colour ops take the factor, the TrivialAugmentWide ops the signed
# magnitude of a bin of torchvision's own table (so the tables are checked too).
COLOR_CASES = [
    ("brightness_0.6", "brightness", 0.6),
    ("brightness_1.37", "brightness", 1.37),
    ("brightness_1.9", "brightness", 1.9),
    ("contrast_0.45", "contrast", 0.45),
    ("contrast_1.8", "contrast", 1.8),
    ("saturation_0.3", "saturation", 0.3),
    ("saturation_1.75", "saturation", 1.75),
    ("hue_0.1", "hue", 0.1),
    ("hue_-0.27", "hue", -0.27),
    ("hue_0.5", "hue", 0.5),
    ("hue_-0.5", "hue", -0.5),
    ("hue_0.013", "hue", 0.013),
]
TRIVIAL_CASES = [  # (op name, bin, sign)
    ("Identity", None, 1),
    ("ShearX", 9, 1), ("ShearX", 30, -1),
    ("ShearY", 17, 1), ("ShearY", 4, -1),
    ("TranslateX", 5, 1), ("TranslateX", 3, -1),
    ("TranslateY", 6, -1), ("TranslateY", 2, 1),
    ("Rotate", 7, 1), ("Rotate", 30, -1), ("Rotate", 13, 1),
    ("Brightness", 25, -1), ("Brightness", 12, 1),
    ("Color", 20, -1), ("Color", 29, 1),
    ("Contrast", 8, -1), ("Contrast", 30, 1),
    ("Sharpness", 15, 1), ("Sharpness", 22, -1),
    ("Posterize", 0, 1), ("Posterize", 14, 1), ("Posterize", 30, 1),
    ("Solarize", 3, 1), ("Solarize", 16, 1),
    ("AutoContrast", None, 1),
    ("Equalize", None, 1),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                                      "augment_ops.safetensors"))
    args = parser.parse_args()
    image = seeded_image()
    chw = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    corners = corner_image()
    tensors = {"input": image, "input_corners": corners}
    metadata = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    names = []
    color_ops = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
                 "saturation": F.adjust_saturation, "hue": F.adjust_hue}
    for name, op, param in COLOR_CASES:
        # the colour ops also on the corner cases (grays, black, white, primaries, ties)
        out = color_ops[op](torch.from_numpy(corners).permute(2, 0, 1).contiguous(), param)
        metadata["input." + name] = "input_corners"
        tensors["case." + name] = out.permute(1, 2, 0).contiguous().numpy()
        metadata["op." + name], metadata["param." + name] = op, repr(float(param))
        names.append(name)
    space = TrivialAugmentWide()._augmentation_space(31)
    for op_name, (magnitudes, _signed) in space.items():
        if magnitudes.ndim > 0:
            tensors["magnitudes." + op_name] = magnitudes.to(torch.float64).numpy()
    for op_name, bin_index, sign in TRIVIAL_CASES:
        magnitudes, _signed = space[op_name]
        magnitude = float(magnitudes[bin_index].item()) if bin_index is not None else 0.0
        magnitude *= sign
        out = _apply_op(chw, op_name, magnitude, interpolation=InterpolationMode.NEAREST,
                        fill=None)
        name = f"{op_name}_{'' if bin_index is None else bin_index}{'-' if sign < 0 else ''}"
        tensors["case." + name] = out.permute(1, 2, 0).contiguous().numpy()
        metadata["op." + name], metadata["param." + name] = op_name, repr(magnitude)
        names.append(name)
    metadata["cases"] = ",".join(names)
    write_safetensors(args.out, tensors, metadata)
    print(f"{args.out}: {len(names)} cases, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
