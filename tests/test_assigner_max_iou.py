"""MaxIoUAssigner: thresholds, ignore band, negative band, low-quality matches, conflicts;
batched == per image == a dense numpy definition; empty inputs; constructor checks; config
injection."""

import numpy as np
import paddle
import pytest

from ppdet_lite.core.workspace import ConfigError, create
from ppdet_lite.modeling.assigners import (BACKGROUND, IGNORED, GTs, MaxIoUAssigner, OHEMSampler,
                                           Preds, Priors, RandomSampler, grid_priors,
                                           resolve_conflicts)


def T(x, dtype='float32'):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


def priors_of(boxes):
    boxes = np.asarray(boxes, 'float32').reshape([-1, 4])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return Priors(T(centres), T(boxes), T(np.full(len(boxes), 8.)), [len(boxes)],
                  [(1, len(boxes))])


def gts_of(boxes, mask=None, labels=None):
    """One image's GT boxes ``[n, 4]`` (or a batch ``[B, n, 4]``)."""
    boxes = np.asarray(boxes, 'float32')
    if boxes.ndim == 2:
        boxes = boxes[None]
    b, n = boxes.shape[:2]
    mask = np.ones([b, n, 1]) if mask is None else np.asarray(mask).reshape([b, n, 1])
    labels = np.arange(b * n).reshape([b, n, 1]) % 3 if labels is None else np.asarray(labels)
    return GTs(T(labels, 'int64'), T(boxes.reshape([b, n, 4])), T(mask))


def gt_index(assigner, priors, gts, preds=None):
    return assigner.assign(priors, gts, preds).gt_index.numpy().tolist()


# ----------------------------------------------------------------------------- hand-computed rules

GT10 = [[0, 0, 10, 10]]   # area 100
# IoU with GT10: full height strips of height h have overlap 10 h, union 100 -> IoU h / 10
STRIPS = [[0, 0, 10, 10],   # 1.0
          [0, 0, 10, 5],    # 0.5
          [0, 0, 10, 4],    # 0.4
          [0, 0, 10, 3],    # 0.3
          [20, 20, 30, 30]]  # 0.0


def test_thresholds_and_the_ignore_band():
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, match_low_quality=False, num_classes=3)
    # 1.0, 0.5 >= 0.5: positive; 0.4 is in [0.4, 0.5): ignored; 0.3, 0.0 < 0.4: negative
    assert gt_index(a, priors_of(STRIPS), gts_of(GT10)) == [[0, 0, IGNORED, BACKGROUND,
                                                             BACKGROUND]]


def test_negative_band_lo_hi():
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=[0.1, 0.4], match_low_quality=False,
                       num_classes=3)
    # 0.3 in [0.1, 0.4): negative; 0.0 below lo: ignored (as mmdet's tuple neg_iou_thr)
    assert gt_index(a, priors_of(STRIPS), gts_of(GT10)) == [[0, 0, IGNORED, BACKGROUND,
                                                             IGNORED]]
    # an image without a real GT: every prior negative, whatever the band (mmdet)
    padded = gts_of(GT10, mask=[0])
    assert gt_index(a, priors_of(STRIPS), padded) == [[BACKGROUND] * 5]


LOW = [[0, 0, 10, 3],     # 30 / 100 = 0.3
       [0, 0, 10, 2],     # 0.2
       [5, 0, 15, 3]]     # overlap 5 * 3 = 15, union 100 + 30 - 15 = 115: 0.1304


@pytest.mark.parametrize('min_pos_iou, expected', [
    (0.25, [[0, BACKGROUND, BACKGROUND]]),       # the GT's best IoU 0.3 >= 0.25: low-quality pos
    (0.35, [[IGNORED, BACKGROUND, BACKGROUND]]),  # 0.3 < 0.35: no match; 0.3 in the ignore band
])
def test_min_pos_iou(min_pos_iou, expected):
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.25, min_pos_iou=min_pos_iou, num_classes=3)
    assert gt_index(a, priors_of(LOW), gts_of(GT10)) == expected


