"""Spike-element-wise ResNets (SpikingJelly 0.0.0.0.14
`clock_driven.model.sew_resnet`; Fang et al., "Deep Residual Learning in
Spiking Neural Networks", 2021).

A SEW block ends its residual branch with a neuron, spikes the downsampled
shortcut through a neuron of its own (`downsample_sn`), and joins the two spike
trains with `sew_function(identity, out, cnf)`:
'ADD' `identity + out`, 'AND' `identity * out`, 'IAND' `identity * (1 - out)`.

Builders, patterns and shapes as in `spiking_resnet`:
`sew_resnet18(cnf='ADD', single_step_neuron=IFNode, **kwargs)` is step by step,
`x: [N, 3, H, W] -> [N, num_classes]`; `multi_step_sew_resnet18(T=..., cnf=...,
multi_step_neuron=MultiStepIFNode, **kwargs)` is layer by layer,
`x_seq: [T, N, 3, H, W]` (or `x: [N, 3, H, W]` repeated T times)
`-> [T, N, num_classes]`. Neurons hold no parameters here, so `state_dict`
keys and shapes are torchvision's.

Differences from SpikingJelly 0.0.0.0.14:
- `cnf` is checked when the block is built (SpikingJelly raises
  NotImplementedError at the first forward, and accepts the default None).
- SpikingJelly's step-by-step `Bottleneck` calls `sew_function(out, identity)`
  while its multi-step bottleneck and both basic blocks call
  `sew_function(identity, out)`; for 'IAND' (not symmetric) the two differ.
  refsnn uses `sew_function(identity, out)` everywhere, the paper's
  `(NOT out) AND identity`.
"""
from __future__ import annotations

from ..layers import BatchNorm2d
from ._common import LayerByLayer, StepByStep, build_neuron, refuse_pretrained
from ._resnet import TORCHVISION_RESNETS, ResidualBlock, ResNetBase, conv1x1, conv3x3

__all__ = [
    "sew_function", "BasicBlock", "MultiStepBasicBlock", "Bottleneck", "MultiStepBottleneck",
    "SEWResNet", "MultiStepSEWResNet",
    "sew_resnet18", "sew_resnet34", "sew_resnet50", "sew_resnet101", "sew_resnet152",
    "sew_resnext50_32x4d", "sew_resnext101_32x8d", "sew_wide_resnet50_2",
    "sew_wide_resnet101_2",
    "multi_step_sew_resnet18", "multi_step_sew_resnet34", "multi_step_sew_resnet50",
    "multi_step_sew_resnet101", "multi_step_sew_resnet152", "multi_step_sew_resnext50_32x4d",
    "multi_step_sew_resnext101_32x8d", "multi_step_sew_wide_resnet50_2",
    "multi_step_sew_wide_resnet101_2",
]

CONNECTIONS = ("ADD", "AND", "IAND")


def sew_function(x, y, cnf: str):
    """Join spike tensors of one shape: 'ADD' `x + y`, 'AND' `x * y`,
    'IAND' `x * (1 - y)`; anything else raises NotImplementedError (as in
    SpikingJelly)."""
    if cnf == "ADD":
        return x + y
    if cnf == "AND":
        return x * y
    if cnf == "IAND":
        return x * (1. - y)
    raise NotImplementedError(f"sew_function: cnf must be one of {CONNECTIONS}, got {cnf!r}")


def _check_cnf(owner, cnf) -> None:
    if cnf not in CONNECTIONS:
        raise ValueError(f"{type(owner).__name__}: cnf (the spike-element-wise connection) "
                         f"must be one of {CONNECTIONS}, got {cnf!r}")


class _SEWBlock(StepByStep, ResidualBlock):
    """What SEW blocks share: the spiking shortcut and the repr."""

    def _identity(self, x):
        """The shortcut: `x`, or `downsample_sn(downsample(x))` when the shape changes."""
        if self.downsample is None:
            return x
        return self.downsample_sn(self._ann(x, self.downsample))

    def extra_repr(self) -> str:
        return f"cnf={self.cnf}"


