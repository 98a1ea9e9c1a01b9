"""Reads shards written by `dtrain pack` with the Python webdataset package and checks them
against the ImageFolder they came from: the same samples in the same order, the labels of
classes.txt (torchvision ImageFolder's class order), the original image bytes, and images
that PIL decodes. Usage: webdataset_check.py IMAGEFOLDER SHARD_FOLDER"""
import glob
import io
import os
import sys

import webdataset as wds
from PIL import Image


def imagefolder_samples(root):
    # torchvision's ImageFolder order: sorted classes, then sorted os.walk, sorted names
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    samples = []
    for label, name in enumerate(classes):
        for directory, _, names in sorted(os.walk(os.path.join(root, name), followlinks=True)):
            for file_name in sorted(names):
                if file_name.lower().endswith((".jpg", ".jpeg", ".png")) and not file_name.startswith("."):
                    samples.append((os.path.join(directory, file_name), label))
    return classes, samples


def main():
    folder, shard_dir = sys.argv[1], sys.argv[2]
    classes, expected = imagefolder_samples(folder)
    with open(os.path.join(shard_dir, "classes.txt"), encoding="utf-8") as f:
        listed = f.read().splitlines()
    assert listed == classes, (listed, classes)
    shards = sorted(glob.glob(os.path.join(shard_dir, "*.tar")))
    assert len(shards) >= 2, f"expected several shards, found {shards}"
    dataset = wds.WebDataset(shards, shardshuffle=False)
    seen = 0
    for sample, (path, label) in zip(dataset, expected):
        image_key = next(k for k in ("jpg", "jpeg", "png") if k in sample)
        got_label = int(sample["cls"].decode())
        assert got_label == label, (sample["__key__"], got_label, label)
        with open(path, "rb") as f:
            assert sample[image_key] == f.read(), f"{sample['__key__']}: bytes differ from {path}"
        Image.open(io.BytesIO(sample[image_key])).convert("RGB").load()
        relative = os.path.relpath(path, folder)
        assert sample["__key__"] == os.path.splitext(relative)[0].replace(".", "_"), sample["__key__"]
        seen += 1
    assert seen == len(expected), (seen, len(expected))
    # the decoded pipeline users write: (image, label) tuples
    pairs = wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("jpg;jpeg;png", "cls")
    labels = [cls for _, cls in pairs]
    assert labels == [label for _, label in expected], "decoded labels differ"
    print(f"webdataset {wds.__version__ if hasattr(wds, '__version__') else ''}: "
          f"{seen} samples in {len(shards)} shards match the ImageFolder")


if __name__ == "__main__":
    main()
