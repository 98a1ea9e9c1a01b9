#!/usr/bin/env python3
"""Writes tests/reference/loss_targets.safetensors: the training loss of dtrain's
softmax_cross_entropy op (label smoothing, mixup/cutmix targets) as PyTorch computes it.

Each case has float32 logits [N, K], labels [N], the partner labels [N] (timm's target.flip(0)),
per-sample weights [N] (0 = a padding slot that must add nothing), and params = [eps, lam].
The references are computed in float64 from the float32 logits:
  - lam == 1: torch.nn.functional.cross_entropy(logits, labels, label_smoothing=eps,
    reduction='none') (torch.nn.CrossEntropyLoss semantics), summed over the weighted samples;
  - otherwise timm's mixup_target written out in numpy (timm is not needed):
    off = eps / K, on = 1 - eps + off, t = lam * one_hot(y, on, off) + (1 - lam) *
    one_hot(y.flip(0), on, off), loss_i = sum(-t_i * log_softmax(x_i)) (SoftTargetCrossEntropy).
loss is the weighted sum, dlogits its gradient (autograd), correct the count of counted samples
whose argmax is the label of larger weight (labels when lam >= 0.5, else the partner's).
torch_f32.* hold the same loss and gradient computed in float32, for the noise level.

Run by hand (CI never runs it):
    python3 tests/reference/make_loss_fixture.py
(any Python with torch >= 1.10 and numpy).
"""
import os

import numpy as np

# the safetensors writer of the ResNet fixtures (this folder's make_fixtures.py)
from make_fixtures import write_safetensors
import torch

def one_hot(y, k, on, off):
    out = np.full((len(y), k), off, dtype=np.float64)
    out[np.arange(len(y)), y] = on
    return out


def loss_and_grad(logits, labels, second, weights, eps, lam, dtype):
    x = torch.tensor(logits, dtype=dtype, requires_grad=True)
    w = torch.tensor(weights, dtype=dtype)
    k = logits.shape[1]
    if lam == 1.0:
        per_sample = torch.nn.functional.cross_entropy(
            x, torch.tensor(labels), label_smoothing=eps, reduction="none")
    else:
        off = eps / k
        on = 1.0 - eps + off
        target = lam * one_hot(labels, k, on, off) + (1.0 - lam) * one_hot(second, k, on, off)
        t = torch.tensor(target, dtype=dtype)
        per_sample = torch.sum(-t * torch.log_softmax(x, dim=-1), dim=-1)
    # padding slots: excluded (their labels may be anything)
    loss = torch.sum(torch.where(w != 0, w * per_sample, torch.zeros_like(per_sample)))
    loss.backward()
    return loss.detach().numpy(), x.grad.numpy()


def make_case(rng, n, k, eps, lam, padding):
    logits = (rng.standard_normal((n, k)) * 2.5).astype(np.float32)
    labels = rng.integers(0, k, n)
    logits[0, labels[0]] += 4.0  # a confident, correct sample
    second = labels[::-1].copy()  # timm: target.flip(0)
    weights = np.ones(n, dtype=np.float32)
    if padding:
        weights[-1] = 0.0
    loss, grad = loss_and_grad(logits.astype(np.float64), labels, second, weights, eps, lam,
                               torch.float64)
    loss32, grad32 = loss_and_grad(logits, labels, second, weights, eps, lam, torch.float32)
    hard = labels if lam >= 0.5 else second
    correct = float(np.sum((np.argmax(logits, axis=1) == hard) * (weights != 0)))
    return {"logits": logits, "labels": labels.astype(np.int64), "second": second.astype(np.int64),
            "weights": weights, "params": np.array([eps, lam], dtype=np.float64),
            "loss": np.array([loss], dtype=np.float64), "dlogits": grad.astype(np.float64),
            "correct": np.array([correct], dtype=np.float64),
            "torch_f32.loss": np.array([loss32], dtype=np.float64),
            "torch_f32.dlogits": grad32.astype(np.float64)}


def main():
    rng = np.random.default_rng(23)
    cases = {
        "smooth": (8, 10, 0.1, 1.0, False),      # CrossEntropyLoss(label_smoothing=0.1)
        "smooth_pad": (7, 5, 0.3, 1.0, True),    # with a padding slot
        "mixup": (8, 10, 0.1, 0.35, False),      # timm mixup_target, smoothing 0.1
        "cutmix": (6, 4, 0.0, 0.8125, True),     # corrected lambda, no smoothing, padding
        "half": (6, 3, 0.2, 0.5, False),         # lambda 0.5: accuracy counts the first label
    }
    tensors = {}
    for name, args in cases.items():
        for key, value in make_case(rng, *args).items():
            tensors[f"{name}.{key}"] = value
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loss_targets.safetensors")
    write_safetensors(path, tensors, {"cases": ",".join(cases), "torch": torch.__version__})
    print(f"wrote {path} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
