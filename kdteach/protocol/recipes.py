"""What each model of the protocol is: the teachers' recipes and the students' jobs."""

from __future__ import annotations

from dataclasses import dataclass

from kdteach.core.losses import DistillationLoss
from kdteach.core.models import ExpertTeacherNet, RegularisedTeacherNet, TeacherNet
from kdteach.protocol.names import EXPERT, EXPERT_FIT, REGULARISED, TEACHER, TEACHER_FIT


@dataclass(frozen=True)
class TeacherRecipe:
    """How a kind of teacher is built and trained."""

    name: str  # its display name in the tables
    net: type
    weight_decay: str  # the Settings field holding its weight decay
    shuffle_role: str  # whose batches it sees (the ablation sees the standard teacher's)
    # "train": the whole training set; "fit": its fit part only, so that a choice made on
    # the validation part never sees labels a teacher was trained on
    trained_on: str = "train"
    student_first: bool = True  # its run draws the student template before it (seeds.py)


TEACHER_RECIPES = {
    "teacher": TeacherRecipe(TEACHER, TeacherNet, "weight_decay_teacher", "teacher"),
    "expert": TeacherRecipe(EXPERT, ExpertTeacherNet, "weight_decay_expert", "expert",
                            student_first=False),
    "regularised": TeacherRecipe(REGULARISED, RegularisedTeacherNet, "weight_decay_expert",
                                 "teacher"),
    # the same initial weights and shuffles as "teacher" and "expert", on the fit part
    "teacher_fit": TeacherRecipe(TEACHER_FIT, TeacherNet, "weight_decay_teacher", "teacher",
                                 trained_on="fit"),
    "expert_fit": TeacherRecipe(EXPERT_FIT, ExpertTeacherNet, "weight_decay_expert", "expert",
                                trained_on="fit", student_first=False),
}
TEACHER_KINDS = {kind: recipe.name for kind, recipe in TEACHER_RECIPES.items()}


def check_teacher_kind(kind: str) -> None:
    if kind not in TEACHER_RECIPES:
        raise ValueError(f"unknown teacher kind {kind!r}; valid: {', '.join(TEACHER_RECIPES)}")


@dataclass(frozen=True)
class StudentJob:
    """One student of a stage: its name, its loss and the kind of teacher it learns from."""

    name: str
    loss: DistillationLoss
    teacher: str | None = None
    shuffle_as: str | None = None  # another student's name, to see exactly its batches

    @property
    def key(self) -> tuple:
        """What the cache key records of the job."""
        return ((self.name, self.loss.weights, self.teacher)
                + ((self.shuffle_as,) if self.shuffle_as else ()))
