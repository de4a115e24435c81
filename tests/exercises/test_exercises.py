"""The self-study exercises: checkers, hints, solutions, and the generated learner notebooks.

Every reference solution (run from the instructor notebooks) must pass its checker, every
untouched stub (run from the learner notebooks) must be "not attempted", each typical mistake
must be "incorrect" with the message meant for it and without any expected number, and other
correct ways of writing an answer must pass.
"""

from __future__ import annotations

import ast
import re
import warnings

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from kdteach import exercises
from kdteach.core.losses import input_gradient as package_input_gradient
from kdteach.core.models import StudentNet
from kdteach.publish.learner_notebooks import (
    BEGIN,
    CHECK_CALL,
    END,
    EXERCISES_DIR,
    SOLUTIONS_DIR,
    build,
    learner_notebook,
    solution_notebooks,
    solution_source,
    strip_solutions,
)

NAMES = [
    "hp_loss",
    "weighted_loss",
    "paired_t_test",
    "distill_step",
    "pick_weights",
    "input_gradient",
    "lgr_loss",
    "jacobian_matching",
]
LESSONS = {
    "01_distillation_loss": "01_standard_teacher.ipynb",
    "02_distillation_step": "02_expert_teacher.ipynb",
    "03_choosing_weights": "03_grid_search.ipynb",
    "04_gradient_matching": "04_gradient_regularisation.ipynb",
    "05_jacobian_matching": "05_going_further.ipynb",
}
NUMBER = re.compile(r"\d\.\d|\de-\d")  # a printed float: a message must never contain one


def run_code_cells(path) -> dict:
    """A notebook's code cells run in one namespace, as a kernel would; checks are skipped."""
    namespace: dict = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and not CHECK_CALL.search(cell.source):
            exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def solved() -> dict:
    return {k: v for p in solution_notebooks() for k, v in run_code_cells(p).items()}


@pytest.fixture(scope="module")
def stubs() -> dict:
    paths = sorted(EXERCISES_DIR.glob("*.ipynb"))
    return {k: v for p in paths for k, v in run_code_cells(p).items()}


def incorrect(name, answer, fragment):
    result = exercises.check(name, answer)
    assert result.status == exercises.INCORRECT, result
    assert fragment in result.message, result
    assert not NUMBER.search(result.message), f"the message shows a number: {result.message}"
    return result


# --------------------------------------------------------------------------- the API