class BasicBlock(_SEWBlock):
    """`sew(identity, sn2(bn2(conv2(sn1(bn1(conv1(x)))))))`, with
    `identity = downsample_sn(downsample(x))` when the shape changes."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 cnf: str = None, single_step_neuron=None, **kwargs):
        super().__init__()
        norm_layer = BatchNorm2d if norm_layer is None else norm_layer
        if groups != 1 or base_width != 64:
            raise ValueError(f"{type(self).__name__} only supports groups=1 and "
                             f"base_width=64, got groups={groups}, base_width={base_width}")
        if dilation > 1:
            raise NotImplementedError(f"{type(self).__name__}: dilation > 1 is not supported, "
                                      f"got dilation={dilation}")
        _check_cnf(self, cnf)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.sn1 = build_neuron(self, single_step_neuron, kwargs)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.sn2 = build_neuron(self, single_step_neuron, kwargs)
        self.downsample = downsample
        if downsample is not None:
            self.downsample_sn = build_neuron(self, single_step_neuron, kwargs)
        self.stride = stride
        self.cnf = cnf

    @property
    def residual_bn(self):
        return self.bn2

    def forward(self, x):
        out = self.sn1(self._ann(x, self.conv1, self.bn1))
        out = self.sn2(self._ann(out, self.conv2, self.bn2))
        return sew_function(self._identity(x), out, self.cnf)


class MultiStepBasicBlock(LayerByLayer, BasicBlock):
    """SEW `BasicBlock` on sequences `[T, N, C, H, W]`."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 cnf: str = None, multi_step_neuron=None, **kwargs):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation,
                         norm_layer, cnf, multi_step_neuron, **kwargs)


class Bottleneck(_SEWBlock):
    """1x1, 3x3, 1x1 convolutions, each followed by batch norm and a neuron;
    joined with the (spiking) shortcut by `sew_function(identity, out, cnf)`."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 cnf: str = None, single_step_neuron=None, **kwargs):
        super().__init__()
        norm_layer = BatchNorm2d if norm_layer is None else norm_layer
        _check_cnf(self, cnf)
        width = int(planes * (base_width / 64.)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.sn1 = build_neuron(self, single_step_neuron, kwargs)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.sn2 = build_neuron(self, single_step_neuron, kwargs)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.sn3 = build_neuron(self, single_step_neuron, kwargs)
        self.downsample = downsample
        if downsample is not None:
            self.downsample_sn = build_neuron(self, single_step_neuron, kwargs)
        self.stride = stride
        self.cnf = cnf

    @property
    def residual_bn(self):
        return self.bn3

    def forward(self, x):
        out = self.sn1(self._ann(x, self.conv1, self.bn1))
        out = self.sn2(self._ann(out, self.conv2, self.bn2))
        out = self.sn3(self._ann(out, self.conv3, self.bn3))
        return sew_function(self._identity(x), out, self.cnf)


class MultiStepBottleneck(LayerByLayer, Bottleneck):
    """SEW `Bottleneck` on sequences `[T, N, C, H, W]`."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 cnf: str = None, multi_step_neuron=None, **kwargs):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation,
                         norm_layer, cnf, multi_step_neuron, **kwargs)


class SEWResNet(StepByStep, ResNetBase):
    """Step-by-step SEW ResNet: `x: [N, 3, H, W] -> [N, num_classes]` per step."""

    def __init__(self, block, layers, num_classes: int = 1000, zero_init_residual: bool = False,
                 groups: int = 1, width_per_group: int = 64, replace_stride_with_dilation=None,
                 norm_layer=None, cnf: str = None, single_step_neuron=None, **kwargs):
        super().__init__(block, layers, num_classes, zero_init_residual, groups,
                         width_per_group, replace_stride_with_dilation, norm_layer,
                         single_step_neuron, kwargs, block_extra={"cnf": cnf})


