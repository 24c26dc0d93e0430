"""The training and evaluation loop (PaddleDetection's ``Trainer``, made small).

The trainer builds what the config names (``architecture``, ``{Train,Eval}Dataset``,
``{Train,Eval}Reader``, ``LearningRate``, ``OptimizerBuilder``, EMA keys, ``metric``), then runs a
plain loop; LR stepping, EMA, logging, checkpoints and loss-health checks are hooks
(``ppdet_lite.engine.callbacks``). Loss values stay on the device between logging windows.
"""

import math
import random
import time

import numpy as np
import paddle
import paddle.distributed as dist

from ppdet_lite.core.workspace import create
from ppdet_lite.utils.checkpoint import (load_extra_state, load_pretrain_weights, load_weight,
                                         load_weights)
from ppdet_lite.utils.logger import get_logger
from .callbacks import ComposeCallback, EMAUpdater, LRStepper, StopTraining
from .checkpointer import Checkpointer
from .log_printer import LogPrinter
from .loss_guard import LossGuard, raise_if_weights_nonfinite
from .stats import TrainingStats

__all__ = ['Trainer']

logger = get_logger(__name__)


def _select_device(cfg):
    want_gpu = bool(cfg.get('use_gpu', False))
    if want_gpu and paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        paddle.set_device('gpu')
        return 'gpu'
    if want_gpu:
        logger.info('use_gpu is set but this Paddle build or machine has no GPU: using the CPU')
    paddle.set_device('cpu')
    return 'cpu'


def _seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def _check_run_keys(cfg):
    """The loop's own top-level keys, checked before anything is built (a zero snapshot_epoch
    would otherwise fail only after the first epoch)."""
    for key, default in (('epoch', None), ('snapshot_epoch', 1), ('log_iter', 20)):
        value = cfg.get(key, default)
        if value is None and key == 'epoch':
            raise ValueError('config has no `epoch`: set the number of training epochs')
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{key} must be an integer >= 1, got {value!r}')


