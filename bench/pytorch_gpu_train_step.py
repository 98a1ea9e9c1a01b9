#!/usr/bin/env python3
"""PyTorch peer for bench/bench_train_step (dtrain's CUDA backend): images/s of torchvision
resnet18's training step (forward, cross-entropy, backward, SGD with momentum) on one GPU, on
random tensors already on the device, channels_last, with cudnn.benchmark on and fused SGD.

  fp32: TF32 off in cuDNN and cuBLAS (true fp32, as dtrain's fp32)
  tf32: TF32 allowed in both
  bf16: autocast to bfloat16 (fp32 master weights, as dtrain's bf16)

usage: pytorch_gpu_train_step.py --precision fp32 --size 224 --batch 256 --steps 20 --warmup 5
Prints one line: "pytorch precision=<p> size=<s> batch=<b> img_per_s=<float> step_s=<float>".
Exits 3 when torch sees no GPU.
"""
import argparse
import contextlib
import sys
import time

import torch
import torchvision


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--classes", type=int, default=10)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("pytorch: no GPU visible to torch", file=sys.stderr)
        sys.exit(3)
    tf32 = a.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = torchvision.models.resnet18(num_classes=a.classes).to(dev)
    model = model.to(memory_format=torch.channels_last)
    model.train()
    # fused: one kernel for the whole update (CUDA), PyTorch's fastest SGD
    opt = torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, fused=True
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, a.classes, (a.batch,), device=dev)

    def autocast():
        if a.precision == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / a.steps
    print(
        f"pytorch precision={a.precision} size={a.size} batch={a.batch} "
        f"img_per_s={a.batch / dt:.2f} step_s={dt:.4f} torch={torch.__version__} "
        f"cudnn={torch.backends.cudnn.version()} gpu={torch.cuda.get_device_name(0).replace(' ', '_')}"
    )


if __name__ == "__main__":
    main()
