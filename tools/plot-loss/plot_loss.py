#!/usr/bin/python3
"""Plots loss.csv files written by `moecluster train` (training cross-entropy, smoothed, and held-out loss) into one PNG.

usage: plot_loss.py OUT.png LABEL=loss.csv [LABEL=loss.csv ...] [LABEL=NUMBER ...]
A NUMBER instead of a file draws a horizontal reference line (e.g. the unigram baseline's loss, ln of its perplexity).
Needs python3-matplotlib (Debian: apt-get install python3-matplotlib; run with /usr/bin/python3).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    steps, train, held_steps, held = [], [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            train.append(float(row["train_ce"]))
            if row["heldout_loss"]:
                held_steps.append(int(row["step"]))
                held.append(float(row["heldout_loss"]))
    return steps, train, held_steps, held


def smooth(values, beta=0.95):
    """Bias-corrected exponential moving average (as Adam corrects its moments), so early steps do not lag."""
    out, s = [], 0.0
    for t, v in enumerate(values, start=1):
        s = beta * s + (1 - beta) * v
        out.append(s / (1 - beta**t))
    return out


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    out = argv[1]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    specs = [spec.split("=", 1) for spec in argv[2:]]
    for label, value in specs:
        try:
            ax.axhline(float(value), color="gray", linestyle=":", linewidth=1.2, label=label)
        except ValueError:
            pass
    for i, (label, path) in enumerate((l, p) for l, p in specs if not _is_number(p)):
        steps, train, held_steps, held = read(path)
        color = f"C{i}"
        ax.plot(steps, train, color=color, alpha=0.2, linewidth=0.8)
        ax.plot(steps, smooth(train), color=color, linewidth=1.5, label=f"{label}: train (EMA 0.95)")
        ax.plot(held_steps, held, color=color, linestyle="--", marker="o", markersize=3, label=f"{label}: held-out")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_ylim(bottom=max(0.0, ax.get_ylim()[0]))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("moe-tiny-fortunes: training and held-out loss")
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main(sys.argv)
