"""What a widget's output area shows, for the tests of the lesson widgets."""


def output_figures(out) -> int:
    """How many images an output area shows."""
    return sum("image/png" in item.get("data", {}) for item in out.outputs)
