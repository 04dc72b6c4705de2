"""The skeleton torchvision's ResNet and its spiking versions share: stem,
four stages of residual blocks, pooling and classifier, with torchvision's
attribute names (so `state_dict` keys are `conv1.weight`, `layer1.0.bn2.bias`,
`fc.weight`, ...) and SpikingJelly's initialisation.

Shapes (stem: 7x7/2 conv and 3x3/2 max pool; stages 2-4 halve H and W):
step by step `x: [N, 3, H, W] -> [N, num_classes]`; layer by layer
`x_seq: [T, N, 3, H, W]` (or `x: [N, 3, H, W]` repeated T times)
`-> [T, N, num_classes]`.
"""
from __future__ import annotations

from ..layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d
from ..containers import Sequential
from ..module import Module
from ._common import build_neuron, kaiming_normal_fan_out

__all__ = ["TORCHVISION_RESNETS", "conv3x3", "conv1x1", "ResidualBlock", "ResNetBase"]

#: torchvision's ResNet family, arch -> (bottleneck blocks?, blocks per stage,
#: fixed model arguments: the ResNeXt / wide widths, which override the caller's)
TORCHVISION_RESNETS = {
    "resnet18": (False, (2, 2, 2, 2), {}),
    "resnet34": (False, (3, 4, 6, 3), {}),
    "resnet50": (True, (3, 4, 6, 3), {}),
    "resnet101": (True, (3, 4, 23, 3), {}),
    "resnet152": (True, (3, 8, 36, 3), {}),
    "resnext50_32x4d": (True, (3, 4, 6, 3), {"groups": 32, "width_per_group": 4}),
    "resnext101_32x8d": (True, (3, 4, 23, 3), {"groups": 32, "width_per_group": 8}),
    "wide_resnet50_2": (True, (3, 4, 6, 3), {"width_per_group": 128}),
    "wide_resnet101_2": (True, (3, 4, 23, 3), {"width_per_group": 128}),
}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1,
            dilation: int = 1) -> Conv2d:
    """3x3 convolution, padding `dilation`, no bias."""
    return Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                  groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> Conv2d:
    """1x1 convolution, no bias."""
    return Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ResidualBlock(Module):
    """Base of the residual blocks; `residual_bn` is the batch norm that ends
    the residual branch (zeroed by `zero_init_residual=True`)."""

    expansion = 1

    @property
    def residual_bn(self) -> Module:
        raise NotImplementedError(f"{type(self).__name__} must name its residual_bn")


class ResNetBase(Module):
    """Stem, stages and classifier; the subclass picks the pattern (mixin
    `StepByStep` or `LayerByLayer`) and the block.

    `block` is called as `block(inplanes, planes, stride=..., downsample=...,
    groups=..., base_width=..., dilation=..., norm_layer=..., <neuron arg>=neuron,
    **block_extra, **neuron_kwargs)`, where `<neuron arg>` is
    `multi_step_neuron` in a layer-by-layer model and `single_step_neuron`
    otherwise (SpikingJelly's block signatures).
    """

    def __init__(self, block, layers, num_classes: int, zero_init_residual: bool, groups: int,
                 width_per_group: int, replace_stride_with_dilation, norm_layer, neuron,
                 neuron_kwargs: dict, block_extra: dict | None = None):
        super().__init__()
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(f"{type(self).__name__}: replace_stride_with_dilation should be "
                             f"None or a 3-element tuple, got {replace_stride_with_dilation}")
        if len(layers) != 4:
            raise ValueError(f"{type(self).__name__}: layers must give the number of blocks "
                             f"of the 4 stages, got {layers}")
        self._norm_layer = BatchNorm2d if norm_layer is None else norm_layer
        neuron_arg = "multi_step_neuron" if self.multi_step else "single_step_neuron"
        block_kwargs = {**(block_extra or {}), neuron_arg: neuron, **neuron_kwargs}
        self.inplanes, self.dilation = 64, 1
        self.groups, self.base_width = groups, width_per_group

        self.conv1 = Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.sn1 = build_neuron(self, neuron, neuron_kwargs)
        self.maxpool = MaxPool2d(kernel_size=3, stride=2, padding=1)
        dilate = replace_stride_with_dilation
        self.layer1 = self._make_layer(block, 64, layers[0], block_kwargs)
        self.layer2 = self._make_layer(block, 128, layers[1], block_kwargs, 2, dilate[0])
        self.layer3 = self._make_layer(block, 256, layers[2], block_kwargs, 2, dilate[1])
        self.layer4 = self._make_layer(block, 512, layers[3], block_kwargs, 2, dilate[2])
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, Conv2d):
                kaiming_normal_fan_out(m.weight)
            elif isinstance(m, BatchNorm2d) and m.affine:
                m.weight.data[...] = 1
                m.bias.data[...] = 0
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, ResidualBlock):
                    m.residual_bn.weight.data[...] = 0

    def _make_layer(self, block, planes: int, blocks: int, block_kwargs: dict, stride: int = 1,
                    dilate: bool = False) -> Sequential:
        norm_layer = self._norm_layer
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                    norm_layer(planes * block.expansion))
        stage = [block(self.inplanes, planes, stride=stride, downsample=downsample,
                       groups=self.groups, base_width=self.base_width,
                       dilation=previous_dilation, norm_layer=norm_layer, **block_kwargs)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            stage.append(block(self.inplanes, planes, groups=self.groups,
                               base_width=self.base_width, dilation=self.dilation,
                               norm_layer=norm_layer, **block_kwargs))
        return Sequential(*stage)

    def forward(self, x):
        """`x: [N, 3, H, W]` (step by step) or `x_seq: [T, N, 3, H, W]` / `x: [N, 3, H, W]`
        (layer by layer) -> `[N, num_classes]` / `[T, N, num_classes]`."""
        x = self.sn1(self._input_layers(x, self.conv1, self.bn1))
        x = self._ann(x, self.maxpool)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self._ann(x, self.avgpool).flatten(-3)
        return self._ann(x, self.fc)
