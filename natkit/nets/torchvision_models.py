"""torchvision's VGG-16, ResNet-50 and DenseNet-121, with weights only from a local file."""

from __future__ import annotations

import torch.nn as nn

from natkit.nets.io import load_state_dict_file
from natkit.nets.registry import register_model


def _finish(model: nn.Module, num_classes: int, in_channels: int, weights: str | None,
            head_path: str, first_conv_path: str) -> nn.Module:
    if weights:
        state = load_state_dict_file(weights)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            from natkit.errors import WeightsError
            raise WeightsError(f"weights file {weights} does not fit {type(model).__name__}: "
                               f"{str(exc).splitlines()[0]}") from None
    old = model.get_submodule(head_path)
    if old.out_features != num_classes:
        model.set_submodule(head_path, nn.Linear(old.in_features, num_classes))
    if in_channels != 3:
        old = model.get_submodule(first_conv_path)
        conv = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                         bias=old.bias is not None)
        # keep pretrained filters: average RGB weights into the new input channels
        conv.weight.data.copy_(old.weight.data.mean(1, keepdim=True).expand_as(conv.weight))
        if old.bias is not None:
            conv.bias.data.copy_(old.bias.data)
        model.set_submodule(first_conv_path, conv)
    return model


@register_model("tv_vgg16")
def tv_vgg16(num_classes, in_channels=3, weights=None):
    from torchvision.models import vgg16_bn

    return _finish(vgg16_bn(weights=None), num_classes, in_channels, weights, "classifier.6", "features.0")


@register_model("tv_resnet50")
def tv_resnet50(num_classes, in_channels=3, weights=None):
    from torchvision.models import resnet50

    return _finish(resnet50(weights=None), num_classes, in_channels, weights, "fc", "conv1")


@register_model("tv_densenet121")
def tv_densenet121(num_classes, in_channels=3, weights=None):
    from torchvision.models import densenet121

    return _finish(densenet121(weights=None), num_classes, in_channels, weights, "classifier",
                   "features.conv0")