def test_names_follow_the_lessons():
    assert exercises.names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_reference_solution_is_correct(solved, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would land in the notebook's output
        result = exercises.check(name, solved[name])
    assert result.status == exercises.CORRECT, result
    assert not NUMBER.search(result.message)


@pytest.mark.parametrize("name", NAMES)
def test_untouched_stubs_are_not_attempted(stubs, name):
    result = exercises.check(name, stubs[name])
    assert result.status == exercises.NOT_ATTEMPTED, result
    assert "NotImplementedError" in result.message
    assert result == exercises.not_attempted(name)


def test_a_stub_that_a_function_calls_is_not_attempted_either():
    def weighted_loss(s, y, t, hard, hp):
        raise NotImplementedError  # e.g. a hp_loss the learner has not written yet

    assert exercises.check("weighted_loss", weighted_loss).status == exercises.NOT_ATTEMPTED


def test_any_other_exception_is_incorrect_and_named():
    def hp_loss(s, t):
        raise ValueError("shapes do not match")

    result = exercises.check("hp_loss", hp_loss)
    assert result.status == exercises.INCORRECT
    assert "ValueError: shapes do not match" in result.message


def test_check_refuses_unknown_names_and_non_functions():
    with pytest.raises(ValueError, match="unknown exercise 'hp'; the exercises are: hp_loss"):
        exercises.check("hp", lambda s, t: s)
    with pytest.raises(TypeError, match=r"check\('hp_loss', hp_loss\)"):
        exercises.check("hp_loss", 0.5)


def test_checks_are_reproducible_and_leave_the_random_state_alone(solved):
    def wrong(s, t):
        return (s - t).abs().mean()

    torch.manual_seed(7)
    before = torch.get_rng_state()
    first = exercises.check("distill_step", solved["distill_step"])
    assert torch.equal(torch.get_rng_state(), before)
    assert exercises.check("distill_step", solved["distill_step"]) == first
    assert exercises.check("hp_loss", wrong) == exercises.check("hp_loss", wrong)


def test_result_shows_as_text_html_and_markdown():
    result = exercises.Result("hp_loss", exercises.INCORRECT, "`a < b` is wrong")
    assert repr(result) == "✘ hp_loss: incorrect. `a < b` is wrong"
    assert "<code>a &lt; b</code>" in result._repr_html_()
    assert "incorrect" in result._repr_html_()
    assert result._repr_markdown_().startswith("**✘ `hp_loss`: incorrect.**")
    with pytest.raises(ValueError, match="status must be one of correct, incorrect"):
        exercises.Result("hp_loss", "wrong", "")


@pytest.mark.parametrize("name", NAMES)
def test_hints_get_more_concrete(name):
    one, two = exercises.hint(name), exercises.hint(name, level=2)
    assert one and two and one != two
    assert f"Hint 2 for `{name}`" in two._repr_markdown_()


def test_hint_refuses_bad_levels_and_names():
    with pytest.raises(ValueError, match="hint level must be 1 or 2, got 3"):
        exercises.hint("hp_loss", level=3)
    with pytest.raises(ValueError, match="unknown exercise"):
        exercises.hint("hp")


@pytest.mark.parametrize("name", NAMES)
def test_solution_is_the_reference_function(solved, name):
    source = exercises.solution(name)
    compile(source, "<solution>", "exec")
    tree = ast.parse(source)
    assert [node.name for node in tree.body] == [name]
    assert BEGIN not in source and END not in source
    assert source._repr_markdown_().startswith("```python\n")
    assert solution_source(name) == source


# --------------------------------------------------------------------------- hp_loss


def _hp_sum(s, t):
    return ((s - t) ** 2).sum()


def _hp_rmse(s, t):
    return ((s - t) ** 2).mean().sqrt()


def _hp_abs(s, t):
    return (s - t).abs().mean()


def _hp_square_of_mean(s, t):
    return (s - t).mean() ** 2


def _hp_no_square(s, t):
    return (s - t).mean()


def _hp_item(s, t):
    return ((s - t) ** 2).mean().item()


def _hp_detached(s, t):
    return ((s - t) ** 2).mean().detach()


def _hp_per_sample(s, t):
    return (s - t) ** 2


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (_hp_sum, "adds the squared differences up instead of averaging"),
        (_hp_rmse, "takes a square root"),
        (_hp_abs, "averages absolute differences"),
        (_hp_square_of_mean, "squares the mean difference"),
        (_hp_no_square, "forgets to square"),
        (_hp_item, "returned a float, not a tensor"),
        (_hp_detached, "cut off from the computation graph"),
        (_hp_per_sample, "not a single number"),
    ],
)
def test_hp_loss_mistakes(answer, fragment):
    incorrect("hp_loss", answer, fragment)


@pytest.mark.parametrize(
    "answer",
    [
        F.mse_loss,
        lambda s, t: torch.nn.MSELoss()(s, t),
        lambda s, t: torch.mean(torch.square(t - s)),
        lambda s, t: ((s - t) ** 2).sum() / s.shape[0],
    ],
)
def test_hp_loss_accepts_other_correct_forms(answer):
    assert exercises.check("hp_loss", answer).status == exercises.CORRECT


# --------------------------------------------------------------------------- weighted_loss


