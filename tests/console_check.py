#!/usr/bin/env python3
"""dtrain's console as a user sees it on a terminal: each case runs dtrain on a pseudo-terminal
(python3's pty module: dtrain's stdout and stderr are the terminal, Ctrl-C is the byte 0x03 typed
into it) and replays what it wrote as a terminal draws it (carriage return, erase to the end of
the line, newline), then checks the screen's lines.

    console_check.py DTRAIN MAKE_LEARNABLE_IMAGEFOLDER [MPIRUN FLAGS...]

Cases: a run (one start-up summary line, the live line and the log lines counting the same
global steps, no message glued to the live line); a Ctrl-C (one notice line, the stop message,
exit 75) and a second Ctrl-C after a complete checkpoint (exit 130, no "no checkpoint written");
a stop during an epoch end (one checkpoint, that epoch's); a config error and a usage error
('dtrain: error:' once, the key once); --help, -h, -V; and with MPIRUN, a SIGINT to both ranks
prints the notice once."""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

passed = failed = 0


def check(ok, what, screen=None):
    global passed, failed
    if ok:
        passed += 1
        return
    failed += 1
    print("console_check: FAILED: " + what, file=sys.stderr)
    if screen is not None:
        print("  screen:\n    " + "\n    ".join(screen), file=sys.stderr)


def draw(raw):
    """The lines of a terminal after raw: '\\r' to column 0, ESC [ K erases to the end of the
    line, '\\n' a new line; other escape sequences (colour) are dropped."""
    lines, line, col = [], [], 0
    i = 0
    text = raw.decode("utf-8", "replace")
    while i < len(text):
        c = text[i]
        if c == "\x1b":
            m = re.match(r"\x1b\[([0-9;]*)([A-Za-z])", text[i:])
            if m:
                if m.group(2) == "K":
                    del line[col:]
                i += len(m.group(0))
                continue
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = c
            else:
                line.append(c)
            col += 1
        i += 1
    if line:
        lines.append("".join(line))
    return lines


