"""Data-parallel training on the CPU: two processes under ``python -m paddle.distributed.launch``
run ``tools/train.py`` on a tiny generated set (``tests/dist_train_worker.py`` is each rank).

Paddle's CPU collective (the gloo backend) is probed first with a real two-process all-reduce;
the training test is skipped, with the probe's log, only if that probe fails.
"""

import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml

from ppdet_lite.data.synthetic import generate

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
DEMO = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_shapes.yml')
WORKER = os.path.join(ROOT, 'tests', 'dist_train_worker.py')
NUM_TRAIN = 8
TIMEOUT = 300  # seconds per launch; both launches take ~7 s on an idle 2-core machine


def launch(args, workdir):
    """Run the worker on 2 CPU processes; returns (exit code, launcher and worker logs)."""
    log_dir = os.path.join(workdir, 'log')
    env = dict(os.environ)
    # set at all (even empty), it makes the launcher assign GPU ids and fail on a CPU build
    env.pop('CUDA_VISIBLE_DEVICES', None)
    cmd = [sys.executable, '-m', 'paddle.distributed.launch', '--nproc_per_node', '2',
           '--log_dir', log_dir, WORKER] + args
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        # the workers run in sessions of their own; on SIGTERM the launcher ends them
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        code = f'none, stopped after {TIMEOUT} s'
    logs = [out]
    for rank in (0, 1):
        path = os.path.join(log_dir, f'workerlog.{rank}')
        if os.path.isfile(path):
            with open(path, errors='replace') as f:
                logs.append(f'--- workerlog.{rank}\n' + f.read())
    return code, '\n'.join(logs)


def worker_log(workdir, rank):
    with open(os.path.join(workdir, 'log', f'workerlog.{rank}'), errors='replace') as f:
        return f.read()


@pytest.fixture(scope='module')
def cpu_collective(tmp_path_factory):
    """Skips the module's tests unless two launched CPU processes can all-reduce."""
    workdir = str(tmp_path_factory.mktemp('probe'))
    code, logs = launch(['probe', workdir], workdir)
    results = []
    for rank in (0, 1):
        path = os.path.join(workdir, f'probe{rank}.json')
        if os.path.isfile(path):
            with open(path) as f:
                results.append(json.load(f))
    if code != 0 or len(results) != 2:
        pytest.skip(f'Paddle {paddle.__version__} cannot run a 2-process CPU collective here '
                    f'(launch exit code {code}); its output ends:\n{logs[-3000:]}')
    # tensors holding rank + 1: 1 + 2 = 3 on both ranks
    assert [r['sum'] for r in results] == [3.0, 3.0], results
    assert [(r['rank'], r['world_size']) for r in results] == [(0, 2), (1, 2)]


@pytest.fixture(scope='module')
def two_rank_run(cpu_collective, tmp_path_factory):
    """``tools/train.py --eval``: 2 epochs of 8 images, batch 2 per rank (2 steps per epoch on
    each rank), evaluated on 2 images at each epoch end."""
    workdir = str(tmp_path_factory.mktemp('dist'))
    data_dir = os.path.join(workdir, 'data')
    generate(data_dir, num_train=NUM_TRAIN, num_val=2, image_size=(96, 96))
    # the user's habit: a small YAML over the demo config, the data given with -o
    config = {
        '_BASE_': [DEMO], 'width_mult': 0.125, 'epoch': 2, 'snapshot_epoch': 1, 'log_iter': 1,
        'worker_num': 0, 'use_gpu': False,
        'TrainReader': {
            'batch_size': 2, 'shuffle': True,
            'sample_transforms': [{'Decode': {}}, {'RandomFlip': {}}],
            'batch_transforms': [
                {'BatchRandomResize': {'target_size': [96], 'random_size': True,
                                       'random_interp': False, 'keep_ratio': False}},
                {'NormalizeImage': {'mean': [0.485, 0.456, 0.406],
                                    'std': [0.229, 0.224, 0.225], 'is_scale': True}},
                {'Permute': {}}, {'PadGT': {}}]},
        'PPYOLOEHead': {'static_assigner_epoch': 1},
        'LearningRate': {'schedulers': [
            {'name': 'CosineDecay', 'max_epochs': 4},
            {'name': 'LinearWarmup', 'start_factor': 0.1, 'steps': 3}]},
    }
    config_path = os.path.join(workdir, 'tiny_dist.yml')
    with open(config_path, 'w') as f:
        yaml.safe_dump(config, f)
    code, logs = launch(['train', workdir, '-c', config_path, '--eval',
                         '-o', f'TrainDataset.dataset_dir={data_dir}',
                         f'EvalDataset.dataset_dir={data_dir}'], workdir)
    assert code == 0, logs[-6000:]
    ranks = []
    for rank in (0, 1):
        with open(os.path.join(workdir, f'rank{rank}.json')) as f:
            record = json.load(f)
        ranks.append((record, dict(np.load(os.path.join(workdir, f'rank{rank}.npz')))))
    return workdir, ranks


