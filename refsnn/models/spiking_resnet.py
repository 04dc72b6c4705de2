"""Spiking ResNets (SpikingJelly 0.0.0.0.14 `clock_driven.model.spiking_resnet`):
torchvision's ResNets with a spiking neuron where the ANN has a ReLU.

- `spiking_resnet18(single_step_neuron=IFNode, **kwargs)` and friends build the
  step-by-step model: `x: [N, 3, H, W] -> [N, num_classes]` for one time step;
  call it T times, then `functional.reset_net`.
- `multi_step_spiking_resnet18(T=..., multi_step_neuron=MultiStepIFNode, **kwargs)`
  and friends build the layer-by-layer model: `x_seq: [T, N, 3, H, W]` (or a
  static `x: [N, 3, H, W]`, run through conv1/bn1 once and repeated T times)
  `-> [T, N, num_classes]`.

`kwargs` go to the model (`num_classes`, `zero_init_residual`, `groups`,
`width_per_group`, `replace_stride_with_dilation`, `norm_layer`) and the rest
to every neuron (`v_threshold=`, `surrogate_function=`, `tau=`, ...). Both
patterns have torchvision's `state_dict` keys and shapes (for neurons without
parameters), so weights of torchvision's `resnet18` load into either.

Block: `sn(bn1(conv1(x)))`, then `bn2(conv2(.))` plus the (downsampled)
input, then the second neuron; the bottleneck has three convolutions.
"""
from __future__ import annotations

from ..layers import BatchNorm2d
from ._common import LayerByLayer, StepByStep, build_neuron, refuse_pretrained
from ._resnet import TORCHVISION_RESNETS, ResidualBlock, ResNetBase, conv1x1, conv3x3

__all__ = [
    "BasicBlock", "MultiStepBasicBlock", "Bottleneck", "MultiStepBottleneck",
    "SpikingResNet", "MultiStepSpikingResNet",
    "spiking_resnet18", "spiking_resnet34", "spiking_resnet50", "spiking_resnet101",
    "spiking_resnet152", "spiking_resnext50_32x4d", "spiking_resnext101_32x8d",
    "spiking_wide_resnet50_2", "spiking_wide_resnet101_2",
    "multi_step_spiking_resnet18", "multi_step_spiking_resnet34",
    "multi_step_spiking_resnet50", "multi_step_spiking_resnet101",
    "multi_step_spiking_resnet152", "multi_step_spiking_resnext50_32x4d",
    "multi_step_spiking_resnext101_32x8d", "multi_step_spiking_wide_resnet50_2",
    "multi_step_spiking_wide_resnet101_2",
]


class BasicBlock(StepByStep, ResidualBlock):
    """Two 3x3 convolutions; `sn2(bn2(conv2(sn1(bn1(conv1(x))))) + identity)`."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 single_step_neuron=None, **kwargs):
        super().__init__()
        norm_layer = BatchNorm2d if norm_layer is None else norm_layer
        if groups != 1 or base_width != 64:
            raise ValueError(f"{type(self).__name__} only supports groups=1 and "
                             f"base_width=64, got groups={groups}, base_width={base_width}")
        if dilation > 1:
            raise NotImplementedError(f"{type(self).__name__}: dilation > 1 is not supported, "
                                      f"got dilation={dilation}")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.sn1 = build_neuron(self, single_step_neuron, kwargs)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.sn2 = build_neuron(self, single_step_neuron, kwargs)
        self.downsample = downsample
        self.stride = stride

    @property
    def residual_bn(self):
        return self.bn2

    def forward(self, x):
        out = self.sn1(self._ann(x, self.conv1, self.bn1))
        out = self._ann(out, self.conv2, self.bn2)
        identity = x if self.downsample is None else self._ann(x, self.downsample)
        return self.sn2(out + identity)


class MultiStepBasicBlock(LayerByLayer, BasicBlock):
    """`BasicBlock` on sequences `[T, N, C, H, W]`."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 multi_step_neuron=None, **kwargs):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation,
                         norm_layer, multi_step_neuron, **kwargs)


class Bottleneck(StepByStep, ResidualBlock):
    """1x1, 3x3 (strided, grouped), 1x1 convolutions (torchvision's ResNet V1.5);
    the last neuron fires on `bn3(conv3(.)) + identity`."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 single_step_neuron=None, **kwargs):
        super().__init__()
        norm_layer = BatchNorm2d if norm_layer is None else norm_layer
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
        self.stride = stride

    @property
    def residual_bn(self):
        return self.bn3

    def forward(self, x):
        out = self.sn1(self._ann(x, self.conv1, self.bn1))
        out = self.sn2(self._ann(out, self.conv2, self.bn2))
        out = self._ann(out, self.conv3, self.bn3)
        identity = x if self.downsample is None else self._ann(x, self.downsample)
        return self.sn3(out + identity)


class MultiStepBottleneck(LayerByLayer, Bottleneck):
    """`Bottleneck` on sequences `[T, N, C, H, W]`."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None,
                 multi_step_neuron=None, **kwargs):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation,
                         norm_layer, multi_step_neuron, **kwargs)


