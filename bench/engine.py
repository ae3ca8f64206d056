"""Engine benchmark: hpsearch's NumPy MLP against scikit-learn's MLPClassifier, same work, same run.

Fashion-MNIST, 784-256-10, Adam (lr 1e-3), batch 128, 10 epochs. Per epoch both engines do a
training pass and then measure the curves a sweep logs: training loss/accuracy on the same fixed
10,000-sample training subsample, and validation and test loss/accuracy. scikit-learn runs
``partial_fit`` (one epoch) plus ``predict_proba`` on the three evaluation sets.

Times are the fastest epoch after the first (these machines are noisy; the first epoch warms
caches). Also measures the float32 matrix-multiply throughput of this machine on the very shapes the
training pass multiplies, and reports the training pass as a fraction of it.

    python bench/engine.py [--epochs 10] [--repeat-matmul 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier as SkMLP

from hpsearch import MLPClassifier, datasets

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeat-matmul", type=int, default=30)
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

    # -- hpsearch -----------------------------------------------------------------------
    ours = MLPClassifier(hidden_sizes=(HIDDEN,), optimizer="adam", learning_rate=1e-3,
                         batch_size=BATCH, max_epochs=args.epochs, preprocessing="scale",
                         random_state=0)
    epoch_times: list[float] = []
    last = [time.perf_counter()]

    def clock(_record: dict) -> None:
        now = time.perf_counter()
        epoch_times.append(now - last[0])
        last[0] = now

    # Time the training pass alone too: the same model without evaluation sets and with
    # train_eval_size=1 (the per-epoch train metric then costs one sample).
    last[0] = time.perf_counter()
    ours.fit(xtr, ytr, eval_sets={"val": (xv, yv), "test": (xte, yte)}, callbacks=[clock])
    ours_epoch = float(np.min(epoch_times[1:]))  # best epoch time; epoch 1 warms caches
    ours_test = ours.history_[-1]["test_accuracy"]

    pass_times: list[float] = []
    bare = MLPClassifier(**{**ours.get_params(), "train_eval_size": 1, "max_epochs": 5})
    last[0] = time.perf_counter()

    def clock_pass(_record: dict) -> None:
        now = time.perf_counter()
        pass_times.append(now - last[0])
        last[0] = now

    bare.fit(xtr, ytr, callbacks=[clock_pass])
    pass_time = float(np.min(pass_times[1:]))

    # -- scikit-learn ---------------------------------------------------------------------
    sk = SkMLP(hidden_layer_sizes=(HIDDEN,), solver="adam", learning_rate_init=1e-3,
               batch_size=BATCH, random_state=0, alpha=0.0)
    classes = np.unique(ytr)
    sk_times, sk_test = [], 0.0
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        sk.partial_fit(f32["train"], ytr, classes=classes)
        for name, (xe, ye) in evals_sk.items():
            proba = sk.predict_proba(xe)
            _loss = log_loss(ye, proba, labels=classes)
            acc = float(np.mean(classes[proba.argmax(1)] == ye))
            if name == "test":
                sk_test = acc
        sk_times.append(time.perf_counter() - t0)
    sk_epoch = float(np.min(sk_times[1:]))

    # -- matmul throughput on the training pass's own shapes --------------------------------
    sizes = [784, HIDDEN, 10]
    shapes = [(BATCH, 784, HIDDEN), (BATCH, HIDDEN, 10),  # forward
              (784, BATCH, HIDDEN), (HIDDEN, BATCH, 10),  # weight gradients
              (BATCH, 10, HIDDEN)]  # input gradient of the output layer
    # Best of before/after the training runs would be ideal; the machine is noisy, so measure
    # twice now and keep the higher (stricter) figure.
    gflops_shapes = max(matmul_gflops(shapes, args.repeat_matmul) for _ in range(2))
    gflops_square = matmul_gflops([(1024, 1024, 1024)], 5)
    pass_gflops = training_pass_flops(len(ytr), sizes) / pass_time / 1e9

    print(f"data: fashion-mnist train {len(ytr)} / val {len(yv)} / test {len(yte)}, "
          f"784-{HIDDEN}-10, adam, batch {BATCH}, {args.epochs} epochs")
    print(f"hpsearch     epoch (train pass + 3 evals): {ours_epoch:.3f} s   "
          f"test acc after {args.epochs}: {ours_test:.4f}")
    print(f"scikit-learn epoch (partial_fit + 3 evals): {sk_epoch:.3f} s   "
          f"test acc after {args.epochs}: {sk_test:.4f}")
    print(f"speed-up vs scikit-learn: {sk_epoch / ours_epoch:.2f}x (target >= 2)")
    print(f"accuracy difference: {abs(ours_test - sk_test) * 100:.2f} points (target <= 0.5)")
    print(f"training pass alone: {pass_time:.3f} s = {pass_gflops:.1f} GFLOP/s")
    print(f"float32 matmul on the pass's shapes: {gflops_shapes:.1f} GFLOP/s "
          f"(1024^3 square: {gflops_square:.1f} GFLOP/s)")
    print(f"training pass / matmul throughput: {pass_gflops / gflops_shapes:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
