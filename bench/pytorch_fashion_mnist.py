#!/usr/bin/env python3
"""PyTorch peer for bench/bench_accuracy.sh: trains torchvision's resnet18 from scratch on an
ImageFolder with the recipe of configs/fashion-mnist.yaml and dtrain's own train/validation split,
and prints the validation accuracy after every epoch and the wall time.

usage: pytorch_fashion_mnist.py --root DIR --size 32 [--epochs 3] [--batch 64] [--lr 0.01]
           [--momentum 0.9] [--val-fraction 0.2] [--split-seed 42] [--seed 0] [--threads 2]
           [--workers 1] [--optimizer sgd|adamw] [--weight-decay 0] [--no-wd-norm-bias]
           [--label-smoothing 0] [--ema-decay 0]
Last line: "pytorch val_acc=<float> n_val=<int> n_train=<int> seconds=<float>" (and
"ema_val_acc=<float>" with --ema-decay).

The recipe options are dtrain's train.optimizer (torch.optim.AdamW, betas 0.9/0.999, eps 1e-8),
train.weight_decay, train.no_weight_decay: norm_and_bias (timm's rule: no decay for tensors of one
dimension), train.label_smoothing (CrossEntropyLoss(label_smoothing)) and train.ema_decay (timm's
ModelEmaV2: every state-dict entry averaged after each step, num_batches_tracked copied).
Needs torch and torchvision (Debian's python3-torch / python3-torchvision); run by hand.

The split is dtrain's (src/data/split.c), reproduced here: the file indices 0..n-1 (in
ImageFolder order, which dtrain's scan also follows) are shuffled by Fisher-Yates driven by
SplitMix64 seeded with mix(split_seed, "SPLIT"); the first round(n * val_fraction) are the
validation set. The data pipeline is the PyTorch tutorial's: ImageFolder (PIL, RGB),
Resize((size, size)), ToTensor, Normalize; a shuffled DataLoader; SGD on the mean cross-entropy.
"""
import argparse
import math
import time

MASK64 = (1 << 64) - 1
SPLIT_STREAM_TAG = 0x53504C4954  # "SPLIT", as in src/data/split.c


class SplitMix64:
    """dtrain's generator (include/dtrain/rng.h)."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        return ((self.next() >> 32) * n) >> 32


def mix(seed, tag):
    rng = SplitMix64(seed ^ ((tag * 0xD1B54A32D192ED03) & MASK64))
    rng.next()
    return rng.next()


def dtrain_split(n_files, val_fraction, seed):
    """(train indices, validation indices), both ascending, exactly as dt_split_make."""
    n_val = int(math.floor(n_files * val_fraction + 0.5))
    if n_files >= 2:
        n_val = min(max(n_val, 1), n_files - 1)
    else:
        n_val = 0
    order = list(range(n_files))
    rng = SplitMix64(mix(seed, SPLIT_STREAM_TAG))
    for i in range(n_files, 1, -1):
        j = rng.below(i)
        order[i - 1], order[j] = order[j], order[i - 1]
    return sorted(order[n_val:]), sorted(order[:n_val])


def evaluate(torch, model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += y.numel()
    model.train()
    return correct / total, total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=42)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--mean", type=float, default=0.286)
    p.add_argument("--std", type=float, default=0.353)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--no-wd-norm-bias", action="store_true")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--ema-decay", type=float, default=0.0)
    a = p.parse_args()

    import torch
    import torchvision
    from torchvision import transforms

    start = time.monotonic()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    tf = transforms.Compose([
        transforms.Resize((a.size, a.size)),
        transforms.ToTensor(),
        transforms.Normalize([a.mean] * 3, [a.std] * 3),
    ])
    data = torchvision.datasets.ImageFolder(a.root, transform=tf)
    train_idx, val_idx = dtrain_split(len(data), a.val_fraction, a.split_seed)
    generator = torch.Generator().manual_seed(a.seed)
    train = torch.utils.data.DataLoader(torch.utils.data.Subset(data, train_idx),
                                        batch_size=a.batch, shuffle=True, generator=generator,
                                        num_workers=a.workers)
    val = torch.utils.data.DataLoader(torch.utils.data.Subset(data, val_idx), batch_size=256,
                                      num_workers=a.workers)
    model = torchvision.models.resnet18(num_classes=len(data.classes))
    params = list(model.named_parameters())
    if a.no_wd_norm_bias:
        groups = [{"params": [q for _, q in params if q.ndim > 1], "weight_decay": a.weight_decay},
                  {"params": [q for _, q in params if q.ndim <= 1], "weight_decay": 0.0}]
    else:
        groups = [{"params": [q for _, q in params], "weight_decay": a.weight_decay}]
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(groups, lr=a.lr, momentum=a.momentum)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)
    ema = None
    if a.ema_decay > 0:
        import copy
        ema = copy.deepcopy(model)
        for q in ema.parameters():
            q.requires_grad_(False)
    print(f"pytorch: {len(data)} images, {len(data.classes)} classes, train {len(train_idx)}, "
          f"val {len(val_idx)}, torch {torch.__version__}, {a.threads} threads, "
          f"{a.workers} loader workers", flush=True)
    acc = 0.0
    for epoch in range(1, a.epochs + 1):
        model.train()
        loss_sum = seen = 0
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
                        if e.is_floating_point():
                            e.copy_(a.ema_decay * e + (1.0 - a.ema_decay) * m)
                        else:
                            e.copy_(m)
            loss_sum += loss.item() * y.numel()
            seen += y.numel()
        acc, n_val = evaluate(torch, model, val)
        ema_text = ""
        if ema is not None:
            ema_acc, _ = evaluate(torch, ema, val)
            ema_text = f", ema_val_acc {ema_acc:.4f}"
        print(f"pytorch epoch {epoch}: train loss {loss_sum / seen:.4f}, val_acc {acc:.4f}"
              f"{ema_text} ({n_val} images), {time.monotonic() - start:.1f} s", flush=True)
    print(f"pytorch val_acc={acc:.4f} n_val={len(val_idx)} n_train={len(train_idx)} "
          f"seconds={time.monotonic() - start:.1f}" +
          (f" ema_val_acc={ema_acc:.4f}" if ema is not None else ""))


if __name__ == "__main__":
    main()
