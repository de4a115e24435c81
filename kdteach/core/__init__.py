"""The machine learning a learner reads: data, networks, losses, the training loop, the
stacked engine, statistics. Imports torch, numpy, scipy, scikit-learn, pandas and tqdm,
and nothing else of kdteach."""
