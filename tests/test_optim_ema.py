"""ModelEMA: decay formulas and bias correction by hand, cycle reset, black list, non-float
buffers, exact resume. (Equality with PaddleDetection 2.6's ModelEMA: test_optim_golden.py.)"""

import math

import numpy as np
import paddle
import pytest

from ppdet_lite.optim import ModelEMA


class Net(paddle.nn.Layer):
    """One averaged weight, a BatchNorm, a fixed projection and an integer buffer."""

    def __init__(self):
        super().__init__()
        self.w = self.create_parameter([2])
        self.bn = paddle.nn.BatchNorm2D(1)
        self.proj_conv = paddle.nn.Conv2D(1, 1, 1, bias_attr=False)
        self.proj_conv.weight.stop_gradient = True
        self.register_buffer('counter', paddle.to_tensor([5], dtype='int64'))


def set_w(net, value):
    net.w.set_value(paddle.to_tensor(value, dtype='float32'))


def arr(t):
    return np.array(t)


def test_threshold_decay_formula_and_bias_correction():
    net = Net()
    ema = ModelEMA(net, decay=0.9998)                    # 'threshold': min(d, (1+t)/(10+t))
    assert [ema.decay_at(t) for t in (0, 1, 2)] == [1 / 10, 2 / 11, 3 / 12]
    x = [np.array([1., 2.]), np.array([3., -1.]), np.array([0.5, 4.])]
    expected = np.zeros(2)
    for t, d in enumerate([0.1, 2 / 11, 0.25]):
        set_w(net, x[t])
        ema.update()
        expected = d * expected + (1 - d) * x[t]
        np.testing.assert_allclose(arr(ema.state_dict()['w']), expected, rtol=1e-6)
    # e.g. after update 0: 0.9 * x0; apply divides by 1 - (last decay) ** step = 1 - 0.25 ** 3
    np.testing.assert_allclose(arr(ema.apply()['w']), expected / (1 - 0.25**3), rtol=1e-6)
    assert ema.decay_at(10**6) == 0.9998


def test_normal_decay_bias_correction_recovers_a_constant():
    net = Net()
    set_w(net, [2., -3.])
    ema = ModelEMA(net, decay=0.9, ema_decay_type='normal')
    for _ in range(4):
        ema.update()
    # raw average from zero: x * (1 - 0.9 ** 4); corrected: x
    np.testing.assert_allclose(arr(ema.state_dict()['w']), [2. * (1 - 0.9**4), -3. * (1 - 0.9**4)],
                               rtol=1e-6)
    np.testing.assert_allclose(arr(ema.apply()['w']), [2., -3.], rtol=1e-6)


def test_exponential_decay_has_no_bias_correction():
    net = Net()
    set_w(net, [1., 1.])
    ema = ModelEMA(net, decay=0.99, ema_decay_type='exponential')
    d0 = 0.99 * (1 - math.exp(-1 / 2000))
    assert ema.decay_at(0) == pytest.approx(d0, rel=1e-15)
    ema.update()
    np.testing.assert_allclose(arr(ema.apply()['w']), [1 - d0] * 2, rtol=1e-6)


def test_cycle_epoch_resets_after_that_many_applies():
    net = Net()
    ema = ModelEMA(net, decay=0.5, ema_decay_type='normal', cycle_epoch=2)
    set_w(net, [8., 8.])
    ema.update()
    ema.apply()
    assert (ema.epoch, ema.step) == (1, 1)
    ema.apply()                                          # second epoch: reset
    assert (ema.epoch, ema.step) == (0, 0)
    np.testing.assert_array_equal(arr(ema.state_dict()['w']), [0., 0.])
    set_w(net, [2., 2.])
    ema.update()                                         # the 8s are forgotten: 0.5 * 2 / (1 - 0.5)
    np.testing.assert_allclose(arr(ema.apply()['w']), [2., 2.], rtol=1e-6)


def test_black_list_and_non_float_entries_mirror_the_model():
    net = Net()
    ema = ModelEMA(net, decay=0.9, ema_decay_type='normal', ema_black_list=['proj_conv.weight'])
    assert ema.ema_black_list == {'proj_conv.weight'}
    for v in (1., 5.):
        net.proj_conv.weight.set_value(paddle.full([1, 1, 1, 1], v))
        net.counter.set_value(paddle.to_tensor([int(v)], dtype='int64'))
        set_w(net, [v, v])
        ema.update()
    out = ema.apply()
    assert arr(out['proj_conv.weight']).item() == 5.     # copied, not averaged
    assert out['counter'].dtype == paddle.int64 and arr(out['counter']).item() == 5
    # w averaged: (0.9 * 0.1 * 1 + 0.1 * 5) / (1 - 0.81) = 0.59 / 0.19
    np.testing.assert_allclose(arr(out['w']), [0.59 / 0.19] * 2, rtol=1e-6)


def test_filter_no_grad_keeps_batchnorm_statistics_averaged():
    ema = ModelEMA(Net(), ema_filter_no_grad=True)
    assert ema.ema_black_list == {'proj_conv.weight'}    # not bn._mean / bn._variance


def test_apply_before_any_update_returns_the_model_weights():
    net = Net()
    set_w(net, [3., 4.])
    np.testing.assert_array_equal(arr(ModelEMA(net).apply()['w']), [3., 4.])


APPLY_AT = (2, 5, 9, 11)       # snapshot epochs; with cycle_epoch=2 the averages reset at t=5, 11


def run(net, kwargs, restart_every_step, as_numpy=False):
    """Updates t = 0..11 (weights sin t, cos 3t), apply() at APPLY_AT; return the applies.

    ``restart_every_step``: after each step, replace the EMA by a fresh one resumed from
    ``state_dict()``, ``step`` and ``epoch`` (optionally through numpy, as a checkpoint file).
    """
    ema, applied = ModelEMA(net, **kwargs), []
    for t in range(12):
        set_w(net, [math.sin(t), math.cos(3 * t)])
        ema.update()
        if t in APPLY_AT:
            applied.append(arr(ema.apply()['w']))
        if restart_every_step:
            saved = {k: (arr(v) if as_numpy else v) for k, v in ema.state_dict().items()}
            step, epoch = ema.step, ema.epoch
            ema = ModelEMA(net, **kwargs)
            ema.resume(saved, step, epoch)
    applied.append(arr(ema.apply()['w']))
    return applied


@pytest.mark.parametrize('decay_type,as_numpy', [('threshold', False), ('normal', False),
                                                 ('normal', True)])
def test_resume_continues_identically(decay_type, as_numpy):
    kwargs = dict(decay=0.9, ema_decay_type=decay_type, cycle_epoch=2)
    net = Net()
    straight = run(net, kwargs, restart_every_step=False)
    resumed = run(net, kwargs, restart_every_step=True, as_numpy=as_numpy)
    assert len(straight) == 5
    for i, (a, b) in enumerate(zip(straight, resumed)):
        np.testing.assert_array_equal(a, b, err_msg=f'apply #{i}')


def test_resume_rejects_a_wrong_shape():
    ema = ModelEMA(Net())
    with pytest.raises(ValueError, match=r"'w' has shape \[3\], the model has \[2\]"):
        ema.resume({'w': np.zeros(3, 'float32')}, 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match='ema_decay_type'):
        ModelEMA(Net(), ema_decay_type='linear')
    with pytest.raises(ValueError, match='decay must be in'):
        ModelEMA(Net(), decay=1.5)
