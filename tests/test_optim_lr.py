"""LearningRate and its schedulers: values at chosen steps computed by hand, config forms, linear
LR scaling, errors. (Per-step equality with PaddleDetection 2.6: test_optim_golden.py.)"""

import math
import textwrap

import pytest

from ppdet_lite.core.workspace import ConfigError, create, load_config, merge_config
from ppdet_lite.optim import (CosineDecay, LearningRate, LinearWarmup, PiecewiseDecay,
                              WarmupCosineLR)


def lr_values(sched, steps):
    """``{step: lr}`` for the requested steps, stepping the scheduler once per iteration."""
    out, wanted = {}, set(steps)
    for s in range(max(steps) + 1):
        if s in wanted:
            out[s] = sched()  # last_lr, what the optimizer uses (get_lr() recomputes)
        sched.step()
    return out


PPYOLOE_LR = textwrap.dedent("""
    LearningRate:
      base_lr: 0.01
      schedulers:
        - name: CosineDecay
          max_epochs: 360
        - name: LinearWarmup
          start_factor: 0.
          epochs: 5
""")


def test_ppyoloe_section_warmup_then_cosine(tmp_path):
    path = tmp_path / 'lr.yml'
    path.write_text(PPYOLOE_LR)
    cfg = load_config(str(path), make_current=False)
    # 10 steps per epoch: warm-up W = 5 * 10 = 50 steps, schedule T = 360 * 10 = 3600 steps
    v = lr_values(create('LearningRate', cfg)(10), [0, 25, 50, 1825, 3599, 4000])
    assert v[0] == 0.0                                      # 0.01 * start_factor 0
    assert v[25] == pytest.approx(0.005, rel=1e-12)         # 0.01 * 25 / 50
    assert v[50] == pytest.approx(0.01, rel=1e-12)          # warm-up end: cos(0) -> base_lr
    # middle of the cosine: (1825 - 50) / (3600 - 50) = 1/2 -> 0.01 * 0.5 * (cos(pi/2) + 1)
    assert v[1825] == pytest.approx(0.005, rel=1e-12)
    last = 0.01 * 0.5 * (math.cos((3599 - 50) * math.pi / 3550) + 1)
    assert v[3599] == pytest.approx(last, rel=1e-12)
    assert v[4000] == v[3599]                               # held after the schedule ends


def test_tags_and_dicts_build_the_same_schedule(tmp_path):
    path = tmp_path / 'lr.yml'
    path.write_text(textwrap.dedent("""
        LearningRate:
          base_lr: 0.01
          schedulers:
          - !CosineDecay {max_epochs: 360}
          - !LinearWarmup {start_factor: 0., epochs: 5}
    """))
    tagged = create('LearningRate', load_config(str(path), make_current=False))
    assert isinstance(tagged.decay, CosineDecay) and isinstance(tagged.warmup, LinearWarmup)
    plain = LearningRate(0.01, [{'name': 'CosineDecay', 'max_epochs': 360},
                                {'name': 'LinearWarmup', 'start_factor': 0., 'epochs': 5}])
    steps = [0, 7, 49, 50, 51, 2000]
    assert lr_values(tagged(10), steps) == lr_values(plain(10), steps)


def test_warmup_in_steps():
    lr = LearningRate(0.002, [{'name': 'CosineDecay', 'max_epochs': 100},
                              {'name': 'LinearWarmup', 'start_factor': 0.1, 'steps': 100}])
    v = lr_values(lr(7), [0, 50, 100])
    assert v[0] == pytest.approx(0.0002, rel=1e-12)     # 0.002 * 0.1
    assert v[50] == pytest.approx(0.0011, rel=1e-12)    # 0.002 * (0.1 * 0.5 + 0.5)
    assert v[100] == pytest.approx(0.002, rel=1e-12)


def test_epochs_first_false_lets_steps_win():
    warm = LinearWarmup(steps=4, start_factor=0., epochs=3, epochs_first=False)
    boundary, value = warm(1.0, step_per_epoch=10)
    assert boundary == [1, 2, 3, 4] and value == [0., 0.25, 0.5, 0.75, 1.]
    assert len(LinearWarmup(steps=4, epochs=3)(1.0, 10)[0]) == 30   # ppdet: epochs win
    assert len(LinearWarmup(epochs=0.5)(1.0, 10)[0]) == 5           # fractional epochs


