"""Samplers: exact counts on hand-made assignments (num, pos_fraction, neg_pos_ub, IoU bins and
floor, 3:1 by loss), what unsampled priors become, determinism under a seed, uniformity, and the
batched samplers == mmdet's per-image algorithm (written here in numpy) on the same random draws."""

import numpy as np
import paddle
import pytest

from ppdet_lite.modeling.assigners import (BACKGROUND, IGNORED, GTs, IoUBalancedNegSampler,
                                           OHEMSampler, Preds, RandomSampler, background_result,
                                           build_result)

NUM_CLASSES = 3


def T(x, dtype='float32'):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


def make_result(gt_index, n=2):
    """An assignment with the given ``gt_index [B, L]`` over ``n`` GT slots (box of slot g is
    [g, g, g + 10, g + 10], class g % C)."""
    gt_index = np.asarray(gt_index, 'int64')
    b = gt_index.shape[0]
    boxes = np.array([[g, g, g + 10, g + 10] for g in range(n)], 'float32')
    gts = GTs(T(np.tile(np.arange(n)[None, :, None] % NUM_CLASSES, [b, 1, 1]), 'int64'),
              T(np.tile(boxes[None], [b, 1, 1])), T(np.ones([b, n, 1])))
    return build_result(T(gt_index, 'int64'), gts, NUM_CLASSES), gts


def counts(gt_index):
    gt_index = np.asarray(gt_index)
    return (gt_index >= 0).sum(-1).tolist(), (gt_index == BACKGROUND).sum(-1).tolist()


def row(pos, neg, ignored=0):
    """A row with ``pos`` positives (slot 0), ``neg`` negatives and ``ignored`` ignored priors."""
    return [0] * pos + [BACKGROUND] * neg + [IGNORED] * ignored


# ----------------------------------------------------------------------------- RandomSampler

ROWS = [row(10, 30, 5), row(2, 40, 3), row(0, 45), row(6, 3, 36)]   # L = 45 each


@pytest.mark.parametrize('neg_pos_ub, expected_neg', [
    # num 16, pos_fraction 0.25 -> at most 4 positives; negatives fill up to 16
    (-1, [12, 14, 16, 3]),       # 16 - 4, 16 - 2, 16 - 0, only 3 negatives exist
    (2, [8, 4, 2, 3]),           # capped at 2 * positives kept (2 * max(1, 0) for row 3)
    (0.5, [2, 1, 0, 2]),         # int(0.5 * 4) = 2, int(0.5 * 2) = 1, int(0.5 * 1) = 0, 2
])
def test_random_sampler_counts(neg_pos_ub, expected_neg):
    result, gts = make_result(ROWS)
    paddle.seed(0)
    out = RandomSampler(num=16, pos_fraction=0.25, neg_pos_ub=neg_pos_ub).sample(result, gts)
    pos, neg = counts(out.gt_index.numpy())
    assert pos == [4, 2, 0, 4]
    assert neg == expected_neg


def test_unsampled_priors_become_ignored_and_sampled_ones_keep_their_targets():
    result, gts = make_result(ROWS, n=2)
    paddle.seed(1)
    out = RandomSampler(num=16, pos_fraction=0.25).sample(result, gts)
    before, after = result.gt_index.numpy(), out.gt_index.numpy()
    kept = after != IGNORED
    # a kept prior keeps everything; the assigner's ignored priors stay ignored
    assert (after[kept] == before[kept]).all()
    assert (after[before == IGNORED] == IGNORED).all()
    assert (out.ignore_mask.numpy() == (after == IGNORED)).all()
    for field in ('assigned_labels', 'assigned_bboxes', 'assigned_scores'):
        assert np.array_equal(getattr(out, field).numpy()[kept],
                              getattr(result, field).numpy()[kept])
    dropped = ~kept
    assert (out.assigned_labels.numpy()[dropped] == NUM_CLASSES).all()
    assert (out.assigned_scores.numpy()[dropped] == 0).all()
    # ignored priors carry the box of GT slot 0 (base's convention)
    assert (out.assigned_bboxes.numpy()[dropped] == [0, 0, 10, 10]).all()


