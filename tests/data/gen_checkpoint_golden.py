"""Generate ppdet26_checkpoint_golden.npz: what PaddleDetection 2.6's loaders do with given files.

Run in an environment with paddledet 2.6.0 (the scratch venv), from the repository root::

    python tests/data/gen_checkpoint_golden.py

``tests/test_checkpoint.py`` imports the builders below (``write_files``, the layers,
``make_trainable``, ``train_step``), rebuilds the same files with ppdet_lite and runs ppdet_lite's
loaders on them; ppdet is imported only in ``main``, so the test needs no ppdet. The training
checkpoint is written by ppdet_lite's ``save_model``, so the golden file also shows that
PaddleDetection's ``load_weight`` resumes from ppdet_lite's checkpoints.

Cases (``<case>/<key>``: the model's state after the load, float32 arrays):

* ``pretrain_mixed``: ``load_pretrain_weight(Detector, backbone_mixed)``; the file is a
  backbone-only state of ``Tiny(num_classes=80)`` with ``stem.weight`` in float16,
  ``bn._mean`` a float64 numpy array, ``cls.*`` of another shape and an unused ``fc.weight``.
* ``pretrain_shape_first``: ``load_pretrain_weight(Twin(b_out=8), conv)``, file keys
  ``conv.weight`` / ``conv.bias`` of shape [4, 3, 1, 1] / [4].
* ``pretrain_ambiguous``: the same file into ``Twin()``: the model's state after the failed call
  (unchanged); ``pretrain_ambiguous_raised``: the exception's name (ppdet: ValueError).
* ``pretrain_res5``: ``load_pretrain_weight(Res5Head, res5)``; the file has
  ``backbone.res5.weight`` and ``res5.weight`` (different values) and ``res5.bias``.
* ``resume``: ppdet_lite ``save_model`` of a trained ``Tiny`` (Momentum, StepDecay, 3 steps)
  with EMA weights, ``last_epoch`` 2 and ``extra_state {'best_ap': 0.5}``; then
  ``load_weight(model, stem, optimizer, ModelEMA(model))``: ``resume/last_epoch``,
  ``resume/ema_step``, ``resume/model/<key>``, ``resume/ema/<key>`` and
  ``resume/after_step/<key>`` (the model after one more ``train_step``: the optimizer state).
* ``resume_no_exchange``: the same with ``exchange=False``: ``.../model/<key>``, ``.../ema/<key>``.
* ``resume_pdopt_path``: ``load_weight(model, 'ck.pdopt')`` without optimizer / EMA:
  ``.../last_epoch`` and ``.../model/<key>``.
* ``resume_missing_key_raised``: the exception's name from ``load_weight`` of a file lacking
  ``bn._variance``.

``versions``: JSON with the paddledet and Paddle versions.
"""

import json
import os
import sys
import tempfile

import numpy as np
import paddle
from paddle import nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Tiny(nn.Layer):
    def __init__(self, num_classes=3):
        super().__init__()
        self.stem = nn.Conv2D(3, 4, 3)
        self.bn = nn.BatchNorm2D(4)
        self.cls = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.cls(self.bn(self.stem(x)).mean(axis=[2, 3]))


class Detector(nn.Layer):
    def __init__(self):
        super().__init__()
        self.backbone = Tiny()
        self.head = nn.Linear(3, 2)


class Twin(nn.Layer):
    def __init__(self, b_out=4):
        super().__init__()
        self.a = nn.Sequential(('conv', nn.Conv2D(3, 4, 1)))
        self.b = nn.Sequential(('conv', nn.Conv2D(3, b_out, 1)))


class Res5Head(nn.Layer):
    def __init__(self):
        super().__init__()
        self.bbox_head = nn.Sequential(('res5', nn.Linear(2, 2)))


def seeded_state(layer, seed):
    """``{key: float32 array}`` of ``layer``'s shapes from ``RandomState(seed)``, in key order."""
    rng = np.random.RandomState(seed)
    return {k: rng.uniform(0.5, 1.5, v.shape).astype('float32')
            for k, v in layer.state_dict().items()}


def seeded(layer_cls, seed, **kwargs):
    with paddle.utils.unique_name.guard():
        layer = layer_cls(**kwargs)
    layer.set_state_dict(seeded_state(layer, seed))
    return layer


def make_trainable(seed=20):
    """Tiny (seeded weights) + Momentum + StepDecay, named as in a fresh process."""
    model = seeded(Tiny, seed)
    scheduler = paddle.optimizer.lr.StepDecay(0.05, step_size=2, gamma=0.5)
    optimizer = paddle.optimizer.Momentum(learning_rate=scheduler, momentum=0.9,
                                          parameters=model.parameters())
    return model, optimizer, scheduler