def test_match_low_quality_off_leaves_the_gt_without_positive():
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.25, match_low_quality=False, num_classes=3)
    assert gt_index(a, priors_of(LOW), gts_of(GT10)) == [[IGNORED, BACKGROUND, BACKGROUND]]


TIED = [[0, 0, 10, 3],    # 30 / 100 = 0.3
        [0, 7, 10, 10],   # overlap 10 * 3 = 30, union 100: 0.3 as well (same float)
        [0, 0, 10, 2]]    # 0.2


@pytest.mark.parametrize('assign_all, expected', [
    (True, [[0, 0, BACKGROUND]]),             # every prior at the GT's best IoU
    (False, [[0, BACKGROUND, BACKGROUND]]),   # only the lowest-index one
])
def test_gt_max_assign_all(assign_all, expected):
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, gt_max_assign_all=assign_all,
                       num_classes=3)
    assert gt_index(a, priors_of(TIED), gts_of(GT10)) == expected


def test_a_prior_that_is_best_for_several_gts_goes_to_the_one_overlapping_it_most():
    a = MaxIoUAssigner(pos_iou_thr=0.7, neg_iou_thr=0.1, num_classes=3)
    priors = priors_of([[0, 0, 10, 10], [100, 100, 110, 110]])
    # slot 0 [0,0,20,10]: IoU 100/200 = 0.5 with prior 0; slot 1 [0,0,10,40]: 100/400 = 0.25.
    # Prior 0 is both GTs' best. mmdet (GT loop, later slot overwrites) gives it to slot 1;
    # the stated rule gives it to the claimant with the higher IoU: slot 0.
    assert gt_index(a, priors, gts_of([[0, 0, 20, 10], [0, 0, 10, 40]])) == [[0, BACKGROUND]]
    # equal IoUs (0.5 and 0.5): the lowest slot
    assert gt_index(a, priors, gts_of([[0, 0, 10, 20], [0, 0, 20, 10]])) == [[0, BACKGROUND]]


def test_low_quality_match_overrides_a_threshold_positive():
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.1, num_classes=3)
    priors = priors_of([[0, 0, 10, 10], [0, 1, 10, 12]])
    # slot 0 (A) = prior 1 exactly: IoU 1 with prior 1; with prior 0 overlap 10 * 9 = 90,
    #   union 100 + 110 - 90 = 120: 0.75 -> prior 0 is positive for A by threshold.
    # slot 1 (B) [0,-20,10,10], area 300: prior 0 100/300 = 0.333, prior 1 90/320 = 0.281 ->
    #   B's best prior is prior 0, which it takes (as mmdet), so each GT keeps a positive.
    gts = gts_of([[0, 1, 10, 12], [0, -20, 10, 10]])
    assert gt_index(a, priors, gts) == [[1, 0]]


def test_a_gt_overlapping_no_prior_takes_none_of_them():
    # mmdet with min_pos_iou=0 would make every IoU-0 prior this GT's positive
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0., num_classes=3)
    assert gt_index(a, priors_of(STRIPS[3:]), gts_of([[200, 200, 210, 210]])) == \
        [[BACKGROUND, BACKGROUND]]


def test_padded_slots_never_match_and_targets_follow_the_slot():
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, num_classes=3)
    priors = priors_of(STRIPS)
    # slot 0 is padding holding prior 0's box exactly; slot 1 is the real GT [0,0,10,5]
    gts = gts_of([[0, 0, 10, 10], [0, 0, 10, 5]], mask=[0, 1], labels=[[[2], [1]]])
    result = a.assign(priors, gts)
    # IoU with [0,0,10,5] (area 50): prior 0 50/100 = 0.5, prior 1 1.0, prior 2 40/50 = 0.8,
    # prior 3 30/50 = 0.6, prior 4 0
    assert result.gt_index.numpy().tolist() == [[1, 1, 1, 1, BACKGROUND]]
    assert result.assigned_labels.numpy().tolist() == [[1, 1, 1, 1, 3]]
    assert np.allclose(result.assigned_bboxes.numpy()[0, :4], [0, 0, 10, 5])
    assert result.assigned_scores.numpy()[0].tolist() == [[0, 1, 0]] * 4 + [[0, 0, 0]]
    assert not result.ignore_mask.numpy().any()


