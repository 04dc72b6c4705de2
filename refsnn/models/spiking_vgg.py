"""Spiking VGGs (SpikingJelly 0.0.0.0.14 `clock_driven.model.spiking_vgg`):
torchvision's VGGs with a spiking neuron where the ANN has a ReLU.

- `spiking_vgg11(single_step_neuron=IFNode, **kwargs)`,
  `spiking_vgg11_bn(norm_layer=None, single_step_neuron=..., **kwargs)`, ...:
  step by step, `x: [N, 3, H, W] -> [N, num_classes]` per time step.
- `multi_step_spiking_vgg11(T=..., multi_step_neuron=MultiStepIFNode, **kwargs)`,
  ...: layer by layer, `x_seq: [T, N, 3, H, W]` (or a static `x: [N, 3, H, W]`
  run through the first convolution once and repeated T times)
  `-> [T, N, num_classes]`.

Layout: `features` (3x3 convolutions, [batch norm,] neuron; 2x2 max pools),
`avgpool` (adaptive, to 7x7), `classifier` (Linear 25088->4096, neuron,
Dropout, Linear 4096->4096, neuron, Dropout, Linear 4096->num_classes), so
`state_dict` keys and shapes are torchvision's `vgg11` / `vgg11_bn`. The
dropouts are PyTorch's per-call `nn.Dropout` (`layers.TorchDropout`), as in
SpikingJelly's VGG; in the layer-by-layer model they draw one mask over
`[T*N, ...]`. `kwargs` go to the model (`num_classes`, `init_weights`) and
the rest to every neuron.
"""
from __future__ import annotations

from ..containers import Sequential
from ..layers import (AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d,
                      TorchDropout)
from ..module import MemoryModule, Module
from ._common import (LayerByLayer, StepByStep, build_neuron, kaiming_normal_fan_out,
                      normal_, refuse_pretrained)

__all__ = [
    "cfgs", "SpikingVGG", "MultiStepSpikingVGG",
    "spiking_vgg11", "spiking_vgg11_bn", "spiking_vgg13", "spiking_vgg13_bn",
    "spiking_vgg16", "spiking_vgg16_bn", "spiking_vgg19", "spiking_vgg19_bn",
    "multi_step_spiking_vgg11", "multi_step_spiking_vgg11_bn", "multi_step_spiking_vgg13",
    "multi_step_spiking_vgg13_bn", "multi_step_spiking_vgg16", "multi_step_spiking_vgg16_bn",
    "multi_step_spiking_vgg19", "multi_step_spiking_vgg19_bn",
]

#: torchvision's VGG configurations: output channels of each 3x3 convolution,
#: 'M' for a 2x2 max pool. A: VGG-11, B: VGG-13, D: VGG-16, E: VGG-19.
cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


class SpikingVGG(StepByStep, Module):
    """Step-by-step spiking VGG: `x: [N, 3, H, W] -> [N, num_classes]` per step."""

    def __init__(self, cfg, batch_norm: bool = False, norm_layer=None, num_classes: int = 1000,
                 init_weights: bool = True, single_step_neuron=None, **kwargs):
        super().__init__()
        self.features = self._make_features(cfg, batch_norm, norm_layer, single_step_neuron,
                                            kwargs)
        self.avgpool = AdaptiveAvgPool2d((7, 7))
        self.classifier = Sequential(
            Linear(512 * 7 * 7, 4096),
            build_neuron(self, single_step_neuron, kwargs),
            TorchDropout(),
            Linear(4096, 4096),
            build_neuron(self, single_step_neuron, kwargs),
            TorchDropout(),
            Linear(4096, num_classes),
        )
        if init_weights:
            self._initialize_weights()

    def _make_features(self, cfg, batch_norm: bool, norm_layer, neuron, kwargs) -> Sequential:
        norm_layer = BatchNorm2d if norm_layer is None else norm_layer
        features, in_channels = [], 3
        for v in cfg:
            if v == "M":
                features.append(MaxPool2d(kernel_size=2, stride=2))
                continue
            features.append(Conv2d(in_channels, v, kernel_size=3, padding=1))
            if batch_norm:
                features.append(norm_layer(v))
            features.append(build_neuron(self, neuron, kwargs))
            in_channels = v
        return Sequential(*features)

    def _initialize_weights(self) -> None:
        """SpikingJelly's (and torchvision's) VGG init: convolutions
        kaiming-normal (fan_out, relu) with zero bias, batch norm 1/0, linear
        layers N(0, 0.01^2) with zero bias."""
        for m in self.modules():
            if isinstance(m, Conv2d):
                kaiming_normal_fan_out(m.weight)
                if m.bias is not None:
                    m.bias.data[...] = 0
            elif isinstance(m, BatchNorm2d) and m.affine:
                m.weight.data[...] = 1
                m.bias.data[...] = 0
            elif isinstance(m, Linear):
                normal_(m.weight, 0.01)
                m.bias.data[...] = 0

    def _run(self, x, modules):
        """Stateful modules (neurons) get `x` as is; stateless ones go through `_ann`."""
        for m in modules:
            x = m(x) if isinstance(m, MemoryModule) else self._ann(x, m)
        return x

    def forward(self, x):
        """`x: [N, 3, H, W]` (step by step) or `x_seq: [T, N, 3, H, W]` / `x: [N, 3, H, W]`
        (layer by layer) -> `[N, num_classes]` / `[T, N, num_classes]`."""
        features = list(self.features)
        x = self._run(self._input_layers(x, features[0]), features[1:])
        x = self._ann(x, self.avgpool).flatten(-3)
        return self._run(x, self.classifier)


