"""A tiny training loop in refsnn and in PyTorch, step for step.

An MLP (Linear-ReLU-Linear) trained with MSE or cross-entropy (both written
with refsnn autograd ops) by SGD with momentum or Adam, in float64, from the
same weights (copied through state_dict / load_state_dict, either way), on
synthetic data from a fixed seed: losses agree to 1e-10 relative at every
step and the final weights agree too.
"""
import numpy as np
import pytest

from refsnn import optim
from refsnn.autograd import manual_seed, tensor
from refsnn.containers import Sequential
from refsnn.layers import Linear, ReLU

torch = pytest.importorskip("torch")

N, IN, HIDDEN, CLASSES, STEPS, BATCH = 48, 10, 16, 4, 25, 16


def ours_mlp(n_out, seed=1):
    manual_seed(seed)
    return Sequential(Linear(IN, HIDDEN), ReLU(), Linear(HIDDEN, n_out)).double()


def torch_mlp(n_out, seed=2):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(),
                               torch.nn.Linear(HIDDEN, n_out)).double()


def mse(out, target):
    """out, target: [N, C] -> mean squared error."""
    return ((out - target) ** 2).mean()


def cross_entropy(logits, labels):
    """logits: [N, C], labels: [N] int -> mean negative log-likelihood of softmax."""
    shifted = logits - logits.max(dim=1, keepdim=True).values.detach()
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return -log_probs[np.arange(labels.shape[0]), labels].mean()


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, IN))
    y = np.tanh(x @ rng.standard_normal((IN, 3))) + 0.1 * rng.standard_normal((N, 3))
    labels = (x @ rng.standard_normal((IN, CLASSES))).argmax(axis=1)
    return x, y, labels


LOSSES = {
    "mse": (3, mse, torch.nn.functional.mse_loss, lambda y, labels: y),
    "cross_entropy": (CLASSES, cross_entropy, torch.nn.functional.cross_entropy,
                      lambda y, labels: labels),
}
OPTIMIZERS = {
    "sgd_momentum": (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov_wd": (optim.SGD, torch.optim.SGD,
                        dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    "adam": (optim.Adam, torch.optim.Adam, dict(lr=0.01)),
    "adam_wd": (optim.Adam, torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.01)),
}


def _copy_weights(ours, theirs, direction):
    if direction == "refsnn_to_torch":
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    else:
        ours.load_state_dict(theirs.state_dict())


@pytest.mark.parametrize("direction", ["refsnn_to_torch", "torch_to_refsnn"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_training_losses_match_torch_step_for_step(loss_name, opt_name, direction):
    n_out, our_loss, torch_loss, pick_target = LOSSES[loss_name]
    our_opt_cls, torch_opt_cls, config = OPTIMIZERS[opt_name]
    x, y, labels = _data()
    target = pick_target(y, labels)

    ours, theirs = ours_mlp(n_out), torch_mlp(n_out)
    _copy_weights(ours, theirs, direction)
    our_opt = our_opt_cls(ours.parameters(), **config)
    torch_opt = torch_opt_cls(theirs.parameters(), **config)

    our_losses, torch_losses = [], []
    for step in range(STEPS):
        batch = slice((step * BATCH) % N, (step * BATCH) % N + BATCH)
        our_opt.zero_grad()
        loss = our_loss(ours(tensor(x[batch])), target[batch])
        loss.backward()
        our_opt.step()
        our_losses.append(float(loss.data))

        torch_opt.zero_grad()
        loss_t = torch_loss(theirs(torch.from_numpy(x[batch])), torch.from_numpy(target[batch]))
        loss_t.backward()
        torch_opt.step()
        torch_losses.append(loss_t.item())

    np.testing.assert_allclose(our_losses, torch_losses, rtol=1e-10, atol=0)
    assert our_losses[-1] < 0.8 * our_losses[0]  # it did train
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=key)
