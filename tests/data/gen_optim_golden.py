"""Generate ppdet26_optim_golden.npz: PaddleDetection 2.6's LR schedules, optimizers and EMA.

Run in an environment with paddledet 2.6.0 (the scratch venv)::

    python tests/data/gen_optim_golden.py

``tests/test_optim_golden.py`` imports the settings below (``LR_CASES``, ``OPTIM_CASES``,
``EMA_CASES``, ``TinyNet``, ``ema_weights``) and builds the same things with ppdet_lite; ppdet is
imported only in ``main``, so the test needs no ppdet.

Stored arrays:

* ``lr/<case>``: float64 ``[n_steps]``, ``scheduler()`` (``last_lr``, the value the optimizer
  uses) of ``ppdet.optimizer.LearningRate(**kwargs)(step_per_epoch)`` before each ``step()``.
* ``optim/<case>/<key>``: a ``TinyNet`` (weights from ``tiny_net_weights()``) after 3 training
  steps (``loss = mean((net(x) - 1) ** 2)``; gradient norm ~2, so the clipping cases clip)
  with ``ppdet.optimizer.OptimizerBuilder(**kwargs)(0.05, net)``; BN running statistics included.
* ``ema/<case>/<i>/<key>``: the i-th ``ModelEMA.apply()`` result of ``ppdet.optimizer.ModelEMA``
  while the model's weights follow ``ema_weights(t)`` (set before update ``t``) and the case's
  event string is played (``u`` update, ``a`` apply).
* ``versions``: JSON with the paddledet and Paddle versions.
"""

import json
import os
import sys

import numpy as np
import paddle
from paddle import nn

LR_CASES = {
    # name: (LearningRate kwargs, step_per_epoch, steps recorded)
    'cosine_warmup_epochs': (dict(base_lr=0.01, schedulers=[
        {'name': 'CosineDecay', 'max_epochs': 12},
        {'name': 'LinearWarmup', 'start_factor': 0., 'epochs': 2}]), 7, 100),
    'cosine_warmup_steps_min_plateau': (dict(base_lr=0.002, schedulers=[
        {'name': 'CosineDecay', 'max_epochs': 10, 'min_lr_ratio': 0.1, 'last_plateau_epochs': 2},
        {'name': 'LinearWarmup', 'start_factor': 0.1, 'steps': 13}]), 5, 60),
    'cosine_no_warmup': (dict(base_lr=0.02, schedulers=[
        {'name': 'CosineDecay', 'max_epochs': 6, 'min_lr_ratio': 0.05, 'use_warmup': False},
        {'name': 'LinearWarmup', 'steps': 4}]), 4, 30),
    'cosine_no_warmup_plateau': (dict(base_lr=0.01, schedulers=[
        {'name': 'CosineDecay', 'max_epochs': 5, 'last_plateau_epochs': 1,
         'use_warmup': False},
        {'name': 'LinearWarmup', 'steps': 4}]), 3, 20),
    'piecewise_warmup': (dict(base_lr=0.01, schedulers=[
        {'name': 'PiecewiseDecay', 'gamma': [0.1, 0.01], 'milestones': [2, 4]},
        {'name': 'LinearWarmup', 'steps': 5}]), 4, 25),
    'piecewise_scalar_gamma': (dict(base_lr=0.01, schedulers=[
        {'name': 'PiecewiseDecay', 'gamma': 0.2, 'milestones': [1, 3, 5], 'use_warmup': False},
        {'name': 'LinearWarmup', 'steps': 4}]), 3, 20),
    'piecewise_values': (dict(base_lr=0.01, schedulers=[
        {'name': 'PiecewiseDecay', 'values': [0.1, 0.05, 0.01], 'milestones': [2, 3],
         'use_warmup': False},
        {'name': 'LinearWarmup', 'steps': 4}]), 3, 12),
    'cosine_exp_warmup': (dict(base_lr=0.01, schedulers=[
        {'name': 'CosineDecay', 'max_epochs': 4},
        {'name': 'ExpWarmup', 'steps': 6, 'power': 2}]), 5, 25),
    'warmup_longer_than_training': (dict(base_lr=0.01, schedulers=[
        {'name': 'CosineDecay', 'max_epochs': 1},
        {'name': 'LinearWarmup', 'steps': 10, 'start_factor': 0.5}]), 4, 15),
}