def _mse(a, b):
    return ((a - b) ** 2).mean()


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (lambda s, y, t, hard, hp: hp * _mse(s, y) + hard * _mse(s, t), "swaps the weights"),
        (lambda s, y, t, hard, hp: hard * _hp_sum(s, y) + hp * _hp_sum(s, t), "adds the squared"),
        (lambda s, y, t, hard, hp: hard * _mse(s, y) + hp * _hp_sum(s, t), "adds the squared"),
        (lambda s, y, t, hard, hp: _mse(s, y) + _mse(s, t), "ignores the weights"),
        (
            lambda s, y, t, hard, hp: (hard * _mse(s, y) + hp * _mse(s, t)) / (hard + hp),
            "divides by the sum of the weights",
        ),
        (lambda s, y, t, hard, hp: hard * _mse(s, y) + hp * _mse(y, t), "teacher term"),
        (lambda s, y, t, hard, hp: hard * _mse(s, y) + hp * _mse(s, y), "teacher term"),
        (lambda s, y, t, hard, hp: hard * _mse(s, y), "leaves out the teacher term"),
        (lambda s, y, t, hard, hp: hard * _mse(s, t) + hp * _mse(s, t), "hard term"),
    ],
)
def test_weighted_loss_mistakes(answer, fragment):
    incorrect("weighted_loss", answer, fragment)


@pytest.mark.parametrize(
    "answer",
    [
        lambda s, y, t, hard, hp: hard * F.mse_loss(s, y) + hp * F.mse_loss(s, t),
        lambda s, y, t, hard, hp: torch.stack([hard * _mse(y, s), hp * _mse(t, s)]).sum(),
    ],
)
def test_weighted_loss_accepts_other_correct_forms(answer):
    assert exercises.check("weighted_loss", answer).status == exercises.CORRECT


# --------------------------------------------------------------------------- paired_t_test


def _t_manual(d, n):
    return float(np.mean(d) / (np.std(d, ddof=1) / np.sqrt(n)))


def _paired_ddof0(a, b):
    d = np.subtract(a, b)
    t = float(d.mean() / (d.std() / np.sqrt(d.size)))
    return t, float(stats.t.cdf(t, d.size - 1))


def _paired_normal(a, b):
    d = np.subtract(a, b)
    t = _t_manual(d, d.size)
    return t, float(stats.norm.cdf(t))


def _paired_df_n(a, b):
    d = np.subtract(a, b)
    t = _t_manual(d, d.size)
    return t, float(stats.t.cdf(t, d.size))


def _paired_b_minus_a(a, b):
    d = np.subtract(b, a)
    t = _t_manual(d, d.size)
    return t, float(stats.t.sf(t, d.size - 1))


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (lambda a, b: tuple(stats.ttest_rel(a, b)), "two-sided p-value"),
        (lambda a, b: tuple(stats.ttest_rel(a, b, alternative="greater")), "opposite direction"),
        (lambda a, b: tuple(stats.ttest_ind(a, b, alternative="less")), "independent-samples"),
        (
            lambda a, b: tuple(stats.ttest_ind(a, b, alternative="less", equal_var=False)),
            "independent-samples",
        ),
        (_paired_ddof0, "population standard deviation"),
        (_paired_normal, "normal distribution"),
        (_paired_df_n, "uses n degrees of freedom"),
        (_paired_b_minus_a, "wrong sign"),
        (lambda a, b: stats.ttest_rel(a, b, alternative="less").pvalue, "return two numbers"),
    ],
)
def test_paired_t_test_mistakes(answer, fragment):
    incorrect("paired_t_test", answer, fragment)


def _paired_torch(a, b):
    d = torch.tensor(a) - torch.tensor(b)
    t = d.mean() / (d.std() / len(a) ** 0.5)  # torch.std is the sample standard deviation
    return t, stats.t.cdf(t.item(), len(a) - 1)


@pytest.mark.parametrize(
    "answer",
    [
        lambda a, b: stats.ttest_rel(a, b, alternative="less"),  # the result object unpacks
        lambda a, b: stats.ttest_1samp(np.subtract(a, b), 0.0, alternative="less"),
        _paired_torch,
    ],
)
def test_paired_t_test_accepts_other_correct_forms(answer):
    assert exercises.check("paired_t_test", answer).status == exercises.CORRECT


# --------------------------------------------------------------------------- distill_step