def _is_bn_statistic(key):
    return key.endswith('._mean') or key.endswith('._variance')


def test_both_ranks_end_with_the_same_weights(two_rank_run):
    workdir, ((record0, weights0), (record1, weights1)) = two_rank_run
    assert (record0['rank'], record0['world_size']) == (0, 2)
    assert (record1['rank'], record1['world_size']) == (1, 2)
    assert weights0.keys() == weights1.keys()
    params = [k for k in weights0 if k.startswith('model/') and not _is_bn_statistic(k)]
    assert len(params) > 100
    # gradients are averaged over ranks, so parameters and their EMA agree to the bit
    different = [k for k in weights0 if not np.array_equal(weights0[k], weights1[k])]
    # BN running statistics are each rank's own: DataParallel syncs buffers only when it wraps
    # the model, and SyncBatchNorm exists on GPU only; rank 0's are the ones saved
    assert different and all(_is_bn_statistic(k) for k in different), different[:5]

    # the ranks saw different images (below), so without the gradient all-reduce the weights
    # would have drifted apart; and training did move them: epoch 1 changed epoch 0's weights
    run_dir = os.path.join(workdir, 'rank0', 'tiny_dist')
    after_epoch0 = paddle.load(os.path.join(run_dir, '0.pdema'))  # raw weights; EMA in .pdparams
    final = paddle.load(os.path.join(run_dir, 'model_final.pdema'))
    moved = [k for k in final if not _is_bn_statistic(k)
             and not np.array_equal(final[k].numpy(), after_epoch0[k].numpy())]
    assert len(moved) > len(params) // 2
    for key, value in final.items():
        np.testing.assert_array_equal(value.numpy(), weights0[f'model/{key}'], err_msg=key)


def test_each_rank_loads_its_own_half_of_every_epoch(two_rank_run):
    _, ((record0, _), (record1, _)) = two_rank_run
    train0, train1 = record0['indices']['train'], record1['indices']['train']
    assert sorted(train0) == sorted(train1) == ['0', '1']
    for epoch in ('0', '1'):
        seen0, seen1 = train0[epoch], train1[epoch]
        # 8 images, 2 ranks: 4 each (2 steps of batch 2), no image on both
        assert len(seen0) == len(seen1) == NUM_TRAIN // 2
        assert sorted(seen0 + seen1) == list(range(NUM_TRAIN))
    # reshuffled per epoch (the trainer sets the sampler's epoch)
    assert train0['0'] != train0['1']


def test_only_rank_0_writes_checkpoints_and_logs(two_rank_run):
    workdir, ((record0, _), (record1, _)) = two_rank_run
    assert record0['wrote_checkpoint'] and not record1['wrote_checkpoint']
    assert sorted(os.listdir(os.path.join(workdir, 'rank0', 'tiny_dist'))) == [
        '0.pdema', '0.pdopt', '0.pdparams', 'best_model.pdema', 'best_model.pdopt',
        'best_model.pdparams', 'model_final.pdema', 'model_final.pdopt', 'model_final.pdparams']
    assert not os.path.exists(os.path.join(workdir, 'rank1'))
    log0, log1 = worker_log(workdir, 0), worker_log(workdir, 1)
    # 2 steps per epoch on each rank, logged by rank 0 only
    assert 'Epoch: [1] [2/2] learning_rate: ' in log0 and 'Epoch: [' not in log1
    assert 'best bbox AP so far' in log0 and 'best bbox AP so far' not in log1
    # linear scaling to the total batch: 0.004 stated for 4, 2 ranks * 2 = 4 -> unchanged
    assert 'base_lr 0.004 for batch 4 -> 0.004 for batch 4 (linear scaling rule)' in log0


def test_loss_normaliser_is_averaged_over_ranks(two_rank_run):
    _, ((record0, _), (record1, _)) = two_rank_run
    # assigned-score sums 3 * 1 on rank 0 and 3 * 2 on rank 1: (3 + 6) / 2 = 4.5 on both
    assert record0['normaliser'] == record1['normaliser'] == 4.5