OPTIM_CASES = {
    'momentum_l2': dict(regularizer={'type': 'L2', 'factor': 0.0005},
                        optimizer={'type': 'Momentum', 'momentum': 0.9}),
    'momentum_l2_clip_norm': dict(clip_grad_by_norm=0.5,
                                  regularizer={'type': 'L2', 'factor': 0.0005},
                                  optimizer={'type': 'Momentum', 'momentum': 0.9}),
    'adamw_clip_value': dict(clip_grad_by_value=0.01,
                             regularizer={'type': 'L2', 'factor': 0.0005},
                             optimizer={'type': 'AdamW', 'weight_decay': 0.05}),
    'sgd_l1': dict(regularizer={'type': 'L1', 'factor': 0.001}, optimizer={'type': 'SGD'}),
}
OPTIM_LR = 0.05
OPTIM_STEPS = 3

EMA_CASES = {
    # name: (ModelEMA kwargs, events)
    'threshold_black_list': (dict(decay=0.9998, ema_black_list=['proj_conv.weight']), 'uuuuuauua'),
    'normal_cycle': (dict(decay=0.9, ema_decay_type='normal', cycle_epoch=2), 'uuuauuauua'),
    'exponential': (dict(decay=0.99, ema_decay_type='exponential'), 'uuuua'),
}


class TinyNet(nn.Layer):
    """Conv + BatchNorm + Linear, plus a fixed ``proj_conv`` like the PP-YOLOE head's."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3)
        self.bn = nn.BatchNorm2D(4)
        self.fc = nn.Linear(4 * 4 * 4, 2)
        self.proj_conv = nn.Conv2D(2, 1, 1, bias_attr=False)
        self.proj_conv.weight.stop_gradient = True

    def forward(self, x):
        y = nn.functional.relu(self.bn(self.conv(x)))
        y = self.fc(y.flatten(1))
        return self.proj_conv(y.reshape([-1, 2, 1, 1])).flatten()


def _draw(shapes, seed):
    rng = np.random.RandomState(seed)
    out = {}
    for k, shape in shapes.items():
        a = rng.randn(*shape).astype('float32')
        out[k] = np.abs(a) + 0.5 if k.endswith('_variance') else a * np.float32(0.3)
    return out


def tiny_net_weights(net):
    """Deterministic weights for ``net`` (a TinyNet), ``{key: float32 array}``."""
    return _draw({k: v.shape for k, v in net.state_dict().items()}, 0)


def tiny_net_input():
    return np.random.RandomState(1).randn(2, 3, 6, 6).astype('float32')


def ema_weights(net, t):
    """The model weights set before EMA update ``t`` (a stand-in for training)."""
    return _draw({k: v.shape for k, v in net.state_dict().items()}, 100 + t)


def train_steps(net, optimizer, steps=OPTIM_STEPS):
    x = paddle.to_tensor(tiny_net_input())
    net.train()
    for _ in range(steps):
        loss = ((net(x) - 1) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()


def play_ema(ema, net, events):
    """Play ``events`` on ``ema``; return the list of ``apply()`` results as numpy dicts."""
    applied, t = [], 0
    for e in events:
        if e == 'u':
            net.set_state_dict(ema_weights(net, t))
            ema.update()
            t += 1
        else:
            applied.append({k: np.array(v) for k, v in ema.apply().items()})
    return applied


def main():
    import ppdet
    from ppdet.optimizer import LearningRate, OptimizerBuilder, ModelEMA

    out = {'versions': np.array(json.dumps({'paddledet': ppdet.__version__,
                                            'paddle': paddle.__version__}))}
    for name, (kwargs, step_per_epoch, n) in LR_CASES.items():
        sched = LearningRate(**kwargs)(step_per_epoch)
        values = []
        for _ in range(n):
            values.append(sched())
            sched.step()
        out[f'lr/{name}'] = np.array(values, dtype='float64')

    for name, kwargs in OPTIM_CASES.items():
        paddle.seed(0)
        net = TinyNet()
        net.set_state_dict(tiny_net_weights(net))
        train_steps(net, OptimizerBuilder(**kwargs)(OPTIM_LR, net))
        for k, v in net.state_dict().items():
            out[f'optim/{name}/{k}'] = np.array(v)

    for name, (kwargs, events) in EMA_CASES.items():
        paddle.seed(0)
        net = TinyNet()
        ema = ModelEMA(net, **kwargs)
        for i, weights in enumerate(play_ema(ema, net, events)):
            for k, v in weights.items():
                out[f'ema/{name}/{i}/{k}'] = v

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ppdet26_optim_golden.npz')
    np.savez_compressed(path, **out)
    print(f'wrote {path}: {len(out)} arrays', file=sys.stderr)


if __name__ == '__main__':
    main()
