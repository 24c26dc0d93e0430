"""Weights and training checkpoints in PaddleDetection's format, by the rules of its loaders.

The rules are those of PaddleDetection 2.6 ``ppdet/utils/checkpoint.py`` (``load_weight``,
``load_pretrain_weight``, ``match_state_dict``, ``save_model``); each test names the rule it checks.
"""

import importlib.util
import os

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppdet_lite.utils import checkpoint
from ppdet_lite.utils.checkpoint import (checkpoint_stem, load_pretrain_weights, load_extra_state,
                                         load_weight, load_weights, match_suffix_keys,
                                         resolve_weights_path, save_model, save_weights)


class Tiny(nn.Layer):
    """8 tensors: stem.weight [4, 3, 3, 3], stem.bias, bn.{weight, bias, _mean, _variance} [4],
    cls.weight [4, C], cls.bias [C]."""

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


def numpy_state(layer):
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def assert_state_equal(layer, expected):
    state = layer.state_dict()
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(state[key].numpy(), value, err_msg=key)


def differs_from(layer, seed):
    """A state of ``layer``'s shapes, different from its own values: seeded uniform(1, 2)."""
    rng = np.random.RandomState(seed)
    return {k: rng.uniform(1, 2, v.shape).astype('float32') for k, v in numpy_state(layer).items()}


# ---- weights files: names, shapes, paths -------------------------------------------------------

def test_round_trip_and_suffixless_path(tmp_path):
    paddle.seed(1)
    src, dst = Tiny(), Tiny()
    path = save_weights(src, str(tmp_path / 'model_final.pdparams'))
    report = load_weights(dst, str(tmp_path / 'model_final'))  # ppdet writes weights without suffix
    assert report.complete and len(report.loaded) == len(src.state_dict()) and not report.cast
    assert_state_equal(dst, numpy_state(src))
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary file left behind


def test_num_classes_change_loads_all_but_the_classifier(tmp_path):
    # ppdet match_state_dict: a tensor whose shape differs is not loaded (logged), the rest is.
    paddle.seed(2)
    src, dst = Tiny(num_classes=80), Tiny(num_classes=3)
    before = dst.cls.weight.numpy().copy()
    save_weights(src.state_dict(), str(tmp_path / 'w.pdparams'))
    report = load_weights(dst, str(tmp_path / 'w.pdparams'))
    assert [m[0] for m in report.mismatched] == ['cls.weight', 'cls.bias']
    assert report.mismatched[0][1] == ([4, 80], 'float32') and report.mismatched[0][2][0] == [4, 3]
    assert not report.missing and not report.unexpected and not report.complete
    np.testing.assert_array_equal(dst.cls.weight.numpy(), before)          # kept
    np.testing.assert_array_equal(dst.stem.weight.numpy(), src.stem.weight.numpy())  # loaded
    assert 'cls.weight [4, 80]' in str(report)


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    state = Tiny().state_dict()
    state.pop('bn._mean')
    state['extra.weight'] = paddle.zeros([2])
    save_weights(state, str(tmp_path / 'w.pdparams'))
    report = load_weights(Tiny(), str(tmp_path / 'w.pdparams'))
    assert report.missing == ['bn._mean'] and report.unexpected == ['extra.weight']


def test_urls_and_missing_files_are_refused_clearly(tmp_path):
    for url in ('https://paddledet.bj.bcebos.com/models/ppyoloe_crn_s_300e_coco.pdparams',
                'ppdet://models/ppyoloe_crn_s_300e_coco.pdparams'):  # ppdet's is_url prefixes
        with pytest.raises(ValueError, match='never downloads at run time'):
            resolve_weights_path(url)
    with pytest.raises(FileNotFoundError, match='weights not found: .*nope.pdparams'):
        load_weights(Tiny(), str(tmp_path / 'nope'))
    corrupt = tmp_path / 'corrupt.pdparams'
    corrupt.write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match='cannot read weights file .*corrupt.pdparams'):
        load_weights(Tiny(), str(corrupt))


