"""The interface every evaluation metric offers the trainer (PaddleDetection 2.6's
``ppdet/metrics/metrics.py`` ``Metric``): ``reset``, ``update(inputs, outputs)`` per batch,
``accumulate`` once after the last batch, ``log`` and ``get_results``."""

import paddle

__all__ = ['Metric']


class Metric(paddle.metric.Metric):
    """Base of the detection metrics; a ``paddle.metric.Metric`` like PaddleDetection's."""

    def name(self):
        return self.__class__.__name__

    def reset(self):
        """Forget every batch seen so far."""
        raise NotImplementedError

    def update(self, inputs, outputs):
        """Add one batch: ``inputs`` the reader's batch dict, ``outputs`` the model's eval dict."""
        raise NotImplementedError

    def accumulate(self):
        """Compute the metric over every batch since ``reset``."""
        raise NotImplementedError

    def log(self):
        """Log what ``accumulate`` computed, where that is not done by ``accumulate`` itself."""

    def get_results(self):
        """``{name: [values]}`` of the last ``accumulate``; the first value ranks checkpoints."""
        raise NotImplementedError
