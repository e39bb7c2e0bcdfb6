"""Every shipped trainer config loads through the shared loader, and a saved config loads back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainer.config import load_config, to_dict

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "trainer" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("smoke", [False, True])
def test_shipped_configs_load_and_round_trip(path, smoke, tmp_path):
    args = [] if smoke else ["--model.path=some/checkpoint"]
    cfg = load_config(path, args, smoke=smoke)
    assert cfg.smoke is smoke
    saved = tmp_path / "config.yaml"  # what a run writes beside its checkpoints
    saved.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    assert load_config(saved, smoke=smoke) == cfg
    assert load_config(saved) == cfg  # a saved config says whether it was a smoke run


def test_unknown_section_and_bad_value_name_their_place():
    with pytest.raises(
        ValueError, match=r"unknown Config field\(s\) \['optimizer'\]; allowed: \['checkpoint'"
    ):
        load_config(CONFIGS[0], ["--optimizer.lr=1"], smoke=True)
    with pytest.raises(ValueError, match="optim.betas: expected 2 items, got 3"):
        load_config(CONFIGS[0], ["--optim.betas=0.9,0.95,0.99"], smoke=True)
