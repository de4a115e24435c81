"""Where every model's random numbers come from: paired runs, the original's order."""

import pytest
import torch
from tiny_protocol import same_weights

from kdteach.core.models import ExpertTeacherNet, RegularisedTeacherNet, StudentNet, TeacherNet
from kdteach.protocol.seeds import initial_student, initial_teacher


def test_initial_states_follow_the_originals_order():
    torch.manual_seed(3)
    student = StudentNet()
    teacher = TeacherNet()
    torch.manual_seed(3)
    expert = ExpertTeacherNet()
    assert same_weights(initial_student(3), student)
    assert same_weights(initial_teacher("teacher", 3), teacher)
    assert same_weights(initial_teacher("expert", 3), expert)
    # the ablation teacher has the standard teacher's layers and initial weights
    assert same_weights(initial_teacher("regularised", 3), teacher)
    assert type(initial_teacher("regularised", 3)) is RegularisedTeacherNet
    assert not same_weights(initial_student(3), initial_student(4))
    with pytest.raises(ValueError, match="teacher kind"):
        initial_teacher("wizard", 0)


def test_initial_states_leave_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    initial_student(0)
    initial_teacher("expert", 1)
    assert torch.equal(torch.rand(3), expected)


def test_a_network_built_in_another_thread_does_not_shift_a_teacher_being_built(monkeypatch):
    """A student loaded from the cache in the main thread while a teacher is built in the
    second one: building either draws from torch's global generator, so without the lock
    the teacher's initial weights would depend on timing."""
    import dataclasses
    import threading

    from kdteach.protocol import recipes, seeds

    alone = initial_teacher("expert", 1)
    entered, go = threading.Event(), threading.Event()
    real = recipes.TEACHER_RECIPES["expert"]

    class Paused(ExpertTeacherNet):
        def __init__(self, *args, **kwargs):
            entered.set()  # seeded with run 1, about to draw the teacher's weights
            go.wait(timeout=10)
            super().__init__(*args, **kwargs)

    monkeypatch.setitem(recipes.TEACHER_RECIPES, "expert", dataclasses.replace(real, net=Paused))
    built = {}
    teacher = threading.Thread(target=lambda: built.setdefault("t", initial_teacher("expert", 1)))
    teacher.start()
    assert entered.wait(timeout=10)
    loader = threading.Thread(target=lambda: built.setdefault("s", seeds.blank_student()))
    loader.start()
    loader.join(timeout=0.5)  # with the lock it waits for the teacher; without, it draws now
    go.set()
    teacher.join()
    loader.join()
    assert same_weights(built["t"], alone)
