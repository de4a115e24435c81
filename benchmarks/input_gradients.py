"""Input derivatives by matrix products instead of autograd's double backward
(``make bench-input-gradients``).

L_GR and L_JAC differentiate the student with respect to its *inputs*, and the loss on
those derivatives is then differentiated with respect to the weights: the engine does
this with ``torch.autograd.grad(..., create_graph=True)``, autograd's generic double
backward. The students here are piecewise linear (ReLU), so the same derivatives are a
product of the weight matrices and the layers' on/off masks,
``v·W_Lᵀ·S_{L−1}·W_{L−1}ᵀ ⋯ S_1·W_1ᵀ``, and a loss on them needs only a plain first-order
backward. This script builds that product for a stack of students
(:func:`input_vjp`), checks it against autograd (the terms and every parameter gradient),
and times one full training step (forward, loss, backward) three ways on the stack of the
three-way search: autograd's double backward, the matrix products, and plain training
(hard + L_HP, no input derivatives) as the floor.

    python benchmarks/input_gradients.py                    # 330 students, batch 128
    python benchmarks/input_gradients.py --profile prof.txt # torch.profiler tables too

Measure on an idle machine. ``benchmarks/README.md`` holds a run and what it decided.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import torch
from torch.utils import benchmark

from kdteach.core.losses import DistillationLoss
from kdteach.core.models import StudentNet
from kdteach.core.resources import intra_op_threads
from kdteach.core.stacked import StackedMLP

LOSSES = {"L_JAC": {"hard": 0.2, "hp": 0.5, "jac": 0.3},
          "L_GR": {"hard": 0.2, "hp": 0.5, "gr": 0.3},
          "plain": {"hard": 0.3, "hp": 0.7}}


def forward_with_slopes(stack: StackedMLP, x: torch.Tensor):
    """The stack's output and each hidden layer's ReLU slope (1 where the unit is on, 0
    where it is off), detached: ``(M, B, width)`` per hidden layer."""
    if stack.spec.activation != "relu" or stack.spec.dropout:
        raise ValueError("this benchmark's products are written for ReLU stacks without dropout")
    slopes = []
    last = len(stack.weights) - 1
    for i, (W, b) in enumerate(zip(stack.weights, stack.biases)):
        x = torch.baddbmm(b, x, W)
        if i < last:
            slopes.append((x.detach() > 0).to(x.dtype))
            x = torch.relu(x)
    return x, slopes


def input_vjp(stack: StackedMLP, slopes: list, v: torch.Tensor) -> torch.Tensor:
    """``∇ₓ Σ v·f(x)`` per sample, ``(M, B, d)``, as a product of the weights and the
    slopes; it keeps its graph through the weights and through ``v``."""
    grad = torch.bmm(v, stack.weights[-1].transpose(1, 2))
    for W, slope in zip(reversed(stack.weights[:-1]), reversed(slopes)):
        grad = torch.bmm(grad * slope, W.transpose(1, 2))
    return grad


def mse_output_gradient(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``∂ MSE(pred, y)/∂ pred`` of the batch-mean MSE, ``2·(pred − y)/N``, per model."""
    return 2.0 * (pred - y) / (pred.shape[-2] * pred.shape[-1])


def terms_by_products(stack, loss: DistillationLoss, X, y, targets) -> dict:
    """The loss terms with the student's input derivatives from :func:`input_vjp`."""
    pred, slopes = forward_with_slopes(stack, X)
    vjp = functools.partial(input_vjp, stack, slopes)
    plain = DistillationLoss(**{t: w for t, w in loss.weights.items() if t in ("hard", "hp")})
    terms = plain.compute_terms(pred, y, teacher_pred=targets["pred"])
    if "gr" in loss.weights:
        terms["gr"] = ((vjp(mse_output_gradient(pred, y)) - targets["grad"]) ** 2).mean((-2, -1))
    if "jac" in loss.weights:
        terms["jac"] = ((vjp(torch.ones_like(pred)) - targets["jac"]) ** 2).mean((-2, -1))
    return terms


