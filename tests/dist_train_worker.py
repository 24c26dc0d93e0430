"""One rank of ``tests/test_distributed.py``, run under ``python -m paddle.distributed.launch``.

``dist_train_worker.py probe DUMP_DIR``: initialise the collective and all-reduce a tensor
holding ``rank + 1``; write ``DUMP_DIR/probe<rank>.json`` with the result.

``dist_train_worker.py train DUMP_DIR -c CONFIG [--eval] [-o ...]``: ``tools/train.py``'s
``main`` with ``save_dir=DUMP_DIR/rank<rank>`` (so which rank wrote a checkpoint is visible),
then write ``DUMP_DIR/rank<rank>.npz`` (``model/<key>`` raw weights, ``ema/<key>`` EMA averages) and
``DUMP_DIR/rank<rank>.json`` (the dataset indices loaded, by image_dir and epoch; the loss
normaliser of per-rank assigned-score sums ``3 * (rank + 1)``; whether the trainer wrote a
checkpoint).
"""

import json
import os
import sys

import numpy as np
import paddle
import paddle.distributed as dist

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tools'))


def probe(dump_dir):
    paddle.set_device('cpu')
    dist.init_parallel_env()
    value = paddle.to_tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    result = {'rank': dist.get_rank(), 'world_size': dist.get_world_size(),
              'sum': float(value.numpy()[0])}
    with open(os.path.join(dump_dir, f'probe{dist.get_rank()}.json'), 'w') as f:
        json.dump(result, f)


def train(dump_dir, argv):
    import train as train_tool
    from ppdet_lite.data.datasets.dataset import DetDataset
    from ppdet_lite.modeling.losses.ppyoloe_loss import PPYOLOELoss

    rank = int(os.environ.get('PADDLE_TRAINER_ID', '0'))
    # (image_dir, epoch, index) of every sample loaded, through the interface the readers use
    loaded, epoch = [], [0]
    get_item, set_epoch = DetDataset.__getitem__, DetDataset.set_epoch

    def recording_set_epoch(self, epoch_id):
        epoch[0] = epoch_id
        set_epoch(self, epoch_id)

    def recording_get_item(self, idx):
        loaded.append((self.image_dir, epoch[0], int(idx)))
        return get_item(self, idx)

    DetDataset.set_epoch, DetDataset.__getitem__ = recording_set_epoch, recording_get_item
    trainer = train_tool.main(argv + ['-o', f'save_dir={dump_dir}/rank{rank}'])

    # a 1x3 block of (rank + 1): sums 3 on rank 0 and 6 on rank 1
    normaliser = PPYOLOELoss._normaliser(paddle.full([1, 3], float(rank + 1)))
    arrays = {f'model/{k}': v.numpy() for k, v in trainer.model.state_dict().items()}
    arrays.update({f'ema/{k}': v.numpy() for k, v in trainer.ema.state_dict().items()})
    np.savez(os.path.join(dump_dir, f'rank{rank}.npz'), **arrays)
    indices = {}
    for image_dir, epoch_id, idx in loaded:
        indices.setdefault(image_dir, {}).setdefault(str(epoch_id), []).append(idx)
    record = {'rank': dist.get_rank(), 'world_size': dist.get_world_size(), 'indices': indices,
              'normaliser': float(normaliser.numpy()),
              'wrote_checkpoint': trainer.last_checkpoint is not None}
    with open(os.path.join(dump_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(record, f)


if __name__ == '__main__':
    mode, dump = sys.argv[1], sys.argv[2]
    if mode == 'probe':
        probe(dump)
    else:
        train(dump, sys.argv[3:])
