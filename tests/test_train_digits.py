"""The digits example (examples/train_digits.py): its refsnn network and
SpikingJelly's, from the same weights on the same batches, give the same loss
curve and the same weights in float64; a few steps lower the loss.

Synthetic 8x8 images stand in for scikit-learn's digits, so the test needs
torch and SpikingJelly but not scikit-learn.
"""
import numpy as np
import pytest

from examples_loader import load_example

torch = pytest.importorskip("torch")

STEPS, BATCH = 5, 16


@pytest.fixture(scope="module")
def example():
    return load_example("train_digits")


def _data(n=64, seed=0):
    """Images of 10 noisy class prototypes: [n, 1, 8, 8] in [0, 1], labels [n]."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 1, 8, 8))
    labels = rng.integers(0, 10, n)
    images = np.clip(prototypes[labels] + 0.2 * rng.standard_normal((n, 1, 8, 8)), 0, 1)
    return images.astype(np.float64), labels


@pytest.mark.parametrize("backend", ["numpy", "numpy-fused"])
def test_refsnn_and_spikingjelly_train_alike_in_float64(example, backend):
    torch.set_num_threads(1)
    x, y = _data()
    batches = example.batch_order(len(y), BATCH, STEPS, seed=1)
    net = example.build_refsnn(backend, "float64", seed=3)
    initial = net.state_dict()
    sj_net = example.build_spikingjelly(initial, "float64")

    ours = example.train(example.RefsnnTrainer(net), x, y, batches)
    theirs = example.train(example.SpikingJellyTrainer(sj_net), x, y, batches)

    assert len(ours["loss"]) == STEPS
    assert example.max_relative_difference(ours["loss"], theirs["loss"]) < 1e-10
    final_ours, final_theirs = net.state_dict(), sj_net.state_dict()
    assert set(final_ours) == set(final_theirs)
    for key, value in final_ours.items():
        np.testing.assert_allclose(value, final_theirs[key].numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=key)
        if key.endswith("weight"):   # every weight was trained
            assert not np.array_equal(value, initial[key]), key


def test_a_few_steps_lower_the_loss_and_accuracy_is_a_fraction(example):
    x, y = _data(n=96)
    trainer = example.RefsnnTrainer(example.build_refsnn("numpy-fused", "float64"))
    history = example.train(trainer, x, y, example.batch_order(len(y), BATCH, 30),
                            evaluate=lambda: trainer.accuracy(x, y), steps_per_epoch=15)
    first, last = np.mean(history["loss"][:5]), np.mean(history["loss"][-5:])
    assert last < 0.8 * first
    assert [step for step, _ in history["accuracy"]] == [15, 30]
    assert history["accuracy"][-1][1] > 0.5   # 10 classes: chance is 0.1


def test_batch_order_is_epochs_of_permutations(example):
    batches = example.batch_order(10, 4, 5, seed=0)
    assert [len(b) for b in batches] == [4] * 5
    epoch = np.concatenate(batches[:2])
    assert len(set(epoch.tolist())) == 8   # no repeats inside an epoch
