"""Engine benchmark: hpsearch's NumPy MLP against scikit-learn's MLPClassifier, same work, same run.

Fashion-MNIST, 784-256-10, Adam (lr 1e-3), batch 128, 10 epochs. Per epoch both engines do a
training pass and then measure the curves a sweep logs: training loss/accuracy on the same fixed
10,000-sample training subsample, and validation and test loss/accuracy. scikit-learn runs
``partial_fit`` (one epoch) plus ``predict_proba`` on the three evaluation sets.

The engines alternate over seeds 0..n-1 (accuracy is the mean over seeds); times are the
fastest epoch after each run's first (these machines are noisy; the first epoch warms caches).

Then the training pass alone (no evaluation sets) against the float32 matrix-multiply throughput
of this machine on the very shapes the pass multiplies, measured right after every epoch.

    python bench/engine.py [--epochs 10] [--seeds 3] [--repeat-matmul 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier as SkMLP

from hpsearch import MLPClassifier
from hpsearch.spec import datasets

HIDDEN, BATCH = 256, 128


def matmul_gflops(shapes: list[tuple[int, int, int]], repeat: int) -> float:
    """GFLOP/s of float32 (m,k)@(k,n) products cycling through ``shapes`` (best of 3 rounds)."""
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal((m, k), dtype=np.float32),
              rng.standard_normal((k, n), dtype=np.float32)) for m, k, n in shapes]
    outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in pairs]
    flops = sum(2 * m * k * n for m, k, n in shapes) * repeat
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            for (a, b), out in zip(pairs, outs, strict=True):
                np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def training_pass_flops(n: int, sizes: list[int]) -> float:
    """Multiply-add FLOPs of one epoch: forward, weight gradients, and input gradients of every
    layer except the first (the inputs need none)."""
    total = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        total += 2 * n * a * b * (2 if i == 0 else 3)
    return float(total)


class EpochClock:
    """Callback: records the wall time of every epoch. ``between`` runs after an epoch's time is
    taken and is excluded from the next one (used to measure the matmul throughput right beside
    each training epoch, so that both figures of a ratio see the same machine load)."""

    def __init__(self, between=None) -> None:  # type: ignore[no-untyped-def]
        self.times: list[float] = []
        self.between = between
        self.last = time.perf_counter()

    def start(self) -> None:
        self.last = time.perf_counter()

    def on_epoch_end(self, _record: dict) -> None:
        self.times.append(time.perf_counter() - self.last)
        if self.between is not None:
            self.between()
        self.last = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3, help="runs of each engine (seeds 0..n-1)")
    ap.add_argument("--repeat-matmul", type=int, default=20)
    args = ap.parse_args()

    sp = datasets.split(datasets.load("fashion-mnist"), val_fraction=0.2, seed=0)
    (xtr, ytr), (xv, yv), (xte, yte) = sp.train, sp.val, sp.test
    # scikit-learn gets the same scaling (x / 255) as hpsearch's "scale" preprocessing, float32.
    f32 = {k: v.astype(np.float32) / np.float32(255) for k, v in
           {"train": xtr, "val": xv, "test": xte}.items()}
    rng = np.random.default_rng(1)
    sub = np.sort(rng.choice(len(ytr), 10_000, replace=False))
    evals_sk = {"train": (f32["train"][sub], ytr[sub]), "val": (f32["val"], yv),
                "test": (f32["test"], yte)}
    classes = np.unique(ytr)

    # The two engines alternate, seed by seed, so that both see the same stretch of machine
    # load; epoch times are the fastest epoch after each run's first.
    ours_times: list[float] = []
    sk_times: list[float] = []
    ours_acc: list[float] = []
    sk_acc: list[float] = []
    for seed in range(args.seeds):
        ours = MLPClassifier(hidden_sizes=(HIDDEN,), optimizer="adam", learning_rate=1e-3,
                             batch_size=BATCH, max_epochs=args.epochs, preprocessing="scale",
                             random_state=seed)
        clock = EpochClock()
        clock.start()
        ours.fit(xtr, ytr, eval_sets={"val": (xv, yv), "test": (xte, yte)}, callbacks=[clock])
        ours_times += clock.times[1:]
        ours_acc.append(ours.history_[-1]["test_accuracy"])

        sk = SkMLP(hidden_layer_sizes=(HIDDEN,), solver="adam", learning_rate_init=1e-3,
                   batch_size=BATCH, random_state=seed, alpha=0.0)
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            sk.partial_fit(f32["train"], ytr, classes=classes)
            for name, (xe, ye) in evals_sk.items():
                proba = sk.predict_proba(xe)
                _loss = log_loss(ye, proba, labels=classes)
                acc = float(np.mean(classes[proba.argmax(1)] == ye))
                if name == "test" and epoch == args.epochs - 1:
                    sk_acc.append(acc)
            if epoch:
                sk_times.append(time.perf_counter() - t0)
    ours_epoch, sk_epoch = min(ours_times), min(sk_times)

    # -- the training pass alone, against matmul throughput on the pass's own shapes ------------
    sizes = [784, HIDDEN, 10]
    shapes = [(BATCH, 784, HIDDEN), (BATCH, HIDDEN, 10),  # forward
              (784, BATCH, HIDDEN), (HIDDEN, BATCH, 10),  # weight gradients
              (BATCH, 10, HIDDEN)]  # input gradient of the output layer
    gflops: list[float] = []
    # train_eval_size=1 and no eval sets: the per-epoch metrics then cost one sample.
    bare = MLPClassifier(hidden_sizes=(HIDDEN,), batch_size=BATCH, max_epochs=8,
                         preprocessing="scale", train_eval_size=1, random_state=0)
    clock = EpochClock(between=lambda: gflops.append(matmul_gflops(shapes, args.repeat_matmul)))
    clock.start()
    bare.fit(xtr, ytr, callbacks=[clock])
    pass_time = min(clock.times[1:])
    pass_gflops = training_pass_flops(len(ytr), sizes) / pass_time / 1e9
    gflops_shapes = max(gflops)
    gflops_square = matmul_gflops([(1024, 1024, 1024)], 5)

    diff = (np.mean(ours_acc) - np.mean(sk_acc)) * 100
    print(f"data: fashion-mnist train {len(ytr)} / val {len(yv)} / test {len(yte)}, "
          f"784-{HIDDEN}-10, adam, batch {BATCH}, {args.epochs} epochs, seeds 0..{args.seeds - 1}")
    print(f"hpsearch     epoch (train pass + 3 evals): {ours_epoch:.3f} s   test acc after "
          f"{args.epochs}: {' '.join(f'{a:.4f}' for a in ours_acc)} (mean {np.mean(ours_acc):.4f})")
    print(f"scikit-learn epoch (partial_fit + 3 evals): {sk_epoch:.3f} s   test acc after "
          f"{args.epochs}: {' '.join(f'{a:.4f}' for a in sk_acc)} (mean {np.mean(sk_acc):.4f})")
    print(f"speed-up vs scikit-learn: {sk_epoch / ours_epoch:.2f}x (target >= 2)")
    print(f"mean test accuracy difference: {diff:+.2f} points (target within 0.5)")
    print(f"training pass alone: {pass_time:.3f} s = {pass_gflops:.1f} GFLOP/s")
    print(f"float32 matmul on the pass's shapes: {gflops_shapes:.1f} GFLOP/s "
          f"(1024^3 square: {gflops_square:.1f} GFLOP/s)")
    print(f"training pass / matmul throughput: {pass_gflops / gflops_shapes:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