def test_paths_name_the_stem_or_a_known_suffix(tmp_path):
    # ppdet _strip_postfix: '', .pdparams, .pdopt, .pdmodel are stripped; any other suffix refused.
    stem = str(tmp_path / 'model_final')
    for suffix in ('', '.pdparams', '.pdopt', '.pdmodel'):
        assert checkpoint_stem(stem + suffix) == stem
    with pytest.raises(ValueError, match=r"unknown suffix '\.pth'"):
        checkpoint_stem(str(tmp_path / 'resnet50.pth'))
    paddle.seed(4)
    src = Tiny()
    save_weights(src, stem + '.pdparams')
    dst = Tiny()
    load_weights(dst, stem + '.pdopt')  # the .pdopt path of a checkpoint loads its .pdparams
    assert_state_equal(dst, numpy_state(src))
    # A dotted stem is not a suffix when '<path>.pdparams' exists (ppdet would refuse '.v2').
    save_weights(src, str(tmp_path / 'ppyoloe.v2.pdparams'))
    assert resolve_weights_path(str(tmp_path / 'ppyoloe.v2')).endswith('ppyoloe.v2.pdparams')


# ---- dtype casting (ppdet: "model_weight[key] = param_state_dict[key].astype(value.dtype)") ----

def float16_file(layer, path, keys=None):
    """Save ``layer``'s state with ``keys`` (all if None) in float16; returns what was saved."""
    state = {k: (v.astype('float16') if keys is None or k in keys else v)
             for k, v in layer.state_dict().items()}
    save_weights(state, path)
    return {k: v.numpy() for k, v in state.items()}


def test_all_float16_backbone_loads_into_float32_model_by_both_loaders(tmp_path):
    # The issue's example: a float16 backbone file was refused as "not a checkpoint of this
    # architecture". Each tensor is cast: expected value = float16 value -> float32.
    paddle.seed(5)
    saved = float16_file(Tiny(), str(tmp_path / 'backbone_fp16.pdparams'))
    assert {v.dtype for v in saved.values()} == {np.dtype('float16')}
    expected = {k: v.astype('float32') for k, v in saved.items()}

    model = Detector()
    report = load_pretrain_weights(model, str(tmp_path / 'backbone_fp16'))
    assert len(report.loaded) == 8 and len(report.cast) == 8 and not report.mismatched
    assert all(src == 'float16' and dst == 'float32' for _, src, dst in report.cast)
    assert 'cast 8 tensors float16->float32' in str(report)
    for key, value in expected.items():
        param = model.backbone.state_dict()[key]
        assert param.dtype == paddle.float32
        np.testing.assert_array_equal(param.numpy(), value, err_msg=key)

    tiny = Tiny()
    report = load_weights(tiny, str(tmp_path / 'backbone_fp16'))
    assert report.complete and len(report.cast) == 8
    assert_state_equal(tiny, expected)

    # ...and the resume loader casts too
    tiny = Tiny()
    assert load_weight(tiny, str(tmp_path / 'backbone_fp16')) == 0
    assert_state_equal(tiny, expected)


def test_partly_float16_file_loads_every_tensor(tmp_path):
    # Before: the two float16 tensors kept their initial values with only a warning.
    paddle.seed(6)
    src = Tiny()
    saved = float16_file(src, str(tmp_path / 'w.pdparams'), keys={'stem.weight', 'bn._mean'})
    dst = Tiny()
    report = load_weights(dst, str(tmp_path / 'w'))
    assert report.complete and len(report.loaded) == 8
    assert sorted(report.cast) == [('bn._mean', 'float16', 'float32'),
                                   ('stem.weight', 'float16', 'float32')]
    assert_state_equal(dst, {k: v.astype('float32') for k, v in saved.items()})
    assert str(report) == 'loaded 8 tensors; cast 2 tensors float16->float32'


def test_numpy_float64_file_is_cast_and_counted_per_dtype_pair(tmp_path):
    # ppdet converts numpy arrays to tensors, then casts. 6 float64 + 2 float16 tensors here.
    paddle.seed(7)
    src = numpy_state(Tiny())
    state = {k: v.astype('float16' if k.startswith('cls.') else 'float64') for k, v in src.items()}
    save_weights(state, str(tmp_path / 'np.pdparams'))
    dst = Tiny()
    report = load_weights(dst, str(tmp_path / 'np'))
    assert str(report) == ('loaded 8 tensors; '
                           'cast 2 tensors float16->float32, cast 6 tensors float64->float32')
    assert_state_equal(dst, {k: v.astype('float32') for k, v in state.items()})


