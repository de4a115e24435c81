"""The seed's statistics: summary tables, paired t-tests, improvement in percent.

Results come as ``{model name: {"mse": [per run], "r2": [per run]}}``, the shape the
seed keeps them in. Standard deviations are ``np.std`` (population, ddof=0) as in the
seed; the t-tests are paired because run i of every model shares its seed and its
student's initial weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel

ALTERNATIVES = ("two-sided", "less", "greater")


def summary_table(results: dict, sort: bool = False, label: str = "Model") -> pd.DataFrame:
    """One row per model: mean MSE, std MSE (``np.std``), mean R², number of runs."""
    rows = []
    for name, data in results.items():
        mse = np.asarray(data["mse"], dtype=float)
        r2 = np.asarray(data.get("r2", []), dtype=float)
        rows.append(
            {
                label: name,
                "Mean MSE": mse.mean(),
                "Std Dev MSE": mse.std(),
                "Mean R2": r2.mean() if r2.size else np.nan,
                "Runs": mse.size,
            }
        )
    table = pd.DataFrame(rows, columns=[label, "Mean MSE", "Std Dev MSE", "Mean R2", "Runs"])
    if sort:
        table = table.sort_values("Mean MSE").reset_index(drop=True)
    return table


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of ``a`` against ``b`` (per-run MSEs, same run order)."""

    a: str
    b: str
    alternative: str
    t: float
    p: float
    mean_a: float
    mean_b: float
    improvement_pct: float  # (mean_b - mean_a) / mean_b * 100: how much lower a is

    def significant(self, level: float = 0.05) -> bool:
        return bool(self.p < level)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self, level: float = 0.05) -> str:
        side = {"less": "lower than", "greater": "higher than", "two-sided": "different from"}
        verdict = "significant" if self.significant(level) else "not significant"
        return (
            f"{self.a} vs {self.b}: mean MSE {self.mean_a:.4f} vs {self.mean_b:.4f} "
            f"({self.improvement_pct:+.2f}% improvement); paired t-test "
            f"(H1: {side[self.alternative]}) p = {self.p:.4f}, {verdict} at {level:g}"
        )


def improvement(mse_new, mse_base) -> float:
    """How much lower the mean of ``mse_new`` is than the mean of ``mse_base``, in %."""
    base = float(np.mean(mse_base))
    return (base - float(np.mean(mse_new))) / base * 100.0


def paired_test(results: dict, a: str, b: str, alternative: str = "two-sided") -> PairedTest:
    """Paired t-test of model ``a``'s MSEs against model ``b``'s (``scipy.stats.ttest_rel``).

    ``alternative='less'`` asks whether ``a`` has lower MSE than ``b`` (the seed's test of a
    distilled student against scratch); ``'two-sided'`` whether they differ at all.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}"
        )
    for name in (a, b):
        if name not in results:
            raise KeyError(f"no results for {name!r}; have {', '.join(results)}")
    mse_a = np.asarray(results[a]["mse"], dtype=float)
    mse_b = np.asarray(results[b]["mse"], dtype=float)
    if mse_a.size != mse_b.size or mse_a.size < 2:
        raise ValueError(
            f"a paired test needs the same number (>= 2) of runs for both models; "
            f"got {mse_a.size} and {mse_b.size}"
        )
    t, p = ttest_rel(mse_a, mse_b, alternative=alternative)
    return PairedTest(
        a=a,
        b=b,
        alternative=alternative,
        t=float(t),
        p=float(p),
        mean_a=float(mse_a.mean()),
        mean_b=float(mse_b.mean()),
        improvement_pct=improvement(mse_a, mse_b),
    )
