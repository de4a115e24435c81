"""Draw a notebook's saved widget state as static HTML, for slides and web pages.

A notebook saved from JupyterLab keeps the state of its widgets in its metadata:
slider values, progress bars, and what each ``Output`` area showed (text, figures).
:class:`SavedWidgetsPreprocessor` replaces every widget output of a notebook by plain
HTML drawn from that state, so a deck or a page shows the panel as it was saved with no
JavaScript widget manager (no package on PyPI ships one to load offline). The drawn
controls are disabled: moving them needs a running kernel, i.e. JupyterLab.
"""

from __future__ import annotations

import html

from kdteach.publish import missing_extra

try:
    from nbconvert.preprocessors import Preprocessor
except ImportError as exc:
    raise missing_extra(exc) from exc

from kdteach.publish.figure_text import figure_text, output_alt

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MODEL_PREFIX = "IPY_MODEL_"

CSS = """
.kd-widget { border: 1px solid #ccc; border-radius: 4px; padding: 0.4em; margin: 0.2em 0; }
.kd-widget-row { display: flex; flex-wrap: wrap; gap: 1em; align-items: center; }
.kd-widget-column { display: flex; flex-direction: column; gap: 0.3em; }
.kd-widget-control, .kd-widget-control label { display: inline-flex; gap: 0.4em;
                                               align-items: center; }
.kd-widget-output img { max-width: 100%; }
.kd-widget-note { color: #595959; font-size: 0.8em; }  /* 7:1 on white */
"""


def widget_states(nb) -> dict:
    """``{model_id: {"model_name": ..., "state": {...}}}`` saved in ``nb``'s metadata."""
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _model_id(reference) -> str:
    return str(reference).removeprefix(MODEL_PREFIX)


def _description(state: dict) -> str:
    return str(state.get("description") or "").strip()


def _accessible_name(state: dict, kind: str) -> str:
    """What a screen reader calls a control: its description, else its tooltip, else
    its kind (a control drawn without a description, e.g. ``slider``)."""
    tooltip = state.get("tooltip") or state.get("description_tooltip")
    return _description(state) or (str(tooltip).strip() if tooltip else "") or kind


def _labelled(state: dict, control: str, kind: str, after: str = "") -> str:
    """``control`` (an ``<input>`` or ``<select>``) with its name: inside a ``<label>``
    that shows the description, or with an ``aria-label`` when there is none to show."""
    text = _description(state)
    if text:
        inner = f"<label><span>{html.escape(text)}</span>{control}</label>"
    else:
        name = html.escape(_accessible_name(state, kind), quote=True)
        inner = control.replace(">", f' aria-label="{name}">', 1)
    return f'<span class="kd-widget-control">{inner}{after}</span>'


def _shown_text(state: dict) -> str:
    text = _description(state)
    return f"<span>{html.escape(text)}</span>" if text else ""


def _formatted(value, fmt: str | None) -> str:
    if fmt:
        try:
            return format(value, fmt)
        except (TypeError, ValueError):
            pass
    return str(value)


def render_output(output: dict, states: dict, figure_alt: str = "") -> str:
    """One saved output (stream, display data or error) as HTML; ``figure_alt`` is the
    text alternative of its figures (see :func:`render_widget`)."""
    kind = output.get("output_type")
    if kind == "stream":
        return f"<pre>{html.escape(_text(output.get('text', '')))}</pre>"
    if kind == "error":
        return f"<pre>{html.escape(output.get('ename', ''))}: " \
               f"{html.escape(output.get('evalue', ''))}</pre>"
    data = output.get("data", {})
    if WIDGET_VIEW in data:
        return render_widget(data[WIDGET_VIEW].get("model_id", ""), states, figure_alt)
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            alt = html.escape(figure_alt or "Figure of a saved panel", quote=True)
            return f'<img alt="{alt}" src="data:{mime};base64,{_text(data[mime]).strip()}">'
    if "image/svg+xml" in data:
        return _text(data["image/svg+xml"])
    if "text/html" in data:
        return _text(data["text/html"])
    if "text/plain" in data:
        return f"<pre>{html.escape(_text(data['text/plain']))}</pre>"
    return ""


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def saved_settings(model_id: str, states: dict) -> list[str]:
    """The panel's controls as saved, one ``"name = value"`` each, in the order shown:
    ``["hard = 0.25", "run = run 2"]`` (controls without a description are left out)."""
    model = states.get(_model_id(model_id))
    if model is None:
        return []
    name, state = model.get("model_name", ""), model.get("state", {})
    if name.endswith("BoxModel"):
        return [s for child in state.get("children", []) for s in saved_settings(child, states)]
    text = _description(state)
    if not text or name == "ButtonModel" or "Progress" in name or name.startswith("HTML"):
        return []
    if "_options_labels" in state:
        labels, index = state["_options_labels"], state.get("index")
        if isinstance(index, int) and 0 <= index < len(labels):
            return [f"{text} = {labels[index]}"]
        return []
    if "value" in state and not isinstance(state["value"], (list, dict)):
        return [f"{text} = {_formatted(state['value'], state.get('readout_format'))}"]
    return []