# ---- suffix matching (ppdet match_state_dict) --------------------------------------------------

def test_suffix_matching_prefers_the_longest_dotted_suffix():
    model_keys = ['backbone.stem.conv.weight', 'backbone.stages.0.conv.weight', 'head.conv.weight']
    ckpt_keys = ['stem.conv.weight', 'stages.0.conv.weight', 'conv.weight', 'fc.weight',
                 'em.conv.weight']  # 'em.conv.weight' is a string suffix but not a dotted one
    assert match_suffix_keys(model_keys, ckpt_keys) == {
        'backbone.stem.conv.weight': 'stem.conv.weight',
        'backbone.stages.0.conv.weight': 'stages.0.conv.weight',
        'head.conv.weight': 'conv.weight'}


def test_backbone_res5_keys_match_without_their_backbone_prefix():
    # ppdet: 'backbone.res5...' pretrained keys feed the Faster R-CNN head's res5; when both
    # 'backbone.res5.w' (15 characters) and 'res5.w' (6) match, the longer key wins.
    assert match_suffix_keys(['bbox_head.head.res5.w'], ['backbone.res5.w']) == {
        'bbox_head.head.res5.w': 'backbone.res5.w'}
    assert match_suffix_keys(['bbox_head.head.res5.w'], ['backbone.res5.w', 'res5.w']) == {
        'bbox_head.head.res5.w': 'backbone.res5.w'}
    assert match_suffix_keys(['backbone.res4.w'], ['res4.w', 'backbone.res4.w']) == {
        'backbone.res4.w': 'backbone.res4.w'}  # only res5 is special


def test_backbone_only_pretrained_file_fills_the_backbone(tmp_path):
    paddle.seed(3)
    backbone = Tiny()
    save_weights(backbone, str(tmp_path / 'backbone_pretrained.pdparams'))
    model = Detector()
    with pytest.raises(ValueError, match='none of its 8 tensors matches the model'):
        load_weights(model, str(tmp_path / 'backbone_pretrained'))  # exact names: no overlap
    report = load_pretrain_weights(model, str(tmp_path / 'backbone_pretrained'))
    assert len(report.loaded) == 8 and report.missing == ['head.bias', 'head.weight']
    np.testing.assert_array_equal(model.backbone.stem.weight.numpy(), backbone.stem.weight.numpy())


class Twin(nn.Layer):
    def __init__(self, b_out=4):
        super().__init__()
        self.a = nn.Sequential(('conv', nn.Conv2D(3, 4, 1)))
        self.b = nn.Sequential(('conv', nn.Conv2D(3, b_out, 1)))


def test_one_pretrained_tensor_matching_two_model_tensors_is_ambiguous(tmp_path):
    # ppdet: "Ambiguity weight conv.weight loaded, it matches at least a.conv.weight and
    # b.conv.weight in the model" (ValueError), and nothing is loaded.
    conv = nn.Conv2D(3, 4, 1)
    save_weights({'conv.weight': conv.weight, 'conv.bias': conv.bias}, str(tmp_path / 'c.pdparams'))
    model = Twin()
    before = numpy_state(model)
    with pytest.raises(ValueError, match=r"c.pdparams: ambiguous pretrained weight 'conv.bias': "
                                         r"it matches both 'a.conv.bias' and 'b.conv.bias'"):
        load_pretrain_weights(model, str(tmp_path / 'c'))
    assert_state_equal(model, before)


def test_shape_check_comes_before_the_ambiguity_check(tmp_path):
    # ppdet skips shape mismatches first: b.conv (8 output channels) cannot take the [4, 3, 1, 1]
    # tensor, so only a.conv matches and there is no ambiguity.
    conv = nn.Conv2D(3, 4, 1)
    save_weights({'conv.weight': conv.weight, 'conv.bias': conv.bias}, str(tmp_path / 'c.pdparams'))
    model = Twin(b_out=8)
    report = load_pretrain_weights(model, str(tmp_path / 'c'))
    assert report.loaded == ['a.conv.bias', 'a.conv.weight']
    assert sorted(m[0] for m in report.mismatched) == ['b.conv.bias', 'b.conv.weight']
    np.testing.assert_array_equal(model.a.conv.weight.numpy(), conv.weight.numpy())


