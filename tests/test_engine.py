"""The training engine end to end on a tiny generated COCO set: checkpoints, exact resume,
evaluation, LR scaling, loss-health stops, bad images; and its window statistics by hand."""

import logging
import math
import os

import numpy as np
import paddle
import pytest

from ppdet_lite.core.workspace import load_config
from ppdet_lite.data.synthetic import generate
from ppdet_lite.engine import Callback, LossGuard, StopTraining, Trainer, TrainingStats

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
DEMO = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_shapes.yml')


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('shapes'))
    generate(out, num_train=8, num_val=4, image_size=(96, 96))
    return out


@pytest.fixture
def log_lines():
    """Messages of the ppdet_lite loggers during the test (they do not propagate to pytest)."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger('ppdet_lite')
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def tiny_config(data_dir, save_dir, **overrides):
    """The demo config shrunk to 96 px images, width 1/8, batch 2, no augmentation."""
    opts = {
        'width_mult': 0.125, 'epoch': 2, 'snapshot_epoch': 1, 'log_iter': 2, 'worker_num': 0,
        'save_dir': save_dir, 'eval_size': [96, 96],
        'TrainDataset.dataset_dir': data_dir, 'EvalDataset.dataset_dir': data_dir,
        'TrainReader.batch_size': 2, 'TrainReader.shuffle': True,
        'TrainReader.sample_transforms': [{'Decode': {}}, {'RandomFlip': {}}],
        'TrainReader.batch_transforms': [
            {'BatchRandomResize': {'target_size': [96], 'random_size': True,
                                   'random_interp': False, 'keep_ratio': False}},
            {'NormalizeImage': {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
                                'is_scale': True}},
            {'Permute': {}}, {'PadGT': {}}],
        'EvalReader.sample_transforms': [
            {'Decode': {}}, {'Resize': {'target_size': [96, 96], 'keep_ratio': False}},
            {'NormalizeImage': {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
                                'is_scale': True}},
            {'Permute': {}}],
        'EvalReader.batch_size': 2,
        'PPYOLOEHead.static_assigner_epoch': 1,
        'LearningRate.schedulers': [{'name': 'CosineDecay', 'max_epochs': 4},
                                    {'name': 'LinearWarmup', 'start_factor': 0.1, 'steps': 3}],
    }
    opts.update(overrides)
    return load_config(DEMO, overrides=opts)


def saved(save_dir, name):
    return paddle.load(os.path.join(save_dir, 'ppyoloe_crn_s_shapes', name))


class StopAt(Callback):
    """Simulates an interruption (Ctrl-C) when an epoch begins."""

    def __init__(self, trainer, epoch_id):
        super().__init__(trainer)
        self.epoch_id = epoch_id

    def on_epoch_begin(self, status):
        if status['epoch_id'] == self.epoch_id:
            raise KeyboardInterrupt


def test_train_with_eval_writes_checkpoints_and_the_coco_table(tiny_set, tmp_path, log_lines):
    cfg = tiny_config(tiny_set, str(tmp_path))
    trainer = Trainer(cfg, mode='train')
    trainer.train(validate=True)
    out = '\n'.join(log_lines)
    files = sorted(os.listdir(tmp_path / 'ppyoloe_crn_s_shapes'))
    # epoch 0 snapshot, the final one, and the best evaluation; EMA on: raw weights in .pdema
    for stem in ('0', 'model_final', 'best_model'):
        assert {f'{stem}.pdparams', f'{stem}.pdopt', f'{stem}.pdema'} <= set(files), files
    assert not [f for f in files if f.startswith('.tmp')]
    # linear scaling: 0.004 stated for batch 4, trained at batch 2 -> 0.004 * 2 / 4 = 0.002
    assert 'base_lr 0.004 for batch 4 -> 0.002 for batch 2 (linear scaling rule)' in out
    assert 'Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]' in out
    # 8 images / batch 2 = 4 steps per epoch, log_iter 2: lines at steps 2 and 4
    assert 'Epoch: [1] [4/4] learning_rate: ' in out and 'images/s' in out and 'eta: ' in out
    lr_text = out.split('Epoch: [0] [2/4] learning_rate: ')[1].split()[0]
    assert 'e-' in lr_text  # scientific notation
    assert paddle.load(str(tmp_path / 'ppyoloe_crn_s_shapes' / 'model_final.pdopt'))[
        'last_epoch'] == 2


def test_resumed_training_ends_with_the_same_weights(tiny_set, tmp_path):
    cfg = tiny_config(tiny_set, str(tmp_path / 'a'), epoch=3)
    Trainer(cfg, mode='train').train()

    cfg = tiny_config(tiny_set, str(tmp_path / 'b'), epoch=3)
    interrupted = Trainer(cfg, mode='train')
    interrupted.register_callbacks([StopAt(interrupted, 2)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    cfg = tiny_config(tiny_set, str(tmp_path / 'b'), epoch=3)
    resumed = Trainer(cfg, mode='train')
    resumed.resume_weights(str(tmp_path / 'b' / 'ppyoloe_crn_s_shapes' / '1'))
    assert resumed.start_epoch == 2
    resumed.train()

    for name in ('model_final.pdparams', 'model_final.pdema'):
        a, b = saved(str(tmp_path / 'a'), name), saved(str(tmp_path / 'b'), name)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


class PoisonAt(Callback):
    """Makes the next steps' loss NaN from ``epoch_id`` on (a NaN weight in the stem)."""

    def __init__(self, trainer, epoch_id):
        super().__init__(trainer)
        self.epoch_id = epoch_id

    def on_step_begin(self, status):
        if status['epoch_id'] == self.epoch_id and status['step_id'] == 1:
            weight = self.trainer.model.backbone.stem[0].conv.weight
            weight.set_value(paddle.full_like(weight, float('nan')))


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_set, tmp_path,
                                                                           log_lines):
    cfg = tiny_config(tiny_set, str(tmp_path), epoch=3)
    trainer = Trainer(cfg, mode='train')
    trainer.register_callbacks([PoisonAt(trainer, 1)])
    # 4 steps per epoch: epoch 1, step 1 (0-based) is iteration 4 + 1 = 5. On the CPU, Paddle's BCE
    # kernel rejects the NaN scores before a NaN loss exists; on a GPU the LossGuard reports the
    # NaN loss of that iteration. Both name it.
    with pytest.raises(StopTraining, match=r'(not finite at iteration|stopped at iteration) 5 '):
        trainer.train()
    files = os.listdir(tmp_path / 'ppyoloe_crn_s_shapes')
    assert '0.pdparams' in files and '1.pdparams' not in files and \
        'model_final.pdparams' not in files
    good = saved(str(tmp_path), '0.pdparams')
    assert all(np.isfinite(np.asarray(v)).all() for v in good.values())
    assert any('the last good checkpoint is ' in line for line in log_lines)