def test_random_sampler_is_reproducible_under_paddle_seed():
    result, gts = make_result(ROWS)
    sampler = RandomSampler(num=16, pos_fraction=0.25)
    draws = []
    for seed in (5, 5, 6):
        paddle.seed(seed)
        draws.append(sampler.sample(result, gts).gt_index.numpy())
    assert np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])


def test_random_sampler_is_uniform():
    # 400 identical images in one call (rows are drawn independently): 6 positives of which
    # int(6 * 0.34) = 2 are kept, 10 negatives of which 4 are kept. Each positive is kept with
    # probability 1/3, each negative with 2/5: expected 133.3 and 160 of 400, standard
    # deviations 9.4 and 9.8, so 40 is over 4 standard deviations.
    result, gts = make_result([row(6, 10)] * 400)
    paddle.seed(0)
    out = RandomSampler(num=6, pos_fraction=0.34).sample(result, gts).gt_index.numpy()
    times_kept = (out != IGNORED).sum(0)
    assert ((out >= 0).sum(1) == 2).all() and ((out == BACKGROUND).sum(1) == 4).all()
    assert (np.abs(times_kept[:6] - 400 / 3) < 40).all(), times_kept
    assert (np.abs(times_kept[6:] - 160) < 40).all(), times_kept
    # and the pairs kept are not a few fixed patterns: many different subsets occur
    assert len({tuple(np.flatnonzero(r[:6] >= 0)) for r in out}) == 15   # all C(6, 2)


# ----------------------------------------------------------------------------- mmdet in numpy

def pick(candidates, k, u):
    """mmdet's random_choice(candidates, k) on the draws ``u``: the k largest, lowest index on
    equal draws."""
    ranked = sorted(candidates, key=lambda i: (-u[i], i))
    return list(ranked[:max(int(k), 0)])


def ref_random(gt, u, num, pos_fraction, neg_pos_ub):
    pos = pick(np.flatnonzero(gt >= 0), int(num * pos_fraction), u)
    num_neg = num - len(pos)
    if neg_pos_ub >= 0:
        num_neg = min(num_neg, int(neg_pos_ub * max(1, len(pos))))
    return pos, num_neg


def ref_iou_balanced_neg(gt, u, max_iou, num_expected, floor_thr, floor_fraction, num_bins):
    """mmdet's IoUBalancedNegSampler._sample_neg / sample_via_interval for one image (interval
    floor 0 when floor_thr < 0, as PaddleDetection's libra_sample_neg), in float32."""
    neg = set(np.flatnonzero(gt == BACKGROUND).tolist())
    if len(neg) <= num_expected:
        return sorted(neg)
    if floor_thr > 0:
        floor = set(np.flatnonzero((max_iou >= 0) & (max_iou < floor_thr)))
        iou_set = set(np.flatnonzero(max_iou >= floor_thr))
    elif floor_thr == 0:
        floor = set(np.flatnonzero(max_iou == 0))
        iou_set = set(np.flatnonzero(max_iou > floor_thr))
    else:
        floor, iou_set = set(), set(np.flatnonzero(max_iou > floor_thr))
    floor_thr = max(floor_thr, 0)
    floor_neg, iou_neg = floor & neg, iou_set & neg
    num_iou = int(num_expected * (1 - floor_fraction))
    if len(iou_neg) > num_iou:
        if num_bins >= 2:
            top = max_iou.max()
            width = (top - np.float32(floor_thr)) / np.float32(num_bins)
            per_bin = int(num_iou / num_bins)
            sampled = []
            for i in range(num_bins):
                start = np.float32(floor_thr) + np.float32(i) * width
                end = np.float32(floor_thr) + np.float32(i + 1) * width
                in_bin = set(np.flatnonzero((max_iou >= start) & (max_iou < end))) & iou_neg
                sampled += pick(sorted(in_bin), per_bin, u)
            if len(sampled) < num_iou:
                sampled += pick(sorted(iou_neg - set(sampled)), num_iou - len(sampled), u)
        else:
            sampled = pick(sorted(iou_neg), num_iou, u)
    else:
        sampled = sorted(iou_neg)
    sampled += pick(sorted(floor_neg), num_expected - len(sampled), u)
    if len(sampled) < num_expected:
        sampled += pick(sorted(neg - set(sampled)), num_expected - len(sampled), u)
    return sorted(sampled)


