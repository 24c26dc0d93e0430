"""The detector contract: one dict in, one dict out."""

import paddle.nn as nn

__all__ = ['BaseArch']


class BaseArch(nn.Layer):
    """Base class of detectors.

    ``forward(inputs)`` takes one dict. In train mode it returns the loss dict of ``get_loss``;
    in eval mode the prediction dict of ``get_pred``. Subclasses implement both and read what they
    need from ``inputs``; nothing is kept on ``self`` between calls.
    """

    def __init__(self, data_format='NCHW'):
        super().__init__()
        if data_format != 'NCHW':
            raise ValueError(f"{type(self).__name__}: only data_format='NCHW' is supported, "
                             f"got {data_format!r}")
        self.data_format = data_format

    def forward(self, inputs):
        if not isinstance(inputs, dict) or 'image' not in inputs:
            raise TypeError(f'{type(self).__name__}.forward expects a dict with an "image" '
                            f'entry, got {type(inputs).__name__}')
        return self.get_loss(inputs) if self.training else self.get_pred(inputs)

    def get_loss(self, inputs):
        raise NotImplementedError

    def get_pred(self, inputs):
        raise NotImplementedError
