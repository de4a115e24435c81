"""The original notebook's statistics, and the paired view that shows the effect.

Results come as ``{model name: {"mse": [per run], "r2": [per run]}}``, the shape the
original notebook keeps them in. Standard deviations in summary tables are ``np.std``
(population, ddof=0) as in the original; the t-tests are paired because run i of every
model shares its random seed and its student's initial weights.

A :class:`PairedTest` holds everything a paired comparison of model ``a`` against model
``b`` shows: the per-run differences ``a − b``, their mean with a 95 % t-interval, the
t statistic and the p-value. A comparison picked *after* looking at the results (the
best grid point against the worst, say) is marked ``descriptive``: it keeps the
differences and their mean but carries no t, p or interval, because a test of a
comparison chosen by its outcome has no valid p-value.

Every description says whether its test is one-sided or two-sided; the interval is always
the two-sided 95 % t-interval of the mean paired difference, and says so beside a
one-sided test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

ALTERNATIVES = ("two-sided", "less", "greater")
HYPOTHESES = {"less": "a lower than b", "greater": "a higher than b", "two-sided": "a differs"}


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


def percent_change(mse_new, mse_base) -> float:
    """How much higher (positive) or lower (negative) the mean of ``mse_new`` is than the
    mean of ``mse_base``, in percent of the latter."""
    base = float(np.mean(mse_base))
    return (float(np.mean(mse_new)) - base) / base * 100.0


def change_words(pct: float, digits: int = 1) -> str:
    """``-3.6`` → ``"lower by 3.6 %"``; ``2.6`` → ``"higher by 2.6 %"`` (for an MSE,
    higher is worse)."""
    if round(pct, digits) == 0:
        return "equal to within rounding"
    direction = "lower" if pct < 0 else "higher"
    return f"{direction} by {abs(pct):.{digits}f} %"


def format_p(p: float) -> str:
    """``p = 0.0312``, or ``p < 0.0001`` for the very small ones."""
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def mean_interval(diffs, level: float = 0.95) -> tuple[float, float]:
    """The two-sided t-interval for the mean of ``diffs`` (needs >= 2 values)."""
    d = np.asarray(diffs, dtype=float)
    half = sps.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return float(d.mean() - half), float(d.mean() + half)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of ``a`` against ``b`` (per-run MSEs, same run order).

    ``diffs[i]`` is run ``i + 1``'s MSE of ``a`` minus that of ``b``: negative means ``a``
    did better in that run. ``t``, ``p`` and ``ci95`` are None for a descriptive
    comparison.
    """

    a: str
    b: str
    alternative: str
    diffs: tuple
    mean_diff: float
    ci95: tuple | None
    t: float | None
    p: float | None
    mean_a: float
    mean_b: float
    change_pct: float  # (mean_a − mean_b) / mean_b · 100: negative when a is lower
    descriptive: bool = False

    def significant(self, level: float = 0.05) -> bool:
        return self.p is not None and bool(self.p < level)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["diffs"] = list(self.diffs)
        out["ci95"] = list(self.ci95) if self.ci95 is not None else None
        return out

    def describe(self, level: float = 0.05) -> str:
        head = (f"{self.a} vs {self.b}: mean MSE {self.mean_a:.4f} vs {self.mean_b:.4f}, "
                f"{change_words(self.change_pct)}; mean paired difference "
                f"{self.mean_diff:+.4f}")
        if self.descriptive:
            return head + (" (descriptive only: this comparison was chosen after seeing the "
                           "results, so no p-value)")
        verdict = "significant" if self.significant(level) else "not significant"
        low, high = self.ci95
        interval = "95 % CI" if self.alternative == "two-sided" else "two-sided 95 % CI"
        return (f"{head}, {interval} [{low:+.4f}, {high:+.4f}]; {self.sides} paired t-test "
                f"(H1: {HYPOTHESES[self.alternative]}) t = {self.t:.2f}, {format_p(self.p)}, "
                f"{verdict} at {level:g}")

    @property
    def sides(self) -> str:
        """``"one-sided"`` (H1 names a direction) or ``"two-sided"``."""
        return "two-sided" if self.alternative == "two-sided" else "one-sided"

    def differences(self) -> pd.DataFrame:
        """One row per run: ``run`` (numbered from 1) and ``difference``, that run's MSE of
        a minus that of b."""
        return pd.DataFrame({"run": np.arange(1, len(self.diffs) + 1),
                             "difference": list(self.diffs)})


def paired_test(results: dict, a: str, b: str, alternative: str = "two-sided",
                descriptive: bool = False) -> PairedTest:
    """Paired comparison of model ``a``'s MSEs with model ``b``'s (``scipy.stats.ttest_rel``).

    ``alternative='less'`` asks whether ``a`` has lower MSE than ``b`` (the original's test
    of a distilled student against scratch); ``'two-sided'`` whether they differ at all.
    ``descriptive=True`` for a comparison chosen after seeing the results: no t, p or CI.

    Taught in Lesson 01, section 4 (look at the pairs); the descriptive kind in Lesson 03,
    section 3.
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
    diffs = mse_a - mse_b
    t = p = ci = None
    if not descriptive:
        t, p = (float(v) for v in sps.ttest_rel(mse_a, mse_b, alternative=alternative))
        ci = mean_interval(diffs)
    return PairedTest(
        a=a, b=b, alternative=alternative,
        diffs=tuple(float(d) for d in diffs), mean_diff=float(diffs.mean()), ci95=ci,
        t=t, p=p, mean_a=float(mse_a.mean()), mean_b=float(mse_b.mean()),
        change_pct=percent_change(mse_a, mse_b), descriptive=descriptive,
    )