def random_assignment(rng, b, length):
    gt = rng.choice([0, 1, BACKGROUND, BACKGROUND, BACKGROUND, IGNORED], size=(b, length))
    gt[0] = BACKGROUND                       # an image without positives
    # IoUs on a coarse grid: many priors share a value, some sit exactly on a bin edge
    max_iou = (rng.randint(0, 20, size=(b, length)) / 20).astype('float32')
    max_iou[gt >= 0] = 0.75
    return gt, max_iou


@pytest.mark.parametrize('kwargs', [
    dict(num=24, pos_fraction=0.25),
    dict(num=24, pos_fraction=0.5, neg_pos_ub=1.5),
    dict(num=64, pos_fraction=0.1, floor_thr=0.2, floor_fraction=0.5),
    dict(num=40, pos_fraction=0.25, floor_thr=0., floor_fraction=0.3, num_bins=4),
    dict(num=40, pos_fraction=0.25, num_bins=1),
])
def test_batched_samplers_equal_mmdet_per_image_on_the_same_draws(kwargs):
    rng = np.random.RandomState(3)
    gt, max_iou = random_assignment(rng, 4, 90)
    result, gts = make_result(gt)
    for sampler in (RandomSampler(**{k: v for k, v in kwargs.items()
                                     if k in ('num', 'pos_fraction', 'neg_pos_ub')}),
                    IoUBalancedNegSampler(**kwargs)):
        paddle.seed(11)
        out = sampler.sample(result, gts, T(max_iou)).gt_index.numpy()
        paddle.seed(11)
        u = paddle.rand(gt.shape).numpy()     # the sampler's draws: one uniform key per prior
        for i in range(len(gt)):
            pos, num_neg = ref_random(gt[i], u[i], sampler.num, sampler.pos_fraction,
                                      sampler.neg_pos_ub)
            if isinstance(sampler, IoUBalancedNegSampler):
                neg = ref_iou_balanced_neg(gt[i], u[i], max_iou[i], num_neg, sampler.floor_thr,
                                           sampler.floor_fraction, sampler.num_bins)
            else:
                neg = pick(np.flatnonzero(gt[i] == BACKGROUND), num_neg, u[i])
            assert np.flatnonzero(out[i] >= 0).tolist() == sorted(pos), (sampler, i)
            assert np.flatnonzero(out[i] == BACKGROUND).tolist() == sorted(neg), (sampler, i)


# ----------------------------------------------------------------------------- IoU-balanced


def binned_assignment():
    """4 positives (IoU 0.9: the image's largest IoU, so bins of width 0.3 from 0) and
    negatives: 20 at IoU 0.05, 5 at 0.45, 1 at 0.65."""
    gt = row(4, 26)
    max_iou = [0.9] * 4 + [0.05] * 20 + [0.45] * 5 + [0.65]
    return gt, np.array([max_iou], 'float32')


def kept_by_iou(out, max_iou):
    negatives = out[0] == BACKGROUND
    return {v: int((negatives & np.isclose(max_iou[0], v)).sum()) for v in (0.05, 0.45, 0.65)}


