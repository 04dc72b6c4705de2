"""Worked example of docs/testing-your-kernel.md: test your own PyTorch LIF
layer against refsnn, with hypothesis strategies and with a golden bundle.

Run it with `pytest examples/test_my_lif.py` (needs torch and hypothesis).
"""
import torch
from hypothesis import given, settings

from refsnn import golden, strategies
from refsnn.golden_cli import main as refsnn_golden
from refsnn.testing import assert_grads_close, assert_spikes_equal


# --- your implementation ---------------------------------------------------
class SigmoidSpike(torch.autograd.Function):
    """Heaviside forward (fires on z >= 0), sigmoid surrogate backward."""

    @staticmethod
    def forward(ctx, z, alpha):
        ctx.save_for_backward(z)
        ctx.alpha = alpha
        return (z >= 0).to(z)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * z)
        return grad * ctx.alpha * sg * (1 - sg), None


def my_lif(x_seq, v, tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True,
           detach_reset=False, alpha=4.0):
    """x_seq: [T, N, *], v: [N, *] -> spikes, v_seq, h_seq, each [T, N, *]."""
    spikes, v_seq, h_seq = [], [], []
    for x in x_seq:
        if decay_input:
            h = v + (x - v) / tau if not v_reset else v + (x - (v - v_reset)) / tau
        else:
            h = v * (1. - 1. / tau) + x if not v_reset else v - (v - v_reset) / tau + x
        s = SigmoidSpike.apply(h - v_threshold, alpha)
        s_r = s.detach() if detach_reset else s
        v = h - s_r * v_threshold if v_reset is None else (1. - s_r) * h + s_r * v_reset
        spikes.append(s)
        v_seq.append(v)
        h_seq.append(h)
    return torch.stack(spikes), torch.stack(v_seq), torch.stack(h_seq)


# --- the adapter: refsnn's calling convention ------------------------------
def run_my_lif(manifest, arrays):
    """impl(manifest, arrays) -> dict of arrays, as `refsnn golden check` calls it."""
    config = manifest["config"]
    if manifest["component"] != "neuron" or \
            config["class"] not in ("LIFNode", "MultiStepLIFNode") or \
            config["surrogate"]["class"] != "Sigmoid" or not config.get("training", True):
        raise NotImplementedError("my_lif: LIF, Sigmoid surrogate, training mode only")
    kw = config["kwargs"]
    x = torch.from_numpy(arrays["x_seq"]).requires_grad_()
    v0 = torch.from_numpy(arrays["v_init"]).requires_grad_()
    spikes, v_seq, h_seq = my_lif(
        x, v0, tau=kw.get("tau", 2.0), v_threshold=kw.get("v_threshold", 1.0),
        v_reset=kw.get("v_reset", 0.0), decay_input=kw.get("decay_input", True),
        detach_reset=kw.get("detach_reset", False),
        alpha=config["surrogate"]["kwargs"].get("alpha", 4.0))
    loss = (spikes * torch.from_numpy(arrays["grad_spike_seq"])).sum() + \
        (v_seq * torch.from_numpy(arrays["grad_v_seq"])).sum()
    loss.backward()
    return {"spike_seq": spikes.detach().numpy(), "v_seq": v_seq.detach().numpy(),
            "h_seq": h_seq.detach().numpy(), "grad_x_seq": x.grad.numpy(),
            "grad_v_init": v0.grad.numpy()}


# --- property test with the strategies -------------------------------------
@settings(max_examples=25)
@given(strategies.neuron_cases(["LIFNode", "MultiStepLIFNode"], surrogates=["Sigmoid"]))
def test_my_lif_matches_refsnn(case):
    expected = golden.reference_outputs(case)          # refsnn, the reference
    actual = run_my_lif(case.manifest(), case.inputs)   # your kernel
    T = case.inputs["x_seq"].shape[0]
    assert_spikes_equal(actual["spike_seq"], expected["spike_seq"],
                        h_seq=expected["h_seq"], actual_h_seq=actual["h_seq"],
                        v_threshold=case.config["kwargs"]["v_threshold"])
    for name in ("v_seq", "grad_x_seq", "grad_v_init"):
        assert_grads_close(actual[name], expected[name], steps=T, name=name)


# --- golden bundle ---------------------------------------------------------
def test_my_lif_passes_the_golden_bundle(tmp_path):
    bundle = str(tmp_path / "golden")
    assert refsnn_golden(["export", bundle, "--select", "lif"]) == 0
    assert refsnn_golden(["check", bundle, "--impl", f"{__file__}:run_my_lif"]) == 0
