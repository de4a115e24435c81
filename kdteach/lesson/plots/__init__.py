"""Seaborn figures for the notebooks and the command line. Each function returns its Figure.

Figures are sized for slides (16:9). Functions that draw a single panel take an ``ax``
so they can be combined; without one they open a new figure. Nothing here trains a
model: the figures read a :class:`~kdteach.core.data.Dataset`, trained networks, or a
stage's results and loss history.

The notebooks call everything through this package (``from kdteach.lesson import plots``,
then ``plots.paired_differences(...)``); each figure is defined in one module:

* :mod:`~kdteach.lesson.plots.style`: slide sizes, the loss terms' labels and colours;
* :mod:`~kdteach.lesson.plots.predictions`: predictions against the truth, residuals;
* :mod:`~kdteach.lesson.plots.curves`: loss terms per epoch, learning curves, early stopping;
* :mod:`~kdteach.lesson.plots.results`: a stage's test MSE per model, the grid, the costs;
* :mod:`~kdteach.lesson.plots.live`: the live retrain panels;
* :mod:`~kdteach.lesson.plots.comparisons`: paired differences with their run numbers,
  validation against test, each term's pull;
* :mod:`~kdteach.lesson.plots.ternary`: the three-way search on its simplex.
"""

from kdteach.lesson.plots.comparisons import (
    MEASURED_ON_STYLE,
    OTHER_MEASURE_STYLES,
    RUN_LABEL_GAP,
    RUN_LABEL_RISE,
    gradient_shares,
    log_limits_with_room,
    paired_differences,
    place_run_labels,
    renderer_of,
    spread_centres,
    validation_vs_test,
)
from kdteach.lesson.plots.curves import (
    early_stopping_curves,
    learning_curves,
    loss_curves,
    patience_curves,
)
from kdteach.lesson.plots.live import (
    live_training,
    retrained_student,
)
from kdteach.lesson.plots.predictions import (
    RESIDUAL_X_LABEL,
    RESIDUAL_Y_LABEL,
    as_models,
    net_of_run,
    pred_vs_true,
    prediction_panels,
    residuals,
)
from kdteach.lesson.plots.results import (
    cost_vs_error,
    final_boxplot,
    grid_search_bars,
    mse_bars,
    mse_by_model,
)
from kdteach.lesson.plots.style import (
    SLIDE_SIZE,
    TERM_COLORS,
    TERM_LABELS,
    WIDE_SIZE,
    figure_and_axes,
    use_style,
)
from kdteach.lesson.plots.ternary import (
    HEXAGON_SIZE,
    TERNARY_TICKS,
    draw_ternary_ticks,
    ternary_heatmap,
    ternary_sides,
    ternary_xy,
)

__all__ = [
    "SLIDE_SIZE",
    "WIDE_SIZE",
    "TERM_LABELS",
    "TERM_COLORS",
    "use_style",
    "figure_and_axes",
    "as_models",
    "net_of_run",
    "pred_vs_true",
    "RESIDUAL_X_LABEL",
    "RESIDUAL_Y_LABEL",
    "residuals",
    "prediction_panels",
    "loss_curves",
    "learning_curves",
    "early_stopping_curves",
    "patience_curves",
    "mse_by_model",
    "mse_bars",
    "grid_search_bars",
    "final_boxplot",
    "cost_vs_error",
    "retrained_student",
    "live_training",
    "RUN_LABEL_RISE",
    "RUN_LABEL_GAP",
    "spread_centres",
    "renderer_of",
    "place_run_labels",
    "paired_differences",
    "MEASURED_ON_STYLE",
    "OTHER_MEASURE_STYLES",
    "validation_vs_test",
    "log_limits_with_room",
    "gradient_shares",
    "TERNARY_TICKS",
    "HEXAGON_SIZE",
    "ternary_xy",
    "ternary_sides",
    "draw_ternary_ticks",
    "ternary_heatmap",
]
