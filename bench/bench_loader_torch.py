"""The PyTorch peer of bench_loader: images/s of torch.utils.data.DataLoader feeding uint8
batches of 224 px RandomResizedCrop + RandomHorizontalFlip (PILToTensor: uint8, as dtrain's
loader hands over) from a torchvision ImageFolder, or from tar shards through webdataset.

    bench_loader_torch.py folder|webdataset ROOT IMAGE_SIZE WORKERS EPOCHS

Prints first_epoch_img_per_s and steady_img_per_s (the epochs after the first), as bench_loader,
and with WORKERS 0 (all work in this process) steady_img_per_cpu_s: images per CPU second.
"""
import glob
import os
import sys
import time

import torch
import torchvision
from torchvision import transforms


def main():
    kind, root, size, workers, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(1)
    transform = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                    transforms.PILToTensor()])
    if kind == "folder":
        dataset = torchvision.datasets.ImageFolder(root, transform=transform)
        n = len(dataset)
        loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers,
                                             persistent_workers=workers > 0)
    else:
        import webdataset as wds
        shards = sorted(glob.glob(os.path.join(root, "*.tar")))
        n = sum(1 for _ in wds.WebDataset(shards, shardshuffle=False).to_tuple("__key__"))
        dataset = (wds.WebDataset(shards, shardshuffle=True, nodesplitter=wds.split_by_node)
                   .shuffle(1000).decode("pil").to_tuple("jpg;jpeg;png", "cls")
                   .map_tuple(transform, lambda c: c))
        # every worker reads whole shards: as many workers as shards at most
        loader = wds.WebLoader(dataset, batch_size=64, num_workers=min(workers, len(shards)))
    times, cpu = [], []
    for _ in range(epochs):
        start, cpu_start = time.perf_counter(), time.process_time()
        count = 0
        for images, _ in loader:
            count += images.shape[0]
        times.append((time.perf_counter() - start, count))
        cpu.append(time.process_time() - cpu_start)
    print(f"n_files={n}")
    print(f"first_epoch_img_per_s={times[0][1] / times[0][0]:.1f}")
    if epochs > 1:
        later = times[1:]
        print(f"steady_img_per_s={sum(c for _, c in later) / sum(t for t, _ in later):.1f}")
        if workers == 0:
            print(f"steady_img_per_cpu_s={sum(c for _, c in later) / sum(cpu[1:]):.1f}")


if __name__ == "__main__":
    main()
