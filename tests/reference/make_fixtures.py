#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures that tests/test_reference.c compares dtrain against, and
checks a model exported by dtrain in PyTorch.

    /usr/bin/python3 tests/reference/make_fixtures.py             # (re)write the fixtures here
    /usr/bin/python3 tests/reference/make_fixtures.py --cases resnet50_b4_s64 ...  # only these
    /usr/bin/python3 tests/reference/make_fixtures.py --check-export DIR
          # DIR written by `build/tests/test_reference --export DIR [CASE]`: loads
          # DIR/model.safetensors into torchvision's model of that case's architecture (resnet18,
          # ..., resnet152) with strict=True and compares its eval-mode logits with the ones
          # dtrain computed (DIR/logits.safetensors)
    /usr/bin/python3 tests/reference/make_fixtures.py --write-state-dict FILE
          # torchvision's state_dict() of the round-trip model, for `dtrain ... model.pretrained=`

Needs torch and torchvision (Debian's python3-torch 1.13 / python3-torchvision 0.14 were used)
and numpy; safetensors files are read and written by the small functions below, so the
`safetensors` package is not needed. Run by hand, not in CI; the fixtures are checked in.

The weights and inputs come from a seeded generator that the C test reproduces bit for bit
(no transcendental functions; every value is computed in float64 and rounded once to float32):

    SplitMix64:  state += 0x9E3779B97F4A7C15; z = state;
                 z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) * 0x94D049BB133111EB;
                 output z ^ z >> 31                                   (all mod 2^64)
    mix(seed, tag) = the second output of a generator started at seed ^ (tag * 0xD1B54A32D192ED03)
    u = (output >> 40) * 2^-24                                         (uniform in [0, 1))

