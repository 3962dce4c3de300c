"""PATN's building blocks (shared by PATN and SPGNet's SPATN)."""

import pytest
import torch

from fastpose.models.patn_blocks import PATBlock, PATNetwork, make_norm


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_network_shapes(norm):
    net = PATNetwork(3, 36, 3, ngf=8, n_down=2, n_blocks=3, norm=norm)
    y = net(torch.randn(2, 3, 32, 16), torch.randn(2, 36, 32, 16))
    assert y.shape == (2, 3, 32, 16)
    assert y.abs().max() <= 1  # tanh output


def test_logits_output_is_unbounded_and_has_class_channels():
    net = PATNetwork(20, 60, 20, ngf=8, n_down=2, n_blocks=2, tanh=False).eval()
    torch.nn.init.constant_(net.decoder[-1].bias, 3.0)
    y = net(torch.randn(1, 20, 16, 8), torch.randn(1, 60, 16, 8))
    assert y.shape == (1, 20, 16, 8) and y.max() > 1


def test_block_attention_gates_the_image_update():
    block = PATBlock(4, 4, dropout=False).eval()
    x, p = torch.randn(1, 4, 6, 5), torch.randn(1, 4, 6, 5)
    # A pose stream driven to -inf closes the gate: the block is the identity on the image stream.
    torch.nn.init.constant_(block.pose[-1].bias, -1e4)
    out, p_next = block(x, p)
    torch.testing.assert_close(out, x)
    assert p_next.shape == (1, 8, 6, 5)
    torch.testing.assert_close(p_next[:, 4:], out)
    # Wide open, the update is added in full.
    torch.nn.init.constant_(block.pose[-1].bias, 1e4)
    out, _ = block(x, p)
    torch.testing.assert_close(out, x + block.image(x))


def test_bad_inputs():
    net = PATNetwork(3, 36, 3, ngf=4, n_blocks=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 30, 16), torch.randn(1, 36, 30, 16))
    with pytest.raises(ValueError, match="pose size"):
        net(torch.randn(1, 3, 32, 16), torch.randn(1, 36, 16, 16))
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        make_norm("group", 4)
    with pytest.raises(ValueError, match="n_blocks"):
        PATNetwork(3, 36, 3, n_blocks=0)


def test_canvas_pad_and_crop_round_trip():
    from fastpose.models.canvas import crop_from_canvas, pad_to_canvas
    x = torch.randn(2, 3, 256, 176)
    y = pad_to_canvas(x, (256, 256), 1.0)
    assert y.shape[-2:] == (256, 256)
    assert (y[..., :40] == 1).all() and (y[..., 216:] == 1).all()  # PATN's 40-pixel white border
    torch.testing.assert_close(crop_from_canvas(y, (256, 176)), x)
    assert pad_to_canvas(x, (256, 176), 1.0) is x
    with pytest.raises(ValueError, match="larger than the canvas"):
        pad_to_canvas(x, (128, 176), 1.0)