def make_step(
    eval_teacher=True,
    no_grad=True,
    zero_grad=True,
    reduce="mean",
    swap=False,
    step=True,
    item=True,
    eval_after_predicting=False,
    train_student=True,
):
    """A distill_step with one or more deliberate mistakes."""

    def distill_step(student, teacher, optimizer, X, y, hard, hp):
        if swap:
            hard, hp = hp, hard
        if eval_teacher and not eval_after_predicting:
            teacher.eval()
        with torch.set_grad_enabled(not no_grad):
            teacher_pred = teacher(X)
        if eval_after_predicting:
            teacher.eval()
        if train_student:
            student.train()
        if zero_grad:
            optimizer.zero_grad()
        pred = student(X)
        loss = hard * F.mse_loss(pred, y, reduction=reduce) + hp * F.mse_loss(
            pred, teacher_pred, reduction=reduce
        )
        loss.backward()
        if step:
            optimizer.step()
        return loss.item() if item else loss

    return distill_step


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (make_step(eval_teacher=False), "left the teacher in train mode"),
        (make_step(eval_after_predicting=True), "predicted in train mode"),
        (make_step(no_grad=False), "The teacher received gradients"),
        (make_step(zero_grad=False), "optimizer.zero_grad()"),
        (make_step(reduce="sum"), "sums the squared differences"),
        (make_step(swap=True), "swaps the weights"),
        (make_step(step=False), "did not change the student's weights"),
        (make_step(item=False), "returned a tensor"),
        (make_step(train_student=False), "left the student in eval mode"),
    ],
)
def test_distill_step_mistakes(answer, fragment):
    incorrect("distill_step", answer, fragment)


def test_distill_step_must_return_the_loss_before_the_step():
    def distill_step(student, teacher, optimizer, X, y, hard, hp):
        make_step()(student, teacher, optimizer, X, y, hard, hp)
        with torch.no_grad():
            return (hard * F.mse_loss(student(X), y)).item()

    incorrect("distill_step", distill_step, "returns a different number")


def _step_frozen_teacher(student, teacher, optimizer, X, y, hard, hp):
    teacher.eval()
    teacher.requires_grad_(False)
    student.train()
    student.zero_grad(set_to_none=False)
    pred = student(X)
    loss = hard * ((pred - y) ** 2).mean() + hp * ((pred - teacher(X).detach()) ** 2).mean()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def test_distill_step_accepts_other_correct_forms():
    assert exercises.check("distill_step", _step_frozen_teacher).status == exercises.CORRECT


# --------------------------------------------------------------------------- pick_weights

VAL, TEST = exercises.grid_example()


def _pick_on_test(val_mse):
    return min(TEST, key=lambda label: np.mean(TEST[label]))  # reads the notebook's test set


def _pick_global_val(val_mse):
    return min(VAL, key=lambda label: np.mean(VAL[label]))  # ignores its argument


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (_pick_on_test, "best on the test set"),
        (lambda v: min(v, key=lambda k: np.mean(TEST[k])), "best on the test set"),
        (_pick_global_val, "returns the same label whatever"),
        (lambda v: max(v, key=lambda k: np.mean(v[k])), "highest mean validation MSE"),
        (lambda v: min(v, key=lambda k: min(v[k])), "single luckiest run"),
        (lambda v: min(v, key=lambda k: v[k][0]), "first run only"),
        (lambda v: min(v, key=lambda k: v[k][-1]), "last run only"),
        (lambda v: min(np.mean(r) for r in v.values()), "returned a float"),
        (lambda v: min(v, key=lambda k: np.mean(v[k])).lower(), "not a key of `val_mse`"),
        (lambda v: min(v, key=lambda k: np.median(v[k])), "does not always pick"),
    ],
)
def test_pick_weights_mistakes(answer, fragment):
    incorrect("pick_weights", answer, fragment)


@pytest.mark.parametrize(
    "answer",
    [
        lambda v: list(v)[int(np.argmin([np.mean(r) for r in v.values()]))],
        lambda v: sorted(v.items(), key=lambda item: sum(item[1]) / len(item[1]))[0][0],
    ],
)
def test_pick_weights_accepts_other_correct_forms(answer):
    assert exercises.check("pick_weights", answer).status == exercises.CORRECT


