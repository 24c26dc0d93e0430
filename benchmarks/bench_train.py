"""Training speed in images per second: the loader alone, the model step alone, and the real
training loop, so that one can see which of the two a training step waits for.

For each case the script builds ``ppdet_lite.engine.Trainer(cfg, mode='train')`` and measures

* **loader**: iterating ``trainer.loader`` (the config's TrainReader and ``worker_num``) with no
  model; the first batch (worker start-up) is not timed, the figure covers ``--loader-batches``
  batches after it;
* **model step**: ``trainer._step`` (forward, backward, optimizer step, clear_grad) repeated on one
  pre-fetched batch, no loader; ``--warmup`` untimed steps, then ``--iters`` timed ones; the
  figure is batch size / median step time (robust to other processes on a shared machine);
* **train loop**: ``trainer.train()`` for one epoch cut to ``--warmup + --iters`` batches of the
  real loader, with every hook (LR step, EMA, loss statistics with their once-per-window host
  read, logging); the figure is images / wall time from the end of the last warm-up step to the
  end of the last step (loader waits included; the epoch-end checkpoint is not).

Every step uses ``epoch_id`` 0, i.e. the static (ATSS) assignment phase of both configs.

Default cases (no ``-c``):

* ``demo``: ``configs/ppyoloe/ppyoloe_crn_s_shapes.yml`` (width 0.25, its batch size) at a fixed
  256 px on ``dataset/demo_shapes`` (generated if missing);
* ``s640``: ``configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml`` (PP-YOLOE-s, batch 8) at a fixed 640 px,
  ``pretrain_weights=null``, on a synthetic 640 px COCO-format set written to a temporary
  directory (a step takes seconds on a CPU, hence the few iterations).

``--size`` replaces BatchRandomResize's sizes by one (0 keeps the config's multi-scale list);
``-o`` overrides apply to every case, after the case's own.

    python benchmarks/bench_train.py [-c CFG [CFG ...]] [--size PX] [--iters N] [--warmup K]
                                     [--loader-batches N] [-o key=value ...]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppdet_lite.core.workspace import load_config  # noqa: E402
from ppdet_lite.engine import Callback, Trainer  # noqa: E402

DEMO_CFG = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_shapes.yml')
S_CFG = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_300e_coco.yml')


class _FirstBatches(object):
    """The first ``n`` batches of a loader, which otherwise stands in for it (``len``, the
    sampler the trainer re-seeds per epoch)."""

    def __init__(self, loader, n):
        self._loader = loader
        self._n = min(n, len(loader))

    def __len__(self):
        return self._n

    def __iter__(self):
        for _, batch in zip(range(self._n), self._loader):
            yield batch

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _StepClock(Callback):
    """The time at which each training step's hooks have all run."""

    def __init__(self, trainer):
        super().__init__(trainer)
        self.ends = []

    def on_step_end(self, status):
        if status['mode'] == 'train':
            self.ends.append(time.perf_counter())


def fix_train_size(cfg, size):
    """Make every BatchRandomResize of the TrainReader pick ``size`` x ``size``."""
    found = False
    for entry in cfg.TrainReader.get('batch_transforms') or []:
        if 'BatchRandomResize' in entry:
            entry['BatchRandomResize']['target_size'] = [size]
            found = True
    if not found:
        raise ValueError('--size: the TrainReader has no BatchRandomResize to fix')


def loader_ips(loader, batches):
    done, images, start = 0, 0, None
    while done < batches:
        for batch in loader:
            if start is None:       # the first batch pays for starting the workers
                start = time.perf_counter()
                continue
            images += int(batch['image'].shape[0])
            done += 1
            if done == batches:
                break
    return images / (time.perf_counter() - start)


def model_step_ips(trainer, warmup, iters):
    batch = next(iter(trainer.loader))
    batch['epoch_id'] = 0
    images = int(batch['image'].shape[0])
    model = trainer.model
    model.train()
    times = []
    for i in range(warmup + iters):
        tic = time.perf_counter()
        trainer._step(model, dict(batch), None)
        if i >= warmup:
            times.append(time.perf_counter() - tic)
    return images / statistics.median(times), tuple(batch['image'].shape)


