"""Loss statistics over a logging window, kept on the device.

Reading a loss value (``.numpy()``) waits for the device to finish every queued step. Training
therefore only adds each step's losses to device-side sums and reads them once per window
(``log_iter`` steps, and at each epoch end): one synchronisation per window instead of one per step.
"""

import paddle

__all__ = ['TrainingStats']


class TrainingStats(object):
    """Per-window sums of the loss terms, the number of real GT boxes, and the first step whose
    total loss was not finite.

    ``update(outputs, batch, global_step)`` per step; ``fetch()`` reads and resets the window.
    """

    def __init__(self):
        self._reset()

    def _reset(self):
        self.sums = {}
        self.num_gt = None
        self.first_nonfinite = None
        self.steps = 0

    def update(self, outputs, batch, global_step):
        """outputs: the model's loss dict (0-D float tensors); batch: its input dict
        (``pad_gt_mask [B, n, 1]``); global_step: int, iterations since training started."""
        for key, value in outputs.items():
            value = value.detach().astype('float32')
            self.sums[key] = value if key not in self.sums else self.sums[key] + value
        mask = batch.get('pad_gt_mask')
        # a batch without GT slots is [B, 0, 1]; Paddle 2.6 refuses to reduce an empty tensor
        gt = mask.sum() if mask is not None and 0 not in mask.shape else paddle.zeros([])
        self.num_gt = gt if self.num_gt is None else self.num_gt + gt
        bad = paddle.logical_not(paddle.isfinite(outputs['loss'].detach())).astype('int64')
        # step + 1 where this step is bad, else 0; the window keeps the first bad step
        mark = bad * (global_step + 1)
        if self.first_nonfinite is None:
            self.first_nonfinite = mark
        else:
            self.first_nonfinite = paddle.where(self.first_nonfinite > 0, self.first_nonfinite,
                                                mark)
        self.steps += 1

    def fetch(self):
        """Returns ``{'steps': k, 'means': {term: float}, 'num_gt': float,
        'first_nonfinite_step': int or None}`` for the window (None if it is empty) and starts a
        new window. One device synchronisation."""
        if self.steps == 0:
            return None
        keys = list(self.sums)
        packed = paddle.stack([self.sums[k].reshape([]) for k in keys] +
                              [self.num_gt.astype('float32').reshape([]),
                               self.first_nonfinite.astype('float32').reshape([])]).numpy()
        window = {'steps': self.steps,
                  'means': {k: float(v) / self.steps for k, v in zip(keys, packed)},
                  'num_gt': float(packed[-2]),
                  'first_nonfinite_step': int(packed[-1]) - 1 if packed[-1] > 0 else None}
        self._reset()
        return window