def test_grid_example_chooses_differently_on_validation_and_test():
    val, test = exercises.grid_example()
    assert list(val) == list(test) and len(val) == 5
    best = {name: min(d, key=lambda k: np.mean(d[k])) for name, d in (("val", val), ("test", test))}
    assert best["val"] != best["test"]
    val["H=0.1_HP=0.9"].append(0.0)
    assert exercises.grid_example()[0] == VAL, "each call returns fresh copies"


# --------------------------------------------------------------------------- input_gradient


def _grad_of(loss_fn, graph_flag=None):
    def input_gradient(model, X, y, create_graph):
        X = X.detach().requires_grad_(True)
        graph = create_graph if graph_flag is None else graph_flag
        return torch.autograd.grad(loss_fn(model(X), y), X, create_graph=graph)[0]

    return input_gradient


def _grad_backward(model, X, y, create_graph):
    X = X.detach().requires_grad_(True)
    F.mse_loss(model(X), y).backward(create_graph=create_graph)
    return X.grad


def _grad_per_feature_mean(model, X, y, create_graph):
    return _grad_of(F.mse_loss)(model, X, y, create_graph).mean(dim=0)


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (_grad_of(lambda p, y: ((p - y) ** 2).sum()), "the sum of the squared errors"),
        (_grad_of(lambda p, y: p.sum()), "the model's output instead of its MSE loss"),
        (_grad_of(lambda p, y: -F.mse_loss(p, y)), "the wrong sign"),
        (_grad_of(F.mse_loss, graph_flag=False), "ignores `create_graph`"),
        (_grad_backward, "left gradients in the model's parameters"),
        (_grad_per_feature_mean, "gradient with respect to X has X's shape"),
    ],
)
def test_input_gradient_mistakes(answer, fragment):
    incorrect("input_gradient", answer, fragment)


def _grad_functorch(model, X, y, create_graph):
    return torch.func.grad(lambda x: ((model(x) - y) ** 2).mean())(X)


@pytest.mark.parametrize(
    "answer",
    [
        _grad_of(F.mse_loss),
        _grad_of(F.mse_loss, graph_flag=True),  # a graph nobody asked for does no harm
        package_input_gradient,
        _grad_functorch,
    ],
)
def test_input_gradient_accepts_other_correct_forms(answer):
    assert exercises.check("input_gradient", answer).status == exercises.CORRECT


# --------------------------------------------------------------------------- lgr_loss


def make_lgr(
    eval_teacher=True,
    student_graph=True,
    teacher_graph=False,
    loss_fn=F.mse_loss,
    reduce=lambda a, b: ((a - b) ** 2).mean(),
    backward=False,
):
    """An lgr_loss with one deliberate mistake."""

    def grad(model, X, y, create_graph):
        X = X.detach().requires_grad_(True)
        loss = loss_fn(model(X), y)
        if backward:
            loss.backward(create_graph=create_graph)
            return X.grad
        return torch.autograd.grad(loss, X, create_graph=create_graph)[0]

    def lgr_loss(student, teacher, X, y):
        if eval_teacher:
            teacher.eval()
        g_t = grad(teacher, X, y, teacher_graph)
        g_s = grad(student, X, y, student_graph)
        return reduce(g_s, g_t)

    return lgr_loss


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (make_lgr(student_graph=False), "compute the student's input gradient with `create_gr"),
        (make_lgr(teacher_graph=True), "The teacher would receive gradients"),
        (make_lgr(eval_teacher=False), "teacher in train mode"),
        (make_lgr(loss_fn=lambda p, y: ((p - y) ** 2).sum()), "gradients of summed squared"),
        (make_lgr(reduce=lambda a, b: ((a - b) ** 2).sum()), "adds up the squared gradient"),
        (make_lgr(loss_fn=lambda p, y: p.sum()), "gradients of the models' outputs"),
        (make_lgr(backward=True), "left gradients in the teacher's parameters"),
    ],
)
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_lgr_loss_mistakes(answer, fragment):
    incorrect("lgr_loss", answer, fragment)


