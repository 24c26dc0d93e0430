"""Stops training that has gone wrong instead of training through it.

Three failure modes are checked at each window the trainer reads (no extra synchronisation):

* a non-finite total loss (NaN/Inf) at any step: the weights are already poisoned, so training
  stops before any checkpoint of them is written; the last good checkpoint stays on disk;
* a silent collapse: every loss term exactly 0 over a whole window although the batches held GT
  boxes (seen with PaddleDetection's recipe on small datasets at a high learning rate: the scores
  collapse to 0, the soft targets follow, and all terms read 0.0 without any NaN);
* a runaway classification loss: the window mean of ``loss_cls`` stays above
  ``cls_runaway_factor`` times its lowest window mean for ``patience`` windows in a row (the
  early sign of the same collapse).

A step that raises is checked once more (``raise_if_weights_nonfinite``): weights gone non-finite
stop training the same way, since Paddle's CPU kernels can reject NaN inputs before a loss is NaN.
"""

import paddle

from ppdet_lite.utils.logger import get_logger
from .callbacks import Callback, StopTraining

__all__ = ['LossGuard', 'raise_if_weights_nonfinite']

logger = get_logger(__name__)

_TERMS = ('loss_cls', 'loss_iou', 'loss_dfl')
_LR_ADVICE = ('Lower LearningRate.base_lr, lengthen the warm-up or set '
              'OptimizerBuilder.clip_grad_by_norm.')


def _where(status):
    return f"epoch {status['epoch_id']}, step {status['step_id'] + 1}/{status['steps_per_epoch']}"


def _kept(trainer):
    last = trainer.last_checkpoint
    return f'the last good checkpoint is {last}' if last else 'no checkpoint had been written yet'


def raise_if_weights_nonfinite(trainer, error, global_step, status):
    """Called when a training step raised: if the weights went non-finite (Paddle's CPU kernels
    reject NaN inputs, e.g. in the BCE of the classification loss, before any loss is NaN), raise
    StopTraining like a NaN loss; otherwise return, and the caller re-raises ``error``."""
    bad = [name for name, value in trainer.model.state_dict().items()
           if value.dtype in (paddle.float16, paddle.float32, paddle.float64)
           and not bool(paddle.isfinite(value).all())]
    if bad:
        raise StopTraining(
            f'training stopped at iteration {global_step} ({_where(status)}): {len(bad)} weight '
            f'tensors are no longer finite (first: {bad[0]}), so the step failed '
            f'({type(error).__name__}); {_kept(trainer)}. {_LR_ADVICE}') from error


class LossGuard(Callback):
    """Args:
        trainer: the trainer (for its checkpoint directory).
        cls_runaway_factor (float): ratio to the best window mean of ``loss_cls`` that counts as
            running away; 0 disables the check.
        patience (int): consecutive runaway windows before stopping.
    Raises StopTraining with the step, the values and advice.
    """

    def __init__(self, trainer, cls_runaway_factor=10.0, patience=3):
        super().__init__(trainer)
        if cls_runaway_factor and cls_runaway_factor <= 1:
            raise ValueError(f'LossGuard.cls_runaway_factor must be > 1 (or 0 to disable), '
                             f'got {cls_runaway_factor}')
        if patience < 1:
            raise ValueError(f'LossGuard.patience must be >= 1, got {patience}')
        self.cls_runaway_factor = cls_runaway_factor
        self.patience = patience
        self.best_cls = None
        self.runaway_windows = 0

    def on_step_end(self, status):
        window = status.get('window')
        if status['mode'] != 'train' or window is None:
            return
        means = window['means']
        bad_step = window['first_nonfinite_step']
        if bad_step is not None:
            raise StopTraining(
                f'loss is not finite at iteration {bad_step} (window ending at '
                f'{_where(status)}; window means {_fmt(means)}); training stopped and '
                f'{_kept(self.trainer)}. {_LR_ADVICE}')
        terms = [means[k] for k in _TERMS if k in means]
        if terms and window['num_gt'] > 0 and all(v == 0.0 for v in terms):
            raise StopTraining(
                f'training collapsed: every loss term is exactly 0 over the window ending at '
                f'{_where(status)} although the batches held {int(window["num_gt"])} GT '
                f'boxes; training stopped and {_kept(self.trainer)}. The predicted scores have '
                f'collapsed: lower LearningRate.base_lr, use hard targets in the static '
                f'assigner phase, or check the labels.')
        cls = means.get('loss_cls')
        if not self.cls_runaway_factor or cls is None:
            return
        if self.best_cls is None or cls < self.best_cls:
            self.best_cls = cls
        if cls > self.cls_runaway_factor * self.best_cls:
            self.runaway_windows += 1
            logger.warning(f'loss_cls {cls:.4f} is {cls / self.best_cls:.1f}x its best window '
                           f'mean {self.best_cls:.4f} ({_where(status)})')
            if self.runaway_windows >= self.patience:
                raise StopTraining(
                    f'classification loss is running away: above {self.cls_runaway_factor}x its '
                    f'best window mean {self.best_cls:.4f} for {self.runaway_windows} windows '
                    f'(now {cls:.4f}, {_where(status)}); training stopped and '
                    f'{_kept(self.trainer)}. Lower LearningRate.base_lr or lengthen the '
                    f'warm-up; from scratch, set PPYOLOEHead.static_target: hard (see README, '
                    f'small datasets); '
                    f'-o LossGuard.cls_runaway_factor=0 turns this check off.')
        else:
            self.runaway_windows = 0


def _fmt(means):
    return ', '.join(f'{k} {v:.4g}' for k, v in means.items())
