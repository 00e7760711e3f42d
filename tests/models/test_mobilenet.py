"""MobileNet-v1 (Ma et al. 2021's MBNet-v1 on CIFAR-10): its parameter count, shapes, depthwise layers and widths."""

from __future__ import annotations

import torch

from lth.models import build_model
from lth.models.mobilenet import MOBILENET_V1_BLOCKS, mobilenet_v1


def test_parameter_count_is_ma_et_al_s_3_21m() -> None:
    with torch.device("meta"):
        m = mobilenet_v1((3, 32, 32), 10)
    assert sum(p.numel() for p in m.parameters()) == 3_217_226


def test_blocks_are_depthwise_then_pointwise() -> None:
    m = mobilenet_v1((3, 32, 32), 10, width=0.25)
    assert len(m.blocks) == len(MOBILENET_V1_BLOCKS) == 13
    for block, (out, stride) in zip(m.blocks, MOBILENET_V1_BLOCKS, strict=True):
        dw, pw = block.depthwise, block.pointwise
        assert dw.groups == dw.in_channels == dw.out_channels and dw.stride == (stride, stride)
        assert pw.kernel_size == (1, 1) and pw.out_channels == round(out * 0.25)
    assert m.conv1.stride == (1, 1) and m.fc.in_features == 256
    m.eval()
    feats = m.blocks(m.conv1(torch.randn(1, 3, 32, 32)))
    assert feats.shape[-2:] == (2, 2)  # four stride-2 blocks: 32 -> 2


def test_population_forward_trains_on_the_fast_path_and_prunes_every_conv() -> None:
    model = build_model("mobilenet_v1", 2, (3, 16, 16), 10, width=0.125)
    assert model.path == "fx"
    assert model(torch.randn(2, 4, 3, 16, 16)).shape == (2, 4, 10)
    assert len(model.prunable()) == 1 + 2 * 13 + 1 and model.output_layer == "fc.weight"
    kinds = model.prunable_kinds()
    assert kinds["blocks.0.depthwise.weight"] == "conv" and kinds["fc.weight"] == "output"
    model.member_module(1).load_state_dict(model.member_state(1))