State-dict tensor i (torchvision's order, 0-based, buffers included) draws from the generator
seeded with mix(seed, i), one output per element in memory order:
    conv weight      (2u - 1) * sqrt(6 / fan_out),   fan_out = out_channels * kh * kw
    BN weight        1 + 0.1 * (2u - 1)
    BN bias          0.1 * (2u - 1)
    fc weight, bias  (2u - 1) * sqrt(1 / in_features)   (512; 2048 for resnet50/101/152)
    running_mean     0 (training cases) or 0.2 * (2u - 1) (round-trip case)
    running_var      1 (training cases) or 0.5 + u       (round-trip case)
    num_batches_tracked  0 (training cases) or 7         (round-trip case)
Input pixels (uint8, NHWC): the top 8 bits of the outputs seeded with mix(seed, 1000); labels:
((output >> 32) * classes) >> 32 from mix(seed, 1001). Sample indices of tensor i:
((output >> 32) * element_count) >> 32 from mix(seed, 2000 + i), 16 per tensor.
"""
import argparse
import copy
import json
import math
import os
import struct
import sys

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
SAMPLES = 16
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# name, seed, batch, image size, classes, SGD steps, architecture. Batch 2 at 224 takes one step
# only: with BatchNorm over two images the gradients after a step are chaotic in float32
# (PyTorch's own float32 run is 10-20% off its float64 run at step 2), see README.md. The deeper
# models are checked at 64 px (2x2 at layer4) with small batches and few steps, to keep the test
# short.
TRAIN_CASES = [
    ("resnet18_b16_s64", 1, 16, 64, 10, 3, "resnet18"),
    ("resnet18_b2_s224", 2, 2, 224, 10, 1, "resnet18"),
    ("resnet34_b4_s64", 4, 4, 64, 10, 2, "resnet34"),
    ("resnet50_b4_s64", 5, 4, 64, 10, 2, "resnet50"),
    ("resnet101_b2_s64", 6, 2, 64, 10, 1, "resnet101"),
    ("resnet152_b2_s64", 7, 2, 64, 10, 1, "resnet152"),
    # the optimizer options (train.optimizer, no_weight_decay, clip_grad_norm): an 8th element
    # replaces SGD's settings; the clipping case's max_norm is below every step's gradient norm
    ("resnet18_b4_s64_adamw", 12, 4, 64, 10, 3, "resnet18", "ADAMW"),
    ("resnet18_b4_s64_clip", 13, 4, 64, 10, 3, "resnet18", "SGD_CLIP"),
]
# The weights' moving average (dtrain's train.ema_decay, timm's ModelEmaV2): a training case as
# above plus the decay; the average of every state-dict entry is recorded after the steps.
# name, seed, batch, image size, classes, SGD steps, architecture, decay
EMA_CASES = [
    ("resnet18_ema_b4_s64", 12, 4, 64, 10, 3, "resnet18", 0.9),
]
# name, seed, batch, image size, classes, architecture
ROUNDTRIP_CASES = [
    ("resnet18_eval_s64", 3, 2, 64, 10, "resnet18"),
    ("resnet34_eval_s64", 8, 2, 64, 10, "resnet34"),
    ("resnet50_eval_s64", 9, 2, 64, 10, "resnet50"),
    ("resnet101_eval_s64", 10, 2, 64, 10, "resnet101"),
    ("resnet152_eval_s64", 11, 2, 64, 10, "resnet152"),
]
ROUNDTRIP_CASE = ROUNDTRIP_CASES[0]
ROUNDTRIP_BATCHES_TRACKED = 7
NOISE_RUNS = 6
SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.05}
# torch.optim.AdamW with timm's param_groups_weight_decay (no decay for tensors of one dimension:
# BN weights and biases, fc.bias), as dtrain's train.no_weight_decay: norm_and_bias. The decay is
# large on purpose: lr * weight_decay = 5e-3 per step, so that decaying an excluded tensor (or
# not decaying a kept one) moves it 1.5% in 3 steps, far outside PyTorch's float32 noise, while
# AdamW's own step moves a parameter by about lr (1e-3) per step
ADAMW = {"optimizer": "adamw", "lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8,
         "weight_decay": 5.0, "no_weight_decay": "norm_and_bias"}
# torch.nn.utils.clip_grad_norm_(params, max_norm) after backward, then SGD as above
SGD_CLIP = dict(SGD, clip_grad_norm=0.25)
OPTIONS = {"SGD": SGD, "ADAMW": ADAMW, "SGD_CLIP": SGD_CLIP}


# ---- the generator -------------------------------------------------------------------------


def splitmix_next(state):
    state = (state + GOLDEN) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def mix(seed, tag):
    state = seed ^ ((tag * 0xD1B54A32D192ED03) & MASK64)
    state, _ = splitmix_next(state)
    _, out = splitmix_next(state)
    return out


def outputs(seed, count):
    """The first `count` outputs of a generator started at `seed`, as uint64 (vectorised: the
    k-th output mixes seed + k * GOLDEN)."""
    with np.errstate(over="ignore"):
        k = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(seed) + k * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(seed, count):
    return (outputs(seed, count) >> np.uint64(40)).astype(np.float64) * (2.0**-24)


def below(seed, count, n):
    return ((outputs(seed, count) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)


def tensor_values(name, shape, seed, index, random_stats, fc_in):
    """Float32 values of state-dict tensor `index` (see the module docstring)."""
    count = int(np.prod(shape)) if len(shape) else 1
    u = uniform(mix(seed, index), count)
    if name.endswith("num_batches_tracked"):
        return None
    if name.endswith("running_mean"):
        v = 0.2 * (2.0 * u - 1.0) if random_stats else np.zeros(count)
    elif name.endswith("running_var"):
        v = 0.5 + u if random_stats else np.ones(count)
    elif name.startswith("fc."):
        v = (2.0 * u - 1.0) * math.sqrt(1.0 / fc_in)
    elif len(shape) == 4:
        v = (2.0 * u - 1.0) * math.sqrt(6.0 / (shape[0] * shape[2] * shape[3]))
    elif name.endswith(".weight"):
        v = 1.0 + 0.1 * (2.0 * u - 1.0)
    else:
        v = 0.1 * (2.0 * u - 1.0)
    return v.astype(np.float32).reshape(shape)


def seeded_model(torch, torchvision, seed, classes, random_stats, arch="resnet18"):
    model = getattr(torchvision.models, arch)(num_classes=classes)
    state = model.state_dict()
    fc_in = model.fc.in_features
    values = {}
    for index, (name, tensor) in enumerate(state.items()):
        v = tensor_values(name, tuple(tensor.shape), seed, index, random_stats, fc_in)
        if v is None:
            values[name] = torch.tensor(ROUNDTRIP_BATCHES_TRACKED if random_stats else 0)
        else:
            values[name] = torch.from_numpy(v)
    model.load_state_dict(values, strict=True)
    return model


def seeded_input(torch, seed, batch, size, classes):
    pixels = (outputs(mix(seed, 1000), batch * size * size * 3) >> np.uint64(56)).astype(np.uint8)
    pixels = pixels.reshape(batch, size, size, 3)
    labels = below(mix(seed, 1001), batch, classes).astype(np.int64)
    # as dtrain: (pixels / 255 - mean) / std in float32, NHWC -> NCHW
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous().float() / 255.0
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return pixels, torch.from_numpy(labels), (x - mean) / std


def sample_indices(seed, index, count):
    return below(mix(seed, 2000 + index), SAMPLES, count).astype(np.int64)


# ---- safetensors (8-byte little-endian header length, JSON header, raw little-endian data) ---

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8, "F16": np.float16}


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        dtype = next(k for k, v in DTYPES.items() if np.dtype(v) == array.dtype)
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"])
    return tensors, metadata


# ---- the cases -----------------------------------------------------------------------------


def ema_update(ema, model, decay):
    """timm's ModelEmaV2.update: every state-dict entry e <- decay * e + (1 - decay) * m; the
    integer num_batches_tracked is copied (as timm's ModelEmaV3 does and dtrain)."""
    import torch

    with torch.no_grad():
        for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
            if e.is_floating_point():
                e.copy_(decay * e + (1.0 - decay) * m)
            else:
                e.copy_(m)


def make_optimizer(torch, model, options):
    """torch.optim.SGD or AdamW for options (SGD, ADAMW, SGD_CLIP above)."""
    params = list(model.named_parameters())
    wd = options["weight_decay"]
    if options.get("no_weight_decay") == "norm_and_bias":
        # timm's param_groups_weight_decay: ndim <= 1 or a bias
        groups = [{"params": [p for n, p in params if p.ndim > 1 and not n.endswith(".bias")],
                   "weight_decay": wd},
                  {"params": [p for n, p in params if p.ndim <= 1 or n.endswith(".bias")],
                   "weight_decay": 0.0}]
    else:
        groups = [{"params": [p for _, p in params], "weight_decay": wd}]
    if options.get("optimizer") == "adamw":
        return torch.optim.AdamW(groups, lr=options["lr"], betas=options["betas"],
                                 eps=options["eps"])
    return torch.optim.SGD(groups, lr=options["lr"], momentum=options["momentum"])


def run_steps(torch, torchvision, dtype, seed, batch, size, classes, steps, arch, perturbation=0,
              options=SGD, ema_decay=0.0):
    """Forward (train mode), mean cross-entropy, backward, the gradient clipping of options (if
    any) and the optimizer of options, `steps` times on the same batch, in `dtype`; returns what
    the fixture records, as float64. perturbation k > 0 moves every initial parameter by -1, 0 or
    +1 unit in the last place (numpy generator k). ema_decay > 0: the weights' moving average, a
    copy of the model at the start, updated after every step (out["ema"])."""
    model = seeded_model(torch, torchvision, seed, classes, False, arch).to(dtype)
    if perturbation:
        rng = np.random.default_rng(perturbation)
        with torch.no_grad():
            for p in model.parameters():
                step = torch.from_numpy(rng.integers(-1, 2, size=tuple(p.shape)).astype(np.float32))
                p.mul_(1 + step * 2.0**-23)
    model.train()
    _, labels, x = seeded_input(torch, seed, batch, size, classes)
    x = x.to(dtype)
    opt = make_optimizer(torch, model, options)
    ema = copy.deepcopy(model) if ema_decay else None
    out = {"loss": [], "total_norm": []}
    for step in range(steps):
        opt.zero_grad()
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        out["loss"].append(loss.item())
        if step == 0:
            out["logits"] = logits.detach().double().numpy().copy()
            out["grad"] = {k: p.grad.detach().double().reshape(-1).numpy().copy()
                           for k, p in model.named_parameters()}
        if options.get("clip_grad_norm"):
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), options["clip_grad_norm"])
            out["total_norm"].append(float(norm))
        opt.step()
        if ema is not None:
            ema_update(ema, model, ema_decay)
    out["loss"] = np.array(out["loss"])
    out["total_norm"] = np.array(out["total_norm"])
    if ema is not None:
        out["ema"] = {k: v.double().reshape(-1).numpy().copy()
                      for k, v in ema.state_dict().items() if not k.endswith("num_batches_tracked")}
        out["ema_num_batches_tracked"] = int(ema.state_dict()["bn1.num_batches_tracked"])
    state = model.state_dict()
    out["after"] = {k: v.double().reshape(-1).numpy().copy() for k, v in state.items()
                    if not k.endswith("num_batches_tracked")}
    out["num_batches_tracked"] = int(state["bn1.num_batches_tracked"])
    model.eval()
    with torch.no_grad():
        out["eval_logits"] = model(x).double().numpy().copy()
    return out