def panel_figure_text(model_id: str, states: dict, what: str = "") -> str:
    """The text alternative of the figures inside a saved panel: ``what`` the cell's
    figure shows (:func:`kdteach.publish.figure_text.figure_text`), and the settings the
    panel was saved with."""
    settings = saved_settings(model_id, states)
    saved = f"as saved, with {', '.join(settings)}" if settings else "as saved"
    if what:
        return f"{what.rstrip('.')} ({saved})."
    return f"Figure of a saved panel, {saved}."


def render_widget(model_id: str, states: dict, figure_alt: str = "") -> str:
    """The widget ``model_id`` and its children as static HTML. Every control is named for
    assistive technology (a ``<label>`` from its description); every figure in its output
    areas has ``figure_alt`` as its text alternative (by default, from the saved settings:
    :func:`panel_figure_text`)."""
    model = states.get(_model_id(model_id))
    if model is None:
        return ('<span class="kd-widget-note">(a widget whose state was not saved: '
                'run the notebook in JupyterLab to see it)</span>')
    figure_alt = figure_alt or panel_figure_text(model_id, states)
    name = model.get("model_name", "")
    state = model.get("state", {})
    if name.endswith("BoxModel"):
        children = "".join(render_widget(c, states, figure_alt)
                           for c in state.get("children", []))
        layout = "kd-widget-row" if name == "HBoxModel" else "kd-widget-column"
        return f'<div class="{layout}">{children}</div>'
    if name == "OutputModel":
        body = "".join(render_output(o, states, figure_alt) for o in state.get("outputs", []))
        return f'<div class="kd-widget-output">{body}</div>'
    if "Progress" in name:
        value, top = state.get("value", 0), state.get("max", 100)
        text = _description(state)
        label = f' aria-label="{html.escape(text, quote=True)}"' if text else ""
        return f'<progress value="{value}" max="{top}"{label}></progress>'
    if name in ("HTMLModel", "HTMLMathModel"):
        shown = f'{_shown_text(state)}{state.get("value", "")}'
        return f'<span class="kd-widget-control">{shown}</span>'
    if name == "ButtonModel":
        text = _description(state)
        if text:
            return f"<button disabled>{html.escape(text)}</button>"
        label = html.escape(_accessible_name(state, "button"), quote=True)
        return f'<button disabled aria-label="{label}"></button>'
    if "_options_labels" in state:  # dropdowns, radio buttons, selections
        labels, index = state["_options_labels"], state.get("index")
        chosen = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
        select = f"<select disabled><option>{html.escape(chosen)}</option></select>"
        return _labelled(state, select, "choice")
    if "Slider" in name and not isinstance(state.get("value"), list):
        value = state.get("value", 0)
        slider = (f'<input type="range" disabled min="{state.get("min", 0)}" '
                  f'max="{state.get("max", 100)}" step="{state.get("step", 1)}" value="{value}">')
        readout = f"<span>{html.escape(_formatted(value, state.get('readout_format')))}</span>"
        return _labelled(state, slider, "slider", after=readout)
    if "value" in state:
        value = state["value"]
        if isinstance(value, bool):
            value = "☑" if value else "☐"
        return (f'<span class="kd-widget-control">{_shown_text(state)}'
                f"<span>{html.escape(str(value))}</span></span>")
    return f'<span class="kd-widget-control">{_shown_text(state)}</span>'


class SavedWidgetsPreprocessor(Preprocessor):
    """Replace widget outputs by static HTML of their saved state; drop the state. The
    figures inside a panel get the text of the cell's figure (:mod:`.figure_text`) and the
    settings the panel was saved with."""

    def preprocess(self, nb, resources):
        states = widget_states(nb)
        for index, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if WIDGET_VIEW in data:
                    model_id = data[WIDGET_VIEW].get("model_id", "")
                    what = output_alt(output) or figure_text(nb, index)
                    body = render_widget(model_id, states,
                                         panel_figure_text(model_id, states, what))
                    output["data"] = {"text/html": f'<div class="kd-widget">{body}</div>'}
        nb.metadata.pop("widgets", None)  # nothing left for a widget manager to load
        return nb, resources
