"""Progress lines in PaddleDetection's format, with the learning rate in scientific notation."""

import datetime
import time

import paddle.distributed as dist

from ppdet_lite.utils.logger import get_logger
from .callbacks import Callback

__all__ = ['LogPrinter']

logger = get_logger(__name__)


class LogPrinter(Callback):
    """Prints, at each window read by the trainer (every ``log_iter`` steps):

    ``Epoch: [e] [ s/S] learning_rate: 1.000e-03 loss: .. loss_cls: .. eta: h:mm:ss
    batch_cost: 0.50 s data_cost: 0.01 s ips: 16.0 images/s``

    Loss values are means over the window. ``ips`` counts images of this rank per second of wall
    time over the window; ETA extrapolates the average step time since training started.
    In eval mode it prints the number of images and their rate at the end.
    """

    def __init__(self, trainer):
        super().__init__(trainer)
        self._window_start = None
        self._train_start = None
        self._steps_done = 0

    def _rank0(self):
        return dist.get_world_size() < 2 or dist.get_rank() == 0

    def on_train_begin(self, status):
        self._train_start = self._window_start = time.time()
        self._steps_done = 0

    def on_step_end(self, status):
        if status['mode'] != 'train':
            return
        self._steps_done += 1
        window = status.get('window')
        if window is None or not self._rank0():
            return
        now = time.time()
        elapsed = now - self._window_start
        self._window_start = now
        cfg = self.trainer.cfg
        steps_per_epoch = status['steps_per_epoch']
        remaining = ((cfg.epoch - status['epoch_id']) * steps_per_epoch - status['step_id'] - 1)
        per_step = (now - self._train_start) / max(self._steps_done, 1)
        eta = str(datetime.timedelta(seconds=int(remaining * per_step)))
        ips = window['steps'] * self.trainer.batch_size / max(elapsed, 1e-9)
        width = len(str(steps_per_epoch))
        losses = ' '.join(f'{k}: {v:.4f}' for k, v in window['means'].items())
        logger.info(f"Epoch: [{status['epoch_id']}] [{status['step_id'] + 1:{width}d}/"
                    f"{steps_per_epoch}] learning_rate: {status['learning_rate']:.3e} {losses} "
                    f"eta: {eta} batch_cost: {elapsed / window['steps']:.4f} s "
                    f"data_cost: {status['data_time']:.4f} s ips: {ips:.2f} images/s")

    def on_epoch_end(self, status):
        if status['mode'] == 'eval' and self._rank0():
            n, cost = status['sample_num'], status['cost_time']
            logger.info(f'Eval: {n} images in {cost:.1f} s ({n / max(cost, 1e-9):.2f} images/s)')