# ---- training checkpoints: save_model / load_weight (ppdet's resume) ---------------------------

class RecordingEMA:
    """The ``resume(state_dict, step)`` interface of ppdet's ModelEMA, recording its calls."""

    def __init__(self):
        self.calls = []

    def resume(self, state_dict, step=0):
        self.calls.append(({k: v.numpy() for k, v in state_dict.items()}, step))


def make_trainable(lr=0.1):
    """Tiny + Momentum + a StepDecay schedule, with parameter (and accumulator) names as a fresh
    process would give them, so a resumed optimizer finds its velocities by name."""
    with paddle.utils.unique_name.guard():
        model = Tiny()
    scheduler = paddle.optimizer.lr.StepDecay(lr, step_size=2, gamma=0.5)
    optimizer = paddle.optimizer.Momentum(learning_rate=scheduler, momentum=0.9,
                                          parameters=model.parameters())
    return model, optimizer, scheduler


def train_step(model, optimizer, scheduler, seed):
    x = paddle.to_tensor(np.random.RandomState(seed).rand(2, 3, 8, 8).astype('float32'))
    with paddle.utils.unique_name.guard():  # accumulators are created (and named) at first step
        model(x).square().sum().backward()
        optimizer.step()
    optimizer.clear_grad()
    scheduler.step()


def test_save_model_files_without_ema(tmp_path):
    # ppdet save_model: model -> <name>.pdparams, optimizer.state_dict() + last_epoch -> .pdopt
    model, optimizer, scheduler = make_trainable()
    train_step(model, optimizer, scheduler, seed=0)
    stem = save_model(model.state_dict(), optimizer, str(tmp_path / 'out'), '3', 4)
    assert stem == str(tmp_path / 'out' / '3')
    assert sorted(os.listdir(tmp_path / 'out')) == ['3.pdopt', '3.pdparams']
    params = paddle.load(stem + '.pdparams')
    assert {k: v.numpy().tolist() for k, v in params.items()} == \
        {k: v.tolist() for k, v in numpy_state(model).items()}
    opt = paddle.load(stem + '.pdopt')
    assert opt['last_epoch'] == 4 and opt['LR_Scheduler']['last_epoch'] == 1
    # ppdet's keys plus our extra_state, which ppdet's loader ignores; here only the parameter
    # names the accumulators are keyed by, in the optimizer's order
    assert opt['extra_state'] == {'param_names': [p.name for p in model.parameters()]}
    velocities = [k for k in opt if k.endswith('_velocity_0')]
    assert len(velocities) == 6  # stem, bn and cls weights and biases (BN statistics have none)


def test_save_model_with_ema_exchanges_the_files(tmp_path):
    # ppdet: with EMA, the EMA weights go to .pdparams (evaluated, deployed) and the model's to
    # .pdema. Saving without EMA later removes the stale .pdema.
    model, optimizer, _ = make_trainable()
    ema_state = differs_from(model, seed=1)
    stem = save_model(model.state_dict(), optimizer, str(tmp_path), 'model_final', 2,
                      ema_model=ema_state)
    assert sorted(os.listdir(tmp_path)) == ['model_final.pdema', 'model_final.pdopt',
                                            'model_final.pdparams']
    for suffix, expected in (('.pdparams', ema_state), ('.pdema', numpy_state(model))):
        saved = paddle.load(stem + suffix)
        for key, value in expected.items():
            np.testing.assert_array_equal(np.asarray(saved[key]), value, err_msg=suffix + key)
    save_model(model.state_dict(), optimizer, str(tmp_path), 'model_final', 3)
    assert sorted(os.listdir(tmp_path)) == ['model_final.pdopt', 'model_final.pdparams']


