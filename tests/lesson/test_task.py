"""The figures of the task itself (lesson 00)."""

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from kdteach.lesson import task

matplotlib.use("Agg")  # headless, whatever MPLBACKEND says


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_target_slices_one_panel_per_feature():
    fig = task.target_slices()
    assert isinstance(fig, Figure)
    axes = visible_axes(fig)
    assert len(axes) == 6
    assert [ax.get_xlabel() for ax in axes] == [f"x{j}" for j in range(6)]
    assert all(len(ax.lines) == 1 for ax in axes)
    # x1 acts only through sin(x0*x1): with x0 held at 0 its slice is flat at f(0) = -1
    flat = axes[1].lines[0].get_ydata()
    assert flat.min() == pytest.approx(-1.0) and flat.max() == pytest.approx(-1.0)


def test_target_slices_rejects_a_feature_out_of_range():
    with pytest.raises(ValueError, match="feature must lie in 0..9"):
        task.target_slices(features=[10])


@pytest.mark.parametrize("which", ["interaction", "target"])
def test_interaction_heatmap(which):
    fig = task.interaction_heatmap(which, n_points=41)
    assert isinstance(fig, Figure)
    main, colorbar = fig.axes
    assert (main.get_xlabel(), main.get_ylabel()) == ("x0", "x1")
    assert len(main.collections) >= 2  # the mesh and the contour lines
    assert ("sin" in main.get_title()) == (which == "interaction")


def test_interaction_heatmap_rejects_unknown_kind():
    with pytest.raises(ValueError, match="'interaction' or 'target'"):
        task.interaction_heatmap("both")


def test_noisy_samples_reports_the_noise_floor():
    fig = task.noisy_samples(noise=0.1)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "noiseless target f(x)" and ax.get_ylabel() == "noisy label y"
    assert len(ax.collections[0].get_offsets()) == 1600  # every training sample
    assert "best MSE is ≈ 0.0099" in ax.get_title()  # sigma^2 = 0.01, as measured


def test_data_explorer_figure_has_two_panels_and_handles_no_noise():
    fig = task.data_explorer_figure(feature=7, noise=0.0)
    left, right = fig.axes
    assert left.get_xlabel() == "x7" and "ignored" in left.get_title()
    assert right.get_ylabel() == "noisy label y"
    with pytest.raises(ValueError, match="noise"):
        task.noisy_slice(0, noise=-1.0)