def test_cosine_min_lr_ratio_without_warmup():
    # T = 4 * 5 = 20 steps, eta_min = 0.01 * 0.1 = 0.001 (Paddle's CosineAnnealingDecay, as ppdet)
    lr = LearningRate(0.01, [{'name': 'CosineDecay', 'max_epochs': 4, 'min_lr_ratio': 0.1,
                              'use_warmup': False}])
    v = lr_values(lr(5), [0, 10, 20])
    assert v[0] == 0.01
    assert v[10] == pytest.approx(0.001 + 0.009 * 0.5, rel=1e-9)   # half-way: (1 + cos(pi/2))/2
    assert v[20] == pytest.approx(0.001, rel=1e-9)


def test_cosine_last_plateau_with_warmup():
    # W = 5, T = 4 * 5 = 20, plateau P = 5: cosine over steps 5..14 with period T - W - P = 10
    lr = LearningRate(0.01, [{'name': 'CosineDecay', 'max_epochs': 4, 'min_lr_ratio': 0.2,
                              'last_plateau_epochs': 1},
                             {'name': 'LinearWarmup', 'steps': 5, 'start_factor': 0.}])
    sched = lr(5)
    assert isinstance(sched, WarmupCosineLR)
    v = lr_values(sched, [5, 10, 14, 15, 19, 30])
    assert v[5] == pytest.approx(0.01, rel=1e-12)
    assert v[10] == pytest.approx(0.002 + 0.008 * 0.5, rel=1e-12)   # cos((10-5) pi / 10) = 0
    assert v[14] == pytest.approx(0.002 + 0.008 * 0.5 * (math.cos(0.9 * math.pi) + 1), rel=1e-12)
    assert v[15] == v[19] == v[30] == 0.002                          # min_lr = 0.01 * 0.2


def test_piecewise_with_warmup():
    # 4 steps / epoch: milestones at epochs 2 and 4 = steps 8 and 16; warm-up 5 steps from 1/3
    lr = LearningRate(0.01, [{'name': 'PiecewiseDecay', 'gamma': [0.1, 0.01], 'milestones': [2, 4]},
                             {'name': 'LinearWarmup', 'steps': 5, 'start_factor': 1. / 3}])
    v = lr_values(lr(4), [0, 5, 7, 8, 15, 16, 40])
    assert v[0] == pytest.approx(0.01 / 3, rel=1e-12)
    assert v[5] == v[7] == pytest.approx(0.01, rel=1e-12)
    assert v[8] == v[15] == pytest.approx(0.001, rel=1e-12)
    assert v[16] == v[40] == pytest.approx(0.0001, rel=1e-12)


def test_piecewise_scalar_gamma_and_values():
    assert PiecewiseDecay(gamma=0.2, milestones=[1, 3]).gamma == [0.2, 0.02]   # g, g / 10
    lr = LearningRate(0.5, [{'name': 'PiecewiseDecay', 'values': [0.1, 0.05, 0.01],
                             'milestones': [2, 3], 'use_warmup': False}])
    v = lr_values(lr(3), [0, 5, 6, 8, 9])                # boundaries at steps 6 and 9
    assert (v[0], v[5], v[6], v[8], v[9]) == (0.1, 0.1, 0.05, 0.05, 0.01)
    with pytest.raises(ValueError, match='len\\(milestones\\) \\+ 1 = 3'):
        PiecewiseDecay(values=[0.1, 0.01], milestones=[2, 3])


def test_scheduler_order_and_decay_alone():
    cos = {'name': 'CosineDecay', 'max_epochs': 10}
    warm = {'name': 'LinearWarmup', 'steps': 8}
    steps = [0, 4, 8, 30, 99]
    assert lr_values(LearningRate(0.01, [warm, cos])(10), steps) == \
        lr_values(LearningRate(0.01, [cos, warm])(10), steps)
    alone = lr_values(LearningRate(0.01, [cos])(10), [0, 50])   # no warm-up scheduler: none
    assert alone[0] == 0.01 and alone[50] == pytest.approx(0.005, rel=1e-9)


def test_scheduler_state_round_trip_continues_exactly():
    lr = LearningRate(0.01, [{'name': 'CosineDecay', 'max_epochs': 3},
                             {'name': 'LinearWarmup', 'steps': 6}])
    a = lr(5)
    for _ in range(9):
        a.step()
    b = lr(5)
    b.set_state_dict(a.state_dict())
    for _ in range(10):
        assert b() == a()
        a.step()
        b.step()


