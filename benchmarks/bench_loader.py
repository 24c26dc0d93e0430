"""Images per second of the training data loader alone (no model), to check that the loader is
not what a training step waits for.

Generates ``--images`` (default: one epoch's worth, since each epoch starts new workers)
synthetic 256 x 256 JPEG images (``ppdet_lite.data.synthetic``, preset ``demo_shapes``) in a
temporary directory, reads them with COCODataSet and runs the TrainReader of ``--config``
(default: PP-YOLOE's ``configs/ppyoloe/_base_/ppyoloe_reader.yml`` through
``ppyoloe_crn_s_300e_coco.yml``: Decode, RandomDistort, RandomExpand, RandomCrop, RandomFlip,
BatchRandomResize 320-768, NormalizeImage, Permute, PadGT, batch 8) for each worker count in
``--workers``. The first batch (worker start-up) is not timed; the figure covers ``--batches``
batches after it.

    python benchmarks/bench_loader.py [--workers 0,2] [--batches 24] [--images N]
                                      [--config CFG] [--batch-size N]
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppdet_lite.core.workspace import create, load_config  # noqa: E402
from ppdet_lite.data import synthetic  # noqa: E402
from ppdet_lite.data.datasets import COCODataSet  # noqa: E402


def images_per_second(reader, worker_num, dataset, batches):
    loader = reader(dataset, worker_num)
    done, start, images = 0, None, 0
    while done < batches:
        batch_iter = iter(loader)
        for batch in batch_iter:
            if start is None:       # the first batch pays for starting the workers
                start = time.perf_counter()
                continue
            images += batch['image'].shape[0]
            done += 1
            if done == batches:
                break
    elapsed = time.perf_counter() - start
    # finish the pass so the workers exit before the generated images are deleted
    for _ in batch_iter:
        pass
    return images / elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=os.path.join(ROOT, 'configs', 'ppyoloe',
                                                         'ppyoloe_crn_s_300e_coco.yml'))
    parser.add_argument('--workers', default='0,2', help='comma-separated worker counts')
    parser.add_argument('--batches', type=int, default=24)
    parser.add_argument('--images', type=int, default=None,
                        help='default: enough for one epoch of the timed batches, since each '
                             'epoch starts new workers')
    parser.add_argument('--batch-size', type=int, default=None, help='overrides the config')
    args = parser.parse_args(argv)

    overrides = {'TrainReader.batch_size': args.batch_size} if args.batch_size else None
    cfg = load_config(args.config, overrides=overrides)
    batch_size = cfg['TrainReader']['batch_size']
    if args.images is None:
        args.images = (args.batches + 2) * batch_size
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.generate(tmp, preset='demo_shapes', num_train=args.images, num_val=0,
                           image_size=(256, 256))
        print(f'{os.path.relpath(args.config, ROOT)}: TrainReader batch {batch_size}, '
              f'{args.images} images of 256 x 256, {args.batches} timed batches')
        for worker_num in [int(w) for w in args.workers.split(',')]:
            dataset = COCODataSet(dataset_dir=tmp, image_dir='train',
                                  anno_path='annotations/instances_train.json',
                                  data_fields=['image', 'gt_bbox', 'gt_class', 'is_crowd'])
            ips = images_per_second(create('TrainReader', cfg), worker_num, dataset,
                                    args.batches)
            print(f'worker_num {worker_num}: {ips:7.1f} images/s')


if __name__ == '__main__':
    main()
