"""Train a small spiking CNN on scikit-learn's 8x8 digits with refsnn, and the
same network in SpikingJelly from identical initial weights and batch order.

    python examples/train_digits.py [--epochs 4] [--backend numpy-fused]
                                    [--dtype float64] [--compare-steps 50]
                                    [--plot digits_training.png]

The network (T=4 time steps, the image fed unchanged at every step):
    SeqToANN(Conv2d(1, 16, 3, padding=1, bias=False), BatchNorm2d(16))  [T, B, 16, 8, 8]
    LIF (tau=2, ATan surrogate, detach_reset)
    SeqToANN(MaxPool2d(2))                                               [T, B, 16, 4, 4]
    SeqToANN(Flatten(), Linear(256, 64))                                 [T, B, 64]
    LIF
    SeqToANN(Linear(64, 10))                                             [T, B, 10]
The logits are the last layer's output averaged over T (a non-spiking
read-out, so the loss is a continuous function of the weights and the two
libraries' curves can be compared to rounding), the loss is cross-entropy;
Adam, lr 1e-2.

refsnn trains for `--epochs` epochs (progress bar, test accuracy after each
epoch). SpikingJelly (activation_based API, torch backend) then trains the
same network from the same weights on the same batches for `--compare-steps`
steps, and the script prints the largest relative difference of the two loss
curves. Needs scikit-learn (`pip install 'refsnn[examples]'`); SpikingJelly and
matplotlib are used when installed.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import refsnn as rs
from refsnn import containers, functional, layers, neurons, optim, surrogate

T, CHANNELS, HIDDEN, CLASSES = 4, 16, 64, 10


# ----------------------------------------------------------------------------
# data and batches
# ----------------------------------------------------------------------------
def load_data(dtype="float64", test_fraction=0.2, seed=0):
    """scikit-learn's digits as (x_train, y_train, x_test, y_test); images
    [n, 1, 8, 8] scaled to [0, 1], labels [n] ints; a seeded shuffled split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("train_digits needs scikit-learn: pip install 'refsnn[examples]'")
    digits = load_digits()
    x = (digits.images / 16.0).astype(dtype)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def batch_order(n: int, batch_size: int, steps: int, seed: int = 0) -> list:
    """Index arrays of `steps` training batches: epochs of seeded permutations,
    the last short batch of each epoch dropped."""
    rng, out = np.random.default_rng(seed), []
    while len(out) < steps:
        perm = rng.permutation(n)
        out += [perm[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    return out[:steps]


def time_sequence(images: np.ndarray) -> np.ndarray:
    """[B, 1, 8, 8] -> [T, B, 1, 8, 8]: the image at every step (direct encoding)."""
    return np.ascontiguousarray(np.broadcast_to(images, (T,) + images.shape))


def cross_entropy(logits, labels: np.ndarray):
    """logits: [B, C] refsnn Tensor, labels: [B] ints -> mean negative
    log-likelihood of the softmax (log-sum-exp shifted by the row maximum)."""
    shifted = logits - logits.max(dim=1, keepdim=True).values.detach()
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return -log_probs[np.arange(len(labels)), labels].mean()


# ----------------------------------------------------------------------------
# refsnn
# ----------------------------------------------------------------------------
def build_refsnn(backend: str = "numpy-fused", dtype="float64", seed: int = 0):
    """The spiking CNN in refsnn (see the module docstring)."""
    rs.manual_seed(seed)

    def lif():
        return neurons.LIFNode(tau=2., surrogate_function=surrogate.ATan(),
                               detach_reset=True, step_mode="m", backend=backend)
    net = containers.Sequential(
        containers.SeqToANNContainer(layers.Conv2d(1, CHANNELS, 3, padding=1, bias=False),
                                     layers.BatchNorm2d(CHANNELS)),
        lif(),
        containers.SeqToANNContainer(layers.MaxPool2d(2)),
        containers.SeqToANNContainer(layers.Flatten(), layers.Linear(CHANNELS * 16, HIDDEN)),
        lif(),
        containers.SeqToANNContainer(layers.Linear(HIDDEN, CLASSES)),
    )
    return net.to(np.dtype(dtype))


class RefsnnTrainer:
    """Training step and evaluation of the refsnn network."""

    def __init__(self, net, lr: float = 1e-2):
        self.net = net
        self.opt = optim.Adam(net.parameters(), lr=lr)

    def step(self, images: np.ndarray, labels: np.ndarray) -> float:
        """One Adam step on a batch; returns the loss."""
        self.net.train()
        functional.reset_net(self.net)
        self.opt.zero_grad()
        logits = self.net(rs.Tensor(time_sequence(images))).mean(0)
        loss = cross_entropy(logits, labels)
        loss.backward()
        self.opt.step()
        return float(loss.data)

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        self.net.eval()
        functional.reset_net(self.net)
        with rs.no_grad():
            logits = self.net(rs.Tensor(time_sequence(images))).mean(0)
        functional.reset_net(self.net)
        return float((logits.data.argmax(1) == labels).mean())


# ----------------------------------------------------------------------------
# SpikingJelly
# ----------------------------------------------------------------------------
def build_spikingjelly(state_dict: dict, dtype="float64"):
    """The same network in SpikingJelly (activation_based, torch backend),
    loaded with `state_dict` (refsnn's, NumPy arrays)."""
    import torch
    from spikingjelly.activation_based import layer, neuron
    from spikingjelly.activation_based import surrogate as sj_surrogate
    nn = torch.nn

    def lif():
        return neuron.LIFNode(tau=2., surrogate_function=sj_surrogate.ATan(),
                              detach_reset=True, step_mode="m", backend="torch")
    net = nn.Sequential(
        layer.SeqToANNContainer(nn.Conv2d(1, CHANNELS, 3, padding=1, bias=False),
                                nn.BatchNorm2d(CHANNELS)),
        lif(),
        layer.SeqToANNContainer(nn.MaxPool2d(2)),
        layer.SeqToANNContainer(nn.Flatten(), nn.Linear(CHANNELS * 16, HIDDEN)),
        lif(),
        layer.SeqToANNContainer(nn.Linear(HIDDEN, CLASSES)),
    ).to(getattr(torch, dtype))
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})
    return net


