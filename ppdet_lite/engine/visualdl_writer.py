"""Optional VisualDL logging (``--use_vdl``): loss terms, learning rate and eval bbox AP."""

import paddle.distributed as dist

from .callbacks import Callback

__all__ = ['VisualDLWriter']


class VisualDLWriter(Callback):
    """Writes scalars under ``vdl_log_dir`` (default ``vdl_log_dir/scalar``) at each logging
    window and evaluation, as PaddleDetection's writer does. Needs ``pip install visualdl``."""

    def __init__(self, trainer):
        super().__init__(trainer)
        try:
            from visualdl import LogWriter
        except ImportError as e:
            raise ImportError('--use_vdl needs VisualDL: pip install visualdl') from e
        self.enabled = dist.get_world_size() < 2 or dist.get_rank() == 0
        if self.enabled:
            self.writer = LogWriter(trainer.cfg.get('vdl_log_dir', 'vdl_log_dir/scalar'))
        self.step = 0

    def on_step_end(self, status):
        if not self.enabled or status['mode'] != 'train':
            return
        self.step += 1
        window = status.get('window')
        if window is None:
            return
        for key, value in window['means'].items():
            self.writer.add_scalar(key, value, self.step)
        self.writer.add_scalar('learning_rate', status['learning_rate'], self.step)

    def on_epoch_end(self, status):
        if self.enabled and status['mode'] == 'eval' and status.get('bbox_ap') is not None:
            self.writer.add_scalar('bbox-mAP', status['bbox_ap'], status['epoch_id'])
