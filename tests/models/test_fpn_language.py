"""The language-modulated FPN: starts as the plain FPN (FiLM initialised to identity), and once trained the same
frames give different mask features for different sentences."""
import torch

from rvos.models.fpn import LanguageFPN


def _inputs(n=2):
    g = torch.Generator().manual_seed(0)
    top = torch.randn(n, 16, 2, 3, generator=g)
    c4, c3, c2 = (torch.randn(n, c, 2 * s, 3 * s, generator=g) for c, s in ((12, 2), (10, 4), (8, 8)))
    return top, c4, c3, c2


def test_film_starts_as_identity_and_gets_gradients():
    torch.manual_seed(0)
    plain = LanguageFPN((12, 10, 8), 16, (8, 8, 8), 4)
    film = LanguageFPN((12, 10, 8), 16, (8, 8, 8), 4, language_dim=6)
    film.load_state_dict(plain.state_dict(), strict=False)  # same convolutions; FiLM layers stay zero
    top, c4, c3, c2 = _inputs()
    lang = torch.randn(2, 6)
    out_plain = plain(top, c4, c3, c2)
    out_film = film(top, c4, c3, c2, lang)
    assert out_film.shape == (2, 4, 16, 24)
    torch.testing.assert_close(out_film, out_plain)
    out_film.square().sum().backward()
    assert all(f.weight.grad is not None and f.weight.grad.abs().sum() > 0 for f in film.film)


def test_sentence_changes_the_mask_feature():
    torch.manual_seed(0)
    fpn = LanguageFPN((12, 10, 8), 16, (8, 8, 8), 4, language_dim=6)
    for f in fpn.film:
        torch.nn.init.normal_(f.weight, std=0.5)
    top, c4, c3, c2 = _inputs(1)
    a = fpn(top, c4, c3, c2, torch.ones(1, 6))
    b = fpn(top, c4, c3, c2, -torch.ones(1, 6))
    assert (a - b).abs().max() > 1e-3