class Terminal:
    """A command on a new pseudo-terminal (its controlling terminal: 0x03 is a SIGINT to it)."""

    def __init__(self, argv, env=None):
        self.raw = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            if env:
                os.environ.update(env)
            os.environ.pop("DTRAIN_PROGRESS", None)
            os.environ.pop("NO_COLOR", None)
            os.environ["TERM"] = "xterm"
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)

    def read(self, timeout):
        """Reads what arrives within timeout seconds; False once the terminal is closed."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        self.raw += data
        return bool(data)

    def wait_for(self, pattern, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            if re.search(pattern, self.raw.decode("utf-8", "replace")):
                return True
            if not self.read(0.2):
                break
        return bool(re.search(pattern, self.raw.decode("utf-8", "replace")))

    def type(self, data):
        os.write(self.fd, data)

    def finish(self, timeout=300):
        """Reads to the end; returns (exit code, screen lines)."""
        end = time.time() + timeout
        while time.time() < end and self.read(0.5):
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        code = os.waitstatus_to_exitcode(status)
        return code, draw(self.raw)


def run(argv, env=None, timeout=300):
    return Terminal(argv, env).finish(timeout)


def main():
    dtrain, make_imagefolder = sys.argv[1], sys.argv[2]
    mpirun = sys.argv[3:]
    work = tempfile.mkdtemp(prefix="dtrain-console-")
    subprocess.run([make_imagefolder, work + "/data", "3", "16", "16"], check=True,
                   stdout=subprocess.DEVNULL)
    cfg = work + "/run.yaml"
    with open(cfg, "w") as f:
        f.write("data: {root: %s/data, image_size: 16, val_fraction: 0.25, workers: 1}\n"
                "train: {epochs: 2, batch_size: 4}\n"
                "runtime: {device: cpu, threads: 1}\n"
                "output: {dir: %s/run, log_every: 3, tensorboard: false}\n" % (work, work))
    quiet = {"OMP_NUM_THREADS": "1", "DTRAIN_VERBOSE": "0"}

    # ---- a run: 36 training images, batch 4: 9 steps per epoch, 18 in all ----
    code, screen = run([dtrain, cfg], quiet)
    check(code == 0, "a run exits 0 (got %d)" % code, screen)
    check(bool(screen) and screen[0].startswith("dtrain: 48 images in 3 classes (36 train, 12 val), "
                                                "1 rank on cpu") and
          "1 compute thread + 1 decode worker per rank, 9 steps/epoch of 4 images" in screen[0],
          "the first line is the start-up summary", screen)
    check(not any(l.startswith(("threads:", "OpenMP waits:", "runtime.device=auto")) for l in screen),
          "no thread, OpenMP or device detail lines without DTRAIN_VERBOSE", screen)
    logs = [l for l in screen if re.match(r"epoch \d/2 step \d+/18: loss ", l)]
    check([int(re.search(r"step (\d+)/", l).group(1)) for l in logs] == [3, 6, 9, 12, 15, 18],
          "the log lines count global steps: 3 6 9 12 15 18", screen)
    check(not any("ETA" in l and ("dtrain:" in l or "validation" in l or "checkpoint" in l)
                  for l in screen), "no message on the live line's row", screen)
    check(screen and screen[-1].startswith("done: final validation accuracy"),
          "the last line is the summary", screen)

    # ---- Ctrl-C: one notice, the stop message, exit 75; the steps agree ----
    term = Terminal([dtrain, cfg, "train.epochs=50", "output.dir=%s/stop" % work],
                    dict(quiet, DTRAIN_TEST_STEP_DELAY_MS="300"))
    check(term.wait_for(r"step 4/450"), "a live line appears")
    term.type(b"\x03")
    code, screen = term.finish()
    raw_lives = re.findall(r"\r\x1b\[Kepoch \d+/50  step (\d+)/450", term.raw.decode())
    check(code == 75, "Ctrl-C: exit 75 (got %d)" % code, screen)
    notices = [l for l in screen if "SIGINT received" in l]
    check(notices == ["dtrain: SIGINT received: stopping after the current step with a checkpoint "
                      "(a second Ctrl-C stops at once)"], "one notice line, on its own", screen)
    stop = [l for l in screen if l.startswith("dtrain: stopped by a signal after step ")]
    check(len(stop) == 1, "one stop message", screen)
    if stop and raw_lives:
        step = int(re.search(r"after step (\d+) ", stop[0]).group(1))
        shown = int(raw_lives[-1])
        check(shown <= step <= shown + 1 and "step-%08d" % step in stop[0],
              "the stop message's step (%d) follows the live line's (%d)" % (step, shown), screen)

    # ---- a second Ctrl-C once a checkpoint is complete: exit 130, says where to resume ----
    term = Terminal([dtrain, cfg, "train.epochs=50", "output.checkpoint_every=2",
                     "output.dir=%s/twice" % work], dict(quiet, DTRAIN_TEST_STEP_DELAY_MS="400"))
    check(term.wait_for(r"checkpoint step-00000002 written"), "a checkpoint is written")
    term.type(b"\x03")
    check(term.wait_for(r"SIGINT received"), "the first Ctrl-C is noticed")
    term.type(b"\x03")
    code, screen = term.finish()
    check(code == 130, "a second Ctrl-C: exit 130 (got %d)" % code, screen)
    check(not any("no checkpoint written" in l for l in screen) and
          any("second interrupt: stopped at once; the checkpoint in progress, if any, was not "
              "written (--resume continues from the last complete one" in l for l in screen),
          "after a complete checkpoint it does not say 'no checkpoint written'", screen)

    # ---- a stop during an epoch end: that epoch's checkpoint only ----
    code, screen = run([dtrain, cfg, "train.epochs=3", "output.dir=%s/epochend" % work],
                       dict(quiet, DTRAIN_TEST_STOP_AT_EPOCH_END="1"))
    check(code == 75, "a stop at the epoch end: exit 75 (got %d)" % code, screen)
    kept = sorted(n for n in os.listdir(work + "/epochend/checkpoints") if n.startswith("step-"))
    check(kept == ["step-00000009"], "one checkpoint, the epoch end's: %s" % kept, screen)
    check(any(l.startswith("dtrain: stopped by a signal after step 9 (epoch 1); checkpoint ")
              for l in screen), "the stop message names step 9", screen)

    # ---- errors: one line, 'dtrain: error:', the key once ----
    code, screen = run([dtrain, cfg, "data.root=/nonexistent", "output.dir=%s/bad" % work], quiet)
    check(code == 2, "a missing data.root: exit 2 (got %d)" % code, screen)
    check(screen == ["dtrain: error: data.root: /nonexistent: No such file or directory"],
          "the error names data.root once", screen)
    for args, message in (([cfg, "-x"], "dtrain: error: unknown option '-x' (see dtrain --help)"),
                          ([cfg, "--nope"], "dtrain: error: unknown option '--nope' (see dtrain --help)"),
                          (["eval", cfg, "--nope"], "dtrain: error: eval: unknown option '--nope' (see dtrain eval --help)")):
        code, screen = run([dtrain] + args, quiet)
        check(code == 2 and screen == [message], "%s: exit 2 and '%s'" % (args[-1], message), screen)

    # ---- --help, -h, -V ----
    code, help_screen = run([dtrain, "--help"], quiet)
    check(code == 0 and help_screen[0].startswith("usage: dtrain CONFIG.yaml"), "--help", help_screen)
    code, screen = run([dtrain, "-h"], quiet)
    check(code == 0 and screen == help_screen, "-h is --help", screen)
    code, screen = run([dtrain, "-V"], quiet)
    check(code == 0 and screen and re.match(r"dtrain \d+\.\d+\.\d+$", screen[0]), "-V", screen)
    code, screen = run([dtrain, "predict", "--help"], quiet)
    text = "\n".join(screen)
    for option, default in (("--top-k", "default 5"), ("--batch-size", "default 32"),
                            ("--device", "default auto"), ("--image-size", "image_size"),
                            ("--classes", "names")):
        check(re.search(re.escape(option) + r".*" + re.escape(default), text, re.S) is not None,
              "predict --help explains %s (%s)" % (option, default), screen)

    # ---- under mpirun: a SIGINT to both ranks, one notice ----
    if mpirun:
        term = Terminal(mpirun + ["-np", "2", dtrain, cfg, "train.epochs=50",
                                  "output.dir=%s/mpi" % work],
                        dict(quiet, DTRAIN_TEST_STEP_DELAY_MS="300", DTRAIN_PROGRESS="plain"))
        check(term.wait_for(r"epoch 1/50 step 3/"), "the 2-rank run logs")
        ranks = [p for p in children(term.pid) if comm(p) == "dtrain"]
        for pid in ranks:
            os.kill(pid, signal.SIGINT)
        code, screen = term.finish()
        notices = [l for l in screen if "SIGINT received" in l]
        check(len(ranks) == 2 and len(notices) == 1,
              "2 ranks signalled (%d), one notice (%d)" % (len(ranks), len(notices)), screen)
    else:
        print("no mpirun: the 2-rank case is not run")

    subprocess.run(["rm", "-rf", work])
    print("console: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out] + [c for p in out for c in children(int(p))]


if __name__ == "__main__":
    sys.exit(main())
