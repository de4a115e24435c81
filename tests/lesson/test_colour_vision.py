"""The model colours stay apart for the common colour-vision deficiencies.

Every figure of the lessons colours a model by :func:`kdteach.protocol.names.color`: the
named models by ``kdteach.protocol.names.COLORS``, the grid points by a viridis ramp. Any
two of them may share a figure (``plots.mse_by_model`` draws every model of a stage, and
a learner plots what they like), so every pair must stay apart, for normal vision and as
seen with one of the three dichromacies:

* simulation: Machado, Oliveira & Fernandes (2009), "A physiologically-based model for
  simulation of color vision deficiency", IEEE TVCG 15(6), their matrices at severity 1
  (protanopia, deuteranopia, tritanopia), applied to linear sRGB;
* difference: CIEDE2000 (ΔE00, CIE 142-2001) between the CIELAB (D65) colours;
* threshold: ΔE00 ≥ 5. One unit is about one just-noticeable difference between large
  patches side by side; the marks of a plot are small (thin lines, dots) and seldom touch
  the colour they must be told from (a legend swatch and its line), which raises the
  difference needed to tell them apart several times (Stone, Szafir & Setlur, "An
  engineering model for color difference as a function of size", Color Imaging
  Conference 2014). Five differences is the floor kept here.

The test prints the smallest difference per vision and the pair it belongs to.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from kdteach.protocol.experiment import Experiment
from kdteach.protocol.names import COLORS, YOURS, color, grid_name, is_grid_name
from kdteach.protocol.settings import get_settings
from kdteach.protocol.stages import STAGES

MIN_DELTA_E = 5.0

MACHADO_2009 = {  # severity 1.0, linear RGB in, linear RGB out
    "protanopia": [[0.152286, 1.052583, -0.204868],
                   [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968],
                     [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779],
                   [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}
VISIONS = {"normal": np.eye(3), **{k: np.array(v) for k, v in MACHADO_2009.items()}}
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],  # linear sRGB to CIE XYZ, D65
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
WHITE = SRGB_TO_XYZ @ np.ones(3)


def linear(rgb) -> np.ndarray:
    """sRGB in [0, 1] to linear light."""
    rgb = np.asarray(rgb, dtype=float)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def lab(linear_rgb) -> np.ndarray:
    """Linear sRGB (clipped to the gamut, as a screen shows it) to CIELAB, D65 white."""
    t = SRGB_TO_XYZ @ np.clip(linear_rgb, 0.0, 1.0) / WHITE
    delta = 6 / 29
    f = np.where(t > delta ** 3, np.cbrt(t), t / (3 * delta ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def ciede2000(lab1, lab2) -> float:
    """CIEDE2000 colour difference, with kL = kC = kH = 1 (Sharma, Wu & Dalal, 2005)."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1 = np.degrees(np.arctan2(b1, a1)) % 360 if c1 else 0.0
    h2 = np.degrees(np.arctan2(b2, a2)) % 360 if c2 else 0.0
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    dl, dc = l2 - l1, c2 - c1
    dhh = 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        h_mean = h1 + h2
    elif abs(h1 - h2) <= 180:
        h_mean = (h1 + h2) / 2
    else:
        h_mean = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    rotation = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25 ** 7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_mean, 1 + 0.015 * c_mean * t
    r_t = -np.sin(np.radians(2 * rotation)) * r_c
    return float(np.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dhh / s_h) ** 2
                         + r_t * (dc / s_c) * (dhh / s_h)))


def seen(colour, vision: str) -> np.ndarray:
    """``colour`` as CIELAB, as seen with ``vision``."""
    return lab(VISIONS[vision] @ linear(to_rgb(colour)))


def model_colours() -> dict[str, object]:
    """Every colour a lesson figure gives a model: the named models, and the grid points
    of the full profile's grid search (each figure draws them by ``names.color``)."""
    grid = [grid_name({"hard": h, "hp": round(1 - h, 10)})
            for h in get_settings("full").grid_hard_weights]
    return {name: color(name) for name in [*COLORS, *grid]}