def test_iou_balanced_draws_evenly_from_the_bins():
    gt, max_iou = binned_assignment()
    result, gts = make_result([gt])
    sampler = IoUBalancedNegSampler(num=16, pos_fraction=0.25)
    # 4 positives kept; budget E = 12 negatives, all balanced (no floor), 12 // 3 = 4 per bin:
    # bin [0.6, 0.9) gives its only one, [0.3, 0.6) 4 of 5, [0, 0.3) 4 of 20 = 9; the 3 missing
    # come at random from the 17 balanced negatives left (16 at 0.05, 1 at 0.45)
    for seed in range(10):
        paddle.seed(seed)
        out = sampler.sample(result, gts, T(max_iou)).gt_index.numpy()
        kept = kept_by_iou(out, max_iou)
        assert (out[0] >= 0).sum() == 4 and sum(kept.values()) == 12
        assert kept[0.65] == 1 and kept[0.45] >= 4 and kept[0.05] >= 4


def test_iou_balanced_floor_set():
    gt, max_iou = binned_assignment()
    result, gts = make_result([gt])
    sampler = IoUBalancedNegSampler(num=16, pos_fraction=0.25, floor_thr=0.1,
                                    floor_fraction=0.75)
    # E = 12; the balanced set (IoU >= 0.1: five at 0.45, one at 0.65) gets int(12 * 0.25) = 3,
    # 3 // 3 = 1 per bin; bins from 0.1 to 0.9, width 0.2667: [0.1, 0.367) is empty,
    # [0.367, 0.633) gives one at 0.45, [0.633, 0.9) the one at 0.65; topped up to 3 with one
    # more at 0.45. The floor set (IoU < 0.1: the 20 at 0.05) gets the other 12 - 3 = 9.
    for seed in range(5):
        paddle.seed(seed)
        out = sampler.sample(result, gts, T(max_iou)).gt_index.numpy()
        assert kept_by_iou(out, max_iou) == {0.05: 9, 0.45: 2, 0.65: 1}
    # a floor fraction of 0.5: the balanced share int(12 * 0.5) = 6 holds all six balanced ones
    sampler.floor_fraction = 0.5
    out = sampler.sample(result, gts, T(max_iou)).gt_index.numpy()
    assert kept_by_iou(out, max_iou) == {0.05: 6, 0.45: 5, 0.65: 1}


def test_iou_balanced_keeps_all_negatives_that_fit():
    result, gts = make_result([row(1, 5, 2)])
    out = IoUBalancedNegSampler(num=16, pos_fraction=0.25).sample(
        result, gts, T(np.full([1, 8], 0.2))).gt_index.numpy()
    assert out.tolist() == [row(1, 5, 2)]


def test_iou_balanced_needs_max_iou():
    result, gts = make_result([row(1, 5)])
    with pytest.raises(ValueError, match='IoUBalancedNegSampler: needs max_iou'):
        IoUBalancedNegSampler().sample(result, gts)


# ----------------------------------------------------------------------------- OHEM

def ohem_case():
    """2 positives (priors 0, 1), 10 negatives (2..11), 1 ignored (12); C = 3. The negatives'
    losses sum_c -log(1 - p_c):
      2: p (0.5, 0, 0)     -> 0.693        3: p (0.3, 0.3, 0)   -> 2 * 0.357 = 0.713
      4: p (0.8, 0, 0)     -> 1.609        5: p (0.3, 0.3, 0.3) -> 3 * 0.357 = 1.070
      6..11: p0 0.05, 0.1, 0.15, 0.2, 0, 0.25 -> 0.051, 0.105, 0.163, 0.223, 0, 0.288
    so by loss: 4, 5, 3, 2, 11, 9, 8, 7, 6, 10. (By top score 3 and 5 would come after 2; by
    summed score 5 would come before 4.) The ignored prior 12 has the largest scores of all."""
    gt = row(2, 10, 1)
    scores = np.zeros([1, 13, NUM_CLASSES], 'float32')
    scores[0, 2:6] = [[0.5, 0, 0], [0.3, 0.3, 0], [0.8, 0, 0], [0.3, 0.3, 0.3]]
    scores[0, 6:12, 0] = [0.05, 0.1, 0.15, 0.2, 0, 0.25]
    scores[0, 12] = [0.99, 0.99, 0.99]
    return gt, scores


