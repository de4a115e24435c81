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