def _lgr_polite(student, teacher, X, y):
    was_training = teacher.training
    teacher.eval()
    g_t = package_input_gradient(teacher, X, y)
    teacher.train(was_training)  # restoring the caller's mode is fine
    g_s = package_input_gradient(student, X, y, create_graph=True)
    return F.mse_loss(g_s, g_t)


def _lgr_detached_teacher(student, teacher, X, y):
    teacher.eval()
    g_t = _grad_of(F.mse_loss)(teacher, X, y, True).detach()  # a graph, cut off afterwards
    g_s = _grad_of(F.mse_loss)(student, X, y, True)
    return (g_s - g_t).pow(2).mean()


@pytest.mark.parametrize("answer", [_lgr_polite, _lgr_detached_teacher])
def test_lgr_loss_accepts_other_correct_forms(answer):
    assert exercises.check("lgr_loss", answer).status == exercises.CORRECT


def test_lgr_loss_trains_the_student_in_a_step(solved):
    """The reference L_GR, backpropagated, moves the student's weights and nothing else."""
    torch.manual_seed(0)
    student, teacher = StudentNet(n_features=3), StudentNet(n_features=3)
    X, y = torch.randn(8, 3), torch.randn(8, 1)
    solved["lgr_loss"](student, teacher, X, y).backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


# --------------------------------------------------------------------------- jacobian_matching


def make_jac(eval_teacher=True, student_graph=True, teacher_graph=False,
             reduce=lambda a, b: ((a - b) ** 2).mean(), outputs=lambda out: out.sum(),
             backward=False):
    """A jacobian_matching with one deliberate mistake."""

    def derivatives(model, X, create_graph):
        X = X.detach().requires_grad_(True)
        total = outputs(model(X))
        if backward:
            total.backward(create_graph=create_graph)
            return X.grad
        return torch.autograd.grad(total, X, create_graph=create_graph)[0]

    def jacobian_matching(student, teacher, X):
        if eval_teacher:
            teacher.eval()
        return reduce(derivatives(student, X, student_graph), derivatives(teacher, X,
                                                                            teacher_graph))

    return jacobian_matching


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (make_jac(student_graph=False), "compute the student's derivatives with `create_graph"),
        (make_jac(teacher_graph=True), "The teacher would receive gradients"),
        (make_jac(eval_teacher=False), "teacher in train mode"),
        (make_jac(reduce=lambda a, b: ((a - b) ** 2).sum()), "adds up the squared differences"),
        (make_jac(outputs=lambda out: out.mean()), "mean of the outputs instead of their sum"),
        (make_jac(backward=True), "left gradients in the teacher's parameters"),
    ],
)
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_jacobian_matching_mistakes(answer, fragment):
    incorrect("jacobian_matching", answer, fragment)


def test_jacobian_matching_accepts_the_package_and_jacrev_forms():
    from torch.func import jacrev, vmap

    from kdteach.core.losses import jacobian_matching

    def with_jacrev(student, teacher, X):
        teacher.eval()
        one = lambda m: vmap(jacrev(lambda x: m(x[None])[0, 0]))(X)  # noqa: E731
        return ((one(student) - one(teacher).detach()) ** 2).mean()

    for answer in (jacobian_matching, with_jacrev):
        assert exercises.check("jacobian_matching", answer).status == exercises.CORRECT


# --------------------------------------------------------------------------- the notebooks


def test_learner_notebooks_are_generated_from_the_solutions():
    stale, orphans = build(check=True)
    assert not stale, f"out of date, run `make exercises`: {stale}"
    assert not orphans


def test_strip_solutions_leaves_a_stub_in_the_function():
    source = (
        f"import torch\n\n\ndef f(x):\n    '''Doc.'''\n    {BEGIN}\n    y = x\n    return y\n"
        f"    {END}\n"
    )
    assert strip_solutions(source) == (
        "import torch\n\n\ndef f(x):\n    '''Doc.'''\n"
        '    raise NotImplementedError("f: write your code here")\n'
    )


