"""Training hooks with PaddleDetection's callback names (``ppdet/engine/callbacks.py``).

The trainer owns the loop; everything else (LR stepping, EMA, logging, checkpoints, evaluation,
loss health) is a ``Callback`` that reads and writes the shared ``status`` dict:

    status = {'mode': 'train' | 'eval', 'epoch_id', 'step_id', 'steps_per_epoch',
              'outputs' (the step's loss dict of device tensors), 'batch' (the step's input
              dict), 'learning_rate' (float, before the step's scheduler update),
              'batch_time' / 'data_time' (seconds), 'stop' (set by a hook to end training)}

Hooks are called in list order at each event, as PaddleDetection's ``ComposeCallback`` does.
"""

__all__ = ['Callback', 'ComposeCallback', 'LRStepper', 'EMAUpdater', 'StopTraining']


class StopTraining(RuntimeError):
    """Raised by a hook to end training now; the message says why and what was kept."""


class Callback(object):
    """Base hook: every event is a no-op. ``trainer`` gives access to the model, config, etc."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, status):
        pass

    def on_epoch_begin(self, status):
        pass

    def on_step_begin(self, status):
        pass

    def on_step_end(self, status):
        pass

    def on_epoch_end(self, status):
        pass

    def on_train_end(self, status):
        pass


class ComposeCallback(object):
    """Calls each hook's event in order."""

    def __init__(self, callbacks):
        for c in callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f'callbacks must be Callback instances, got {type(c).__name__}')
        self.callbacks = list(callbacks)

    def _each(self, event, status):
        for c in self.callbacks:
            getattr(c, event)(status)

    def on_train_begin(self, status):
        self._each('on_train_begin', status)

    def on_epoch_begin(self, status):
        self._each('on_epoch_begin', status)

    def on_step_begin(self, status):
        self._each('on_step_begin', status)

    def on_step_end(self, status):
        self._each('on_step_end', status)

    def on_epoch_end(self, status):
        self._each('on_epoch_end', status)

    def on_train_end(self, status):
        self._each('on_train_end', status)


class LRStepper(Callback):
    """Advances the per-iteration LR schedule after each optimizer step (PaddleDetection's
    schedules are tabulated per iteration, not per epoch)."""

    def on_step_end(self, status):
        if status['mode'] == 'train':
            self.trainer.lr.step()


class EMAUpdater(Callback):
    """Updates the model EMA after each optimizer step (device-side ops only)."""

    def on_step_end(self, status):
        if status['mode'] == 'train':
            self.trainer.ema.update()
