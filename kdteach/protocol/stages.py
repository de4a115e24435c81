"""The stages: one table says what each stage is, and one function per stage builds it.

A *stage* is one comparison of the series: it trains (or loads) its teachers and
students, scores them on the test set and runs its paired tests. Its row of
:data:`STAGES` holds everything the rest of kdteach needs to know about it:

* ``name`` and ``title``;
* ``part``: ``"original"`` (the original notebook's four parts), ``"lesson"`` (added by the
  lessons) or ``"further"`` (notebook 05's open questions);
* ``depends_on``: the stages whose results it uses (run first);
* ``jobs``: the students it trains on the whole training set with the profile's epochs,
  fixed before it runs; the second-core overlap trains them ahead, and a student
  retrained live with the same loss and teacher sees the same batches;
* ``lesson``: the lesson notebook that first shows it (empty: no lesson does);
* ``build``: the function that runs it, given the experiment and its own row.

``Experiment.run(name)`` is the one way to run a stage.

One rule for the tests: the original notebook's own directional hypotheses (a distilled
student has a lower test MSE than the scratch student, parts 1 and 2) stay one-sided, as
in the original (``"less"``); every other comparison is two-sided. A comparison chosen
after seeing the results is descriptive (no p).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kdteach.core.losses import DistillationLoss
from kdteach.core.stats import paired_test, summary_table
from kdteach.protocol import search
from kdteach.protocol.names import (
    DISTILLED,
    DISTILLED_EXPERT,
    DISTILLED_REGULARISED,
    EXPERT,
    FEAT,
    FIT,
    FRESH,
    HP_ONLY,
    JAC,
    LGR,
    REGULARISED,
    SCRATCH,
    STOPPED,
    TEACHER,
    THREE_WAY,
    THREE_WAY_HALVING,
    TUNED,
    grid_name,
)
from kdteach.protocol.recipes import TEACHER_KINDS, StudentJob
from kdteach.protocol.results import StageResult, TrainedStudents
from kdteach.protocol.settings import Settings

PARTS = ("original", "lesson", "further")


def _no_jobs(settings: Settings) -> list[StudentJob]:
    return []


@dataclass(frozen=True)
class Stage:
    """One row of the stage table (see the module's docstring)."""

    name: str
    title: str
    part: str
    build: Callable  # build(exp, stage) -> StageResult
    depends_on: tuple[str, ...] = ()
    jobs: Callable[[Settings], list[StudentJob]] = _no_jobs
    lesson: str = ""  # e.g. "01_standard_teacher"


# -- the jobs, one definition each ----------------------------------------------


def kd_job(settings: Settings, name: str, teacher: str) -> StudentJob:
    """A student distilled with the profile's hard/L_HP weights (0.3/0.7)."""
    return StudentJob(name, DistillationLoss.from_weights(settings.kd_weights), teacher)


def scratch_job() -> StudentJob:
    return StudentJob(SCRATCH, DistillationLoss(hard=1.0))


def grid_jobs(settings: Settings) -> list[StudentJob]:
    """Part 3's grid: hard = h, L_HP = 1 − h, from the expert."""
    return [StudentJob(grid_name(w), DistillationLoss.from_weights(w), "expert")
            for w in settings.grid_weights]


def lgr_job(settings: Settings) -> StudentJob:
    return StudentJob(LGR, DistillationLoss.from_weights(settings.gr_weights), "expert")


def outputs_only_job(kind: str) -> StudentJob:
    """A student that learns from the teacher's outputs alone (pure L_HP)."""
    return StudentJob(HP_ONLY[kind], DistillationLoss(hp=1.0), kind)


def jac_job(settings: Settings) -> StudentJob:
    """L_JAC with the L_GR student's weights, hard 0.2 / hp 0.5 / jac 0.3."""
    return StudentJob(JAC, DistillationLoss(hard=0.2, hp=0.5, jac=0.3), "expert")


def feat_job(settings: Settings) -> StudentJob:
    """L_FEAT with the original's named weights, hard 0.3 / hp 0.4 / feat 0.3."""
    return StudentJob(FEAT, DistillationLoss.from_weights(settings.feat_weights), "expert")


# -- shared pieces of the builds ----------------------------------------------


def _result(exp, stage: Stage, results, tests, models, history=None, weights=None,
            sort=False, label="Model", **extra) -> StageResult:
    return StageResult(stage=stage.name, title=stage.title, settings=exp.settings,
                       results=results, summary=summary_table(results, sort=sort, label=label),
                       tests=tests, models=models, history=history, weights=weights or {},
                       **extra)


def _weights(jobs) -> dict:
    return {job.name: job.loss.weights for job in jobs}


# -- the original's four parts ------------------------------------------------------


def standard_teacher(exp, stage: Stage) -> StageResult:
    """Part 1: a teacher, a student from scratch, a student distilled (0.3/0.7)."""
    jobs = stage.jobs(exp.settings)
    students = exp.students(stage.name, jobs)
    models = {TEACHER: exp.teachers("teacher"), **students.models}
    results = exp.evaluate(models)
    tests = {"distilled vs scratch": paired_test(results, DISTILLED, SCRATCH, "less")}
    return _result(exp, stage, results, tests, models, students.history, _weights(jobs))


def expert_teacher(exp, stage: Stage) -> StageResult:
    """Part 2: an expert teacher (deeper, dropout, more weight decay) and a student
    distilled from it."""
    part1 = exp.run("standard_teacher")
    (job,) = stage.jobs(exp.settings)
    experts = exp.teachers("expert")
    students = exp.students(stage.name, [job])
    own = exp.evaluate({EXPERT: experts, **students.models})
    r1 = part1.results
    results = {TEACHER: r1[TEACHER], EXPERT: own[EXPERT], SCRATCH: r1[SCRATCH],
               DISTILLED: r1[DISTILLED], DISTILLED_EXPERT: own[DISTILLED_EXPERT]}
    tests = {
        "expert teacher vs teacher": paired_test(results, EXPERT, TEACHER),
        "distilled vs scratch": paired_test(results, DISTILLED, SCRATCH, "less"),
        "distilled from expert vs scratch": paired_test(results, DISTILLED_EXPERT, SCRATCH,
                                                        "less"),
    }
    return _result(exp, stage, results, tests, {EXPERT: experts, **students.models},
                   students.history, {DISTILLED_EXPERT: job.loss.weights,
                                      DISTILLED: job.loss.weights})


def grid_search(exp, stage: Stage) -> StageResult:
    """Part 3: students distilled from each run's expert with hard = h, hp = 1 − h.

    ``best`` is the original's choice, made on the test set (optimistic); the honest choice
    on a validation split is the ``model_selection`` stage."""
    jobs = stage.jobs(exp.settings)
    students = exp.students(stage.name, jobs)
    results = exp.evaluate(students.models)
    summary = summary_table(results, sort=True, label="Weights")
    best, worst = str(summary.iloc[0]["Weights"]), str(summary.iloc[-1]["Weights"])
    tests = {}
    if best != worst:
        tests["best vs worst grid point"] = paired_test(results, best, worst, "less",
                                                        descriptive=True)
    return _result(exp, stage, results, tests, students.models, students.history,
                   _weights(jobs), sort=True, label="Weights", best=best)


def gradient_regularisation(exp, stage: Stage) -> StageResult:
    """Part 4: a student that also matches the expert's input gradients (L_GR)."""
    part2, grid = exp.run("expert_teacher"), exp.run("grid_search")
    (job,) = stage.jobs(exp.settings)
    students = exp.students(stage.name, [job])
    own = exp.evaluate(students.models)
    results = {
        SCRATCH: part2.results[SCRATCH],
        DISTILLED_EXPERT: part2.results[DISTILLED_EXPERT],
        grid.best: grid.results[grid.best],
        LGR: own[LGR],
        EXPERT: part2.results[EXPERT],
    }
    tests = {
        # the original's comparison; its partner was chosen on the test set
        "L_GR vs best L_HP": paired_test(results, LGR, grid.best, "two-sided",
                                         descriptive=True),
        # 0.2/0.5 act like 0.29/0.71 under Adam: the matched L_HP student is 0.3/0.7
        "L_GR vs matched L_HP (0.3/0.7)": paired_test(results, LGR, DISTILLED_EXPERT,
                                                      "two-sided"),
        "L_GR vs scratch": paired_test(results, LGR, SCRATCH),
    }
    return _result(exp, stage, results, tests, students.models, students.history,
                   {LGR: job.loss.weights, grid.best: grid.weights[grid.best],
                    DISTILLED_EXPERT: part2.weights[DISTILLED_EXPERT]}, sort=True,
                   best=grid.best)


# -- the lessons' stages -------------------------------------------------------------


def tuned_jobs(settings: Settings, kind: str) -> list[StudentJob]:
    """The baseline given the method's chance, and the method given the same: scratch and
    0.3/0.7 from the standard teacher (``kind="teacher"``), or 0.3/0.7 from the expert.
    Each sees exactly the batches of its 600-epoch twin: it *is* that student, stopped at
    its own epoch."""
    kd = DistillationLoss.from_weights(settings.kd_weights)
    if kind == "teacher":
        return [StudentJob(TUNED["scratch"], DistillationLoss(hard=1.0), shuffle_as=SCRATCH),
                StudentJob(TUNED["distilled"], kd, "teacher", shuffle_as=DISTILLED)]
    return [StudentJob(TUNED["distilled_expert"], kd, "expert", shuffle_as=DISTILLED_EXPERT)]


def fair_baseline(exp, stage: Stage) -> StageResult:
    """The scratch student given the same chance as the method: each run's number of
    epochs chosen by early stopping on the validation part, then trained on the whole
    training set for that many epochs; the distilled students likewise. The teachers of
    the choice are trained on the fit part only (no validation label reaches it).

    The comparison fixed in advance: distilled against scratch, both with their epochs
    chosen on validation (two-sided). Beside it, how much the original's 600 epochs cost
    each."""
    kind = stage.name.rsplit("_", 1)[1]
    jobs = tuned_jobs(exp.settings, kind)
    epochs = search.epochs_chosen_on_validation(exp, f"{stage.name}-choose", jobs)
    students = exp.students(stage.name, jobs, stop_epochs=epochs)
    own = exp.evaluate(students.models)
    if kind == "teacher":
        base = exp.run("standard_teacher").results
        results = {SCRATCH: base[SCRATCH], TUNED["scratch"]: own[TUNED["scratch"]],
                   DISTILLED: base[DISTILLED], TUNED["distilled"]: own[TUNED["distilled"]]}
        tests = {
            "distilled vs scratch, epochs chosen on validation": paired_test(
                results, TUNED["distilled"], TUNED["scratch"]),
            "scratch: epochs chosen on validation vs 600": paired_test(
                results, TUNED["scratch"], SCRATCH),
            "distilled: epochs chosen on validation vs 600": paired_test(
                results, TUNED["distilled"], DISTILLED),
        }
    else:
        base, scratch = exp.run("expert_teacher").results, exp.run("fair_baseline_teacher")
        results = {SCRATCH: base[SCRATCH], TUNED["scratch"]: scratch.results[TUNED["scratch"]],
                   DISTILLED_EXPERT: base[DISTILLED_EXPERT],
                   TUNED["distilled_expert"]: own[TUNED["distilled_expert"]]}
        epochs = {**scratch.best_epochs, **epochs}
        tests = {
            "distilled from expert vs scratch, epochs chosen on validation": paired_test(
                results, TUNED["distilled_expert"], TUNED["scratch"]),
            "distilled from expert: epochs chosen on validation vs 600": paired_test(
                results, TUNED["distilled_expert"], DISTILLED_EXPERT),
        }
    return _result(exp, stage, results, tests, students.models, students.history,
                   _weights(jobs), best_epochs=epochs)


def fresh_inputs(exp, stage: Stage) -> StageResult:
    """Students that learn from the teacher's outputs alone (no labels): on the training
    inputs, and on the training inputs plus fresh unlabelled inputs, with the same number
    of optimiser steps. Paired with the stage's scratch student, the original's and the one
    whose epochs were chosen on validation."""
    kind = stage.name.rsplit("_", 1)[1]
    s, data = exp.settings, exp.data
    base = exp.run("standard_teacher" if kind == "teacher" else "expert_teacher")
    (only,) = stage.jobs(s)
    fresh = StudentJob(FRESH[kind], DistillationLoss(hp=1.0), kind)
    X_all = torch.cat([data.X_train, exp.fresh_inputs()])
    # pure L_HP never reads y: the fresh inputs carry no label, and get none
    y_unused = torch.zeros(len(X_all), 1, device=X_all.device)
    steps_epochs = max(1, round(s.epochs_student * len(data.X_train) / len(X_all)))
    on_train = exp.students(f"{stage.name}-train", [only])
    on_more = exp.students(f"{stage.name}-fresh", [fresh], X_all, y_unused, epochs=steps_epochs)
    models = {**on_train.models, **on_more.models}
    teacher = TEACHER_KINDS[kind]
    distilled = DISTILLED if kind == "teacher" else DISTILLED_EXPERT
    tuned = exp.run("fair_baseline_teacher").results[TUNED["scratch"]]
    results = {teacher: base.results[teacher], SCRATCH: base.results[SCRATCH],
               TUNED["scratch"]: tuned, distilled: base.results[distilled],
               **exp.evaluate(models)}
    tests = {
        "fresh inputs vs training inputs only": paired_test(results, FRESH[kind],
                                                            HP_ONLY[kind]),
        "fresh inputs vs scratch": paired_test(results, FRESH[kind], SCRATCH),
        "fresh inputs vs scratch, epochs chosen on validation": paired_test(
            results, FRESH[kind], TUNED["scratch"], "two-sided"),
        "fresh inputs vs 0.3/0.7 distilled": paired_test(results, FRESH[kind], distilled,
                                                         "two-sided"),
        # added after the first full run showed students beside their teachers
        "fresh inputs vs the teacher": paired_test(results, FRESH[kind], teacher,
                                                   "two-sided", descriptive=True),
    }
    return _result(exp, stage, results, tests, models,
                   pd.concat([on_train.history, on_more.history]), _weights([only, fresh]))


def expert_ablation(exp, stage: Stage) -> StageResult:
    """The standard teacher's layers trained with the expert's dropout and weight decay
    (same initial weights and batches as the standard teacher), and a student distilled
    from it: is the expert better because it is deeper or regularised?"""
    part2 = exp.run("expert_teacher")
    regularised = exp.teachers("regularised")
    (job,) = stage.jobs(exp.settings)
    students = exp.students(stage.name, [job])
    own = exp.evaluate({REGULARISED: regularised, **students.models})
    r2 = part2.results
    results = {TEACHER: r2[TEACHER], REGULARISED: own[REGULARISED], EXPERT: r2[EXPERT],
               SCRATCH: r2[SCRATCH], DISTILLED: r2[DISTILLED],
               DISTILLED_REGULARISED: own[DISTILLED_REGULARISED],
               DISTILLED_EXPERT: r2[DISTILLED_EXPERT]}
    tests = {
        "regularised teacher vs teacher": paired_test(results, REGULARISED, TEACHER),
        "regularised teacher vs expert": paired_test(results, REGULARISED, EXPERT),
        "distilled from regularised vs from teacher": paired_test(
            results, DISTILLED_REGULARISED, DISTILLED),
        "distilled from regularised vs from expert": paired_test(
            results, DISTILLED_REGULARISED, DISTILLED_EXPERT),
    }
    return _result(exp, stage, results, tests, {REGULARISED: regularised, **students.models},
                   students.history, {DISTILLED_REGULARISED: job.loss.weights})


LEAKED = "Mean validation MSE (teachers saw the validation labels)"


def model_selection(exp, stage: Stage) -> StageResult:
    """The grid's weights chosen honestly: every grid point is trained again on the fit
    part of the training set, from experts trained on the fit part only, and scored on
    its validation part; the point with the lowest mean validation MSE is chosen, and its
    part-3 student's test MSE (trained on the whole training set, like every other
    student) is reported.

    Beside it, the same choice with the whole-training-set experts, which were trained on
    the validation labels too (``leaked_choice``, column :data:`LEAKED`): how much that
    leak moves the choice."""
    grid, part4 = exp.run("grid_search"), exp.run("gradient_regularisation")
    tuned = exp.run("fair_baseline_teacher").results[TUNED["scratch"]]
    X_fit, y_fit, X_val, y_val = exp.validation()
    jobs = grid_jobs(exp.settings)
    fit = exp.students(stage.name, [search.on_fit_teachers(job) for job in jobs], X_fit, y_fit)
    leaked = exp.students(f"{stage.name}-leaked", jobs, X_fit, y_fit)
    val = exp.evaluate(fit.models, X_val, y_val)
    val_leaked = exp.evaluate(leaked.models, X_val, y_val)
    table = pd.DataFrame({
        "Weights": list(val),
        "Mean validation MSE": [np.mean(v["mse"]) for v in val.values()],
        LEAKED: [np.mean(val_leaked[n]["mse"]) for n in val],
        "Mean test MSE": [np.mean(grid.results[n]["mse"]) for n in val],
    })
    chosen = str(table.loc[table["Mean validation MSE"].idxmin(), "Weights"])
    leaked_choice = str(table.loc[table[LEAKED].idxmin(), "Weights"])
    table = table.sort_values("Mean validation MSE").reset_index(drop=True)
    results = {chosen: grid.results[chosen], leaked_choice: grid.results[leaked_choice],
               DISTILLED_EXPERT: part4.results[DISTILLED_EXPERT],
               LGR: part4.results[LGR], SCRATCH: part4.results[SCRATCH],
               TUNED["scratch"]: tuned}
    tests = {
        "validation-chosen vs scratch": paired_test(results, chosen, SCRATCH),
        "validation-chosen vs scratch, epochs chosen on validation": paired_test(
            results, chosen, TUNED["scratch"]),
        "L_GR vs validation-chosen L_HP": paired_test(results, LGR, chosen, "two-sided"),
    }
    if leaked_choice != chosen:
        tests["validation-chosen vs chosen with the leak"] = paired_test(results, chosen,
                                                                         leaked_choice)
    return _result(exp, stage, results, tests, fit.models, fit.history,
                   {chosen: grid.weights[chosen], leaked_choice: grid.weights[leaked_choice]},
                   chosen=chosen, best=grid.best, validation=table,
                   leaked_choice=leaked_choice)


# -- going further (notebook 05) -----------------------------------------------------


def _beside_selection(selection: StageResult, name: str, own: dict) -> dict:
    """The stage's own student's results beside the validation-chosen L_HP student, the
    original's scratch student and scratch with epochs chosen on validation."""
    return {name: own[name], selection.chosen: selection.results[selection.chosen],
            SCRATCH: selection.results[SCRATCH],
            TUNED["scratch"]: selection.results[TUNED["scratch"]]}


def _against_chosen(exp, stage: Stage, controls: dict) -> StageResult:
    """Train the stage's one job from the expert and compare it, paired, with the L_HP
    student chosen on validation and the named ``controls`` ({test name: model})."""
    selection = exp.run("model_selection")
    part4 = exp.run("gradient_regularisation")
    (job,) = stage.jobs(exp.settings)
    students = exp.students(stage.name, [job])
    own = exp.evaluate(students.models)
    chosen = selection.chosen
    results = {job.name: own[job.name], chosen: selection.results[chosen],
               **{m: part4.results[m] for m in controls.values() if m in part4.results},
               SCRATCH: part4.results[SCRATCH],
               TUNED["scratch"]: selection.results[TUNED["scratch"]]}
    tests = {f"{job.name} vs validation-chosen L_HP": paired_test(results, job.name, chosen),
             **{name: paired_test(results, job.name, m) for name, m in controls.items()},
             f"{job.name} vs scratch, epochs chosen on validation": paired_test(
                 results, job.name, TUNED["scratch"])}
    return _result(exp, stage, results, tests, students.models, students.history,
                   {job.name: job.loss.weights, chosen: selection.weights[chosen]},
                   sort=True, chosen=chosen)


def jacobian_matching(exp, stage: Stage) -> StageResult:
    """A student that matches the expert's output Jacobian ∂y/∂x (Sobolev training)."""
    return _against_chosen(exp, stage, {"L_JAC vs L_GR": LGR,
                                        "L_JAC vs matched L_HP (0.3/0.7)": DISTILLED_EXPERT})


def feature_distillation(exp, stage: Stage) -> StageResult:
    """A student whose last hidden layer, through a learned adapter, matches the expert's
    (FitNets)."""
    return _against_chosen(exp, stage, {"L_FEAT vs the original's 0.3/0.7": DISTILLED_EXPERT})


def _three_way_choice(exp, stage: Stage, name: str, method, part: str, controls: dict,
                      shuffle_as: str | None = None) -> StageResult:
    """A three-way search by ``method`` (:mod:`kdteach.protocol.search`) over its points on
    the fit part, from the fit-part experts, its students cached as ``part``. The chosen
    point is trained as student ``name`` on the whole training set from the expert and
    compared, paired, with ``controls`` ({test name: model})."""
    term = stage.name.rsplit("_", 1)[1]
    selection = exp.run("model_selection")
    jobs = search.three_way_jobs(term)
    chosen, table, cost = method(exp, part, jobs, ("hard", "hp", term))
    loss = next(job.loss for job in jobs if job.name == chosen)
    job = StudentJob(name, loss, "expert", shuffle_as=shuffle_as)
    students = exp.students(stage.name, [job])
    results = _beside_selection(selection, name, exp.evaluate(students.models))
    tests = {test: paired_test(results, name, model)
             for test, model in controls.items()}
    return _result(exp, stage, results, tests, students.models, students.history,
                   {name: job.loss.weights}, sort=True, chosen=chosen, validation=table,
                   student_epochs=cost)


def three_way_search(exp, stage: Stage) -> StageResult:
    """The three-way weight search the original found too slow, by the full grid: every
    point of :func:`~kdteach.protocol.search.three_way_points` trained on the fit part from
    the fit-part experts and scored on the validation part; the chosen point is then
    trained on the whole training set and compared, paired, with the L_HP student chosen
    on validation."""
    chosen = exp.run("model_selection").chosen
    return _three_way_choice(exp, stage, THREE_WAY, search.full_grid, f"{stage.name}-fit", {
        "3-way vs validation-chosen L_HP": chosen,
        "3-way vs scratch": SCRATCH,
        "3-way vs scratch, epochs chosen on validation": TUNED["scratch"]})


def three_way_halving(exp, stage: Stage) -> StageResult:
    """The three-way search by successive halving instead of the full grid
    (:func:`kdteach.protocol.search.successive_halving`); the last rung's best point is
    trained on the whole training set and compared, paired, as the full grid's choice is.

    ``validation`` has one row per point: the last rung it reached, its epochs there and
    its mean validation MSE; ``student_epochs`` is what the search trained in all (the
    full grid trains every point for every epoch)."""
    chosen = exp.run("model_selection").chosen
    return _three_way_choice(exp, stage, THREE_WAY_HALVING, search.successive_halving,
                             stage.name, {
        "halving 3-way vs validation-chosen L_HP": chosen,
        "halving 3-way vs scratch, epochs chosen on validation": TUNED["scratch"]},
        shuffle_as=THREE_WAY)


def early_stopping(exp, stage: Stage) -> StageResult:
    """The scratch student and the 0.3/0.7 expert student, trained on the fit part of the
    training set twice from the same start and batches: for all epochs, and with early
    stopping on the validation part (``patience`` epochs), best epoch restored. The
    experts are those trained on the fit part only: the stopping epoch is a choice made
    on the validation part."""
    s = exp.settings
    selection = exp.run("model_selection")
    X_fit, y_fit, X_val, y_val = exp.validation()
    kd = DistillationLoss.from_weights(s.kd_weights)
    plain = [StudentJob(FIT["scratch"], DistillationLoss(hard=1.0)),
             StudentJob(FIT["distilled"], kd, "expert_fit")]
    # the stopped students see exactly the plain ones' batches
    stopped = [StudentJob(STOPPED["scratch"], DistillationLoss(hard=1.0),
                          shuffle_as=FIT["scratch"]),
               StudentJob(STOPPED["distilled"], kd, "expert_fit", FIT["distilled"])]
    all_epochs = exp.students(f"{stage.name}-plain", plain, X_fit, y_fit)
    early: TrainedStudents = exp.students(stage.name, stopped, X_fit, y_fit,
                                          stopping=((X_val, y_val), s.patience))
    models = {**all_epochs.models, **early.models}
    results = {**exp.evaluate(models),
               selection.chosen: selection.results[selection.chosen]}
    tests = {
        "early stopped vs all epochs (scratch)": paired_test(
            results, STOPPED["scratch"], FIT["scratch"]),
        "early stopped vs all epochs (distilled)": paired_test(
            results, STOPPED["distilled"], FIT["distilled"]),
        "early stopped distilled vs validation-chosen L_HP": paired_test(
            results, STOPPED["distilled"], selection.chosen),
        "early stopped: distilled vs scratch": paired_test(
            results, STOPPED["distilled"], STOPPED["scratch"]),
    }
    return _result(exp, stage, results, tests, models,
                   pd.concat([all_epochs.history, early.history]), chosen=selection.chosen,
                   best_epochs=early.best_epochs)


# -- the table -----------------------------------------------------------------------

_AFTER_SELECTION = ("model_selection", "gradient_regularisation")

STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("standard_teacher", "Part 1: a standard teacher", "original", standard_teacher,
          jobs=lambda s: [scratch_job(), kd_job(s, DISTILLED, "teacher")],
          lesson="01_standard_teacher"),
    Stage("expert_teacher", "Part 2: an expert teacher", "original", expert_teacher,
          ("standard_teacher",), jobs=lambda s: [kd_job(s, DISTILLED_EXPERT, "expert")],
          lesson="02_expert_teacher"),
    Stage("grid_search", "Part 3: grid search over the hard/L_HP weights", "original",
          grid_search, jobs=grid_jobs, lesson="03_grid_search"),
    Stage("gradient_regularisation", "Part 4: gradient regularisation (L_GR)", "original",
          gradient_regularisation, ("expert_teacher", "grid_search"),
          jobs=lambda s: [lgr_job(s)], lesson="04_gradient_regularisation"),
    Stage("fair_baseline_teacher", "A fair baseline: epochs chosen on validation (standard "
          "teacher)", "lesson", fair_baseline, ("standard_teacher",),
          lesson="01_standard_teacher"),
    Stage("fair_baseline_expert", "A fair baseline: epochs chosen on validation (expert "
          "teacher)", "lesson", fair_baseline, ("expert_teacher", "fair_baseline_teacher"),
          lesson="02_expert_teacher"),
    Stage("fresh_inputs_teacher", "Distilling on fresh inputs (standard teacher)", "lesson",
          fresh_inputs, ("standard_teacher", "fair_baseline_teacher"),
          jobs=lambda s: [outputs_only_job("teacher")],
          lesson="01_standard_teacher"),
    Stage("fresh_inputs_expert", "Distilling on fresh inputs (expert teacher)", "lesson",
          fresh_inputs, ("expert_teacher", "fair_baseline_teacher"),
          jobs=lambda s: [outputs_only_job("expert")],
          lesson="02_expert_teacher"),
    Stage("expert_ablation", "Depth or regularisation? The expert taken apart", "lesson",
          expert_ablation, ("expert_teacher",),
          jobs=lambda s: [kd_job(s, DISTILLED_REGULARISED, "regularised")],
          lesson="02_expert_teacher"),
    Stage("model_selection", "Choosing the grid's weights on a validation split", "lesson",
          model_selection, ("grid_search", "gradient_regularisation", "fair_baseline_teacher"),
          lesson="03_grid_search"),
    Stage("jacobian_matching", "Matching the expert's input derivatives (L_JAC)", "further",
          jacobian_matching, _AFTER_SELECTION, jobs=lambda s: [jac_job(s)],
          lesson="05_going_further"),
    Stage("feature_distillation", "Matching a hidden layer through an adapter (L_FEAT)",
          "further", feature_distillation, _AFTER_SELECTION, jobs=lambda s: [feat_job(s)],
          lesson="05_going_further"),
    Stage("three_way_search_jac", "A three-way weight search over (hard, hp, jac)", "further",
          three_way_search, ("model_selection",), lesson="05_going_further"),
    Stage("three_way_halving_jac", "The three-way search by successive halving", "further",
          three_way_halving, ("model_selection",), lesson="05_going_further"),
    Stage("three_way_search_gr", "A three-way weight search over (hard, hp, gr)", "further",
          three_way_search, ("model_selection",)),
    Stage("early_stopping", "Early stopping on the validation split", "further",
          early_stopping, ("model_selection",), lesson="05_going_further"),
)}


def names(part: str | None = None) -> tuple[str, ...]:
    """The stages' names in table order; ``part`` picks ``"original"``, ``"lesson"`` or
    ``"further"``."""
    if part is not None and part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    return tuple(n for n, st in STAGES.items() if part is None or st.part == part)


ORIGINAL = names("original")  # the original notebook's four parts, in order


def stage(name: str) -> Stage:
    """The table's row for ``name``; ValueError naming the valid stages otherwise."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; valid stages: {', '.join(STAGES)}")
    return STAGES[name]


def lesson_stages() -> tuple[str, ...]:
    """The stages the lesson notebooks run, in table order."""
    return tuple(n for n, st in STAGES.items() if st.lesson)


def training_set_jobs(settings: Settings) -> list[StudentJob]:
    """Every student the stages train on the whole training set, in table order."""
    return [job for st in STAGES.values() for job in st.jobs(settings)]