class Trainer(object):
    """Args:
        cfg (AttrDict): a loaded config (``load_config``); the trainer reads, and for the
            datasets it builds, writes back ``cfg.TrainDataset`` / ``cfg.EvalDataset``.
        mode (str): 'train' or 'eval'.
    Config keys read (PaddleDetection's): architecture, epoch, log_iter, snapshot_epoch, save_dir,
    worker_num, use_gpu, use_ema, ema_decay, ema_decay_type, cycle_epoch, ema_black_list,
    ema_filter_no_grad, metric, num_classes, pretrain_weights, weights, amp, norm_type,
    custom_black_list, and ours: seed (default 0), LossGuard (its arguments).
    """

    def __init__(self, cfg, mode='train'):
        if mode not in ('train', 'eval'):
            raise ValueError(f"Trainer mode must be 'train' or 'eval', got {mode!r}")
        self.cfg = cfg
        self.mode = mode
        _check_run_keys(cfg)
        self.device = _select_device(cfg)
        self._nranks = dist.get_world_size()
        self._rank = dist.get_rank()
        if self._nranks > 1:
            dist.init_parallel_env()
        self.seed = int(cfg.get('seed', 0))
        _seed_everything(self.seed)

        self.model = create(cfg.architecture)
        self.start_epoch = 0
        self.best_ap = -math.inf
        self.last_checkpoint = None
        self.optimizer = None
        self.ema = None
        self._eval = None
        self._extra_callbacks = []

        if mode == 'train':
            self.dataset = cfg['TrainDataset'] = create('TrainDataset')()
            self._require_gt_fields(self.dataset)
            self.dataset.set_kwargs(seed=self.seed)
            self.loader = create('TrainReader')(self.dataset, cfg.get('worker_num', 0))
            self._check_num_classes(self.dataset, 'TrainDataset')  # parsed by the reader
            self.batch_size = int(cfg.TrainReader['batch_size'])
            steps_per_epoch = len(self.loader)
            if steps_per_epoch < 1:
                raise ValueError(f'TrainDataset has {len(self.dataset)} images, fewer than '
                                 f'TrainReader.batch_size {self.batch_size} with drop_last: '
                                 f'no training step; lower the batch size')
            lr_builder = create('LearningRate')
            _, message = lr_builder.scale_to(self.batch_size * self._nranks)
            logger.info(message)
            self.lr = lr_builder(steps_per_epoch)
            self.optimizer = create('OptimizerBuilder')(self.lr, self.model)
            pretrain = cfg.get('pretrain_weights')
            if pretrain:
                try:
                    load_pretrain_weights(self.model, pretrain)
                except (ValueError, FileNotFoundError) as e:
                    raise type(e)(f'pretrain_weights: {e} (or train from scratch with '
                                  f'-o pretrain_weights=null)') from e
        else:
            self.dataset = cfg['EvalDataset'] = create('EvalDataset')()
            self.loader = self._make_eval_loader(self.dataset)

        if cfg.get('use_ema', False):
            from ppdet_lite.optim import ModelEMA
            self.ema = ModelEMA(self.model, decay=cfg.get('ema_decay', 0.9998),
                                ema_decay_type=cfg.get('ema_decay_type', 'threshold'),
                                cycle_epoch=cfg.get('cycle_epoch', -1),
                                ema_black_list=cfg.get('ema_black_list'),
                                ema_filter_no_grad=cfg.get('ema_filter_no_grad', False))

    # ------------------------------------------------------------------------------------------
    # weights

    @staticmethod
    def _require_gt_fields(dataset):
        """Training needs the GT boxes and classes: a ``!COCODataSet`` / ``!VOCDataSet`` written
        without ``data_fields`` (PaddleDetection's default is ``['image']``) gets them added,
        with a log line, instead of failing in PadGT at the first batch."""
        fields = getattr(dataset, 'data_fields', None)
        if fields is None:
            return
        missing = [f for f in ('gt_bbox', 'gt_class') if f not in fields]
        if missing:
            dataset.data_fields = list(fields) + missing
            logger.info(f'TrainDataset.data_fields {list(fields)} lacks {missing}, which '
                        f'training needs: using {dataset.data_fields}')

    def _check_num_classes(self, dataset, key):
        num_classes = self.cfg.get('num_classes')
        catid2clsid = getattr(dataset, 'catid2clsid', None)
        if num_classes is None or not catid2clsid:
            return
        if len(catid2clsid) > num_classes:
            raise ValueError(f'{key} has {len(catid2clsid)} categories but num_classes is '
                             f'{num_classes}: set num_classes: {len(catid2clsid)} in the config')
        if len(catid2clsid) < num_classes:
            logger.warning(f'{key} has {len(catid2clsid)} categories, num_classes is '
                           f'{num_classes}: the extra classes never get positives')

    def load_weights(self, path):
        """Weights for evaluation, by exact parameter names (report logged). A file that does
        not fill the whole model (a tensor missing or of another shape) is refused, as the
        exporter does: evaluating a partly random model is never what was meant (usually a
        config that differs from the training one, e.g. another ``num_classes``). Training's
        ``pretrain_weights`` load partially through ``load_pretrain_weights`` instead."""
        report = load_weights(self.model, path)
        total = len(self.model.state_dict())
        if report.missing or report.mismatched:
            raise ValueError(f'weights {path}: only {len(report.loaded)} of the model\'s {total} '
                             f'tensors load ({len(report.mismatched)} differ in shape, '
                             f'{len(report.missing)} missing); was it trained with this config '
                             f'(width_mult, depth_mult, num_classes)?')
        return report

    def resume_weights(self, path):
        """Continue a run from its checkpoint: model, optimizer, LR schedule, EMA and the
        trainer's own state; training restarts at the epoch after the saved one."""
        self.start_epoch = load_weight(self.model, path, self.optimizer, self.ema)
        if self.start_epoch >= self.cfg.epoch:
            raise ValueError(f'checkpoint {path} has completed {self.start_epoch} epochs and the '
                             f'config trains {self.cfg.epoch}: nothing to resume (raise epoch, '
                             f'e.g. -o epoch={self.start_epoch + 10})')
        self.best_ap = load_extra_state(path).get('best_ap', self.best_ap)
        logger.info(f'resumed from {path}: continuing at epoch {self.start_epoch}')

    def resume_state(self):
        """What a checkpoint stores besides model, optimizer and LR schedule, for exact
        resumption: the best AP so far and the EMA's raw averages and counters."""
        state = {'best_ap': float(self.best_ap)}
        if self.ema is not None:
            state.update(ema_step=self.ema.step, ema_epoch=self.ema.epoch,
                         ema_state=self.ema.state_dict())
        return state

    # ------------------------------------------------------------------------------------------
    # evaluation

    def _make_eval_loader(self, dataset):
        batch_size = self.cfg.EvalReader.get('batch_size', 1)
        sampler = paddle.io.BatchSampler(dataset, batch_size=batch_size)
        # VOC's metric reads each image's GT boxes unpadded (PaddleDetection's rule)
        extra = {'collate_batch': False} if self.cfg.get('metric', 'COCO') == 'VOC' else {}
        return create('EvalReader', **extra)(dataset, self.cfg.get('worker_num', 0), sampler)

    def _make_metric(self, dataset):
        metric = self.cfg.get('metric', 'COCO')
        classwise = bool(self.cfg.get('classwise', False))
        if metric == 'COCO':
            from ppdet_lite.metrics import COCOMetric
            return COCOMetric(anno_file=dataset.get_anno(),
                              clsid2catid=getattr(dataset, 'clsid2catid', None),
                              classwise=classwise, output_eval=self.cfg.get('output_eval'),
                              bias=self.cfg.get('bias', 0),
                              save_prediction_only=self.cfg.get('save_prediction_only', False))
        if metric == 'VOC':
            from ppdet_lite.metrics import VOCMetric
            return VOCMetric(label_list=dataset.get_label_list(),
                             class_num=self.cfg.num_classes,
                             map_type=self.cfg.get('map_type', '11point'), classwise=classwise)
        raise ValueError(f"metric must be 'COCO' or 'VOC', got {metric!r}")

    def _eval_step(self, data, metric):
        with paddle.no_grad():
            metric.update(data, self.model(data))

    def _try_eval_batch(self, loader, metric):
        """Run the model on one evaluation batch before training, so that an evaluation that
        cannot work (an EvalReader size the model refuses, a metric that cannot read the batch)
        fails now rather than after the first ``snapshot_epoch`` epochs."""
        data = next(iter(loader))
        self.model.eval()
        try:
            self._eval_step(data, metric)
        except Exception as e:
            raise ValueError(f'--eval: the first evaluation batch fails, so evaluation would fail '
                             f'after training: {type(e).__name__}: {e}') from e
        finally:
            metric.reset()
            self.model.train()

    def evaluate(self, loader=None, metric=None):
        """Run the model over the eval loader (default: this trainer's) and return the bbox AP
        (AP@[.5:.95] for COCO, mAP for VOC); the metric (default: one for this trainer's
        dataset) starts from reset and prints its summary."""
        loader = loader or self.loader
        metric = metric or self._make_metric(self.dataset)
        metric.reset()
        self.model.eval()
        tic, sample_num = time.time(), 0
        for data in loader:
            self._eval_step(data, metric)
            sample_num += int(data['im_id'].shape[0])
        self.eval_status = {'sample_num': sample_num, 'cost_time': time.time() - tic}
        metric.accumulate()
        metric.log()
        results = metric.get_results().get('bbox')
        if self.mode == 'train':
            self.model.train()
        return None if results is None or len(results) == 0 else float(results[0])

    # ------------------------------------------------------------------------------------------
    # training

    def register_callbacks(self, callbacks):
        """Add hooks (``Callback`` instances) run after the built-in ones, as
        PaddleDetection's ``Trainer.register_callbacks``."""
        self._extra_callbacks.extend(callbacks)

    def _callbacks(self):
        guard = LossGuard(self, **dict(self.cfg.get('LossGuard') or {}))
        hooks = [guard, LRStepper(self)]
        if self.ema is not None:
            hooks.append(EMAUpdater(self))
        hooks += [LogPrinter(self), Checkpointer(self)]
        if self.cfg.get('use_vdl', False):
            from .visualdl_writer import VisualDLWriter
            hooks.append(VisualDLWriter(self))
        return ComposeCallback(hooks + self._extra_callbacks)

    def _amp(self):
        if not self.cfg.get('amp', False):
            return None
        if self.device != 'gpu':
            logger.warning('--amp needs a GPU: training in float32')
            return None
        return paddle.amp.GradScaler(init_loss_scaling=self.cfg.get('init_loss_scaling', 1024))

    def train(self, validate=False):
        """Train from ``start_epoch`` to ``cfg.epoch``; with ``validate``, evaluate at every
        snapshot epoch and keep ``best_model``. Raises StopTraining if a LossGuard check fails
        (after logging it); checkpoints already written are kept."""
        if self.mode != 'train':
            raise ValueError("Trainer.train needs mode='train'")
        cfg = self.cfg
        model = self.model
        if cfg.get('norm_type') == 'sync_bn' and self.device == 'gpu' and self._nranks > 1:
            model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if self._nranks > 1:
            model = paddle.DataParallel(model)
        if validate and self._rank == 0:  # as PaddleDetection: one rank evaluates
            eval_dataset = cfg['EvalDataset'] = create('EvalDataset')()
            # built once: a COCO metric reads its annotation file when it is made
            self._eval = (self._make_eval_loader(eval_dataset), self._make_metric(eval_dataset))
            self._try_eval_batch(*self._eval)
        scaler = self._amp()
        callbacks = self._callbacks()
        stats = TrainingStats()
        log_iter = cfg.get('log_iter', 20)
        steps_per_epoch = len(self.loader)
        status = {'mode': 'train', 'epoch_id': self.start_epoch, 'step_id': 0,
                  'steps_per_epoch': steps_per_epoch}
        global_step = self.start_epoch * steps_per_epoch

        callbacks.on_train_begin(status)
        try:
            for epoch_id in range(self.start_epoch, cfg.epoch):
                status.update(mode='train', epoch_id=epoch_id)
                # shuffle order and augmentation are functions of the epoch, so a resumed run
                # replays exactly the batches of an uninterrupted one
                self.loader.set_epoch(epoch_id)
                callbacks.on_epoch_begin(status)
                model.train()
                tic = time.time()
                for step_id, data in enumerate(self.loader):
                    status['data_time'] = time.time() - tic
                    status['step_id'] = step_id
                    data['epoch_id'] = epoch_id
                    callbacks.on_step_begin(status)
                    try:
                        outputs = self._step(model, data, scaler)
                    except Exception as e:
                        raise_if_weights_nonfinite(self, e, global_step, status)
                        raise
                    status['learning_rate'] = self.optimizer.get_lr()
                    stats.update(outputs, data, global_step)
                    global_step += 1
                    window_end = (step_id + 1) % log_iter == 0 or step_id == steps_per_epoch - 1
                    status['window'] = stats.fetch() if window_end else None
                    status['outputs'] = outputs
                    callbacks.on_step_end(status)
                    tic = time.time()
                self._end_epoch(status, callbacks)
        except StopTraining as e:
            logger.error(str(e))
            raise
        callbacks.on_train_end(status)

    def _step(self, model, data, scaler):
        if scaler is not None:
            with paddle.amp.auto_cast(custom_black_list=self.cfg.get('custom_black_list'),
                                      level=self.cfg.get('amp_level', 'O1')):
                outputs = model(data)
            scaled = scaler.scale(outputs['loss'])
            scaled.backward()
            scaler.minimize(self.optimizer, scaled)
        else:
            outputs = model(data)
            outputs['loss'].backward()
            self.optimizer.step()
        self.optimizer.clear_grad()
        return outputs

    def _end_epoch(self, status, callbacks):
        cfg = self.cfg
        epoch_id = status['epoch_id']
        snapshot = (epoch_id + 1) % cfg.get('snapshot_epoch', 1) == 0 or epoch_id == cfg.epoch - 1
        status['snapshot'] = snapshot
        if snapshot and self.ema is not None:
            # checkpoints and evaluation use the EMA weights; training continues on the raw ones
            status['raw_state'] = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.set_state_dict(self.ema.apply())
            status['ema_state'] = self.model.state_dict()
        callbacks.on_epoch_end(status)
        if snapshot and self._eval is not None:
            status['bbox_ap'] = self.evaluate(*self._eval)
            status.update(self.eval_status, mode='eval', save_best_model=True)
            callbacks.on_epoch_end(status)
            status.update(mode='train', save_best_model=False)
        if snapshot and self.ema is not None:
            self.model.set_state_dict(status.pop('raw_state'))
            status.pop('ema_state')
