"""The shared checkpoint-conversion mechanism (``python -m twinflow.convert``); the kinds have
their own tests beside their pipelines."""

from __future__ import annotations

import pytest
import torch

from twinflow.convert import ConversionError, check_state_dict, load_reference, rename_keys


def test_rename_rules_apply_in_order_and_drop_by_full_match():
    state = {"a.conv.weight": 1, "a.conv.bias": 2, "num_batches_tracked": 3}
    out = rename_keys(state, [(r"^a\.", "b."), (r"\.conv\.", ".c.")], drop=[r".*num_batches.*"])
    assert out == {"b.c.weight": 1, "b.c.bias": 2}


def test_a_state_dict_that_does_not_fit_names_every_problem(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    good = module.state_dict()
    check_state_dict(module, good, source="x.pth", what="toy")
    bad = {**good, "0.weight": torch.zeros(5, 3), "extra": torch.zeros(1)}
    del bad["1.bias"]
    with pytest.raises(ConversionError) as err:
        check_state_dict(module, bad, source=tmp_path / "x.pth", what="toy net")
    text = str(err.value)
    assert "x.pth" in text and "toy net" in text
    assert "missing: 1.bias" in text and "unexpected: extra" in text
    assert "0.weight: (5, 3) vs (4, 3)" in text


def test_a_missing_truncated_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConversionError, match="not found"):
        load_reference(tmp_path / "none.pth")
    path = tmp_path / "cpk.pth"
    torch.save({"generator": {"w": torch.zeros(1000)}}, path)
    assert set(load_reference(path, key="generator")) == {"w"}
    with pytest.raises(ConversionError, match=r"no 'kp_detector' entry \(it has \['generator'\]\)"):
        load_reference(path, key="kp_detector")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ConversionError, match="cut.pth.*is the file complete"):
        load_reference(cut)
