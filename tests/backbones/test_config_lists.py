"""Config lists given on the command line (`--backbone-opt attn_resolutions=8`) arrive as an int or a
string; the family builders accept both and reject garbage with a typed error."""

import pytest

import invkit
from invkit.errors import InvalidInputError


@pytest.mark.parametrize("attn", [8, "8", (8,), [8]])
def test_ddpm_accepts_int_string_and_sequence(attn):
    m = invkit.backbone("ddpm", ch=32, ch_mult="1,2", num_res_blocks=1, attn_resolutions=attn,
                        resolution=16, in_channels=1, out_ch=1, seed=0)
    keys = m.net.state_dict().keys()
    assert any(".attn." in k for k in keys)  # attention really placed at 8 px


@pytest.mark.parametrize("bad", ["x", [None], "8,y"])
def test_ddpm_rejects_non_integer_lists(bad):
    with pytest.raises(InvalidInputError, match="attn_resolutions"):
        invkit.backbone("ddpm", attn_resolutions=bad, seed=0, device="meta")