class SpikingResNet(StepByStep, ResNetBase):
    """Step-by-step spiking ResNet: `x: [N, 3, H, W] -> [N, num_classes]` per step."""

    def __init__(self, block, layers, num_classes: int = 1000, zero_init_residual: bool = False,
                 groups: int = 1, width_per_group: int = 64, replace_stride_with_dilation=None,
                 norm_layer=None, single_step_neuron=None, **kwargs):
        super().__init__(block, layers, num_classes, zero_init_residual, groups,
                         width_per_group, replace_stride_with_dilation, norm_layer,
                         single_step_neuron, kwargs)


class MultiStepSpikingResNet(LayerByLayer, ResNetBase):
    """Layer-by-layer spiking ResNet: `x_seq: [T, N, 3, H, W]`, or `x: [N, 3, H, W]`
    repeated `T` times after conv1/bn1, `-> [T, N, num_classes]`."""

    def __init__(self, block, layers, num_classes: int = 1000, zero_init_residual: bool = False,
                 groups: int = 1, width_per_group: int = 64, replace_stride_with_dilation=None,
                 norm_layer=None, T: int = None, multi_step_neuron=None, **kwargs):
        super().__init__(block, layers, num_classes, zero_init_residual, groups,
                         width_per_group, replace_stride_with_dilation, norm_layer,
                         multi_step_neuron, kwargs)
        self.T = T


def _builders(arch: str):
    """The step-by-step and layer-by-layer builder functions of torchvision's
    `arch` (a key of `TORCHVISION_RESNETS`), with SpikingJelly's names and
    signatures. Its fixed model arguments (ResNeXt groups, wide widths)
    override the caller's, as in SpikingJelly."""
    name = f"spiking_{arch}"
    bottleneck, stages, fixed = TORCHVISION_RESNETS[arch]
    block, multi_step_block = (Bottleneck, MultiStepBottleneck) if bottleneck else \
        (BasicBlock, MultiStepBasicBlock)
    layers = list(stages)

    def single_step(pretrained: bool = False, progress: bool = True, single_step_neuron=None,
                    **kwargs):
        if pretrained:
            refuse_pretrained(name, arch)
        return SpikingResNet(block, layers, single_step_neuron=single_step_neuron,
                             **{**kwargs, **fixed})

    def multi_step(pretrained: bool = False, progress: bool = True, T: int = None,
                   multi_step_neuron=None, **kwargs):
        if pretrained:
            refuse_pretrained(f"multi_step_{name}", arch)
        return MultiStepSpikingResNet(multi_step_block, layers, T=T,
                                      multi_step_neuron=multi_step_neuron,
                                      **{**kwargs, **fixed})

    single_step.__name__ = single_step.__qualname__ = name
    single_step.__doc__ = (
        f"Step-by-step spiking {arch}: torchvision's `{arch}` with "
        f"`single_step_neuron(**kwargs)` for each ReLU. `x: [N, 3, H, W] -> "
        f"[N, num_classes]` per time step. `progress` is ignored; `pretrained=True` "
        f"raises (load weights with `refsnn.checkpoints`).")
    multi_step.__name__ = multi_step.__qualname__ = f"multi_step_{name}"
    multi_step.__doc__ = (
        f"Layer-by-layer spiking {arch}: torchvision's `{arch}` with "
        f"`multi_step_neuron(**kwargs)` for each ReLU and the stateless layers run on "
        f"`[T*N, ...]`. `x_seq: [T, N, 3, H, W]` (or `x: [N, 3, H, W]` repeated `T` "
        f"times) `-> [T, N, num_classes]`. `progress` is ignored; `pretrained=True` "
        f"raises (load weights with `refsnn.checkpoints`).")
    return single_step, multi_step


spiking_resnet18, multi_step_spiking_resnet18 = _builders("resnet18")
spiking_resnet34, multi_step_spiking_resnet34 = _builders("resnet34")
spiking_resnet50, multi_step_spiking_resnet50 = _builders("resnet50")
spiking_resnet101, multi_step_spiking_resnet101 = _builders("resnet101")
spiking_resnet152, multi_step_spiking_resnet152 = _builders("resnet152")
spiking_resnext50_32x4d, multi_step_spiking_resnext50_32x4d = _builders("resnext50_32x4d")
spiking_resnext101_32x8d, multi_step_spiking_resnext101_32x8d = _builders("resnext101_32x8d")
spiking_wide_resnet50_2, multi_step_spiking_wide_resnet50_2 = _builders("wide_resnet50_2")
spiking_wide_resnet101_2, multi_step_spiking_wide_resnet101_2 = _builders("wide_resnet101_2")