def test_load_weight_takes_model_and_ema_weights_as_exchange_says(tmp_path):
    model, optimizer, _ = make_trainable()
    raw, averaged = numpy_state(model), differs_from(model, seed=2)
    stem = save_model(raw, optimizer, str(tmp_path), 'ck', 5, ema_model=averaged)

    # exchange=True (default): model <- .pdema (raw), EMA <- .pdparams (averaged)
    target, ema = Tiny(), RecordingEMA()
    assert load_weight(target, stem, ema=ema) == 0  # no optimizer: last_epoch 0
    assert_state_equal(target, raw)
    (ema_state, step), = ema.calls
    assert step == 0 and all(np.array_equal(ema_state[k], v) for k, v in averaged.items())

    # exchange=False: model <- .pdparams, EMA <- .pdema
    target, ema = Tiny(), RecordingEMA()
    load_weight(target, stem, ema=ema, exchange=False)
    assert_state_equal(target, averaged)
    assert all(np.array_equal(ema.calls[0][0][k], v) for k, v in raw.items())

    # no EMA object: the model loads .pdparams, i.e. the averaged weights (ppdet does the same)
    target = Tiny()
    load_weight(target, stem)
    assert_state_equal(target, averaged)


def test_load_weight_without_pdema_leaves_the_ema_alone(tmp_path):
    model, optimizer, _ = make_trainable()
    stem = save_model(model.state_dict(), optimizer, str(tmp_path), 'ck', 1)
    target, ema = Tiny(), RecordingEMA()
    load_weight(target, stem, ema=ema)
    assert ema.calls == [] and np.array_equal(target.stem.weight.numpy(), model.stem.weight.numpy())


def test_ema_step_comes_from_extra_state_else_from_the_lr_scheduler(tmp_path):
    # ppdet: ema.resume(state, optim_state['LR_Scheduler']['last_epoch']); extra_state['ema_step']
    # (the EMA's own update count) takes precedence when saved.
    model, optimizer, scheduler = make_trainable()
    for seed in range(3):
        train_step(model, optimizer, scheduler, seed)  # LR scheduler last_epoch: 3
    ema_state = differs_from(model, seed=3)
    save_model(model.state_dict(), optimizer, str(tmp_path), 'a', 1, ema_model=ema_state)
    save_model(model.state_dict(), optimizer, str(tmp_path), 'b', 1, ema_model=ema_state,
               extra_state={'ema_step': 7})
    steps = []
    for name in ('a', 'b'):
        target, target_opt, _ = make_trainable()
        ema = RecordingEMA()
        load_weight(target, str(tmp_path / name), optimizer=target_opt, ema=ema)
        steps.append(ema.calls[0][1])
    assert steps == [3, 7]


def test_last_epoch_comes_from_pdopt(tmp_path):
    model, optimizer, _ = make_trainable()
    stem = save_model(model.state_dict(), optimizer, str(tmp_path), 'ck', 12)
    target, target_opt, _ = make_trainable()
    assert load_weight(target, stem + '.pdparams', optimizer=target_opt) == 12
    assert load_weight(target, stem) == 0  # ppdet: without an optimizer, 0
    # a .pdopt without 'last_epoch' (a bare optimizer state dict): 0, as ppdet
    paddle.save(optimizer.state_dict(), stem + '.pdopt')
    assert load_weight(target, stem, optimizer=target_opt) == 0


def test_optimizer_state_keys_missing_from_the_file_keep_their_current_values(tmp_path):
    # ppdet fills keys the file lacks from the optimizer's own state_dict(): here the file comes
    # from an optimizer with a constant learning rate (no 'LR_Scheduler'), which Paddle's
    # set_state_dict would otherwise reject.
    model = Tiny()
    constant_lr = paddle.optimizer.Momentum(learning_rate=0.1, parameters=model.parameters())
    stem = save_model(model.state_dict(), constant_lr, str(tmp_path), 'ck', 2)
    assert 'LR_Scheduler' not in paddle.load(stem + '.pdopt')
    target, target_opt, scheduler = make_trainable()
    for _ in range(3):
        scheduler.step()
    assert load_weight(target, stem, optimizer=target_opt) == 2
    assert scheduler.last_epoch == 3 and scheduler.get_lr() == pytest.approx(0.1 * 0.5)