def train_loop_ips(trainer, warmup, iters, save_dir):
    trainer.cfg['epoch'] = 1
    trainer.cfg['save_dir'] = save_dir
    trainer.start_epoch = 0
    real_loader = trainer.loader
    trainer.loader = _FirstBatches(real_loader, warmup + iters)
    if len(trainer.loader) < warmup + iters:
        raise ValueError(f'the training set gives {len(real_loader)} batches per epoch, fewer '
                         f'than --warmup + --iters = {warmup + iters}')
    clock = _StepClock(trainer)
    trainer.register_callbacks([clock])
    try:
        trainer.train()
    finally:
        trainer.loader = real_loader
    ends = clock.ends
    return iters * trainer.batch_size / (ends[warmup + iters - 1] - ends[warmup - 1])


def run_case(name, config, overrides, size, warmup, iters, loader_batches):
    cfg = load_config(config, overrides=overrides)
    if size:
        fix_train_size(cfg, size)
    load_before = os.getloadavg()[0]
    trainer = Trainer(cfg, mode='train')
    loader = loader_ips(trainer.loader, loader_batches)
    step, shape = model_step_ips(trainer, warmup, iters)
    with tempfile.TemporaryDirectory() as tmp:
        loop = train_loop_ips(trainer, warmup, iters, tmp)
    load_after = os.getloadavg()[0]
    return {'case': name, 'input': 'x'.join(str(s) for s in shape),
            'workers': cfg.get('worker_num', 0), 'loader': loader, 'step': step, 'loop': loop,
            'load': f'{load_before:.1f}/{load_after:.1f}'}


def print_table(rows):
    header = ('case', 'input [B,C,H,W]', 'workers', 'loader img/s', 'model step img/s',
              'train loop img/s', 'load avg before/after')
    lines = [header] + [(r['case'], r['input'], str(r['workers']), f"{r['loader']:.1f}",
                         f"{r['step']:.2f}", f"{r['loop']:.2f}", r['load']) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print(' | '.join(cell.ljust(w) for cell, w in zip(line, widths)))
        if i == 0:
            print('-+-'.join('-' * w for w in widths))


def generate(*args):
    """Run the synthetic-data generator in a child process: OpenCV's thread pool, once started
    in this process, would deadlock the forked loader workers."""
    subprocess.run([sys.executable, '-m', 'ppdet_lite.data.synthetic', *args], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def default_cases(args, tmp):
    demo_dir = os.path.join(ROOT, 'dataset', 'demo_shapes')
    generate('--output_dir', demo_dir)
    demo_data = [f'TrainDataset.dataset_dir={demo_dir}']
    iters_640 = args.iters or 3
    warmup_640 = 1 if args.warmup is None else args.warmup
    batches_640 = args.loader_batches or 12
    num_train = 8 * (max(warmup_640 + iters_640, batches_640) + 1)
    generate('--output_dir', tmp, '--num_train', str(num_train), '--num_val', '0',
             '--image_size', '640')
    data_640 = ['pretrain_weights=null', f'TrainDataset.dataset_dir={tmp}',
                'TrainDataset.image_dir=train',
                'TrainDataset.anno_path=annotations/instances_train.json']
    return [
        ('demo', DEMO_CFG, demo_data + args.opt, 256 if args.size is None else args.size,
         3 if args.warmup is None else args.warmup, args.iters or 20,
         args.loader_batches or 24),
        ('s640', S_CFG, data_640 + args.opt, 640 if args.size is None else args.size,
         warmup_640, iters_640, batches_640),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-c', '--config', nargs='+', default=None,
                        help='config file(s); default: the demo and PP-YOLOE-s 640 cases')
    parser.add_argument('--size', type=int, default=None,
                        help='fixed training size in pixels (default: 256 demo, 640 s640, the '
                             "config's sizes with -c); 0 keeps the config's multi-scale list")
    parser.add_argument('--iters', type=int, default=None,
                        help='timed steps (default: 20 demo and -c, 3 s640)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed steps before them (default: 3 demo and -c, 1 s640)')
    parser.add_argument('--loader-batches', type=int, default=None,
                        help='timed loader batches (default: 24 demo and -c, 12 s640)')
    parser.add_argument('-o', '--opt', nargs='*', default=[],
                        help='config overrides key=value, applied to every case')
    args = parser.parse_args(argv)
    if args.warmup is not None and args.warmup < 1:
        parser.error('--warmup must be >= 1 (the loop is timed from the end of a warm-up step)')

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.config:
            cases = [(os.path.splitext(os.path.basename(c))[0], c, args.opt, args.size,
                      3 if args.warmup is None else args.warmup, args.iters or 20,
                      args.loader_batches or 24) for c in args.config]
        else:
            cases = default_cases(args, tmp)
        for case in cases:
            rows.append(run_case(*case))
            print(f'--- {rows[-1]["case"]} done', flush=True)
    print()
    print_table(rows)


if __name__ == '__main__':
    main()
