#!/usr/bin/env python3
"""PyTorch peer for bench/bench_train.sh: images/s of a torchvision ResNet's training step
(forward, cross-entropy, backward, SGD) on random tensors, compute only, on the CPU; fp32, or
with --bf16-autocast the forward and loss under torch.autocast("cpu", torch.bfloat16) (fp32
weights and SGD), as PyTorch's CPU mixed-precision recipe does.

usage: pytorch_train_step.py [--arch resnet50] --size 224 --batch 64 --threads 2 --steps 5 --warmup 2 [--bf16-autocast]
Prints one line: "pytorch img_per_s=<float> step_s=<float> torch=<version> mode=<fp32|bf16>
cpu_s=<float> arch=<name>", cpu_s being the process's CPU seconds per measured step (all threads).
"""
import argparse
import time

import torch
import torchvision


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet18",
                   choices=["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--bf16-autocast", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, a.arch)(num_classes=a.classes)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16_autocast):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t0) / a.steps
    cpu = (time.process_time() - c0) / a.steps
    mode = "bf16" if a.bf16_autocast else "fp32"
    print(f"pytorch img_per_s={a.batch / dt:.2f} step_s={dt:.4f} torch={torch.__version__} mode={mode}"
          f" cpu_s={cpu:.4f} arch={a.arch}")


if __name__ == "__main__":
    main()