def relative_error(got, want, scale):
    """max |got - want| / scale: the measure tests/test_reference.c applies to dtrain."""
    return float(np.abs(np.asarray(got) - np.asarray(want)).max() / max(scale, 1e-30))


def train_case(torch, torchvision, out_dir, name, seed, batch, size, classes, steps, arch,
               options="SGD", ema_decay=0.0):
    """Reference values from a float64 run (the exact answer, to ~1e-12). Beside each one
    (torch_err.*): the worst error of PyTorch's float32 runs against it, over NOISE_RUNS runs (the
    first from the same weights, the others from weights 1 ulp away), i.e. the noise level of a
    correct float32 implementation; see README.md. ema_decay > 0 adds the moving average of every
    state-dict entry after the steps (ema.*) and its change from the initial values (ema_delta.*,
    parameters)."""
    settings = OPTIONS[options]
    exact = run_steps(torch, torchvision, torch.float64, seed, batch, size, classes, steps, arch,
                      options=settings, ema_decay=ema_decay)
    f32_runs = [run_steps(torch, torchvision, torch.float32, seed, batch, size, classes, steps,
                          arch, k, settings, ema_decay) for k in range(NOISE_RUNS)]
    init = seeded_model(torch, torchvision, seed, classes, False, arch).state_dict()
    pixels, labels, _ = seeded_input(torch, seed, batch, size, classes)
    out = {"input.pixels_head": pixels.reshape(-1)[:64].copy(), "input.labels": labels.numpy()}
    worst = {}

    def record(key, want, get, scale, kind):
        """get(run) -> that float32 run's values of the quantity"""
        out[key] = np.asarray(want, dtype=np.float64)
        err = max(relative_error(get(f32), want, scale) for f32 in f32_runs)
        out["torch_err." + key] = np.array(err)
        worst[kind] = max(worst.get(kind, 0.0), err)

    scale = np.abs(exact["logits"]).max()
    record("logits", exact["logits"], lambda r: r["logits"], scale, "logits")
    out["loss"] = exact["loss"]
    out["torch_err.loss"] = np.max([np.abs(r["loss"] - exact["loss"]) / np.abs(exact["loss"])
                                    for r in f32_runs], axis=0)
    worst["loss"] = float(out["torch_err.loss"].max())
    if settings.get("clip_grad_norm"):
        # clip_grad_norm_'s total norm before clipping, per step: every one above max_norm
        assert (exact["total_norm"] > settings["clip_grad_norm"]).all(), exact["total_norm"]
        out["total_norm"] = exact["total_norm"]
        out["torch_err.total_norm"] = np.max(
            [np.abs(r["total_norm"] - exact["total_norm"]) / exact["total_norm"]
             for r in f32_runs], axis=0)
        worst["total norm"] = float(out["torch_err.total_norm"].max())
    scale = np.abs(exact["eval_logits"]).max()
    record("eval_logits", exact["eval_logits"], lambda r: r["eval_logits"], scale, "eval logits")
    for index, (key, tensor) in enumerate(init.items()):
        if key.endswith("num_batches_tracked"):
            continue
        idx = sample_indices(seed, index, tensor.numel())
        out["index." + key] = idx
        start = tensor.reshape(-1).numpy()[idx].astype(np.float32)
        after = exact["after"][key][idx]
        record("after." + key, after, lambda r: r["after"][key][idx], np.abs(after).max(),
               "params after" if key in exact["grad"] else "running stats after")
        if ema_decay:
            ema = exact["ema"][key][idx]
            record("ema." + key, ema, lambda r: r["ema"][key][idx], np.abs(ema).max(), "ema")
            if key in exact["grad"]:
                change = ema - start.astype(np.float64)
                record("ema_delta." + key, change,
                       lambda r: r["ema"][key][idx] - start.astype(np.float64),
                       np.abs(change).max(), "ema updates")
        if key not in exact["grad"]:
            continue
        out["init." + key] = start
        delta = after - start.astype(np.float64)
        record("delta." + key, delta, lambda r: r["after"][key][idx] - start.astype(np.float64),
               np.abs(delta).max(), "param updates")
        g = exact["grad"][key]
        norm = np.linalg.norm(g)
        record("grad_norm." + key, norm, lambda r: np.linalg.norm(r["grad"][key]), norm,
               "grad norms")
        scale = max(np.abs(g[idx]).max(), norm / np.sqrt(g.size))
        record("grad." + key, g[idx], lambda r: r["grad"][key][idx], scale, "grad samples")
    out["num_batches_tracked"] = np.array(exact["num_batches_tracked"], dtype=np.int64)
    if ema_decay:
        out["ema_num_batches_tracked"] = np.array(exact["ema_num_batches_tracked"], dtype=np.int64)
    metadata = case_metadata(torch, torchvision, seed, batch, size, classes, arch)
    if ema_decay:
        metadata["ema_decay"] = repr(ema_decay)
    metadata.update({k: v if isinstance(v, str) else
                     ",".join(repr(x) for x in v) if isinstance(v, tuple) else repr(v)
                     for k, v in settings.items()})
    metadata["steps"] = str(steps)
    path = os.path.join(out_dir, name + ".safetensors")
    write_safetensors(path, out, metadata)
    print(f"{path}: losses {', '.join(f'{v:.6f}' for v in exact['loss'])}" +
          (f"; pre-clip norms {', '.join(f'{v:.4f}' for v in exact['total_norm'])}"
           if len(exact["total_norm"]) else ""))
    print(f"  PyTorch float32 vs float64, worst relative error over {NOISE_RUNS} runs: " +
          ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))


