"""Box MIL (projection) loss and box rasterisation pinned on hand-computed values."""
import pytest
import torch

from rvos.errors import ConfigError
from rvos.losses.box_mil import box_mask, box_mil_loss


def logit(p):
    p = torch.as_tensor(p, dtype=torch.float64)
    return torch.log(p / (1 - p))


def cells(mask):
    return sorted(map(tuple, mask.nonzero().tolist()))


def test_box_mask_interior_border_and_clipping():
    boxes = torch.tensor([[0.25, 0.25, 0.75, 0.75],  # rows/cols 1..2
                          [0.75, 0.0, 1.0, 0.25],  # top-right corner pixel (border)
                          [-0.5, 0.5, 0.5, 1.5]])  # partly outside: clipped to cols 0..1, rows 2..3
    m = box_mask(boxes, (4, 4))
    assert m.shape == (3, 4, 4) and m.dtype == torch.float32
    assert cells(m[0]) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert cells(m[1]) == [(0, 3)]
    assert cells(m[2]) == [(2, 0), (2, 1), (3, 0), (3, 1)]


def test_box_of_one_input_pixel_is_one_logit_pixel():
    # pixel (x=5, y=6) of a 16x16 frame, exclusive max as box_from_mask writes it, rasterised at stride 4
    box = torch.tensor([[5 / 16, 6 / 16, 6 / 16, 7 / 16]])
    assert cells(box_mask(box, (4, 4))[0]) == [(1, 1)]
    # a box exactly one logit pixel, with float error (0.7 * 10 = 7.000000000000001): still one pixel
    assert cells(box_mask(torch.tensor([[0.6, 0.3, 0.7, 0.4]], dtype=torch.float64), (10, 10))[0]) == [(3, 6)]
    # a box of one pixel at the frame's last column/row
    assert cells(box_mask(torch.tensor([[0.99, 0.99, 1.0, 1.0]]), (4, 4))[0]) == [(3, 3)]


def test_empty_boxes():
    boxes = torch.tensor([[0.0, 0.0, 0.0, 0.0],  # the collate's "no box"
                          [1.2, 0.0, 1.5, 1.0],  # wholly outside the frame
                          [0.5, 0.5, 0.4, 0.9],  # x1 < x0
                          [float("nan")] * 4,
                          [0.0, 0.0, 1.0, 1.0]])  # full frame but annotated not visible
    present = torch.tensor([True, True, True, True, False])
    assert box_mask(boxes, (3, 3), present).sum() == 0
    assert box_mask(boxes[4:], (3, 3)).sum() == 9


def test_leading_dims_are_kept():
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5]]).expand(2, 3, 4)
    assert box_mask(boxes, (2, 2)).shape == (2, 3, 2, 2)


def test_mil_hand_value_uniform_prediction():
    logits = torch.zeros(1, 3, 3)  # p = 0.5
    box = torch.tensor([[1 / 3, 1 / 3, 2 / 3, 2 / 3]])  # the centre pixel
    # rows: maxima [.5,.5,.5] vs [0,1,0]: 1 - (2*0.5 + 1) / (1.5 + 1 + 1) = 3/7; the same for columns
    assert box_mil_loss(logits, box, torch.tensor([True])).item() == pytest.approx(6 / 7)


def test_mil_hand_value_uneven_prediction():
    p = [[0.1, 0.2, 0.1], [0.3, 0.9, 0.2], [0.1, 0.1, 0.1]]
    box = torch.tensor([[1 / 3, 1 / 3, 2 / 3, 2 / 3]], dtype=torch.float64)
    # row maxima [.2,.9,.1]: 1 - 2.8 / (1.2 + 1 + 1); column maxima [.3,.9,.2]: 1 - 2.8 / (1.4 + 1 + 1)
    expected = (1 - 2.8 / 3.2) + (1 - 2.8 / 3.4)
    assert box_mil_loss(logit([p]), box, torch.tensor([True])).item() == pytest.approx(expected)


def test_empty_box_makes_every_line_negative():
    logits = torch.zeros(1, 3, 3, requires_grad=True)
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    loss = box_mil_loss(logits, box, torch.tensor([True]), present=torch.tensor([False]))
    assert loss.item() == pytest.approx(2 * (1 - 1 / 2.5))  # 1 - 1 / (3 * 0.5 + 0 + 1) per axis
    loss.backward()
    assert (logits.grad > 0).any()  # pushes the line maxima down
    assert box_mil_loss(torch.full((1, 3, 3), -30.0), box, torch.tensor([True]),
                        present=torch.tensor([False])).item() == pytest.approx(0, abs=1e-9)


def test_mil_only_asks_one_pixel_per_line():
    box = torch.tensor([[0.0, 0.0, 0.75, 0.75]])  # 3x3 top-left of 4x4
    diag = torch.full((1, 4, 4), -30.0)
    diag[0, [0, 1, 2], [0, 1, 2]] = 30.0  # one foreground pixel per line of the box, nothing outside
    assert box_mil_loss(diag, box, torch.tensor([True])).item() == pytest.approx(0, abs=1e-9)
    outside = diag.clone()
    outside[0, 3, 0] = 30.0  # a pixel on a negative row
    assert box_mil_loss(outside, box, torch.tensor([True])).item() == pytest.approx(1 - 7 / 8)  # rows only


def test_gradient_only_at_line_maxima():
    logits = torch.tensor([[[-5.0, -3.0, -6.0], [-4.0, 0.0, -7.0], [-8.0, -4.0, -1.0]]], requires_grad=True)
    box_mil_loss(logits, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([True])).backward()
    # row maxima at (0,1), (1,1), (2,2); column maxima at (1,0), (1,1), (2,2): only they get a gradient, upwards
    assert cells(logits.grad[0] != 0) == [(0, 1), (1, 0), (1, 1), (2, 2)]
    assert (logits.grad[0][logits.grad[0] != 0] < 0).all()


def test_box_mask_input_and_valid_frames_average():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    xs, ys = torch.rand(2, 3, 2).sort(-1).values, torch.rand(2, 3, 2).sort(-1).values
    boxes = torch.stack([xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]], -1)  # [2, 3, 4] xyxy
    valid = torch.tensor([[True, False, True], [False, False, True]])
    loss = box_mil_loss(logits, boxes, valid)
    assert loss.item() == pytest.approx(box_mil_loss(logits, box_mask(boxes, (4, 4)), valid).item())
    singles = [box_mil_loss(logits[b, t][None], boxes[b, t][None], torch.tensor([True])).item()
               for b, t in valid.nonzero().tolist()]
    assert loss.item() == pytest.approx(sum(singles) / 3)  # mean over the valid frames
    logits[0, 1] = 100.0  # an invalid frame changes nothing
    assert box_mil_loss(logits, boxes, valid).item() == pytest.approx(loss.item())


def test_no_valid_frame_is_connected_zero_and_bad_shapes_raise():
    logits = torch.randn(2, 4, 4, requires_grad=True)
    loss = box_mil_loss(logits, torch.zeros(2, 4), torch.zeros(2, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad.abs().sum() == 0
    with pytest.raises(ConfigError):
        box_mil_loss(logits, torch.zeros(2, 5), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ConfigError):
        box_mil_loss(logits, torch.zeros(2, 4), torch.ones(3, dtype=torch.bool))
