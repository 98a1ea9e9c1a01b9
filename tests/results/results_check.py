#!/usr/bin/env python3
"""Checks of a run's results, run by ctest with the test set-up's Python (python_env.sh):

    results_check.py train WORK DTRAIN        trains a small run into WORK/run (ctest fixture)
    results_check.py tensorboard WORK         TensorBoard's reader against metrics.jsonl
    results_check.py browser WORK CHROMIUM    report.html in headless Chromium, network off
    results_check.py predict WORK DTRAIN      dtrain predict against the run's evaluation
    results_check.py eval WORK DTRAIN MPIRUN [FLAG...]   dtrain eval on 1 and 2 ranks

Each check prints what it compared and exits 1 on the first mismatch.
"""
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys

CLASSES = {"class00": "dog", "class01": "cat <b>&", "class02": "horse"}


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def make_images(root):
    """3 classes x 12 JPEGs: a class colour and stripe direction with noise; one broken file."""
    from PIL import Image

    rng = random.Random(5)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    for label, folder in enumerate(sorted(CLASSES)):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for i in range(12):
            img = Image.new("RGB", (24, 24))
            px = img.load()
            phase = rng.randrange(8)
            for y in range(24):
                for x in range(24):
                    t = (x if label == 0 else y if label == 1 else x + y) + phase
                    k = 1.0 if (t // 3) % 2 else 0.4
                    px[x, y] = tuple(min(255, int(c * k) + rng.randrange(30)) for c in colours[label])
            img.save(os.path.join(root, folder, "img%02d.jpg" % i), quality=92)
    with open(os.path.join(root, "class01", "broken.jpg"), "w") as f:
        f.write("not a jpeg")


def config_text(work):
    names = ", ".join('%s: "%s"' % kv for kv in CLASSES.items())
    return (
        "data:\n  root: %s/data\n  val_fraction: 0.25\n  image_size: 16\n"
        "  mean: [0.5, 0.5, 0.5]\n  std: [0.25, 0.25, 0.25]\n  workers: 1\n"
        "  class_names: {%s}\n"
        "train:\n  epochs: 2\n  batch_size: 4\n  lr: 0.02\n  momentum: 0.9\n  seed: 3\n"
        "runtime:\n  device: cpu\n  threads: 1\n"
        "output:\n  dir: %s/run\n  log_every: 2\n" % (work, names, work)
    )


def train(work, dtrain):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    make_images(os.path.join(work, "data"))
    with open(os.path.join(work, "cfg.yaml"), "w") as f:
        f.write(config_text(work))
    r = subprocess.run([dtrain, os.path.join(work, "cfg.yaml")], capture_output=True, text=True)
    with open(os.path.join(work, "log.txt"), "w") as f:
        f.write(r.stdout + r.stderr)
    check(r.returncode == 0, "training exited %d:\n%s%s" % (r.returncode, r.stdout, r.stderr))
    printed = re.findall(r"validation loss \S+, accuracy ([0-9.]+)", r.stdout)
    check(len(printed) == 2, "two evaluations printed, got %r" % printed)
    for name in ("report.html", "confusion_matrix.csv", "classification_report.txt",
                 "predictions.csv", "model.safetensors", "metrics.jsonl"):
        check(os.path.exists(os.path.join(work, "run", name)), name + " missing")
    print("trained; printed accuracies", printed)


def metrics_rows(work):
    with open(os.path.join(work, "run", "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def tensorboard(work):
    import numpy as np
    from PIL import Image
    import io
    from tensorboard.backend.event_processing import event_accumulator as ea

    folder = os.path.join(work, "run", "tensorboard")
    files = os.listdir(folder)
    check(len(files) == 1 and re.fullmatch(r"events\.out\.tfevents\.\d{10}\.\S+", files[0]),
          "one event file named as TensorBoard's writers name them, got %r" % files)
    acc = ea.EventAccumulator(folder, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    acc.Reload()
    tags = acc.Tags()
    rows = metrics_rows(work)
    # printed precision of metrics.jsonl (%.6g, %.8g, %.1f) plus float32 rounding
    fields = {"train/loss": ("train", "loss", 6e-6, 0), "train/acc": ("train", "acc", 6e-6, 0),
              "train/lr": ("train", "lr", 2e-7, 0), "train/img_per_s": ("train", "img_per_s", 1e-6, 0.05),
              "eval/loss": ("eval", "val_loss", 6e-6, 0), "eval/acc": ("eval", "val_acc", 6e-6, 0)}
    compared = 0
    for tag, (event, key, rtol, atol) in fields.items():
        check(tag in tags["scalars"], "scalar %s missing; tags %r" % (tag, tags["scalars"]))
        seen = {e.step: e.value for e in acc.Scalars(tag)}
        want = {r["step"]: r[key] for r in rows if r["event"] == event}
        check(sorted(seen) == sorted(want), "%s steps %r, metrics.jsonl %r" % (tag, sorted(seen), sorted(want)))
        for step, value in want.items():
            got = seen[step]
            check(abs(got - value) <= atol + rtol * abs(value) and got == np.float32(got),
                  "%s at step %d: TensorBoard %r, metrics.jsonl %r" % (tag, step, got, value))
            compared += 1
    check("eval/predictions" in tags["images"], "image eval/predictions missing")
    images = acc.Images("eval/predictions")
    eval_steps = [r["step"] for r in rows if r["event"] == "eval"]
    check([i.step for i in images] == eval_steps, "images at %r, evaluations at %r" % ([i.step for i in images], eval_steps))
    for img in images:
        decoded = Image.open(io.BytesIO(img.encoded_image_string))
        check(decoded.format == "PNG" and decoded.size == (img.width, img.height) and decoded.mode == "RGB",
              "image %s %r, summary says %dx%d" % (decoded.format, decoded.size, img.width, img.height))
        # 9 validation images (9 of 9 here): 3 x 3 cells of 128 + 2 x 4 pixel frames
        check(decoded.size == (3 * 136, 3 * 136), "grid size %r" % (decoded.size,))
        pixels = np.asarray(decoded, dtype=np.float64)
        check(pixels.std() > 10, "the grid image is flat (std %.2f)" % pixels.std())
    print("tensorboard: %d scalars equal metrics.jsonl; %d images of %dx%d" % (compared, len(images), images[0].width, images[0].height))


def browser(work, chromium):
    import numpy as np
    from PIL import Image

    report = os.path.join(work, "run", "report.html")
    html = open(report, encoding="utf-8").read()
    for external in ("http://", "https://", "<script", "<link", "@import", "url("):
        if external == "http://" :
            # the SVG namespace is a name, not a request
            check(html.count("http://") == html.count('xmlns="http://www.w3.org/2000/svg"'), "external http:// reference")
        else:
            check(external not in html, "the page refers to something outside itself: " + external)
    shot = os.path.join(work, "report.png")
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
            "--user-data-dir=" + os.path.join(work, "chromium-profile")]
    offline = ["unshare", "-n"] if shutil.which("unshare") and os.geteuid() == 0 else []
    dom = subprocess.run(offline + base + ["--dump-dom", "file://" + report],
                         capture_output=True, text=True, timeout=120)
    check(dom.returncode == 0 and "<figcaption>" in dom.stdout, "chromium --dump-dom failed: %s" % dom.stderr[-2000:])
    text = dom.stdout
    with open(os.path.join(work, "log.txt")) as f:
        printed = re.findall(r"validation loss \S+, accuracy ([0-9.]+)", f.read())[-1]
    check('<span id="accuracy">%s</span>' % printed in text, "accuracy %s printed by the run not in the DOM" % printed)
    for name in CLASSES.values():
        escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        check(text.count(escaped) >= 3, "class name %r not in the DOM tables" % name)
    check("<b>" not in text.replace("&lt;b&gt;", ""), "a class name was not escaped")
    titles = re.findall(r"<figcaption>True: (.*?)  Pred: (.*?)(?: \(p=|</figcaption>)", text)
    check(len(titles) >= 9, "9 titled validation images, found %d" % len(titles))
    preds = list(csv.DictReader(open(os.path.join(work, "run", "predictions.csv"))))
    check(len(preds) == 9, "9 validation images in predictions.csv")
    for title in ("Confusion matrix", "Per-class scores", "Validation images", "Most confident mistakes", "Curves", "Skipped files (1)"):
        check(title in text, "section %r missing" % title)
    check("broken.jpg" in text, "the skipped file is not named")
    check(text.count("<polyline") == 4, "4 curves (train and validation loss and accuracy)")
    shot_run = subprocess.run(offline + base + ["--window-size=1280,2400", "--screenshot=" + shot, "file://" + report],
                              capture_output=True, text=True, timeout=120)
    check(shot_run.returncode == 0 and os.path.exists(shot), "screenshot failed: %s" % shot_run.stderr[-2000:])
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    check(pixels.std() > 20, "the screenshot is blank (std %.2f)" % pixels.std())
    reds = ((pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum()
    print("browser: DOM has accuracy %s, %d titles, class names; screenshot std %.1f, %d red pixels%s"
          % (printed, len(titles), pixels.std(), reds, " (network namespace off)" if offline else ""))


def predict(work, dtrain):
    run = os.path.join(work, "run")
    preds = list(csv.DictReader(open(os.path.join(run, "predictions.csv"))))
    paths = [p["path"] for p in preds]
    r = subprocess.run([dtrain, "predict", os.path.join(run, "model.safetensors"), *paths, "--json", "--top-k", "3", "--batch-size", "4"],
                       capture_output=True, text=True)
    check(r.returncode == 0, "predict exited %d: %s" % (r.returncode, r.stderr))
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    check(len(lines) == len(preds), "one line per image")
    for want, got in zip(preds, lines):
        check(got["path"] == want["path"], "order of the output")
        check(got["top"][0]["class"] == want["predicted"], "%s: predict says %s, evaluation %s" % (want["path"], got["top"][0]["class"], want["predicted"]))
        check(abs(got["top"][0]["p"] - float(want["confidence"])) <= 1e-4, "%s: p %r vs %s" % (want["path"], got["top"][0]["p"], want["confidence"]))
    # a folder with bad files: each named, the others predicted, exit code 1
    bad = os.path.join(work, "bad")
    shutil.rmtree(bad, ignore_errors=True)
    os.makedirs(bad)
    shutil.copy(paths[0], os.path.join(bad, "good.jpg"))
    open(os.path.join(bad, "text.jpg"), "w").write("hello")
    data = open(paths[0], "rb").read()
    open(os.path.join(bad, "cut.jpg"), "wb").write(data[: len(data) // 2])
    open(os.path.join(bad, "notes.txt"), "w").write("not an image name: not listed")
    r = subprocess.run([dtrain, "predict", os.path.join(run, "model.safetensors"), bad], capture_output=True, text=True)
    check(r.returncode == 1, "exit code %d with bad files, want 1" % r.returncode)
    out = r.stdout.splitlines()
    check(len(out) == 3, "3 lines, got %r" % out)
    for name in ("cut.jpg", "text.jpg"):
        check(any(l.startswith(os.path.join(bad, name) + "\terror: ") for l in out), name + " not named as an error: %r" % out)
    check(any(l.startswith(os.path.join(bad, "good.jpg") + "\t" + preds[0]["predicted"] + " ") for l in out), "good.jpg not predicted: %r" % out)
    print("predict: %d evaluation predictions reproduced; bad files named, exit 1" % len(preds))


def evaluate(work, dtrain, mpirun):
    outputs = {}
    for ranks in (1, 2):
        out = os.path.join(work, "eval%d" % ranks)
        cmd = [dtrain, "eval", os.path.join(work, "cfg.yaml"), "--model", os.path.join(work, "run", "model.safetensors"), "--out", out]
        if ranks > 1:
            cmd = mpirun + ["-np", "2"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True)
        check(r.returncode == 0, "eval on %d rank(s) exited %d: %s%s" % (ranks, r.returncode, r.stdout, r.stderr))
        files = {n: open(os.path.join(out, n)).read() for n in ("classification_report.txt", "confusion_matrix.csv", "predictions.csv")}
        outputs[ranks] = (r.stdout.replace(out, "OUT"), files)
    check(outputs[1] == outputs[2], "1 and 2 ranks differ:\n%s\n%s" % (outputs[1][0], outputs[2][0]))
    with open(os.path.join(work, "run", "classification_report.txt")) as f:
        check(f.read() == outputs[1][1]["classification_report.txt"], "eval of model.safetensors differs from the run's last evaluation")
    with open(os.path.join(work, "log.txt")) as f:
        printed = re.findall(r"validation loss \S+, accuracy ([0-9.]+)", f.read())[-1]
    check("accuracy %s," % printed in outputs[1][0], "eval accuracy differs from the run's %s" % printed)
    # the whole folder
    r = subprocess.run([dtrain, "eval", os.path.join(work, "cfg.yaml"), "--model", os.path.join(work, "run", "model.safetensors"),
                        "--out", os.path.join(work, "evalall"), "data.val_fraction=1"], capture_output=True, text=True)
    check(r.returncode == 0 and "on 36 images" in r.stdout and "1 image skipped" in r.stdout, "whole folder: %s%s" % (r.stdout, r.stderr))
    print("eval: 1 and 2 ranks identical; equals the run's evaluation (accuracy %s); whole folder 36 images" % printed)


def main():
    what, work = sys.argv[1], sys.argv[2]
    if what == "train":
        train(work, sys.argv[3])
    elif what == "tensorboard":
        tensorboard(work)
    elif what == "browser":
        browser(work, sys.argv[3])
    elif what == "predict":
        predict(work, sys.argv[3])
    elif what == "eval":
        evaluate(work, sys.argv[3], sys.argv[4:])
    else:
        fail("unknown check " + what)


if __name__ == "__main__":
    main()
