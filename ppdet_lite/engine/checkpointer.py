"""Checkpoints: every ``snapshot_epoch`` epochs, the final epoch, and the best evaluation.

Files follow PaddleDetection (``ppdet/utils/checkpoint.py:save_model``): in
``<save_dir>/<config stem>/``, ``<epoch>.pdparams`` (``model_final`` for the last epoch,
``best_model`` for the best bbox AP), holding the EMA weights when EMA is on (the raw weights go to
``.pdema``), and ``.pdopt`` with the optimizer state, ``last_epoch`` and what exact resumption
needs. Every file is written atomically.
"""

import os

import paddle.distributed as dist

from ppdet_lite.utils.checkpoint import save_model
from ppdet_lite.utils.logger import get_logger
from .callbacks import Callback

__all__ = ['Checkpointer']

logger = get_logger(__name__)


class Checkpointer(Callback):
    """Saves at train epoch ends (snapshot epochs and the last) and after an evaluation that
    improved the best bbox AP (``best_model``). Only rank 0 writes."""

    def __init__(self, trainer):
        super().__init__(trainer)
        self.save_dir = os.path.join(trainer.cfg.get('save_dir', 'output'), trainer.cfg.filename)

    def _save(self, status, name):
        trainer = self.trainer
        ema_state = status.get('ema_state')  # set with raw_state by the trainer when EMA is on
        model_state = status['raw_state'] if ema_state is not None else trainer.model.state_dict()
        save_model(model_state, trainer.optimizer, self.save_dir, name, status['epoch_id'] + 1,
                   ema_model=ema_state, extra_state=trainer.resume_state())
        return os.path.join(self.save_dir, name)

    def on_epoch_end(self, status):
        if dist.get_world_size() > 1 and dist.get_rank() != 0:
            return
        epoch_id = status['epoch_id']
        if status['mode'] == 'train':
            if status['snapshot']:  # the trainer's decision: every snapshot_epoch, and the last
                last = epoch_id == self.trainer.cfg.epoch - 1
                self.trainer.last_checkpoint = self._save(
                    status, 'model_final' if last else str(epoch_id))
        elif status['mode'] == 'eval' and status.get('save_best_model'):
            ap = status.get('bbox_ap')
            if ap is None:
                logger.warning('evaluation gave no bbox results; best_model not updated')
                return
            if ap >= self.trainer.best_ap:
                self.trainer.best_ap = ap
                self._save(status, 'best_model')
            logger.info(f'best bbox AP so far: {self.trainer.best_ap:.4f}')
