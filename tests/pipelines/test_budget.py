"""The budget report: target vs available tokens, repeat factors, loud warnings."""

from __future__ import annotations

from prolong_data.budget import format_budget, over_limit, plan_budget


def test_budget_factors_and_warning():
    rows = plan_budget(1000, {"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 1000, "b": 50, "c": 0})
    assert [r.target_tokens for r in rows] == [500, 300, 200]
    assert [round(r.factor, 2) for r in rows] == [0.5, 6.0, float("inf")]
    assert [r.action(4) for r in rows] == ["subsample", "REPEAT>LIMIT", "MISSING"]
    assert [r.domain for r in over_limit(rows, 4)] == ["b", "c"]
    text = format_budget(rows, 1000, 4)
    assert "WARNING: b would be repeated 6.0 times (limit 4)" in text
    assert rows[1].to_dict(4)["factor"] == 6.0