def test_training_stats_window_means_by_hand():
    stats = TrainingStats()
    batch = {'pad_gt_mask': paddle.to_tensor([[[1.], [1.], [0.]]])}  # 2 real GT
    for step, (loss, cls) in enumerate([(3., 1.), (5., 2.), (float('inf'), 3.)]):
        stats.update({'loss': paddle.to_tensor(loss), 'loss_cls': paddle.to_tensor(cls)},
                     batch, global_step=10 + step)
    window = stats.fetch()
    assert window['steps'] == 3 and window['num_gt'] == 6.0
    assert window['means']['loss_cls'] == pytest.approx((1 + 2 + 3) / 3)
    assert math.isinf(window['means']['loss'])
    assert window['first_nonfinite_step'] == 12
    assert stats.fetch() is None  # the window was reset
    stats.update({'loss': paddle.to_tensor(1.), 'loss_cls': paddle.to_tensor(1.)}, batch, 13)
    assert stats.fetch()['first_nonfinite_step'] is None


class _Stub:
    last_checkpoint = 'output/x/3'


def _status(means, num_gt=4.0, bad=None):
    return {'mode': 'train', 'epoch_id': 2, 'step_id': 9, 'steps_per_epoch': 10,
            'window': {'steps': 10, 'means': means, 'num_gt': num_gt,
                       'first_nonfinite_step': bad}}


