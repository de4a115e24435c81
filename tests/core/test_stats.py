"""Tests for kdteach.core.stats: summary tables, paired comparisons, change in percent."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import ttest_rel

from kdteach.core.stats import (
    PairedTest,
    change_words,
    format_p,
    mean_interval,
    paired_test,
    percent_change,
    summary_table,
)

RESULTS = {
    "Student (Scratch)": {
        "mse": [0.46, 0.44, 0.47, 0.45, 0.43],
        "r2": [0.67, 0.68, 0.66, 0.67, 0.69],
    },
    "Student (Distilled)": {
        "mse": [0.42, 0.45, 0.40, 0.44, 0.41],
        "r2": [0.70, 0.68, 0.71, 0.69, 0.70],
    },
    "Student (L_GR)": {
        "mse": [0.35, 0.33, 0.36, 0.34, 0.35],
        "r2": [0.75, 0.76, 0.74, 0.75, 0.75],
    },
}


def test_summary_table_on_a_hand_example():
    table = summary_table({"a": {"mse": [1.0, 3.0], "r2": [0.5, 0.7]},
                           "b": {"mse": [2.0, 2.0, 5.0], "r2": [0.1, 0.2, 0.3]}})
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["Model", "Mean MSE", "Std Dev MSE", "Mean R2", "Runs"]
    assert list(table["Model"]) == ["a", "b"]
    a, b = table.iloc[0], table.iloc[1]
    assert a["Mean MSE"] == pytest.approx(2.0)
    assert a["Std Dev MSE"] == pytest.approx(1.0)  # population std: sqrt(((1-2)^2+(3-2)^2)/2)
    assert a["Mean R2"] == pytest.approx(0.6)
    assert a["Runs"] == 2
    assert b["Mean MSE"] == pytest.approx(3.0)
    assert b["Std Dev MSE"] == pytest.approx(math.sqrt(2.0))  # sqrt((1 + 1 + 4) / 3)
    assert b["Mean R2"] == pytest.approx(0.2)
    assert b["Runs"] == 3


def test_summary_table_std_is_numpy_ddof_zero():
    table = summary_table(RESULTS)
    for _, row in table.iterrows():
        mse = RESULTS[row["Model"]]["mse"]
        assert row["Std Dev MSE"] == pytest.approx(np.std(mse))
        assert row["Std Dev MSE"] != pytest.approx(np.std(mse, ddof=1))
        assert row["Mean MSE"] == pytest.approx(np.mean(mse))
        assert row["Mean R2"] == pytest.approx(np.mean(RESULTS[row["Model"]]["r2"]))


def test_summary_table_keeps_order_unless_sorted():
    table = summary_table(RESULTS)
    assert list(table["Model"]) == list(RESULTS)
    ranked = summary_table(RESULTS, sort=True)
    assert list(ranked["Model"]) == ["Student (L_GR)", "Student (Distilled)", "Student (Scratch)"]
    assert list(ranked.index) == [0, 1, 2]


def test_summary_table_label_and_missing_r2():
    table = summary_table({"H=0.1_HP=0.9": {"mse": [0.3, 0.4]}}, label="Weights")
    assert table.columns[0] == "Weights"
    assert table["Weights"][0] == "H=0.1_HP=0.9"
    assert np.isnan(table["Mean R2"][0])


def test_one_sided_test_equals_scipy():
    res = paired_test(RESULTS, "Student (Distilled)", "Student (Scratch)", alternative="less")
    t, p = ttest_rel(RESULTS["Student (Distilled)"]["mse"], RESULTS["Student (Scratch)"]["mse"],
                     alternative="less")
    assert isinstance(res, PairedTest)
    assert res.t == pytest.approx(t)
    assert res.p == pytest.approx(p)
    assert res.alternative == "less"
    assert (res.a, res.b) == ("Student (Distilled)", "Student (Scratch)")
    # 'less' and two-sided really differ
    two = ttest_rel(RESULTS["Student (Distilled)"]["mse"], RESULTS["Student (Scratch)"]["mse"])
    assert res.p != pytest.approx(two.pvalue)


def test_two_sided_is_the_default_and_equals_scipy():
    res = paired_test(RESULTS, "Student (L_GR)", "Student (Distilled)")
    t, p = ttest_rel(RESULTS["Student (L_GR)"]["mse"], RESULTS["Student (Distilled)"]["mse"])
    assert res.alternative == "two-sided"
    assert res.t == pytest.approx(t)
    assert res.p == pytest.approx(p)


def test_order_of_models_matters_for_one_sided_tests():
    less = paired_test(RESULTS, "Student (L_GR)", "Student (Scratch)", alternative="less")
    greater = paired_test(RESULTS, "Student (L_GR)", "Student (Scratch)", alternative="greater")
    assert less.p < 0.05 < greater.p
    assert less.p + greater.p == pytest.approx(1.0)
    assert less.significant() and not greater.significant()
    assert not less.significant(level=less.p / 2)


def test_means_differences_and_change_in_the_result():
    res = paired_test(RESULTS, "Student (Distilled)", "Student (Scratch)", alternative="less")
    scratch = np.asarray(RESULTS["Student (Scratch)"]["mse"])
    distilled = np.asarray(RESULTS["Student (Distilled)"]["mse"])
    assert res.mean_a == pytest.approx(distilled.mean())
    assert res.mean_b == pytest.approx(scratch.mean())
    assert res.diffs == pytest.approx(tuple(distilled - scratch))
    assert res.mean_diff == pytest.approx((distilled - scratch).mean())
    assert res.change_pct == pytest.approx((distilled.mean() - scratch.mean()) / scratch.mean()
                                           * 100)
    d = res.as_dict()
    assert d["p"] == res.p and d["alternative"] == "less"
    assert d["mean_diff"] == res.mean_diff and d["ci95"] == list(res.ci95)
    assert res.differences()["run"].tolist() == list(range(1, len(distilled) + 1))


def test_ci95_is_the_t_interval_and_matches_scipy():
    diffs = np.array([-0.02, -0.05, 0.01, -0.03, -0.04])
    low, high = mean_interval(diffs)
    sem = diffs.std(ddof=1) / np.sqrt(diffs.size)
    expected = stats.t.interval(0.95, diffs.size - 1, loc=diffs.mean(), scale=sem)
    assert (low, high) == pytest.approx(expected)
    # the interval excludes 0 exactly when the two-sided test is significant at 5 %
    results = {"a": {"mse": list(0.5 + diffs)}, "b": {"mse": [0.5] * 5}}
    res = paired_test(results, "a", "b")
    assert (res.ci95[1] < 0) == (res.p < 0.05)


def test_descriptive_comparisons_carry_no_p_value():
    res = paired_test(RESULTS, "Student (L_GR)", "Student (Scratch)", descriptive=True)
    assert res.p is None and res.t is None and res.ci95 is None
    assert not res.significant()
    assert res.mean_diff == pytest.approx(np.mean(
        np.subtract(RESULTS["Student (L_GR)"]["mse"], RESULTS["Student (Scratch)"]["mse"])))
    text = res.describe()
    assert "descriptive" in text and "p =" not in text


def test_describe_reports_the_numbers_in_words():
    res = paired_test(RESULTS, "Student (Distilled)", "Student (Scratch)", alternative="less")
    text = res.describe()
    assert "Student (Distilled)" in text and "Student (Scratch)" in text
    assert f"{res.p:.4f}" in text and "95 % CI" in text
    assert "a lower than b" in text
    assert "improvement" not in text
    assert change_words(res.change_pct) in text
    assert ("not significant" in text) == (not res.significant())


def test_every_description_says_which_sided_test_and_which_interval():
    one = paired_test(RESULTS, "Student (Distilled)", "Student (Scratch)", alternative="less")
    two = paired_test(RESULTS, "Student (Distilled)", "Student (Scratch)")
    assert one.sides == "one-sided" and two.sides == "two-sided"
    assert "one-sided paired t-test" in one.describe()
    assert "two-sided 95 % CI" in one.describe()  # the interval beside a one-sided test
    assert "two-sided paired t-test" in two.describe() and "two-sided 95 % CI" not in \
        two.describe()
    assert one.ci95 == two.ci95  # the interval does not depend on the test's sides


def test_change_in_words_never_says_negative_improvement():
    assert change_words(-3.63) == "lower by 3.6 %"
    assert change_words(2.63) == "higher by 2.6 %"
    assert change_words(0.01) == "equal to within rounding"


def test_percent_change_formula():
    assert percent_change([0.5], [1.0]) == pytest.approx(-50.0)
    assert percent_change([1.0, 3.0], [4.0, 4.0]) == pytest.approx(-50.0)  # uses the means
    assert percent_change([1.2], [1.0]) == pytest.approx(20.0)  # worse is positive


def test_percent_change_of_the_original_numbers():
    """The original printed a 5.32 % improvement from unrounded means; its rounded means
    give 5.33 % lower."""
    value = percent_change([0.4297], [0.4539])
    assert value == pytest.approx(-5.3316, abs=1e-3)
    assert abs(abs(value) - 5.32) < 0.02
    # part 2's expert figure: 22.68 % printed, (0.4539 - 0.3509) / 0.4539
    assert percent_change([0.3509], [0.4539]) == pytest.approx(-22.69, abs=0.01)


def test_unequal_runs_are_rejected():
    results = {"a": {"mse": [0.1, 0.2, 0.3]}, "b": {"mse": [0.1, 0.2]}}
    with pytest.raises(ValueError, match="3 and 2"):
        paired_test(results, "a", "b")


def test_a_single_run_is_rejected():
    with pytest.raises(ValueError):
        paired_test({"a": {"mse": [0.1]}, "b": {"mse": [0.2]}}, "a", "b")


def test_unknown_model_is_a_key_error():
    with pytest.raises(KeyError, match="Student"):
        paired_test(RESULTS, "Student (Missing)", "Student (Scratch)")
    with pytest.raises(KeyError):
        paired_test(RESULTS, "Student (Scratch)", "nope")


def test_unknown_alternative_is_rejected():
    with pytest.raises(ValueError, match="two-sided"):
        paired_test(RESULTS, "Student (Distilled)", "Student (Scratch)", alternative="lower")


def test_tiny_p_values_are_not_printed_as_zero():
    assert format_p(0.03123) == "p = 0.0312"
    assert format_p(3e-6) == "p < 0.0001"
    results = {"a": {"mse": [0.1, 0.2, 0.3, 0.4]}, "b": {"mse": [0.5, 0.61, 0.69, 0.8]}}
    assert "p < 0.0001" in paired_test(results, "a", "b", "less").describe()