def test_resume_errors_name_the_file_and_change_nothing(tmp_path):
    model, optimizer, _ = make_trainable()
    with pytest.raises(FileNotFoundError, match=r'checkpoint weights not found: .*nope\.pdparams'):
        load_weight(model, str(tmp_path / 'nope'))
    stem = save_model(numpy_state(model), optimizer, str(tmp_path), 'ck', 3)
    os.remove(stem + '.pdopt')
    # ppdet would return epoch 0 with a fresh optimizer; ours refuses, before touching the model
    target, target_opt, _ = make_trainable()
    before = numpy_state(target)
    with pytest.raises(FileNotFoundError, match=r'optimizer state not found: .*ck\.pdopt'):
        load_weight(target, stem, optimizer=target_opt)
    assert_state_equal(target, before)
    assert load_weight(target, stem) == 0  # without an optimizer the .pdopt is not needed


def test_resume_needs_every_model_tensor_with_its_shape(tmp_path):
    # ppdet: "Load weight ... incorrectly, 1 keys unmatched" (assert). Unexpected keys are fine.
    state = numpy_state(Tiny())
    state['old_head.weight'] = np.zeros([2], 'float32')
    save_weights(state, str(tmp_path / 'extra.pdparams'))
    load_weight(Tiny(), str(tmp_path / 'extra'))
    state.pop('bn._variance')
    save_weights(state, str(tmp_path / 'partial.pdparams'))
    with pytest.raises(ValueError, match=r'partial.pdparams: 1 model tensors missing .*bn\._variance'):
        load_weight(Tiny(), str(tmp_path / 'partial'))
    save_weights(numpy_state(Tiny(num_classes=80)), str(tmp_path / 'coco.pdparams'))
    with pytest.raises(ValueError, match=r'coco.pdparams: shape mismatch .*cls.weight \[4, 80\]'):
        load_weight(Tiny(num_classes=3), str(tmp_path / 'coco'))


class ToyEMA:
    """ppdet ModelEMA's arithmetic with a constant decay d: after each step,
    avg = d * avg + (1 - d) * param; ``apply()`` returns avg / (1 - d ** step) (bias-corrected)."""

    def __init__(self, model, decay=0.5):
        self.decay, self.step, self.epoch = decay, 0, 0
        self.state_dict = {k: paddle.zeros_like(v) for k, v in model.state_dict().items()}

    def update(self, model):
        current = model.state_dict()
        self.state_dict = {k: self.decay * v + (1 - self.decay) * current[k]
                           for k, v in self.state_dict.items()}
        self.step += 1

    def apply(self):
        self.epoch += 1
        return {k: v / (1 - self.decay ** self.step) for k, v in self.state_dict.items()}

    def resume(self, state_dict, step=0, epoch=0):
        self.state_dict, self.step, self.epoch = dict(state_dict), step, epoch


def test_save_model_then_load_weight_resumes_exactly(tmp_path):
    # Train 3 steps, checkpoint (EMA weights bias-corrected in .pdparams, raw averages, step and
    # epoch in extra_state), train 1 more; a resumed copy's 4th step must give bit-identical
    # weights (so momentum velocities and the LR schedule were restored) and the same EMA.
    model, optimizer, scheduler = make_trainable()
    ema = ToyEMA(model)
    for seed in range(3):
        train_step(model, optimizer, scheduler, seed)
        ema.update(model)
    corrected = ema.apply()  # avg / (1 - 0.5 ** 3) = avg / 0.875
    extra = {'ema_step': ema.step, 'ema_epoch': ema.epoch, 'ema_state': ema.state_dict,
             'global_step': 3, 'best_ap': 0.25}
    stem = save_model(model.state_dict(), optimizer, str(tmp_path), '0', 1, ema_model=corrected,
                      extra_state=extra)
    np.testing.assert_allclose(paddle.load(stem + '.pdparams')['stem.weight'].numpy() * 0.875,
                               ema.state_dict['stem.weight'].numpy(), rtol=1e-6)

    resumed, resumed_opt, resumed_sched = make_trainable()
    resumed_ema = ToyEMA(resumed)
    assert load_weight(resumed, stem, optimizer=resumed_opt, ema=resumed_ema) == 1
    saved_extra = load_extra_state(stem)
    assert {k: v for k, v in saved_extra.items() if k not in ('ema_state', 'param_names')} == {
        'ema_step': 3, 'ema_epoch': 1, 'global_step': 3, 'best_ap': 0.25}
    assert resumed_sched.last_epoch == 3 and (resumed_ema.step, resumed_ema.epoch) == (3, 1)
    assert_state_equal(resumed, numpy_state(model))

    for run_model, run_opt, run_sched, run_ema in ((model, optimizer, scheduler, ema),
                                                   (resumed, resumed_opt, resumed_sched,
                                                    resumed_ema)):
        train_step(run_model, run_opt, run_sched, seed=3)
        run_ema.update(run_model)
    assert_state_equal(resumed, numpy_state(model))
    for key, value in ema.state_dict.items():
        np.testing.assert_array_equal(resumed_ema.state_dict[key].numpy(), value.numpy())


