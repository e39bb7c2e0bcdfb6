"""mixture.json: validation and round trip."""

from __future__ import annotations

import json

import pytest

from prolong_data.mixture import Mixture, MixtureStream, read_mixture, write_mixture


def streams(*shares):
    return [MixtureStream(domain=f"d{i}", path=f"d{i}", proportion=p) for i, p in enumerate(shares)]


def test_round_trip_keeps_streams_and_extra(tmp_path):
    mix = Mixture(seq_len=65536, streams=streams(0.6, 0.4), extra={"recipe": "demo"})
    path = write_mixture(mix, tmp_path)
    data = json.loads(path.read_text())
    assert data["streams"][0] == {"domain": "d0", "path": "d0", "proportion": 0.6}
    back, root = read_mixture(path)
    assert back == mix and root == tmp_path
    assert back.resolved_paths(root)["d1"] == (tmp_path / "d1").resolve()
    assert read_mixture(tmp_path)[0] == mix  # the folder works too


def test_proportions_must_sum_to_one_and_say_how_to_fix():
    with pytest.raises(ValueError, match="sum to 0.900000, not 1 .*d0=0.5, d1=0.4.*normalize"):
        Mixture(seq_len=8, streams=streams(0.5, 0.4))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        MixtureStream(domain="x", path="x", proportion=1.5)
    with pytest.raises(ValueError, match="twice"):
        Mixture(seq_len=8, streams=[*streams(0.5), MixtureStream(domain="d0", path="y", proportion=0.5)])


def test_missing_mixture_says_to_build_shards(tmp_path):
    with pytest.raises(FileNotFoundError, match="make shards"):
        read_mixture(tmp_path / "nope" / "mixture.json")


@pytest.mark.parametrize(
    "data, message",
    [
        ([{"seq_len": 8}], "holds a list of 1 item(s), not a mixture object"),
        (None, "holds null, not a mixture object"),
        (True, "holds the boolean True, not a mixture object"),
        ({"seq_len": 8, "streams": None}, "`streams` must be a list of objects, got null"),
        ({"seq_len": 8, "streams": ["a"]}, "`streams` must be a list of objects"),
        ({"seq_len": 8, "streams": [{"domain": "a", "path": 3, "proportion": 1}]}, "must be strings"),
        (
            {"seq_len": 8, "streams": [{"domain": "a", "path": "a", "proportion": "1"}]},
            "the string '1' is no number",
        ),
        (
            {"seq_len": True, "streams": [{"domain": "a", "path": "a", "proportion": 1}]},
            "seq_len must be an integer",
        ),
        ({"seq_len": 8.5, "streams": [{"domain": "a", "path": "a", "proportion": 1}]}, "got the number 8.5"),
        (
            {"seq_len": 10**400, "streams": [{"domain": "a", "path": "a", "proportion": float("nan")}]},
            "in [0, 1]",
        ),
    ],
)
def test_a_mixture_file_of_another_shape_is_a_value_error_naming_it(tmp_path, data, message):
    path = tmp_path / "mixture.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as caught:
        read_mixture(path)
    assert message in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_a_whole_float_seq_len_is_accepted(tmp_path):
    path = tmp_path / "mixture.json"
    path.write_text(json.dumps({"seq_len": 8.0, "streams": [{"domain": "a", "path": "a", "proportion": 1}]}))
    assert read_mixture(path)[0].seq_len == 8