def ohem(gt, scores, **kwargs):
    result, gts = make_result([gt])
    preds = Preds(T(scores), T(np.zeros(scores.shape[:2] + (4,))))
    return OHEMSampler(**kwargs).sample(result, gts, preds=preds).gt_index.numpy()[0]


def negatives_kept(out):
    return sorted(np.flatnonzero(out == BACKGROUND).tolist())


@pytest.mark.parametrize('ratio, expected', [
    (3, [2, 3, 4, 5, 9, 11]),   # 3 x 2 positives: the six largest losses
    (2.5, [2, 3, 4, 5, 11]),    # ceil(2.5 * 2) = 5
    (1.5, [3, 4, 5]),           # 3: loss ranks 3 above 2 (top score would not)
    (0.5, [4]),                 # ceil(0.5 * 2) = 1: loss ranks 4 above 5 (summed score would not)
])
def test_ohem_keeps_all_positives_and_the_hardest_negatives(ratio, expected):
    gt, scores = ohem_case()
    out = ohem(gt, scores, neg_pos_ratio=ratio)
    assert np.flatnonzero(out >= 0).tolist() == [0, 1]
    assert negatives_kept(out) == expected
    assert out[12] == IGNORED


def test_ohem_without_positives_keeps_min_neg():
    _, scores = ohem_case()
    gt = row(0, 12, 1)
    # priors 0 and 1 now negatives with zero scores (loss 0): none kept at 3:1 of 0 positives,
    # the two hardest with min_neg 2
    assert (ohem(gt, scores) == IGNORED).all()
    assert negatives_kept(ohem(gt, scores, min_neg=2)) == [4, 5]
    # min_neg is a floor, not a cap: with 2 positives 3:1 gives 6 > 4
    assert len(negatives_kept(ohem(ohem_case()[0], scores, min_neg=4))) == 6


def test_ohem_equal_losses_go_to_the_lowest_prior_index():
    gt = row(1, 10)
    scores = np.full([1, 11, NUM_CLASSES], 0.01, 'float32')   # an untrained head
    assert negatives_kept(ohem(gt, scores)) == [1, 2, 3]


def test_ohem_needs_preds():
    result, gts = make_result([row(1, 3)])
    assert OHEMSampler.needs_preds
    with pytest.raises(ValueError, match='OHEMSampler: needs preds'):
        OHEMSampler().sample(result, gts)


# ----------------------------------------------------------------------------- construction

@pytest.mark.parametrize('make', [
    lambda: RandomSampler(num=0),
    lambda: RandomSampler(num=2.5),
    lambda: RandomSampler(pos_fraction=1.5),
    lambda: RandomSampler(neg_pos_ub='2'),
    lambda: IoUBalancedNegSampler(floor_thr=-2),
    lambda: IoUBalancedNegSampler(floor_thr=1),
    lambda: IoUBalancedNegSampler(floor_fraction=1.2),
    lambda: IoUBalancedNegSampler(num_bins=0),
    lambda: OHEMSampler(neg_pos_ratio=-1),
    lambda: OHEMSampler(neg_pos_ratio=float('inf')),
    lambda: OHEMSampler(min_neg=-1),
    lambda: OHEMSampler(min_neg=True),
])
def test_constructor_validation(make):
    with pytest.raises((TypeError, ValueError), match='Sampler: '):
        make()


def test_empty_priors_pass_through():
    _, gts = make_result(np.zeros([2, 1]))
    result = background_result(2, 0, NUM_CLASSES, 'int64')
    out = RandomSampler().sample(result, gts)
    assert out.gt_index.shape == [2, 0]
