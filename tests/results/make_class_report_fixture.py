#!/usr/bin/env python3
"""Writes tests/results/class_report_cases.txt: predictions with sklearn's classification_report
(digits=4) and confusion_matrix (as confusion_matrix.csv, csv module quoting) for each, which
tests/test_class_report.c compares dtrain's output with byte for byte.

    PY=$(bash tests/results/python_env.sh) && $PY tests/results/make_class_report_fixture.py

Format, per case: "case K N", a line "names" + TAB-separated names, "labels" and "predicted" lines
of N integers, "report L" then L lines, "confusion L" then L lines.
"""
import csv
import io
import os
import random
import warnings

import sklearn
from sklearn.metrics import classification_report, confusion_matrix

warnings.filterwarnings("ignore")  # zero_division warnings: the value (0) is what is compared


def make_cases():
    rng = random.Random(11)
    cases = []
    # noisy 5-class predictions
    names = ["cane", "cavallo", "elefante", "farfalla", "gallina"]
    y = [rng.randrange(5) for _ in range(200)]
    p = [t if rng.random() < 0.7 else rng.randrange(5) for t in y]
    cases.append((names, y, p))
    # 10 classes; class 3 never predicted, class 7 absent from the labels (zero division)
    names = ["class%02d" % i for i in range(10)]
    y = [rng.choice([c for c in range(10) if c != 7]) for _ in range(333)]
    p = [t if rng.random() < 0.6 else rng.randrange(10) for t in y]
    p = [0 if v == 3 else v for v in p]
    cases.append((names, y, p))
    # display names: longer than "weighted avg", non-ASCII, a comma and a quote (CSV quoting)
    names = ["dog", "a very long class name", "éléphant", "cat, big", 'say "hi"']
    y = [rng.randrange(5) for _ in range(57)]
    p = [t if rng.random() < 0.5 else rng.randrange(5) for t in y]
    cases.append((names, y, p))
    # binary, perfect
    names = ["neg", "pos"]
    y = [rng.randrange(2) for _ in range(40)]
    cases.append((names, y, list(y)))
    return cases


def main():
    out = io.StringIO()
    out.write("# written by make_class_report_fixture.py with scikit-learn %s\n" % sklearn.__version__)
    for names, y, p in make_cases():
        k = len(names)
        report = classification_report(y, p, labels=list(range(k)), target_names=names, digits=4)
        cm = confusion_matrix(y, p, labels=list(range(k)))
        table = io.StringIO()
        w = csv.writer(table, lineterminator="\n")
        w.writerow(["true\\pred"] + names)
        for i in range(k):
            w.writerow([names[i]] + [int(v) for v in cm[i]])
        report_lines = report.split("\n")
        table_lines = table.getvalue().rstrip("\n").split("\n")
        out.write("case %d %d\n" % (k, len(y)))
        out.write("names\t" + "\t".join(names) + "\n")
        out.write("labels " + " ".join(map(str, y)) + "\n")
        out.write("predicted " + " ".join(map(str, p)) + "\n")
        out.write("report %d\n" % len(report_lines) + "\n".join(report_lines) + "\n")
        out.write("confusion %d\n" % len(table_lines) + "\n".join(table_lines) + "\n")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "class_report_cases.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(out.getvalue())


if __name__ == "__main__":
    main()
