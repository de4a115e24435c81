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

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MODEL_PREFIX = "IPY_MODEL_"

CSS = """
.kd-widget { border: 1px solid #ccc; border-radius: 4px; padding: 0.4em; margin: 0.2em 0; }
.kd-widget-row { display: flex; flex-wrap: wrap; gap: 1em; align-items: center; }
.kd-widget-column { display: flex; flex-direction: column; gap: 0.3em; }
.kd-widget-control { display: inline-flex; gap: 0.4em; align-items: center; }
.kd-widget-output img { max-width: 100%; }
.kd-widget-note { color: #777; font-size: 0.8em; }
"""


def widget_states(nb) -> dict:
    """``{model_id: {"model_name": ..., "state": {...}}}`` saved in ``nb``'s metadata."""
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _model_id(reference) -> str:
    return str(reference).removeprefix(MODEL_PREFIX)


def _label(state: dict) -> str:
    text = state.get("description") or ""
    return f"<span>{html.escape(text)}</span>" if text else ""


def _formatted(value, fmt: str | None) -> str:
    if fmt:
        try:
            return format(value, fmt)
        except (TypeError, ValueError):
            pass
    return str(value)


def render_output(output: dict, states: dict) -> str:
    """One saved output (stream, display data or error) as HTML."""
    kind = output.get("output_type")
    if kind == "stream":
        return f"<pre>{html.escape(_text(output.get('text', '')))}</pre>"
    if kind == "error":
        return f"<pre>{html.escape(output.get('ename', ''))}: " \
               f"{html.escape(output.get('evalue', ''))}</pre>"
    data = output.get("data", {})
    if WIDGET_VIEW in data:
        return render_widget(data[WIDGET_VIEW].get("model_id", ""), states)
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f'<img alt="figure" src="data:{mime};base64,{_text(data[mime]).strip()}">'
    if "image/svg+xml" in data:
        return _text(data["image/svg+xml"])
    if "text/html" in data:
        return _text(data["text/html"])
    if "text/plain" in data:
        return f"<pre>{html.escape(_text(data['text/plain']))}</pre>"
    return ""


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def render_widget(model_id: str, states: dict) -> str:
    """The widget ``model_id`` and its children as static HTML."""
    model = states.get(_model_id(model_id))
    if model is None:
        return ('<span class="kd-widget-note">(a widget whose state was not saved: '
                'run the notebook in JupyterLab to see it)</span>')
    name = model.get("model_name", "")
    state = model.get("state", {})
    if name.endswith("BoxModel"):
        children = "".join(render_widget(c, states) for c in state.get("children", []))
        layout = "kd-widget-row" if name == "HBoxModel" else "kd-widget-column"
        return f'<div class="{layout}">{children}</div>'
    if name == "OutputModel":
        body = "".join(render_output(o, states) for o in state.get("outputs", []))
        return f'<div class="kd-widget-output">{body}</div>'
    if "Progress" in name:
        value, top = state.get("value", 0), state.get("max", 100)
        return f'<progress value="{value}" max="{top}"></progress>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<span class="kd-widget-control">{_label(state)}{state.get("value", "")}</span>'
    if name == "ButtonModel":
        return f"<button disabled>{html.escape(state.get('description', ''))}</button>"
    if "_options_labels" in state:  # dropdowns, radio buttons, selections
        labels, index = state["_options_labels"], state.get("index")
        chosen = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
        return (f'<span class="kd-widget-control">{_label(state)}'
                f"<select disabled><option>{html.escape(chosen)}</option></select></span>")
    if "Slider" in name and not isinstance(state.get("value"), list):
        value = state.get("value", 0)
        return (f'<span class="kd-widget-control">{_label(state)}'
                f'<input type="range" disabled min="{state.get("min", 0)}" '
                f'max="{state.get("max", 100)}" step="{state.get("step", 1)}" value="{value}">'
                f"<span>{html.escape(_formatted(value, state.get('readout_format')))}</span>"
                f"</span>")
    if "value" in state:
        value = state["value"]
        if isinstance(value, bool):
            value = "☑" if value else "☐"
        return (f'<span class="kd-widget-control">{_label(state)}'
                f"<span>{html.escape(str(value))}</span></span>")
    return f'<span class="kd-widget-control">{_label(state)}</span>'


class SavedWidgetsPreprocessor(Preprocessor):
    """Replace widget outputs by static HTML of their saved state; drop the state."""

    def preprocess(self, nb, resources):
        states = widget_states(nb)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if WIDGET_VIEW in data:
                    body = render_widget(data[WIDGET_VIEW].get("model_id", ""), states)
                    output["data"] = {"text/html": f'<div class="kd-widget">{body}</div>'}
        nb.metadata.pop("widgets", None)  # nothing left for a widget manager to load
        return nb, resources