def test_loss_guard_stops_a_nonfinite_window_naming_its_first_bad_iteration():
    with pytest.raises(StopTraining, match='not finite at iteration 57 .*output/x/3'):
        LossGuard(_Stub()).on_step_end(_status({'loss': float('nan'), 'loss_cls': 1.0}, bad=57))


def test_loss_guard_stops_a_silent_collapse_only_when_gt_exist():
    guard = LossGuard(_Stub())
    zeros = {'loss': 0.0, 'loss_cls': 0.0, 'loss_iou': 0.0, 'loss_dfl': 0.0}
    guard.on_step_end(_status(dict(zeros), num_gt=0.0))  # nothing to learn: not a collapse
    with pytest.raises(StopTraining, match='every loss term is exactly 0.*output/x/3'):
        guard.on_step_end(_status(dict(zeros), num_gt=4.0))


def test_loss_guard_stops_a_runaway_classification_loss_after_patience():
    guard = LossGuard(_Stub(), cls_runaway_factor=10.0, patience=2)
    terms = {'loss_iou': 0.5, 'loss_dfl': 0.5}
    guard.on_step_end(_status({'loss_cls': 0.3, **terms}))        # best 0.3
    guard.on_step_end(_status({'loss_cls': 3.5, **terms}))        # 11.7x: first runaway window
    guard.on_step_end(_status({'loss_cls': 2.0, **terms}))        # 6.7x: the streak resets
    guard.on_step_end(_status({'loss_cls': 3.1, **terms}))        # 10.3x: first again
    with pytest.raises(StopTraining, match='running away'):
        guard.on_step_end(_status({'loss_cls': 4.0, **terms}))    # second in a row


def test_loss_guard_rejects_meaningless_settings():
    with pytest.raises(ValueError, match='cls_runaway_factor must be > 1'):
        LossGuard(_Stub(), cls_runaway_factor=0.5)
    with pytest.raises(ValueError, match='patience must be >= 1'):
        LossGuard(_Stub(), patience=0)


def test_images_without_gt_train_with_allow_empty(tiny_set, tmp_path):
    # a copy of the set where images 1-4 lost their boxes: with allow_empty they are trained on
    # as pure background, and batches made only of them give finite losses with zero box terms
    import json
    import shutil
    data = str(tmp_path / 'data')
    shutil.copytree(tiny_set, data)
    anno = os.path.join(data, 'annotations', 'instances_train.json')
    with open(anno) as f:
        coco = json.load(f)
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] > 4]
    with open(anno, 'w') as f:
        json.dump(coco, f)
    cfg = tiny_config(data, str(tmp_path / 'out'), epoch=1, **{
        'TrainDataset.allow_empty': True, 'TrainReader.shuffle': False})
    trainer = Trainer(cfg, mode='train')
    assert len(trainer.dataset) == 8
    losses = []

    class Record(Callback):
        def on_step_end(self, status):
            losses.append({k: float(v) for k, v in status['outputs'].items()})

    trainer.register_callbacks([Record(trainer)])
    trainer.train()
    assert len(losses) == 4 and all(math.isfinite(v) for step in losses for v in step.values())
    # unshuffled batches of 2: the images with GT come first and the empty ones are appended (as
    # PaddleDetection orders them), so the last two batches hold only background
    assert losses[0]['loss_iou'] > 0 and losses[1]['loss_iou'] > 0
    assert losses[2]['loss_iou'] == 0 and losses[3]['loss_dfl'] == 0
    assert losses[3]['loss_cls'] > 0


def test_more_categories_than_num_classes_is_refused_before_training(tiny_set, tmp_path):
    # the shapes set has 5 categories; num_classes 3 would train classes 3 and 4 as background
    cfg = tiny_config(tiny_set, str(tmp_path), num_classes=3)
    with pytest.raises(ValueError, match='TrainDataset has 5 categories but num_classes is 3'):
        Trainer(cfg, mode='train')