def test_scheduler_errors_name_the_key():
    with pytest.raises(ValueError, match=r"schedulers\[1\].name: unknown scheduler 'Cosine'; "
                                         r"supported: CosineDecay, ExpWarmup, LinearWarmup"):
        LearningRate(0.01, [{'name': 'LinearWarmup'}, {'name': 'Cosine'}])
    with pytest.raises(ValueError, match='exactly one decay'):
        LearningRate(0.01, [{'name': 'CosineDecay'}, {'name': 'PiecewiseDecay'}])
    with pytest.raises(ValueError, match='LearningRate.base_lr'):
        LearningRate(0)
    with pytest.raises(ValueError, match=r'schedulers\[0\] \(CosineDecay\)'):
        LearningRate(0.01, [{'name': 'CosineDecay', 'max_epoch': 3}])


# ---- linear LR scaling ---------------------------------------------------------------------

def test_linear_scaling_rule():
    lr = LearningRate(0.01, [{'name': 'CosineDecay', 'max_epochs': 10},
                             {'name': 'LinearWarmup', 'steps': 4, 'start_factor': 0.}],
                      base_batch_size=64)
    new_lr, msg = lr.scale_to(8)
    assert new_lr == pytest.approx(0.01 * 8 / 64) == pytest.approx(0.00125)
    assert msg == 'base_lr 0.01 for batch 64 -> 0.00125 for batch 8 (linear scaling rule)'
    assert lr.scale_to(8)[0] == new_lr                 # idempotent: scales the configured value
    assert lr.scale_to(128)[0] == pytest.approx(0.02)
    lr.scale_to(8)
    v = lr_values(lr(10), [2, 4])
    assert v[2] == pytest.approx(0.00125 / 2) and v[4] == pytest.approx(0.00125)


def test_linear_scaling_off_or_unset():
    off = LearningRate(0.01, [{'name': 'CosineDecay'}], base_batch_size=64, auto_scale=False)
    new_lr, msg = off.scale_to(8)
    assert new_lr == 0.01 and 'linear scaling off' in msg and 'auto_scale=false' in msg
    unset = LearningRate(0.01, [{'name': 'CosineDecay'}])
    new_lr, msg = unset.scale_to(8)
    assert new_lr == 0.01 and 'base_batch_size is not set' in msg
    with pytest.raises(ValueError, match='total_batch_size'):
        unset.scale_to(0)
    with pytest.raises(ValueError, match='base_batch_size'):
        LearningRate(0.01, base_batch_size=-8)


def test_linear_scaling_scales_explicit_piecewise_values():
    lr = LearningRate(0.01, [{'name': 'PiecewiseDecay', 'values': [0.01, 0.001],
                              'milestones': [1], 'use_warmup': False}], base_batch_size=16)
    lr.scale_to(4)                                     # factor 4 / 16 = 1/4
    v = lr_values(lr(2), [0, 2])
    assert v[0] == pytest.approx(0.0025) and v[2] == pytest.approx(0.00025)


def test_auto_scale_switch_from_the_command_line(tmp_path):
    path = tmp_path / 'lr.yml'
    path.write_text(PPYOLOE_LR + '  base_batch_size: 64\n')
    cfg = load_config(str(path), make_current=False)
    merge_config(['LearningRate.auto_scale=false'], cfg)
    assert create('LearningRate', cfg).scale_to(8)[0] == 0.01
    with pytest.raises(ConfigError, match='auto_scale expects bool'):
        merge_config(['LearningRate.auto_scale=3'], cfg)


def test_cosine_max_epochs_null_follows_the_run_epoch(tmp_path):
    # max_epochs: null takes the top-level `epoch` (shared key): epoch 4 at 5 steps per epoch is
    # a 20-step cosine, half of base_lr at step 10; a user who only changes `epoch` keeps a full
    # schedule instead of a cosine that ended early
    path = tmp_path / 'lr.yml'
    path.write_text(textwrap.dedent("""
        epoch: 4
        LearningRate:
          base_lr: 0.01
          schedulers:
            - {name: CosineDecay, max_epochs: null, use_warmup: false}
    """))
    cfg = load_config(str(path), make_current=False)
    v = lr_values(create('LearningRate', cfg)(5), [0, 10, 20])
    assert v[0] == 0.01 and v[10] == pytest.approx(0.005, rel=1e-9) and v[20] == pytest.approx(0.)
    merge_config(['epoch=8'], cfg)                      # 40 steps: half-way moves to step 20
    v = lr_values(create('LearningRate', cfg)(5), [20])
    assert v[20] == pytest.approx(0.005, rel=1e-9)
    with pytest.raises(ValueError, match='max_epochs is null but no epoch count'):
        LearningRate(0.01, [{'name': 'CosineDecay', 'max_epochs': None}])(5)