def case_metadata(torch, torchvision, seed, batch, size, classes, arch):
    return {
        "arch": arch, "seed": str(seed), "batch": str(batch), "image_size": str(size), "classes": str(classes),
        "mean": ",".join(repr(v) for v in MEAN), "std": ",".join(repr(v) for v in STD),
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "written_by": "tests/reference/make_fixtures.py",
    }


def roundtrip_case(torch, torchvision, out_dir, name, seed, batch, size, classes, arch):
    model = seeded_model(torch, torchvision, seed, classes, True, arch)
    model.eval()
    _, _, x = seeded_input(torch, seed, batch, size, classes)
    with torch.no_grad():
        logits = model.double()(x.double()).numpy().copy()
        logits32 = model.float()(x).double().numpy()
    torch_err = relative_error(logits32, logits, np.abs(logits).max())
    lines = []
    for key, t in model.state_dict().items():
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        lines.append(f"{key} {dtype} {','.join(str(d) for d in t.shape)}")
    metadata = case_metadata(torch, torchvision, seed, batch, size, classes, arch)
    metadata["state_dict"] = "\n".join(lines)
    metadata["batches_tracked"] = str(ROUNDTRIP_BATCHES_TRACKED)
    path = os.path.join(out_dir, name + ".safetensors")
    write_safetensors(path, {"eval_logits": logits, "torch_err.eval_logits": np.array(torch_err)},
                      metadata)
    print(f"{path}: {len(lines)} state-dict entries; PyTorch float32 vs float64 eval logits: "
          f"{torch_err:.2g}")