def terms_by_autograd(stack, loss: DistillationLoss, X, y, targets) -> dict:
    """The loss terms as the engine computes them: autograd with ``create_graph=True``."""
    X = X.detach().requires_grad_(loss.needs_input_grad)
    return loss.compute_terms(stack(X), y, X, teacher_pred=targets["pred"],
                              teacher_grad=targets["grad"], teacher_jac=targets["jac"])


def step(stack, loss, X, y, targets, how) -> dict:
    """One training step's forward, loss and backward (no optimiser: it is the same for
    both); returns the terms."""
    stack.zero_grad()
    terms = how(stack, loss, X, y, targets)
    sum(loss.weights[t] * v for t, v in terms.items()).sum().backward()
    return terms


def setup(n_models: int, batch: int, seed: int = 0):
    """A stack of students at their initial weights, a batch and random teacher targets."""
    torch.manual_seed(seed)
    stack = StackedMLP.from_models([StudentNet() for _ in range(n_models)])
    X, y = torch.randn(n_models, batch, 10), torch.randn(n_models, batch, 1)
    targets = {"pred": torch.randn(n_models, batch, 1),
               "grad": torch.randn(n_models, batch, 10) / batch,
               "jac": torch.randn(n_models, batch, 10)}
    return stack, X, y, targets


def largest_differences(stack, loss, X, y, targets) -> dict:
    """The largest relative difference, products against autograd, of every term and of
    every parameter's gradient."""
    a = step(stack, loss, X, y, targets, terms_by_autograd)
    grads_a = [p.grad.clone() for p in stack.parameters()]
    b = step(stack, loss, X, y, targets, terms_by_products)
    grads_b = [p.grad.clone() for p in stack.parameters()]

    def rel(u, w):
        return float((u - w).abs().max() / w.abs().max().clamp_min(1e-30))

    return {"terms": max(rel(b[t].detach(), a[t].detach()) for t in a),
            "gradients": max(rel(gb, ga) for gb, ga in zip(grads_b, grads_a))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=330, help="students in the stack")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=2.0)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--profile", help="write torch.profiler tables here")
    args = parser.parse_args(argv)
    print(f"{args.models} students, batch {args.batch}, {args.threads} thread(s), "
          f"load average before {os.getloadavg()[0]:.2f}")
    out = {}
    with intra_op_threads(args.threads):
        stack, X, y, targets = setup(args.models, args.batch)
        for name, weights in LOSSES.items():
            loss = DistillationLoss(**weights)
            row = {} if name == "plain" else largest_differences(stack, loss, X, y, targets)
            ways = {"autograd": terms_by_autograd}
            if name != "plain":
                ways["products"] = terms_by_products
            for way, how in ways.items():
                timer = benchmark.Timer("step(stack, loss, X, y, targets, how)",
                                        globals={**globals(), "stack": stack, "loss": loss,
                                                 "X": X, "y": y, "targets": targets, "how": how})
                row[way] = timer.blocked_autorange(min_run_time=args.min_run_time).median * 1e3
            out[name] = row
            times = ", ".join(f"{w} {row[w]:.1f} ms" for w in ways)
            diffs = (f"; largest relative difference: terms {row['terms']:.1e}, gradients "
                     f"{row['gradients']:.1e}") if "terms" in row else ""
            print(f"{name:6s} step: {times}{diffs}")
        if args.profile:
            write_profiles(args.profile, stack, X, y, targets)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


def write_profiles(path: str, stack, X, y, targets) -> None:
    """``torch.profiler`` tables of ten L_JAC steps, each way, operator by operator."""
    from torch.profiler import ProfilerActivity, profile

    loss = DistillationLoss(**LOSSES["L_JAC"])
    with open(path, "w") as f:
        for way, how in (("autograd", terms_by_autograd), ("products", terms_by_products)):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(10):
                    step(stack, loss, X, y, targets, how)
            f.write(f"## L_JAC, {way}, 10 steps\n")
            f.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
            f.write("\n\n")


if __name__ == "__main__":
    sys.exit(main())
