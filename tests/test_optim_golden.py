"""LearningRate, OptimizerBuilder and ModelEMA against PaddleDetection 2.6's own outputs.

The expected values were computed by ppdet 2.6 (tests/data/gen_optim_golden.py, which also holds
the settings used here); the test is skipped if the golden file is absent.
"""

import importlib.util
import os

import numpy as np
import paddle
import pytest

from ppdet_lite.optim import LearningRate, ModelEMA, OptimizerBuilder

DATA = os.path.join(os.path.dirname(__file__), 'data')
GOLDEN = os.path.join(DATA, 'ppdet26_optim_golden.npz')

_spec = importlib.util.spec_from_file_location('gen_optim_golden',
                                               os.path.join(DATA, 'gen_optim_golden.py'))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

pytestmark = pytest.mark.skipif(not os.path.isfile(GOLDEN), reason='golden file absent')


@pytest.fixture(scope='module')
def golden():
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize('case', sorted(gen.LR_CASES))
def test_lr_values_equal_ppdet_exactly(golden, case):
    kwargs, step_per_epoch, n = gen.LR_CASES[case]
    sched = LearningRate(**kwargs)(step_per_epoch)
    values = []
    for _ in range(n):
        values.append(sched())
        sched.step()
    np.testing.assert_array_equal(np.array(values, dtype='float64'), golden[f'lr/{case}'])


@pytest.mark.parametrize('case', sorted(gen.OPTIM_CASES))
def test_optimizer_steps_match_ppdet(golden, case):
    paddle.seed(0)
    net = gen.TinyNet()
    net.set_state_dict(gen.tiny_net_weights(net))
    start = {k: np.array(v) for k, v in net.state_dict().items()}
    gen.train_steps(net, OptimizerBuilder(**gen.OPTIM_CASES[case])(gen.OPTIM_LR, net))
    moved = 0
    for k, v in net.state_dict().items():
        expected = golden[f'optim/{case}/{k}']
        np.testing.assert_allclose(np.array(v), expected, rtol=1e-5, atol=1e-6, err_msg=k)
        moved += not np.array_equal(expected, start[k])
    assert moved >= 6  # conv, bn and fc weights and biases all trained: the comparison has teeth


@pytest.mark.parametrize('case', sorted(gen.EMA_CASES))
def test_ema_apply_matches_ppdet(golden, case):
    kwargs, events = gen.EMA_CASES[case]
    paddle.seed(0)
    net = gen.TinyNet()
    applied = gen.play_ema(ModelEMA(net, **kwargs), net, events)
    assert len(applied) == events.count('a')
    for i, weights in enumerate(applied):
        for k, v in weights.items():
            np.testing.assert_allclose(v, golden[f'ema/{case}/{i}/{k}'], rtol=1e-7, atol=1e-7,
                                       err_msg=f'{case} apply #{i} {k}')