def write_state_dict(torch, torchvision, path):
    _, seed, _, _, classes, _ = ROUNDTRIP_CASE
    model = seeded_model(torch, torchvision, seed, classes, random_stats=True)
    write_safetensors(path, {k: v.numpy() for k, v in model.state_dict().items()},
                      {"format": "pt"})
    print(f"wrote {path}")


def check_export(torch, torchvision, directory):
    tensors, _ = read_safetensors(os.path.join(directory, "model.safetensors"))
    ref, meta = read_safetensors(os.path.join(directory, "logits.safetensors"))
    seed, batch, size, classes = (int(meta[k]) for k in ("seed", "batch", "image_size", "classes"))
    arch = meta.get("arch", "resnet18")
    model = getattr(torchvision.models, arch)(num_classes=classes)
    result = model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()},
                                   strict=True)
    model.eval()
    _, _, x = seeded_input(torch, seed, batch, size, classes)
    with torch.no_grad():
        logits = model(x).numpy()
    dtrain_logits = ref["eval_logits"]
    scale = float(np.abs(dtrain_logits).max())
    err = float(np.abs(logits - dtrain_logits).max())
    tracked = int(tensors["bn1.num_batches_tracked"])
    ok = err <= 1e-4 * scale and tracked == int(meta["batches_tracked"])
    print(f"{arch}: load_state_dict(strict=True): {result}; {len(tensors)} tensors; "
          f"num_batches_tracked {tracked} (dtrain {meta['batches_tracked']})")
    print(f"eval logits: max |torch - dtrain| = {err:.3g} (max |logit| {scale:.4g}, "
          f"relative {err / scale:.3g}): {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--check-export", metavar="DIR")
    parser.add_argument("--write-state-dict", metavar="FILE")
    parser.add_argument("--cases", nargs="+", metavar="NAME", help="write only these fixtures")
    args = parser.parse_args()
    import torch
    import torchvision

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    if args.check_export:
        return check_export(torch, torchvision, args.check_export)
    if args.write_state_dict:
        write_state_dict(torch, torchvision, args.write_state_dict)
        return 0
    all_cases = TRAIN_CASES + EMA_CASES + ROUNDTRIP_CASES
    wanted = set(args.cases or [c[0] for c in all_cases])
    unknown = wanted - {c[0] for c in all_cases}
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    for case in TRAIN_CASES:
        if case[0] in wanted:
            train_case(torch, torchvision, args.out, *case)
    for case in EMA_CASES:
        if case[0] in wanted:
            train_case(torch, torchvision, args.out, *case[:7], ema_decay=case[7])
    for case in ROUNDTRIP_CASES:
        if case[0] in wanted:
            roundtrip_case(torch, torchvision, args.out, *case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
