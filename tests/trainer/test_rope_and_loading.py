"""Model loading across transformers 4.57 and 5.x: a stage's rope_theta with the checkpoint's RoPE
scaling kept or dropped as the config says, the export carrying that choice, and a gated hub model
answered with the exact fix. (`make test-tf5` runs this file under transformers 5 too.)"""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainer.config import ModelConfig, TinyConfig
from trainer.model import export_hf, load_lm, rope_scaling_of

SEQ = 64
LLAMA31_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}


def plain_inv_freq(theta: float, dim: int) -> torch.Tensor:
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def llama3_inv_freq(theta: float, dim: int, s: dict) -> torch.Tensor:
    """Llama-3.1's scaled frequencies, written out from the published rule."""
    inv = plain_inv_freq(theta, dim)
    low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
    high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
    out = []
    for f in inv.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / s["factor"])
        else:
            smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
                s["high_freq_factor"] - s["low_freq_factor"]
            )
            out.append((1 - smooth) * f / s["factor"] + smooth * f)
    return torch.tensor(out, dtype=torch.float64)


@pytest.fixture(scope="module")
def llama31_like(tmp_path_factory):
    """A tiny Llama saved with Llama-3.1's rope scaling, in the installed transformers' own format."""
    folder = tmp_path_factory.mktemp("llama31")
    load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=96, num_layers=1), SEQ).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    if "rope_parameters" in config:  # transformers 5
        config["rope_parameters"] = {**LLAMA31_SCALING, "rope_theta": 500000.0}
    else:
        config["rope_scaling"], config["rope_theta"] = dict(LLAMA31_SCALING), 500000.0
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def inv_freq(lm) -> torch.Tensor:
    return lm.model.rotary_emb.inv_freq.double()


def test_the_checkpoint_scaling_is_read_on_this_transformers(llama31_like):
    lm = load_lm(ModelConfig(path=str(llama31_like)), TinyConfig(), SEQ)
    assert rope_scaling_of(lm.config)["rope_type"] == "llama3"
    torch.testing.assert_close(
        inv_freq(lm), llama3_inv_freq(500000.0, 16, LLAMA31_SCALING), rtol=1e-6, atol=0
    )


def test_a_new_theta_with_scaling_needs_an_explicit_choice(llama31_like):
    with pytest.raises(ValueError, match="--model.rope_scaling=keep .* --model.rope_scaling=drop"):
        load_lm(ModelConfig(path=str(llama31_like), rope_theta=8e6), TinyConfig(), SEQ)


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_keep_or_drop_gives_the_stated_frequencies_and_the_export_keeps_them(llama31_like, tmp_path, policy):
    from transformers import AutoModelForCausalLM

    lm = load_lm(ModelConfig(path=str(llama31_like), rope_theta=8e6, rope_scaling=policy), TinyConfig(), SEQ)
    expected = llama3_inv_freq(8e6, 16, LLAMA31_SCALING) if policy == "keep" else plain_inv_freq(8e6, 16)
    torch.testing.assert_close(inv_freq(lm), expected, rtol=1e-6, atol=0)
    assert (rope_scaling_of(lm.config) is not None) == (policy == "keep")
    state = {f"lm.{k}": v for k, v in lm.state_dict().items()}
    exported = AutoModelForCausalLM.from_pretrained(export_hf(state, lm.config, None, tmp_path / "hf"))
    torch.testing.assert_close(inv_freq(exported), inv_freq(lm), rtol=0, atol=0)


def test_a_plain_checkpoint_takes_the_new_theta_without_a_choice(tmp_path):
    load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=96, num_layers=1), SEQ).save_pretrained(tmp_path)
    lm = load_lm(ModelConfig(path=str(tmp_path), rope_theta=1.28e8), TinyConfig(), SEQ)
    torch.testing.assert_close(inv_freq(lm), plain_inv_freq(1.28e8, 16), rtol=1e-6, atol=0)


def test_a_gated_model_gets_the_login_fix(monkeypatch):
    import transformers

    class GatedRepoError(OSError):
        pass

    def gated(*args, **kwargs):
        try:
            raise GatedRepoError("401 Client Error. Cannot access gated repo for url ...")
        except GatedRepoError as cause:
            raise OSError("You are trying to access a gated repo.") from cause

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", gated)
    with pytest.raises(ValueError) as error:
        load_lm(ModelConfig(path="meta-llama/Meta-Llama-3-8B-Instruct"), TinyConfig(), SEQ)
    message = str(error.value)
    assert "https://huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct" in message
    assert "huggingface-cli login" in message and "HF_TOKEN" in message