class MultiStepSpikingVGG(LayerByLayer, SpikingVGG):
    """Layer-by-layer spiking VGG: `x_seq: [T, N, 3, H, W]`, or `x: [N, 3, H, W]`
    repeated `T` times after the first convolution, `-> [T, N, num_classes]`."""

    def __init__(self, cfg, batch_norm: bool = False, norm_layer=None, num_classes: int = 1000,
                 init_weights: bool = True, T: int = None, multi_step_neuron=None, **kwargs):
        super().__init__(cfg, batch_norm, norm_layer, num_classes, init_weights,
                         multi_step_neuron, **kwargs)
        self.T = T


def _builders(arch: str, cfg: str, batch_norm: bool):
    """The step-by-step and layer-by-layer builders of torchvision's `arch`,
    with SpikingJelly's names and signatures (`norm_layer` only for `*_bn`)."""
    name = f"spiking_{arch}"

    def check_pretrained(pretrained: bool, builder: str) -> None:
        if pretrained:
            refuse_pretrained(builder, arch)

    if batch_norm:
        def single_step(pretrained: bool = False, progress: bool = True, norm_layer=None,
                        single_step_neuron=None, **kwargs):
            check_pretrained(pretrained, name)
            return SpikingVGG(cfgs[cfg], True, norm_layer,
                              single_step_neuron=single_step_neuron, **kwargs)

        def multi_step(pretrained: bool = False, progress: bool = True, norm_layer=None,
                       T: int = None, multi_step_neuron=None, **kwargs):
            check_pretrained(pretrained, f"multi_step_{name}")
            return MultiStepSpikingVGG(cfgs[cfg], True, norm_layer, T=T,
                                       multi_step_neuron=multi_step_neuron, **kwargs)
    else:
        def single_step(pretrained: bool = False, progress: bool = True,
                        single_step_neuron=None, **kwargs):
            check_pretrained(pretrained, name)
            return SpikingVGG(cfgs[cfg], False, single_step_neuron=single_step_neuron,
                              **kwargs)

        def multi_step(pretrained: bool = False, progress: bool = True, T: int = None,
                       multi_step_neuron=None, **kwargs):
            check_pretrained(pretrained, f"multi_step_{name}")
            return MultiStepSpikingVGG(cfgs[cfg], False, T=T,
                                       multi_step_neuron=multi_step_neuron, **kwargs)

    bn = " with batch norm" if batch_norm else ""
    single_step.__name__ = single_step.__qualname__ = name
    single_step.__doc__ = (
        f"Step-by-step spiking {arch}{bn}: torchvision's `{arch}` with "
        f"`single_step_neuron(**kwargs)` for each ReLU. `x: [N, 3, H, W] -> "
        f"[N, num_classes]` per time step. `progress` is ignored; `pretrained=True` "
        f"raises (load weights with `refsnn.checkpoints`).")
    multi_step.__name__ = multi_step.__qualname__ = f"multi_step_{name}"
    multi_step.__doc__ = (
        f"Layer-by-layer spiking {arch}{bn}: torchvision's `{arch}` with "
        f"`multi_step_neuron(**kwargs)` for each ReLU and the stateless layers run on "
        f"`[T*N, ...]`. `x_seq: [T, N, 3, H, W]` (or `x: [N, 3, H, W]` repeated `T` "
        f"times) `-> [T, N, num_classes]`. `progress` is ignored; `pretrained=True` "
        f"raises (load weights with `refsnn.checkpoints`).")
    return single_step, multi_step


spiking_vgg11, multi_step_spiking_vgg11 = _builders("vgg11", "A", False)
spiking_vgg11_bn, multi_step_spiking_vgg11_bn = _builders("vgg11_bn", "A", True)
spiking_vgg13, multi_step_spiking_vgg13 = _builders("vgg13", "B", False)
spiking_vgg13_bn, multi_step_spiking_vgg13_bn = _builders("vgg13_bn", "B", True)
spiking_vgg16, multi_step_spiking_vgg16 = _builders("vgg16", "D", False)
spiking_vgg16_bn, multi_step_spiking_vgg16_bn = _builders("vgg16_bn", "D", True)
spiking_vgg19, multi_step_spiking_vgg19 = _builders("vgg19", "E", False)
spiking_vgg19_bn, multi_step_spiking_vgg19_bn = _builders("vgg19_bn", "E", True)
