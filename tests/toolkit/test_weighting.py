import pytest
import torch

from reddiff import WEIGHTINGS, InputError, get_weighting

ALPHA_BAR = torch.tensor([0.999, 0.5, 0.2, 0.01])
INV_SQRT_SNR = torch.sqrt((1 - ALPHA_BAR) / ALPHA_BAR)

EXPECTED = {
    "linear": INV_SQRT_SNR,
    "sqrt": INV_SQRT_SNR.sqrt(),
    "square": INV_SQRT_SNR**2,
    "log1p": torch.log(1 + INV_SQRT_SNR),
    "trunc_linear": torch.minimum(INV_SQRT_SNR, torch.ones(4)),
    "constant": torch.ones(4),
}


def test_table_is_exactly_the_documented_weightings():
    assert set(WEIGHTINGS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_weighting_values(name):
    torch.testing.assert_close(get_weighting(name)(ALPHA_BAR), EXPECTED[name])


def test_linear_is_inverse_sqrt_snr_and_decreases_with_alpha_bar():
    w = get_weighting("linear")(ALPHA_BAR)
    snr = ALPHA_BAR / (1 - ALPHA_BAR)
    torch.testing.assert_close(w, snr**-0.5)
    assert bool((w[1:] > w[:-1]).all())


def test_unknown_name_lists_valid_ones():
    with pytest.raises(InputError) as info:
        get_weighting("cubic")
    for name in WEIGHTINGS:
        assert name in str(info.value)


def test_callable_passes_through():
    fn = lambda a: 3 * a
    assert get_weighting(fn) is fn