# ----------------------------------------------------------------------------- dense definition

def ref_iou(gt, prior):
    """float32 IoU ``[m, L]``, written in the order of operations of ``bbox_utils.bbox_iou``
    (overlap / (area1 + area2 - overlap + 1e-9)) so that equal IoUs stay equal bit for bit."""
    lt = np.maximum(gt[:, None, :2], prior[None, :, :2])
    rb = np.minimum(gt[:, None, 2:], prior[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    overlap = wh[..., 0] * wh[..., 1]
    area_g = np.clip(gt[:, 2:] - gt[:, :2], 0, None).prod(-1)[:, None]
    area_p = np.clip(prior[:, 2:] - prior[:, :2], 0, None).prod(-1)[None]
    return overlap / (area_g + area_p - overlap + np.float32(1e-9))


def ref_assign(prior, boxes, mask, pos_thr, neg, min_pos, assign_all, low_quality):
    """mmdet's MaxIoUAssigner.assign_wrt_overlaps for one image, with the stated conflict rule
    (highest IoU, then lowest slot) and IoU > 0 for low-quality matches. -> gt_index [L]."""
    num_priors = len(prior)
    lo, hi = (0., neg) if np.isscalar(neg) else neg
    slots = np.flatnonzero(mask > 0)
    if len(slots) == 0:
        return np.full(num_priors, BACKGROUND)
    iou = ref_iou(boxes[slots], prior)
    best, best_slot = iou.max(0), slots[iou.argmax(0)]   # argmax: first (lowest) slot
    out = np.full(num_priors, IGNORED)
    out[(best >= lo) & (best < hi)] = BACKGROUND
    out[best >= pos_thr] = best_slot[best >= pos_thr]
    if low_quality:
        claims = {}
        for j, slot in enumerate(slots):
            top = iou[j].max()
            if top >= min_pos and top > 0:
                chosen = np.flatnonzero(iou[j] == top) if assign_all else [iou[j].argmax()]
                for p in chosen:
                    claims.setdefault(p, []).append((-iou[j, p], slot))
        for p, c in claims.items():
            out[p] = min(c)[1]
    return out


def random_batch(rng, b, n, whole_pixels, real_fraction=0.7):
    xy = rng.uniform(0, 100, (b, n, 2))
    wh = rng.uniform(4, 60, (b, n, 2))
    boxes = np.concatenate([xy, xy + wh], -1)
    if whole_pixels:
        boxes = np.round(boxes / 8) * 8   # on the prior grid: many equal IoUs
    mask = (rng.uniform(size=(b, n, 1)) < real_fraction).astype('float32')
    return boxes.astype('float32'), mask


CONFIGS = [dict(pos_iou_thr=0.5, neg_iou_thr=0.4),
           dict(pos_iou_thr=0.4, neg_iou_thr=[0.1, 0.3], min_pos_iou=0.2),
           dict(pos_iou_thr=0.5, neg_iou_thr=0.3, gt_max_assign_all=False),
           dict(pos_iou_thr=0.6, neg_iou_thr=0.5, match_low_quality=False)]


@pytest.mark.parametrize('whole_pixels', [False, True])
@pytest.mark.parametrize('cfg', CONFIGS)
def test_equals_dense_definition_batched_and_per_image(cfg, whole_pixels):
    rng = np.random.RandomState(7)
    priors = grid_priors([(16, 16), (8, 8)], [8, 16], grid_cell_scale=3.0)
    prior = priors.boxes.numpy()
    a = MaxIoUAssigner(num_classes=3, **cfg)
    args = (cfg['pos_iou_thr'], cfg['neg_iou_thr'], cfg.get('min_pos_iou', 0.),
            cfg.get('gt_max_assign_all', True), cfg.get('match_low_quality', True))
    for trial in range(3):
        boxes, mask = random_batch(rng, 3, 6, whole_pixels)
        mask[0] = 0    # one image with padding only
        gts = gts_of(boxes, mask)
        batched = a.assign(priors, gts).gt_index.numpy()
        for i in range(3):
            expected = ref_assign(prior, boxes[i], mask[i, :, 0], *args)
            assert batched[i].tolist() == expected.tolist(), (trial, i)
            alone = a.assign(priors, gts_of(boxes[i:i + 1], mask[i:i + 1])).gt_index.numpy()
            assert alone[0].tolist() == expected.tolist()


def test_whole_pixel_cases_do_have_ties_and_low_quality_matches():
    # the tie-heavy batches above exercise gt_max_assign_all: check that they contain GTs whose
    # best IoU is shared by several priors and is below pos_iou_thr
    rng = np.random.RandomState(7)
    prior = grid_priors([(16, 16), (8, 8)], [8, 16], grid_cell_scale=3.0).boxes.numpy()
    boxes, mask = random_batch(rng, 3, 6, True)
    found = 0
    for i in range(3):
        for g in np.flatnonzero(mask[i, :, 0]):
            iou = ref_iou(boxes[i, g:g + 1], prior)[0]
            found += int((iou == iou.max()).sum() > 1 and iou.max() < 0.5)
    assert found > 0


def test_low_quality_conflicts_equal_resolve_conflicts_among_claimants():
    # the assigner ranks the GTs by their best IoU instead of running the conflicts step over
    # [B, n, L]; it must give conflicts.resolve_conflicts(claims, iou, 'max') exactly
    rng = np.random.RandomState(1)
    priors = grid_priors([(16, 16), (8, 8)], [8, 16], grid_cell_scale=3.0)
    contested = 0
    for assign_all in (True, False):
        a = MaxIoUAssigner(min_pos_iou=0.1, gt_max_assign_all=assign_all, num_classes=3)
        for _ in range(3):
            boxes, mask = random_batch(rng, 2, 12, whole_pixels=True, real_fraction=0.9)
            iou = np.stack([ref_iou(b, priors.boxes.numpy()) for b in boxes])
            iou = np.where(mask > 0, iou, np.float32(-1))
            top = iou.max(2, keepdims=True)
            if assign_all:
                claims = iou == top
            else:
                claims = np.arange(iou.shape[2]) == iou.argmax(2)[..., None]
            claims &= (mask > 0) & (top >= 0.1) & (top > 0)
            contested += int((claims.sum(1) > 1).sum())
            expected = resolve_conflicts(T(claims, 'bool'), T(iou), 'max').numpy()
            got = a._low_quality_matches(T(iou), T(mask) > 0).numpy()
            assert got.tolist() == expected.tolist()
    assert contested > 0


# ----------------------------------------------------------------------------- empty inputs

def test_zero_gt_slots_zero_priors_and_padding_only():
    a = MaxIoUAssigner(num_classes=3, sampler={'name': 'RandomSampler', 'num': 4})
    priors = priors_of(STRIPS)
    empty = GTs(paddle.zeros([2, 0, 1], 'int64'), paddle.zeros([2, 0, 4]), paddle.zeros([2, 0, 1]))
    r = a.assign(priors, empty)
    # every prior negative, then RandomSampler keeps 4 of the 5 negatives per image
    assert r.gt_index.shape == [2, 5] and r.assigned_scores.shape == [2, 5, 3]
    assert ((r.gt_index.numpy() == BACKGROUND).sum(1) == 4).all()
    assert ((r.gt_index.numpy() == IGNORED).sum(1) == 1).all()
    no_priors = priors_of(np.zeros([0, 4]))
    r = a.assign(no_priors, gts_of(GT10))
    assert r.gt_index.shape == [1, 0] and r.assigned_bboxes.shape == [1, 0, 4]
    padded = gts_of([GT10[0], GT10[0]], mask=[0, 0])
    r = MaxIoUAssigner(num_classes=3).assign(priors, padded)
    assert r.gt_index.numpy().tolist() == [[BACKGROUND] * 5]
    assert r.assigned_labels.numpy().tolist() == [[3] * 5]


# ----------------------------------------------------------------------------- construction

@pytest.mark.parametrize('kwargs, error', [
    (dict(pos_iou_thr=1.5), ValueError),
    (dict(pos_iou_thr=0.), ValueError),
    (dict(pos_iou_thr='0.5'), TypeError),
    (dict(neg_iou_thr=0.6), ValueError),              # above pos_iou_thr 0.5
    (dict(neg_iou_thr=[0.3, 0.1]), ValueError),       # lo > hi
    (dict(neg_iou_thr=[0.1]), ValueError),
    (dict(neg_iou_thr=[0.1, 0.6]), ValueError),
    (dict(neg_iou_thr='low'), TypeError),
    (dict(min_pos_iou=-0.1), ValueError),
    (dict(gt_max_assign_all='yes'), TypeError),
    (dict(match_low_quality=1), TypeError),
    (dict(num_classes=0), ValueError),
    (dict(sampler=42), TypeError),
    (dict(sampler={'num': 4}), ValueError),
    (dict(sampler='NoSuchSampler'), ConfigError),
])
def test_constructor_validation(kwargs, error):
    with pytest.raises(error, match='MaxIoUAssigner|NoSuchSampler'):
        MaxIoUAssigner(**kwargs)


def test_from_config_with_injected_sampler_and_a_negative_band():
    cfg = {'num_classes': 3,
           'MaxIoUAssigner': {'pos_iou_thr': 0.5, 'neg_iou_thr': [0.1, 0.4],
                              'sampler': {'name': 'OHEMSampler', 'neg_pos_ratio': 2}}}
    a = create('MaxIoUAssigner', cfg=cfg)
    assert a.neg_band == (0.1, 0.4) and a.num_classes == 3
    assert isinstance(a.sampler, OHEMSampler) and a.sampler.neg_pos_ratio == 2
    assert a.needs_preds
    with pytest.raises(ValueError, match='pass preds'):
        a.assign(priors_of(STRIPS), gts_of(GT10))
    b = create('MaxIoUAssigner', cfg={'MaxIoUAssigner': {'sampler': 'RandomSampler'}})
    assert isinstance(b.sampler, RandomSampler) and not b.needs_preds
    assert b.neg_band == (0., 0.4)    # the default: RetinaNet's 0.4


def test_sampler_sees_the_assignment_and_preds():
    a = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, num_classes=3,
                       sampler=OHEMSampler(neg_pos_ratio=1))
    scores = np.zeros([1, 5, 3], 'float32')
    scores[0, 3] = [0.1, 0, 0]
    scores[0, 4] = [0.9, 0, 0]     # the harder of the two negatives
    r = a.assign(priors_of(STRIPS), gts_of(GT10), Preds(T(scores), T(np.zeros([1, 5, 4]))))
    # two positives (1.0, 0.5) -> two negatives at 1:1, here both; prior 2 stays ignored
    assert r.gt_index.numpy().tolist() == [[0, 0, IGNORED, BACKGROUND, BACKGROUND]]
    a.sampler.neg_pos_ratio = 0.5   # ceil(0.5 * 2) = 1: the harder negative only
    r = a.assign(priors_of(STRIPS), gts_of(GT10), Preds(T(scores), T(np.zeros([1, 5, 4]))))
    assert r.gt_index.numpy().tolist() == [[0, 0, IGNORED, IGNORED, BACKGROUND]]
