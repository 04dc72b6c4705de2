"""Spiking ResNets, SEW ResNets and VGGs with SpikingJelly 0.0.0.0.14's
`clock_driven.model` names and arguments, and torchvision's `state_dict` keys.

Every architecture comes in two propagation patterns that share keys, so one
set of weights (for example torchvision's ANN weights, loaded with
`refsnn.checkpoints`) serves both:
- step by step, `spiking_resnet18(single_step_neuron=neurons.IFNode, **kwargs)`:
  one time step per call, `x: [N, 3, H, W] -> [N, num_classes]`;
- layer by layer, `multi_step_spiking_resnet18(T=4, multi_step_neuron=
  neurons.MultiStepIFNode, **kwargs)`: `x_seq: [T, N, 3, H, W]` (or
  `x: [N, 3, H, W]` repeated T times) `-> [T, N, num_classes]`.

The residual blocks live in their modules (`spiking_resnet.BasicBlock`,
`sew_resnet.BasicBlock`, ...), whose names clash.
"""
from .spiking_resnet import (
    SpikingResNet, MultiStepSpikingResNet, spiking_resnet18, spiking_resnet34,
    spiking_resnet50, spiking_resnet101, spiking_resnet152, spiking_resnext50_32x4d,
    spiking_resnext101_32x8d, spiking_wide_resnet50_2, spiking_wide_resnet101_2,
    multi_step_spiking_resnet18, multi_step_spiking_resnet34, multi_step_spiking_resnet50,
    multi_step_spiking_resnet101, multi_step_spiking_resnet152,
    multi_step_spiking_resnext50_32x4d, multi_step_spiking_resnext101_32x8d,
    multi_step_spiking_wide_resnet50_2, multi_step_spiking_wide_resnet101_2)
from .sew_resnet import (
    sew_function, SEWResNet, MultiStepSEWResNet, sew_resnet18, sew_resnet34, sew_resnet50,
    sew_resnet101, sew_resnet152, sew_resnext50_32x4d, sew_resnext101_32x8d,
    sew_wide_resnet50_2, sew_wide_resnet101_2, multi_step_sew_resnet18,
    multi_step_sew_resnet34, multi_step_sew_resnet50, multi_step_sew_resnet101,
    multi_step_sew_resnet152, multi_step_sew_resnext50_32x4d,
    multi_step_sew_resnext101_32x8d, multi_step_sew_wide_resnet50_2,
    multi_step_sew_wide_resnet101_2)
from .spiking_vgg import (
    cfgs, SpikingVGG, MultiStepSpikingVGG, spiking_vgg11, spiking_vgg11_bn, spiking_vgg13,
    spiking_vgg13_bn, spiking_vgg16, spiking_vgg16_bn, spiking_vgg19, spiking_vgg19_bn,
    multi_step_spiking_vgg11, multi_step_spiking_vgg11_bn, multi_step_spiking_vgg13,
    multi_step_spiking_vgg13_bn, multi_step_spiking_vgg16, multi_step_spiking_vgg16_bn,
    multi_step_spiking_vgg19, multi_step_spiking_vgg19_bn)

__all__ = [
    "SpikingResNet", "MultiStepSpikingResNet", "spiking_resnet18", "spiking_resnet34",
    "spiking_resnet50", "spiking_resnet101", "spiking_resnet152",
    "spiking_resnext50_32x4d", "spiking_resnext101_32x8d", "spiking_wide_resnet50_2",
    "spiking_wide_resnet101_2", "multi_step_spiking_resnet18",
    "multi_step_spiking_resnet34", "multi_step_spiking_resnet50",
    "multi_step_spiking_resnet101", "multi_step_spiking_resnet152",
    "multi_step_spiking_resnext50_32x4d", "multi_step_spiking_resnext101_32x8d",
    "multi_step_spiking_wide_resnet50_2", "multi_step_spiking_wide_resnet101_2",
    "sew_function", "SEWResNet", "MultiStepSEWResNet", "sew_resnet18", "sew_resnet34",
    "sew_resnet50", "sew_resnet101", "sew_resnet152", "sew_resnext50_32x4d",
    "sew_resnext101_32x8d", "sew_wide_resnet50_2", "sew_wide_resnet101_2",
    "multi_step_sew_resnet18", "multi_step_sew_resnet34", "multi_step_sew_resnet50",
    "multi_step_sew_resnet101", "multi_step_sew_resnet152",
    "multi_step_sew_resnext50_32x4d", "multi_step_sew_resnext101_32x8d",
    "multi_step_sew_wide_resnet50_2", "multi_step_sew_wide_resnet101_2", "cfgs",
    "SpikingVGG", "MultiStepSpikingVGG", "spiking_vgg11", "spiking_vgg11_bn",
    "spiking_vgg13", "spiking_vgg13_bn", "spiking_vgg16", "spiking_vgg16_bn",
    "spiking_vgg19", "spiking_vgg19_bn", "multi_step_spiking_vgg11",
    "multi_step_spiking_vgg11_bn", "multi_step_spiking_vgg13",
    "multi_step_spiking_vgg13_bn", "multi_step_spiking_vgg16",
    "multi_step_spiking_vgg16_bn", "multi_step_spiking_vgg19",
    "multi_step_spiking_vgg19_bn",
]