class SpikingJellyTrainer:
    """The same training step in SpikingJelly."""

    def __init__(self, net, lr: float = 1e-2):
        import torch
        from spikingjelly.activation_based import functional as sj_functional
        self.torch, self.reset_net = torch, sj_functional.reset_net
        self.net = net
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step(self, images: np.ndarray, labels: np.ndarray) -> float:
        torch = self.torch
        self.net.train()
        self.reset_net(self.net)
        self.opt.zero_grad()
        logits = self.net(torch.from_numpy(time_sequence(images))).mean(0)
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
        loss.backward()
        self.opt.step()
        return float(loss.item())


# ----------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------
def progress(i: int, total: int, text: str, width: int = 30) -> None:
    """A one-line progress bar on stderr."""
    filled = width * i // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {i}/{total} {text}")
    if i == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def train(trainer, x, y, batches: list, show: str | None = None, evaluate=None,
          steps_per_epoch: int | None = None) -> dict:
    """Run `batches`; returns {'loss': [per step], 'accuracy': [(step, acc), ...]}.
    `evaluate()` (if given) is called after every `steps_per_epoch` steps."""
    history = {"loss": [], "accuracy": []}
    for i, idx in enumerate(batches, 1):
        history["loss"].append(trainer.step(x[idx], y[idx]))
        if evaluate is not None and steps_per_epoch and (i % steps_per_epoch == 0
                                                         or i == len(batches)):
            history["accuracy"].append((i, evaluate()))
        if show is not None:
            acc = f", test acc {history['accuracy'][-1][1]:.3f}" if history["accuracy"] else ""
            progress(i, len(batches), f"{show}: loss {history['loss'][-1]:.4f}{acc}")
    return history


def max_relative_difference(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float64).tiny)))


def plot(path: str, ours: dict, theirs: dict | None) -> bool:
    """Loss per step (both libraries) and test accuracy per epoch, as a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(ours["loss"], label="refsnn", lw=1.5)
    if theirs is not None:
        ax_loss.plot(theirs["loss"], "--", label="SpikingJelly (torch)", lw=1.5)
    ax_loss.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="training loss")
    ax_loss.legend()
    steps, acc = zip(*ours["accuracy"])
    ax_acc.plot(steps, acc, marker="o")
    ax_acc.set(xlabel="step", ylabel="test accuracy", title="refsnn test accuracy",
               ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--backend", default="numpy-fused", choices=("numpy", "numpy-fused", "opencl"))
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    p.add_argument("--compare-steps", type=int, default=50,
                   help="steps trained in SpikingJelly too (0: none)")
    p.add_argument("--plot", default="digits_training.png", help="PNG path ('' for none)")
    args = p.parse_args(argv)

    x_train, y_train, x_test, y_test = load_data(args.dtype)
    steps_per_epoch = len(y_train) // args.batch_size
    batches = batch_order(len(y_train), args.batch_size, args.epochs * steps_per_epoch)
    net = build_refsnn(args.backend, args.dtype)
    initial = net.state_dict()
    trainer = RefsnnTrainer(net)
    started = time.perf_counter()
    ours = train(trainer, x_train, y_train, batches, show="refsnn",
                 evaluate=lambda: trainer.accuracy(x_test, y_test),
                 steps_per_epoch=steps_per_epoch)
    seconds = time.perf_counter() - started
    print(f"refsnn ({args.backend}, {args.dtype}): {len(batches)} steps in {seconds:.1f} s, "
          f"final test accuracy {ours['accuracy'][-1][1]:.4f}")

    theirs = None
    if args.compare_steps > 0:
        try:
            import torch
            import spikingjelly  # noqa: F401
        except ImportError:
            print("SpikingJelly comparison skipped: torch/spikingjelly not installed")
        else:
            torch.set_num_threads(1)   # small tensors: a second thread only adds waits
            n = min(args.compare_steps, len(batches))
            theirs = train(SpikingJellyTrainer(build_spikingjelly(initial, args.dtype)),
                           x_train, y_train, batches[:n], show="SpikingJelly")
            diff = max_relative_difference(ours["loss"][:n], theirs["loss"])
            print(f"loss curves over the first {n} steps: max relative difference "
                  f"{diff:.3e} (refsnn vs SpikingJelly, {args.dtype})")
    if args.plot and plot(args.plot, ours, theirs):
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