@pytest.mark.parametrize(
    "source, message",
    [
        (f"def f():\n    {BEGIN}\n    return 1\n", "never closed"),
        (f"def f():\n    return 1\n    {END}\n", "without a"),
        (f"{BEGIN}\nx = 1\n{END}\n", "inside a function's body"),
        (f"def f():\n    {BEGIN}\n    {BEGIN}\n    {END}\n", "line 3"),
    ],
)
def test_strip_solutions_refuses_broken_markers(source, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions(source)


def test_a_cell_that_calls_an_exercise_outside_a_check_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"def hp_loss(s, t):\n    {BEGIN}\n    return s\n    {END}"),
        nbformat.v4.new_code_cell("print(hp_loss(1, 2))"),
    ]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="demo.ipynb, cell 2: calls hp_loss outside a check"):
        learner_notebook(path)


def notebook_pairs():
    return [(p, EXERCISES_DIR / p.name) for p in solution_notebooks()]


def exercise_order(nb) -> list[str]:
    return [m.group(1) for c in nb.cells if (m := CHECK_CALL.search(c.source))]


def test_the_notebooks_follow_the_lessons_and_hold_every_exercise_once():
    assert [p.stem for p in solution_notebooks()] == list(LESSONS)
    order = [n for p in solution_notebooks() for n in exercise_order(nbformat.read(p, 4))]
    assert order == NAMES


@pytest.mark.parametrize("path", sorted(SOLUTIONS_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    first = nb.cells[0].source
    assert first.startswith("# Exercises ")
    lesson = LESSONS[path.stem]
    assert f"**Follows lesson** `notebooks/{lesson}`" in first
    assert (path.parents[1] / lesson).exists()
    assert re.search(r"\*\*Time\.\*\* Running the notebook takes about \d+ s on a 2-core CPU",
                     first)
    assert re.search(r"about \d+ minutes of your own work", first)
    assert "you will be able to" in first and re.search(r"^- ", first, re.M)
    assert nb.cells[-1].cell_type == "markdown" and "## Takeaways" in nb.cells[-1].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert CHECK_CALL.search(code[-1].source), "the notebook ends with a check call"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert len(cell.source.strip().splitlines()) <= 15, cell.source
        if cell.cell_type == "code" and BEGIN in cell.source:
            prose = nb.cells[index - 1]
            assert prose.cell_type == "markdown" and re.search(r"\$[^$]+\$", prose.source)
            name = re.search(r"^def (\w+)\(", cell.source, re.M).group(1)
            check = nb.cells[index + 1].source
            assert check == f'# NBVAL_CHECK_OUTPUT\nexercises.check("{name}", {name})'


@pytest.mark.parametrize("solution, learner", notebook_pairs(), ids=lambda p: p.stem)
def test_stored_verdicts(solution, learner):
    """The instructor notebooks were run and say "correct"; the learner's say "not attempted"."""
    for path, status in ((solution, "correct"), (learner, "not attempted")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            assert cell.execution_count is not None, f"{path.name} was not run"
            kinds = [(o.output_type, o.get("name")) for o in cell.outputs]
            assert ("error", None) not in kinds and ("stream", "stderr") not in kinds
            if match := CHECK_CALL.search(cell.source):
                (out,) = cell.outputs
                assert out.data["text/plain"].startswith(f"{match.group(1)}: {status}.", 2)


def test_learner_notebooks_hide_the_solutions():
    for solution, learner in notebook_pairs():
        code = "\n".join(c.source for c in nbformat.read(learner, 4).cells if c.cell_type == "code")
        assert BEGIN not in code and END not in code
        for name in exercise_order(nbformat.read(solution, 4)):
            body = solution_source(name).split('"""', 2)[-1].strip()
            assert body.splitlines()[0] not in code, f"{learner.name} shows {name}'s solution"