def test_optimizer_state_resumes_into_a_model_built_later_in_the_same_process(tmp_path):
    # Paddle names parameters (and keys their accumulators) by a per-process counter: a second
    # model built in the same process is conv2d_1.w_0 where the first was conv2d_0.w_0. The
    # velocities must still reach the parameter at the same position.
    model, optimizer, scheduler = make_trainable()
    train_step(model, optimizer, scheduler, seed=0)
    stem = save_model(model.state_dict(), optimizer, str(tmp_path), '0', 1)
    later = Tiny()  # built outside the name guard: new names
    assert later.stem.weight.name != model.stem.weight.name
    later_opt = paddle.optimizer.Momentum(learning_rate=paddle.optimizer.lr.StepDecay(
        0.1, step_size=2, gamma=0.5), momentum=0.9, parameters=later.parameters())
    assert load_weight(later, stem, optimizer=later_opt) == 1
    # accumulators are created at the first step: the next step must be the same on both
    for run_model, run_opt in ((model, optimizer), (later, later_opt)):
        x = paddle.to_tensor(np.random.RandomState(1).rand(2, 3, 8, 8).astype('float32'))
        run_model(x).square().sum().backward()
        run_opt.step()
        run_opt.clear_grad()
    assert_state_equal(later, numpy_state(model))


@pytest.mark.parametrize('failing_save', [1, 2, 3])
def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failing_save):
    # Files are written as temporaries first: a failure on the 1st, 2nd or 3rd file leaves the
    # previous checkpoint whole (its epoch and weights) and no temporary file.
    model, optimizer, _ = make_trainable()
    old = numpy_state(model)
    stem = save_model(old, optimizer, str(tmp_path), 'model_final', 1, ema_model=old)
    real_save, calls = paddle.save, []

    def flaky_save(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == failing_save:
            raise OSError('disk full')
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.paddle, 'save', flaky_save)
    new = differs_from(model, seed=4)
    with pytest.raises(OSError, match='disk full'):
        save_model(new, optimizer, str(tmp_path), 'model_final', 2, ema_model=new)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ['model_final.pdema', 'model_final.pdopt',
                                            'model_final.pdparams']
    target, target_opt, _ = make_trainable()
    assert load_weight(target, stem, optimizer=target_opt) == 1
    assert_state_equal(target, old)


def test_save_model_checks_its_arguments_and_writes_on_rank_0_only(tmp_path, monkeypatch):
    model, optimizer, _ = make_trainable()
    with pytest.raises(TypeError, match='model_state must be a dict .*got Tiny'):
        save_model(model, optimizer, str(tmp_path), 'ck', 1)
    with pytest.raises(TypeError, match='optimizer must be a paddle optimizer, got NoneType'):
        save_model(model.state_dict(), None, str(tmp_path), 'ck', 1)
    with pytest.raises(TypeError, match="last_epoch must be an int, got '1'"):
        save_model(model.state_dict(), optimizer, str(tmp_path), 'ck', '1')
    with pytest.raises(TypeError, match='extra_state must be a dict .*got list'):
        save_model(model.state_dict(), optimizer, str(tmp_path), 'ck', 1, extra_state=[1])
    monkeypatch.setattr(paddle.distributed, 'get_rank', lambda: 1)
    assert save_model(model.state_dict(), optimizer, str(tmp_path), 'ck', 1) is None
    assert os.listdir(tmp_path) == []


def test_load_extra_state_of_a_plain_checkpoint_and_a_missing_one(tmp_path):
    model, optimizer, _ = make_trainable()
    stem = save_model(model.state_dict(), optimizer, str(tmp_path), 'ck', 1)
    assert list(load_extra_state(stem + '.pdparams')) == ['param_names']  # always written
    opt = paddle.load(stem + '.pdopt')
    del opt['extra_state']  # what PaddleDetection writes
    paddle.save(opt, stem + '.pdopt')
    assert load_extra_state(stem) == {}
    with pytest.raises(FileNotFoundError, match=r'optimizer state not found: .*other\.pdopt'):
        load_extra_state(str(tmp_path / 'other'))


