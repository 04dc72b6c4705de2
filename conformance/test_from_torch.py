"""`refsnn.interop.from_torch`: twins of SpikingJelly networks compute the same
spikes, carry the same configuration and state_dict, and unsupported modules
are all named in one error. (Every network record of the catalog also runs
through from_torch; see test_catalog.py.)"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spikingjelly")

from spikingjelly.activation_based import functional as ab_functional  # noqa: E402
from spikingjelly.activation_based import layer as ab_layer  # noqa: E402
from spikingjelly.activation_based import neuron as ab_neuron  # noqa: E402
from spikingjelly.activation_based import surrogate as ab_surrogate  # noqa: E402
from spikingjelly.clock_driven import layer as cd_layer  # noqa: E402
from spikingjelly.clock_driven import neuron as cd_neuron  # noqa: E402
from spikingjelly.clock_driven import surrogate as cd_surrogate  # noqa: E402

import refsnn as rs  # noqa: E402
from refsnn import functional, neurons, surrogate  # noqa: E402
from refsnn.interop import from_torch  # noqa: E402


def _conv_bn_lif_linear_if():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        ab_layer.Conv2d(3, 8, 3, padding=1, bias=False), ab_layer.BatchNorm2d(8),
        ab_neuron.LIFNode(tau=2.0, surrogate_function=ab_surrogate.ATan(alpha=3.0)),
        ab_layer.Flatten(), ab_layer.Linear(8 * 8 * 8, 10),
        ab_neuron.IFNode(v_threshold=0.1, detach_reset=True))
    ab_functional.set_step_mode(net, "m")
    return net


@pytest.mark.parametrize("backend", ["numpy", "numpy-fused"])
@pytest.mark.parametrize("training", [True, False])
def test_conv_bn_lif_linear_if_twin_gives_identical_spikes(backend, training):
    net = _conv_bn_lif_linear_if().train(training)
    twin = from_torch(net, backend=backend)
    x = torch.rand(8, 4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 3
    expected = net(x).detach().numpy()
    got = twin(rs.tensor(x.numpy())).data
    assert expected.sum() > 10, "the test input should make the network spike"
    assert np.array_equal(got, expected)
    # conv/BN/linear outputs are not bit-reproducible (GEMM order), so the potentials
    # driven by them agree to rounding
    for name, hidden in (("2", net[2]), ("5", net[5])):
        np.testing.assert_allclose(dict(twin.named_modules())[name].v.data,
                                   hidden.v.detach().numpy(), rtol=1e-5, atol=1e-6)
    if training:  # BatchNorm statistics moved identically (up to GEMM rounding)
        np.testing.assert_allclose(twin[1].running_var.data, net[1].running_var.numpy(),
                                   rtol=1e-6)


def test_twin_copies_configuration_and_backend():
    net = torch.nn.Sequential(
        ab_neuron.LIFNode(tau=3.0, decay_input=False, v_reset=None, detach_reset=True,
                          surrogate_function=ab_surrogate.PiecewiseLeakyReLU(w=0.5, c=0.1),
                          step_mode="m", store_v_seq=True),
        ab_neuron.ParametricLIFNode(init_tau=4.0, step_mode="m"),
        ab_neuron.IzhikevichNode(a=0.1, b=0.05, tau_w=3.0))
    twin = from_torch(net, backend="numpy-fused")
    lif, plif, izh = twin[0], twin[1], twin[2]
    assert isinstance(lif, neurons.LIFNode) and lif.tau == 3.0 and lif.decay_input is False
    assert lif.v_reset is None and lif.detach_reset and lif.store_v_seq
    assert lif.step_mode == "m" and lif.backend == "numpy-fused"
    assert isinstance(lif.surrogate_function, surrogate.PiecewiseLeakyReLU)
    assert (lif.surrogate_function.w, lif.surrogate_function.c) == (0.5, 0.1)
    assert plif.w.data.tobytes() == net[1].w.detach().numpy().tobytes()
    assert izh.backend == "numpy"  # step mode 's' has no fused backend: the composed path
    assert (izh.a, izh.b, izh.tau_w, izh.step_mode) == (0.1, 0.05, 3.0, "s")


def test_clock_driven_twin_and_state_dict_keys():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        cd_layer.SeqToANNContainer(torch.nn.Conv2d(2, 4, 3, bias=False), torch.nn.BatchNorm2d(4)),
        cd_neuron.MultiStepParametricLIFNode(init_tau=3.0, surrogate_function=cd_surrogate.Erf()),
        cd_layer.MultiStepDropout(0.3),
        cd_layer.SeqToANNContainer(torch.nn.Flatten(), torch.nn.Linear(36, 3)),
        cd_neuron.MultiStepIFNode())
    twin = from_torch(net)
    assert list(twin.state_dict()) == list(net.state_dict())
    assert isinstance(twin[1], neurons.MultiStepParametricLIFNode)
    assert isinstance(twin[1].surrogate_function, surrogate.Erf)


def test_state_dict_round_trip_both_ways():
    net = _conv_bn_lif_linear_if()
    net(torch.rand(2, 2, 3, 8, 8))  # move the BatchNorm statistics
    twin = from_torch(net)
    # refsnn -> torch: a fresh network loads the twin's state_dict strictly
    fresh = _conv_bn_lif_linear_if()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in twin.state_dict().items()})
    for (k, a), (k2, b) in zip(fresh.state_dict().items(), net.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype and torch.equal(a, b), k
    # torch -> refsnn: a twin of the fresh network loads the original's state_dict
    other = from_torch(_conv_bn_lif_linear_if())
    other.load_state_dict(net.state_dict())
    for k, v in other.state_dict().items():
        assert v.tobytes() == net.state_dict()[k].numpy().tobytes(), k


def test_memories_are_copied():
    sj = ab_neuron.LIFNode()
    sj(torch.full((2, 3), 0.7))
    twin = from_torch(sj)
    assert twin.v.data.tobytes() == sj.v.numpy().tobytes()
    nxt = torch.full((2, 3), 0.9)
    assert np.array_equal(twin(rs.tensor(nxt.numpy())).data, sj(nxt).numpy())


def test_unsupported_modules_are_listed_in_one_error():
    class Custom(torch.nn.Module):
        def forward(self, x):
            return x

    net = torch.nn.Sequential(
        ab_layer.Linear(4, 4), torch.nn.GRU(4, 4),
        torch.nn.Sequential(ab_neuron.IFNode(), Custom()),
        ab_layer.Conv2d(2, 2, 3, padding_mode="reflect"))
    with pytest.raises(NotImplementedError) as info:
        from_torch(net)
    assert str(info.value) == ("from_torch: unsupported modules: 1 (GRU), 2.1 (Custom), "
                               "3 (Conv2d: padding_mode='reflect')")


def test_set_step_mode_and_reset_net_on_the_twin():
    net = _conv_bn_lif_linear_if()
    ab_functional.set_step_mode(net, "s")
    twin = from_torch(net)
    functional.set_step_mode(twin, "m")
    ab_functional.set_step_mode(net, "m")
    x = torch.rand(3, 2, 3, 8, 8) * 3
    for _ in range(2):
        assert np.array_equal(twin(rs.tensor(x.numpy())).data, net(x).detach().numpy())
        functional.reset_net(twin)
        ab_functional.reset_net(net)