def train_step(model, optimizer, scheduler, seed):
    x = paddle.to_tensor(np.random.RandomState(seed).rand(2, 3, 8, 8).astype('float32'))
    with paddle.utils.unique_name.guard():
        model(x).square().sum().backward()
        optimizer.step()
    optimizer.clear_grad()
    scheduler.step()


def write_files(folder, save_model):
    """Write every case's files into ``folder``; ``save_model`` is ppdet_lite's."""
    mixed = seeded_state(Tiny(num_classes=80), 11)
    # numpy rounds to the nearest float16; Paddle 2.6's CPU cast does not, so files would differ
    mixed['stem.weight'] = paddle.to_tensor(mixed['stem.weight'].astype('float16'))
    mixed['bn._mean'] = mixed['bn._mean'].astype('float64')
    mixed['fc.weight'] = np.ones([2, 2], 'float32')
    paddle.save(mixed, os.path.join(folder, 'backbone_mixed.pdparams'))

    rng = np.random.RandomState(12)
    paddle.save({'conv.weight': rng.rand(4, 3, 1, 1).astype('float32'),
                 'conv.bias': rng.rand(4).astype('float32')}, os.path.join(folder, 'conv.pdparams'))
    paddle.save({'backbone.res5.weight': rng.rand(2, 2).astype('float32'),
                 'res5.weight': rng.rand(2, 2).astype('float32'),
                 'res5.bias': rng.rand(2).astype('float32')}, os.path.join(folder, 'res5.pdparams'))

    model, optimizer, scheduler = make_trainable()
    for seed in range(3):
        train_step(model, optimizer, scheduler, seed)
    save_model(model.state_dict(), optimizer, folder, 'ck', 2,
               ema_model=seeded_state(model, 13), extra_state={'best_ap': 0.5})

    partial = seeded_state(Tiny(), 14)
    partial.pop('bn._variance')
    paddle.save(partial, os.path.join(folder, 'partial.pdparams'))


def numpy_state(layer):
    return {k: np.array(v.numpy(), dtype='float32') for k, v in layer.state_dict().items()}


def main():
    import ppdet
    from ppdet.optimizer import ModelEMA
    from ppdet.utils.checkpoint import load_pretrain_weight, load_weight
    sys.path.insert(0, ROOT)
    from ppdet_lite.utils.checkpoint import save_model

    out = {'versions': np.array(json.dumps({'paddledet': ppdet.__version__,
                                            'paddle': paddle.__version__}))}

    def put(prefix, state):
        for k, v in state.items():
            out[f'{prefix}/{k}'] = np.asarray(v, dtype='float32')

    with tempfile.TemporaryDirectory() as folder:
        write_files(folder, save_model)
        path = lambda name: os.path.join(folder, name)  # noqa: E731

        model = seeded(Detector, 1)
        load_pretrain_weight(model, path('backbone_mixed'))
        put('pretrain_mixed', numpy_state(model))

        model = seeded(Twin, 2, b_out=8)
        load_pretrain_weight(model, path('conv'))
        put('pretrain_shape_first', numpy_state(model))

        model = seeded(Twin, 3)
        try:
            load_pretrain_weight(model, path('conv'))
            out['pretrain_ambiguous_raised'] = np.array('')
        except Exception as e:
            out['pretrain_ambiguous_raised'] = np.array(type(e).__name__)
        put('pretrain_ambiguous', numpy_state(model))

        model = seeded(Res5Head, 4)
        load_pretrain_weight(model, path('res5'))
        put('pretrain_res5', numpy_state(model))

        for case, exchange in (('resume', True), ('resume_no_exchange', False)):
            model, optimizer, scheduler = make_trainable(seed=21)
            ema = ModelEMA(model)
            out[f'{case}/last_epoch'] = np.array(
                load_weight(model, path('ck'), optimizer, ema, exchange=exchange))
            out[f'{case}/ema_step'] = np.array(ema.step)
            put(f'{case}/model', numpy_state(model))
            put(f'{case}/ema', {k: v.numpy() for k, v in ema.state_dict.items()})
            if exchange:
                train_step(model, optimizer, scheduler, seed=3)
                put(f'{case}/after_step', numpy_state(model))

        model = seeded(Tiny, 5)
        out['resume_pdopt_path/last_epoch'] = np.array(load_weight(model, path('ck.pdopt')))
        put('resume_pdopt_path/model', numpy_state(model))

        try:
            load_weight(seeded(Tiny, 6), path('partial'))
            out['resume_missing_key_raised'] = np.array('')
        except Exception as e:
            out['resume_missing_key_raised'] = np.array(type(e).__name__)

    target = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'ppdet26_checkpoint_golden.npz')
    np.savez_compressed(target, **out)
    print(f'wrote {target}: {len(out)} arrays', file=sys.stderr)


if __name__ == '__main__':
    main()
