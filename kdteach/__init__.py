"""kdteach: knowledge distillation for regression, as a tested teaching package."""

__version__ = "0.1.0"