def closest_pair(colours: dict, vision: str) -> tuple[float, str, str]:
    labs = {name: seen(c, vision) for name, c in colours.items()}
    return min((ciede2000(labs[a], labs[b]), a, b) for a, b in itertools.combinations(labs, 2))


@pytest.mark.parametrize(("lab1", "lab2", "expected"), [  # Sharma, Wu & Dalal (2005), table 1
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
])
def test_ciede2000_matches_the_published_pairs(lab1, lab2, expected):
    assert ciede2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    assert ciede2000(lab2, lab1) == pytest.approx(expected, abs=1e-4)


def test_the_colour_pipeline_keeps_its_landmarks():
    assert seen("white", "normal") == pytest.approx([100, 0, 0], abs=1e-3)
    assert seen("#ff0000", "normal") == pytest.approx([53.24, 80.09, 67.20], abs=0.01)
    for vision in MACHADO_2009:  # a dichromat sees greys, white and black unchanged
        for grey in ("black", "#7f7f7f", "white"):
            assert ciede2000(seen(grey, vision), seen(grey, "normal")) < 0.5
    # red and green, apart for normal vision, nearly merge for a deuteranope
    assert ciede2000(seen("#d62728", "normal"), seen("#2ca02c", "normal")) > 50
    assert ciede2000(seen("#d62728", "deuteranopia"), seen("#2ca02c", "deuteranopia")) < 10


def stage_models(tmp_path) -> dict[str, list[str]]:
    """The models each stage's results hold, from every stage run at tiny settings: the
    models a lesson figure of that stage draws together."""
    settings = get_settings("quick", "cpu", n_runs=2, epochs_teacher=1, epochs_student=1)
    exp = Experiment(settings, cache=tmp_path, progress=False)
    return {name: list(exp.run(name).results) for name in STAGES}


def figure_groups(stages: dict[str, list[str]]) -> list[tuple[str, dict]]:
    """``(label, {model: colour})`` for every set of models a figure draws together: each
    stage's models, with the grid point a stage chose replaced by each grid point in turn
    (the full profile may choose another than the tiny run), and every model beside the
    learner's own student of lesson 03's explorer."""
    grid = [n for n in model_colours() if is_grid_name(n)]
    groups = []
    for stage, models in stages.items():
        named = [m for m in models if not is_grid_name(m)]
        chosen = [m for m in models if is_grid_name(m)]
        for point in (grid if len(chosen) == 1 else [None]):
            members = named + ([point] if point else chosen)
            groups.append((f"{stage} ({point or 'its models'})",
                           {m: color(m) for m in members}))
    everyone = sorted({m for models in stages.values() for m in models} | set(grid))
    groups += [(f"{m} beside {YOURS}", {m: color(m), YOURS: color(YOURS)})
               for m in everyone]
    return groups


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    return figure_groups(stage_models(tmp_path_factory.mktemp("cache")))


def test_every_model_colour_differs_from_every_other_for_normal_vision():
    colours = model_colours()
    assert len(colours) == len(COLORS) + 5
    delta, a, b = closest_pair(colours, "normal")
    print(f"\nnormal vision, all {len(colours)} model colours: smallest ΔE00 {delta:.1f} "
          f"({a} / {b})")
    assert delta >= MIN_DELTA_E, (f"{a!r} and {b!r} differ by ΔE00 {delta:.1f} < "
                                  f"{MIN_DELTA_E}: change their colours "
                                  "(kdteach.protocol.names.COLORS)")


@pytest.mark.parametrize("vision", list(VISIONS))
def test_the_models_a_figure_draws_together_stay_apart(groups, vision):
    assert len(groups) > 12
    delta, a, b, label = min((*closest_pair(colours, vision), label)
                             for label, colours in groups if len(colours) > 1)
    print(f"\n{vision}: smallest ΔE00 within a figure {delta:.1f} ({a} / {b}, in {label})")
    assert delta >= MIN_DELTA_E, (f"with {vision}, {a!r} and {b!r} (in {label}) differ by "
                                  f"ΔE00 {delta:.1f} < {MIN_DELTA_E}: change their colours "
                                  "(kdteach.protocol.names.COLORS)")