class MultiStepSEWResNet(LayerByLayer, ResNetBase):
    """Layer-by-layer SEW ResNet: `x_seq: [T, N, 3, H, W]`, or `x: [N, 3, H, W]`
    repeated `T` times after conv1/bn1, `-> [T, N, num_classes]`."""

    def __init__(self, block, layers, num_classes: int = 1000, zero_init_residual: bool = False,
                 groups: int = 1, width_per_group: int = 64, replace_stride_with_dilation=None,
                 norm_layer=None, T: int = None, cnf: str = None, multi_step_neuron=None,
                 **kwargs):
        super().__init__(block, layers, num_classes, zero_init_residual, groups,
                         width_per_group, replace_stride_with_dilation, norm_layer,
                         multi_step_neuron, kwargs, block_extra={"cnf": cnf})
        self.T = T


def _builders(arch: str):
    """The step-by-step and layer-by-layer SEW builders of torchvision's `arch`
    (a key of `TORCHVISION_RESNETS`), with SpikingJelly's names and signatures."""
    name = f"sew_{arch}"
    bottleneck, stages, fixed = TORCHVISION_RESNETS[arch]
    block, multi_step_block = (Bottleneck, MultiStepBottleneck) if bottleneck else \
        (BasicBlock, MultiStepBasicBlock)
    layers = list(stages)

    def single_step(pretrained: bool = False, progress: bool = True, cnf: str = None,
                    single_step_neuron=None, **kwargs):
        if pretrained:
            refuse_pretrained(name, arch)
        return SEWResNet(block, layers, cnf=cnf, single_step_neuron=single_step_neuron,
                         **{**kwargs, **fixed})

    def multi_step(pretrained: bool = False, progress: bool = True, T: int = None,
                   cnf: str = None, multi_step_neuron=None, **kwargs):
        if pretrained:
            refuse_pretrained(f"multi_step_{name}", arch)
        return MultiStepSEWResNet(multi_step_block, layers, T=T, cnf=cnf,
                                  multi_step_neuron=multi_step_neuron, **{**kwargs, **fixed})

    single_step.__name__ = single_step.__qualname__ = name
    single_step.__doc__ = (
        f"Step-by-step SEW {arch}: torchvision's `{arch}` layout with "
        f"`single_step_neuron(**kwargs)` neurons and `cnf` ('ADD', 'AND', 'IAND') "
        f"shortcuts. `x: [N, 3, H, W] -> [N, num_classes]` per time step. `progress` "
        f"is ignored; `pretrained=True` raises (load weights with `refsnn.checkpoints`).")
    multi_step.__name__ = multi_step.__qualname__ = f"multi_step_{name}"
    multi_step.__doc__ = (
        f"Layer-by-layer SEW {arch}: `multi_step_neuron(**kwargs)` neurons, `cnf` "
        f"shortcuts, stateless layers run on `[T*N, ...]`. `x_seq: [T, N, 3, H, W]` "
        f"(or `x: [N, 3, H, W]` repeated `T` times) `-> [T, N, num_classes]`. "
        f"`progress` is ignored; `pretrained=True` raises (load weights with "
        f"`refsnn.checkpoints`).")
    return single_step, multi_step


sew_resnet18, multi_step_sew_resnet18 = _builders("resnet18")
sew_resnet34, multi_step_sew_resnet34 = _builders("resnet34")
sew_resnet50, multi_step_sew_resnet50 = _builders("resnet50")
sew_resnet101, multi_step_sew_resnet101 = _builders("resnet101")
sew_resnet152, multi_step_sew_resnet152 = _builders("resnet152")
sew_resnext50_32x4d, multi_step_sew_resnext50_32x4d = _builders("resnext50_32x4d")
sew_resnext101_32x8d, multi_step_sew_resnext101_32x8d = _builders("resnext101_32x8d")
sew_wide_resnet50_2, multi_step_sew_wide_resnet50_2 = _builders("wide_resnet50_2")
sew_wide_resnet101_2, multi_step_sew_wide_resnet101_2 = _builders("wide_resnet101_2")
