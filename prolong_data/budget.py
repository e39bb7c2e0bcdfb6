"""The token budget of a build: for each domain, what training wants and what the shards hold.

Training reads `token_budget * proportion` tokens of each domain. When the shards hold fewer,
`streaming` repeats the domain (factor > 1); when they hold more, training sees a subsample
(factor < 1). A domain repeated more than `max_repeat` times is flagged loudly: its samples
will be memorised rather than learned from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(kw_only=True)
class DomainBudget:
    """The budget line of one domain."""

    domain: str
    """Domain folder name."""
    proportion: float
    """Its share of the mixture (of sequences, hence of tokens)."""
    target_tokens: int
    """Tokens training reads from it: `token_budget * proportion`."""
    available_tokens: int
    """Tokens in its shards (sequences x seq_len)."""

    @property
    def factor(self) -> float:
        """How many times training goes over the domain (inf when nothing is available)."""
        if self.available_tokens == 0:
            return float("inf") if self.target_tokens else 0.0
        return self.target_tokens / self.available_tokens

    def action(self, max_repeat: float) -> str:
        if self.available_tokens == 0 and self.target_tokens:
            return "MISSING"
        if self.factor > max_repeat:
            return "REPEAT>LIMIT"
        return "repeat" if self.factor > 1 else "subsample"

    def to_dict(self, max_repeat: float) -> dict:
        return {**asdict(self), "factor": round(self.factor, 4), "action": self.action(max_repeat)}


def plan_budget(
    token_budget: int, proportions: dict[str, float], available: dict[str, int]
) -> list[DomainBudget]:
    """One `DomainBudget` per domain of `proportions` (in its order)."""
    return [
        DomainBudget(
            domain=d,
            proportion=p,
            target_tokens=round(token_budget * p),
            available_tokens=int(available.get(d, 0)),
        )
        for d, p in proportions.items()
    ]


def over_limit(rows: list[DomainBudget], max_repeat: float) -> list[DomainBudget]:
    """The domains training would repeat more than `max_repeat` times."""
    return [r for r in rows if r.factor > max_repeat]


def format_budget(rows: list[DomainBudget], token_budget: int, max_repeat: float) -> str:
    """The budget report as a text table, with a loud warning line per domain over the limit."""
    lines = [
        f"token budget {token_budget:,} (repeat limit {max_repeat:g}x)",
        f"{'domain':<34} {'share':>7} {'target tokens':>15} {'available':>15} {'factor':>8}  action",
    ]
    for r in rows:
        factor = "inf" if r.factor == float("inf") else f"{r.factor:.2f}x"
        lines.append(
            f"{r.domain:<34} {r.proportion:>7.2%} {r.target_tokens:>15,} {r.available_tokens:>15,} {factor:>8}  "
            f"{r.action(max_repeat)}"
        )
    for r in over_limit(rows, max_repeat):
        lines.append(
            f"WARNING: {r.domain} would be repeated {r.factor:.1f} times (limit {max_repeat:g}): add data, "
            "lower its proportion, or lower the token budget"
        )
    return "\n".join(lines)
