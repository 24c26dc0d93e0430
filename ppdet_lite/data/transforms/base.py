"""BaseOperator: what every sample transform shares (PaddleDetection's ``BaseOperator``).

A sample op implements ``apply(sample) -> sample`` on one record dict. Calling the op on a dict
applies it; calling it on a list of dicts applies it to each, which is how PaddleDetection configs
use sample ops such as ``NormalizeImage`` and ``Permute`` inside ``batch_transforms``.
Batch ops (``batch.py``) override ``__call__`` instead and see the whole list.
"""

__all__ = ['BaseOperator', 'BOX_ALIGNED_FIELDS']

# Per-box fields that must stay row-aligned with ``gt_bbox`` when boxes are dropped or padded.
BOX_ALIGNED_FIELDS = ('gt_class', 'is_crowd', 'difficult', 'gt_score')


class BaseOperator:
    """Base of sample transforms: ``op(sample_dict)`` or ``op([sample_dict, ...])``."""

    def apply(self, sample):
        """Transform one sample dict and return it (subclasses implement this)."""
        raise NotImplementedError(f'{type(self).__name__} does not implement apply()')

    def __call__(self, sample):
        if isinstance(sample, (list, tuple)):
            return [self.apply(s) for s in sample]
        return self.apply(sample)

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items() if not k.startswith('_'))
        return f'{type(self).__name__}({args})'