def voc_copy(coco_dir, out):
    """The tiny COCO set rewritten in PaddleDetection's VOC layout: JPEGs and XMLs, list files of
    ``image xml`` lines, and label_list.txt."""
    import json
    import shutil
    os.makedirs(os.path.join(out, 'Annotations'))
    with open(os.path.join(coco_dir, 'annotations', 'instances_train.json')) as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco['categories']}
    with open(os.path.join(out, 'label_list.txt'), 'w') as f:
        f.write('\n'.join(names[k] for k in sorted(names)) + '\n')
    lines = []
    for im in coco['images']:
        shutil.copy(os.path.join(coco_dir, 'train', im['file_name']), out)
        objects = ''.join(
            f"<object><name>{names[a['category_id']]}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{a['bbox'][0]}</xmin><ymin>{a['bbox'][1]}</ymin>"
            f"<xmax>{a['bbox'][0] + a['bbox'][2]}</xmax><ymax>{a['bbox'][1] + a['bbox'][3]}</ymax>"
            f"</bndbox></object>" for a in coco['annotations'] if a['image_id'] == im['id'])
        xml = os.path.join('Annotations', im['file_name'].replace('.jpg', '.xml'))
        with open(os.path.join(out, xml), 'w') as f:
            f.write(f"<annotation><size><width>{im['width']}</width><height>{im['height']}"
                    f"</height></size>{objects}</annotation>")
        lines.append(f"{im['file_name']} {xml}")
    for split in ('trainval.txt', 'test.txt'):
        with open(os.path.join(out, split), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return out


def test_voc_data_trains_and_evaluates_with_voc_map(tiny_set, tmp_path, log_lines):
    data = voc_copy(tiny_set, str(tmp_path / 'voc'))
    fields = ['image', 'gt_bbox', 'gt_class', 'difficult']
    cfg = tiny_config(data, str(tmp_path / 'out'), epoch=1, metric='VOC', **{
        'TrainDataset': {'name': 'VOCDataSet', 'dataset_dir': data, 'anno_path': 'trainval.txt',
                         'label_list': 'label_list.txt', 'data_fields': fields},
        'EvalDataset': {'name': 'VOCDataSet', 'dataset_dir': data, 'anno_path': 'test.txt',
                        'label_list': 'label_list.txt', 'data_fields': fields}})
    trainer = Trainer(cfg, mode='train')
    trainer.train(validate=True)
    assert any(line.startswith('mAP(0.50, 11point) = ') for line in log_lines), log_lines[-5:]
    assert os.path.isfile(tmp_path / 'out' / 'ppyoloe_crn_s_shapes' / 'best_model.pdparams')


def _tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'tool_{name}', os.path.join(ROOT, 'tools',
                                                                              f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_and_eval_tools_take_paddledetection_flags(tiny_set, tmp_path, log_lines):
    # users point the tagged datasets at their data with -o, as PaddleDetection users do
    opts = ['width_mult=0.125', 'epoch=1', 'worker_num=0', f'save_dir={tmp_path}',
            'eval_size=[96, 96]', f'TrainDataset.dataset_dir={tiny_set}',
            f'EvalDataset.dataset_dir={tiny_set}', 'TrainReader.batch_size=4',
            "TrainReader.batch_transforms=[{BatchRandomResize: {target_size: [96], "
            "random_size: true, keep_ratio: false}}, {NormalizeImage: {}}, {Permute: {}}, {PadGT: {}}]",
            "EvalReader.sample_transforms=[{Decode: {}}, {Resize: {target_size: [96, 96], "
            "keep_ratio: false}}, {NormalizeImage: {}}, {Permute: {}}]"]
    trainer = _tool('train').main(['-c', DEMO, '--seed', '3', '-o'] + opts)
    assert trainer.seed == 3 and trainer.dataset.dataset_dir == tiny_set
    weights = str(tmp_path / 'ppyoloe_crn_s_shapes' / 'model_final')
    ap = _tool('eval').main(['-c', DEMO, '--classwise', '-o', f'weights={weights}'] + opts)
    assert ap is not None and 0.0 <= ap <= 1.0
    assert any('Average Precision  (AP) @[ IoU=0.50:0.95' in line for line in log_lines)
    with pytest.raises(SystemExit):  # argparse error naming the missing weights
        _tool('eval').main(['-c', DEMO, '-o', 'weights=', f'EvalDataset.dataset_dir={tiny_set}'])


def test_the_readme_own_data_yaml_trains_without_data_fields(tiny_set, tmp_path, log_lines):
    # README's "Your own data" file: a new !COCODataSet tag replaces the base's whole, and users
    # do not write data_fields (PaddleDetection's default is ['image'])
    user = tmp_path / 'mine.yml'
    user.write_text(f"""
_BASE_: ['{DEMO}']
num_classes: 5
epoch: 1
TrainDataset: !COCODataSet {{dataset_dir: {tiny_set}, image_dir: train,
                            anno_path: annotations/instances_train.json}}
EvalDataset: !COCODataSet {{dataset_dir: {tiny_set}, image_dir: val,
                           anno_path: annotations/instances_val.json, allow_empty: true}}
""")
    opts = tiny_config(tiny_set, str(tmp_path / 'out'))  # the tiny model and readers
    cfg = load_config(str(user), overrides={k: v for k, v in {
        'width_mult': 0.125, 'worker_num': 0, 'save_dir': str(tmp_path / 'out'),
        'eval_size': [96, 96], 'TrainReader': dict(opts.TrainReader),
        'EvalReader': dict(opts.EvalReader)}.items()})
    trainer = Trainer(cfg, mode='train')
    assert trainer.dataset.data_fields == ['image', 'gt_bbox', 'gt_class']
    trainer.train(validate=True)
    assert any("lacks ['gt_bbox', 'gt_class']" in line for line in log_lines)
    assert os.path.isfile(tmp_path / 'out' / 'mine' / 'best_model.pdparams')


@pytest.mark.parametrize('key, value', [('snapshot_epoch', 0), ('epoch', 0), ('log_iter', -1),
                                        ('epoch', 'abc')])
def test_loop_keys_are_checked_before_anything_is_built(tiny_set, tmp_path, key, value):
    cfg = tiny_config(tiny_set, str(tmp_path), **{key: value})
    with pytest.raises(ValueError, match=f'{key} must be an integer >= 1, got {value!r}'):
        Trainer(cfg, mode='train')


def test_resuming_a_finished_run_says_so(tiny_set, tmp_path):
    Trainer(tiny_config(tiny_set, str(tmp_path), epoch=1)).train()
    trainer = Trainer(tiny_config(tiny_set, str(tmp_path), epoch=1))
    with pytest.raises(ValueError, match=r'has completed 1 epochs and the config trains 1.*'
                                         r'-o epoch=11'):
        trainer.resume_weights(str(tmp_path / 'ppyoloe_crn_s_shapes' / 'model_final'))


def test_eval_refuses_weights_of_another_model_and_checkpoints_are_world_readable(tiny_set,
                                                                                   tmp_path):
    Trainer(tiny_config(tiny_set, str(tmp_path), epoch=1)).train()
    weights = tmp_path / 'ppyoloe_crn_s_shapes' / 'model_final'
    mode = os.stat(str(weights) + '.pdparams').st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # as any new file, not mkstemp's 0600
    other = Trainer(tiny_config(tiny_set, str(tmp_path), width_mult=0.25), mode='eval')
    with pytest.raises(ValueError, match=r'only \d+ of the model.s \d+ tensors load.*width_mult'):
        other.load_weights(str(weights))


def test_a_pretrain_weights_url_names_the_key(tiny_set, tmp_path):
    cfg = tiny_config(tiny_set, str(tmp_path), pretrain_weights='https://x/y.pdparams')
    with pytest.raises(ValueError, match='pretrain_weights: .*URL.*pretrain_weights=null'):
        Trainer(cfg, mode='train')


def test_an_evaluation_that_cannot_work_fails_before_training(tiny_set, tmp_path):
    # an EvalReader resizing to 90 px (not a multiple of 32) would fail only at the first snapshot
    cfg = tiny_config(tiny_set, str(tmp_path), **{
        'eval_size': None, 'EvalReader.sample_transforms': [
            {'Decode': {}}, {'Resize': {'target_size': [90, 90], 'keep_ratio': False}},
            {'NormalizeImage': {}}, {'Permute': {}}]})
    trainer = Trainer(cfg, mode='train')
    with pytest.raises(ValueError, match=r'first evaluation batch fails.*90.*multiple'):
        trainer.train(validate=True)
    assert not os.path.exists(tmp_path / 'ppyoloe_crn_s_shapes')  # nothing trained or written