# ---- the same files through PaddleDetection 2.6's loaders (tests/data/gen_checkpoint_golden.py) --

DATA = os.path.join(os.path.dirname(__file__), 'data')
GOLDEN = os.path.join(DATA, 'ppdet26_checkpoint_golden.npz')
_spec = importlib.util.spec_from_file_location('gen_checkpoint_golden',
                                               os.path.join(DATA, 'gen_checkpoint_golden.py'))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)
needs_golden = pytest.mark.skipif(not os.path.isfile(GOLDEN), reason='golden file absent')


@pytest.fixture(scope='module')
def golden(tmp_path_factory):
    """ppdet's results, and the case files rebuilt in a temporary folder."""
    folder = str(tmp_path_factory.mktemp('golden_files'))
    gen.write_files(folder, save_model)
    with np.load(GOLDEN) as data:
        return folder, {k: data[k] for k in data.files}


def assert_matches_golden(layer, expected, prefix):
    state = gen.numpy_state(layer)
    keys = sorted(k[len(prefix) + 1:] for k in expected if k.startswith(prefix + '/'))
    assert keys == sorted(state), prefix
    for key in keys:
        # the resume case trains in both environments: float32 round-off is the only slack
        np.testing.assert_allclose(state[key], expected[f'{prefix}/{key}'], rtol=1e-6, atol=1e-7,
                                   err_msg=f'{prefix}/{key}')


@needs_golden
def test_pretrain_loads_as_ppdet(golden):
    folder, expected = golden
    cases = [('pretrain_mixed', gen.seeded(gen.Detector, 1), 'backbone_mixed'),
             ('pretrain_shape_first', gen.seeded(gen.Twin, 2, b_out=8), 'conv'),
             ('pretrain_res5', gen.seeded(gen.Res5Head, 4), 'res5')]
    for case, model, name in cases:
        load_pretrain_weights(model, os.path.join(folder, name))
        assert_matches_golden(model, expected, case)
    model = gen.seeded(gen.Twin, 3)
    assert str(expected['pretrain_ambiguous_raised']) == 'ValueError'
    with pytest.raises(ValueError, match='ambiguous'):
        load_pretrain_weights(model, os.path.join(folder, 'conv'))
    assert_matches_golden(model, expected, 'pretrain_ambiguous')


@needs_golden
@pytest.mark.parametrize('case, exchange', [('resume', True), ('resume_no_exchange', False)])
def test_resume_from_save_model_files_as_ppdet(golden, case, exchange):
    folder, expected = golden
    model, optimizer, scheduler = gen.make_trainable(seed=21)
    ema = RecordingEMA()
    last_epoch = load_weight(model, os.path.join(folder, 'ck'), optimizer, ema, exchange=exchange)
    assert last_epoch == int(expected[f'{case}/last_epoch']) == 2
    (ema_state, ema_step), = ema.calls
    assert ema_step == int(expected[f'{case}/ema_step']) == 3  # the LR scheduler's step count
    assert_matches_golden(model, expected, f'{case}/model')
    for key, value in ema_state.items():
        np.testing.assert_allclose(value, expected[f'{case}/ema/{key}'], rtol=1e-6, atol=1e-7)
    if exchange:
        gen.train_step(model, optimizer, scheduler, seed=3)
        assert_matches_golden(model, expected, f'{case}/after_step')


@needs_golden
def test_resume_path_rules_as_ppdet(golden):
    folder, expected = golden
    model = gen.seeded(gen.Tiny, 5)
    assert load_weight(model, os.path.join(folder, 'ck.pdopt')) == \
        int(expected['resume_pdopt_path/last_epoch'])
    assert_matches_golden(model, expected, 'resume_pdopt_path/model')
    assert str(expected['resume_missing_key_raised']) == 'AssertionError'  # ours: ValueError
    with pytest.raises(ValueError, match='bn._variance'):
        load_weight(gen.seeded(gen.Tiny, 6), os.path.join(folder, 'partial'))
