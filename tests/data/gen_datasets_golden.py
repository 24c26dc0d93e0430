"""Generate ``ppdet26_datasets_golden.json``: the records PaddleDetection 2.6's own COCODataSet and
VOCDataSet parse from tiny annotation files, for ``tests/test_datasets.py``.

Runs only where ``paddledet==2.6.0`` is installed (not a project dependency):

    python tests/data/gen_datasets_golden.py [output.json]

``build_files(root)`` writes the annotation files and images; it needs no ppdet, so the test
rebuilds the same files and parses them with ppdet_lite.

* COCO: categories listed as 5, 2, 9 (unsorted, non-contiguous), images listed out of id order,
  one image file missing, fractional boxes (rounded to 3 decimals by ppdet), crowd boxes, an
  ``ignore`` box, an all-zero bbox, an annotated area of 0, a zero-width box, an image without
  annotations and one with only a crowd box. Every box lies inside its image (ppdet 2.6 does not
  clip COCO boxes; ppdet_lite does, which the hand-computed tests cover).
* VOC: a list file with an ``<id>`` tag, boxes past the right/bottom edge (clipped to w - 1 / h - 1
  by both), a degenerate box beside a valid one, ``<difficult>`` present and absent, an image
  without objects and a line whose image is missing.

Each case stores the constructor arguments and, per record, the image path relative to the root,
im_id, h, w and the box arrays as lists, plus the class mappings.
"""

import json
import os
import sys
import tempfile

COCO_CATEGORIES = [{'id': 5, 'name': 'five'}, {'id': 2, 'name': 'two'},
                   {'id': 9, 'name': 'nine'}]
COCO_IMAGES = [  # (id, file, width, height, written)
    (4, 'd.png', 96, 64, True), (1, 'a.png', 96, 64, True), (3, 'c.png', 80, 72, True),
    (2, 'b.png', 64, 96, True), (6, 'f.png', 96, 64, False), (5, 'e.png', 96, 64, True)]
COCO_ANNOTATIONS = [  # (image id, category id, bbox, extra keys)
    (1, 9, [10.12345, 5.5, 20.2, 30.0004], {}),
    (1, 2, [40, 10, 20, 20], {}),
    (1, 5, [0, 0, 50, 50], {'iscrowd': 1}),
    (2, 5, [3, 4, 10, 12], {'ignore': 1}),
    (2, 2, [0, 0, 0, 0], {}),
    (2, 2, [5, 5, 10, 10], {'area': 0}),
    (2, 9, [20, 20, 0, 8], {}),
    (2, 9, [1.0005, 2, 30, 40], {}),
    (4, 2, [8, 8, 16, 16], {'iscrowd': 1}),
    (6, 5, [1, 1, 10, 10], {}),
    (5, 5, [60, 30, 35.5, 33.25], {}),
]
COCO_CASES = [
    {'data_fields': ['image', 'gt_bbox', 'gt_class', 'is_crowd']},
    {'data_fields': ['image', 'gt_bbox', 'gt_class', 'is_crowd'], 'load_crowd': True},
    {'data_fields': ['image', 'gt_bbox', 'gt_class', 'is_crowd'], 'allow_empty': True},
    {'data_fields': ['image', 'gt_bbox', 'gt_class', 'is_crowd'], 'sample_num': 2},
    {'data_fields': ['image', 'gt_bbox']},
]
VOC_LABELS = ['cat', 'dog', 'bird']
VOC_ENTRIES = [  # (image, xml, id tag, width, height, objects (name, box, difficult), written)
    ('i0.png', 'x0.xml', None, 96, 64,
     [('dog', (10.5, 5, 30, 35), '1'), ('cat', (50, 20, 120, 80), None)], True),
    ('i1.png', 'x1.xml', 17, 64, 64,
     [('bird', (20, 20, 20, 30), '0'), ('bird', (2, 3, 40, 50), '0')], True),
    ('i2.png', 'x2.xml', None, 64, 48, [], True),
    ('i3.png', 'x3.xml', None, 64, 48, [('cat', (1, 1, 9, 9), None)], False),
    ('i4.png', 'x4.xml', None, 80, 60, [('cat', (-3, -2, 10, 12), None)], True),
]
VOC_CASES = [
    {'data_fields': ['image', 'gt_bbox', 'gt_class', 'difficult']},
    {'data_fields': ['image', 'gt_bbox', 'gt_class', 'difficult'], 'allow_empty': True},
    {'data_fields': ['image', 'gt_bbox', 'gt_class', 'difficult'], 'sample_num': 2},
]


def _png(path):
    # a valid 1x1 PNG: the datasets only check that image files exist
    with open(path, 'wb') as f:
        f.write(bytes.fromhex('89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55'
                              '0000000a49444154789c63600000000200015d0b2d5e0000000049454e44ae426082'))


def build_files(root):
    """Write coco/ and voc/ under ``root``."""
    os.makedirs(os.path.join(root, 'coco', 'images'))
    images = []
    for im_id, name, w, h, written in COCO_IMAGES:
        images.append({'id': im_id, 'file_name': name, 'width': w, 'height': h})
        if written:
            _png(os.path.join(root, 'coco', 'images', name))
    annotations = []
    for k, (im_id, cat, bbox, extra) in enumerate(COCO_ANNOTATIONS):
        a = {'id': k + 1, 'image_id': im_id, 'category_id': cat, 'bbox': bbox,
             'area': bbox[2] * bbox[3], 'iscrowd': 0}
        a.update(extra)
        annotations.append(a)
    with open(os.path.join(root, 'coco', 'anno.json'), 'w') as f:
        json.dump({'images': images, 'annotations': annotations,
                   'categories': COCO_CATEGORIES}, f)

    os.makedirs(os.path.join(root, 'voc', 'xml'))
    lines = []
    for image, xml, id_tag, w, h, objects, written in VOC_ENTRIES:
        parts = ['<annotation>']
        if id_tag is not None:
            parts.append(f'<id>{id_tag}</id>')
        parts.append(f'<size><width>{w}</width><height>{h}</height></size>')
        for name, (x1, y1, x2, y2), difficult in objects:
            parts.append(f'<object><name>{name}</name>'
                         + ('' if difficult is None else f'<difficult>{difficult}</difficult>')
                         + f'<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>'
                           f'<ymax>{y2}</ymax></bndbox></object>')
        parts.append('</annotation>')
        with open(os.path.join(root, 'voc', 'xml', xml), 'w') as f:
            f.write(''.join(parts))
        if written:
            _png(os.path.join(root, 'voc', image))
        lines.append(f'{image} xml/{xml}')
    with open(os.path.join(root, 'voc', 'list.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(os.path.join(root, 'voc', 'labels.txt'), 'w') as f:
        f.write('\n'.join(VOC_LABELS) + '\n')


def coco_kwargs(root, case):
    return dict(dataset_dir=os.path.join(root, 'coco'), image_dir='images',
                anno_path='anno.json', **case)


def voc_kwargs(root, case):
    return dict(dataset_dir=os.path.join(root, 'voc'), anno_path='list.txt',
                label_list='labels.txt', **case)


def summarize(dataset, root):
    """The parsed records and mappings as JSON-able values."""
    records = []
    for r in dataset.roidbs:
        out = {}
        for key, value in r.items():
            if key == 'im_file':
                out[key] = os.path.relpath(value, root)
            elif hasattr(value, 'tolist'):
                out[key] = value.tolist()
            elif key in ('h', 'w', 'im_id', 'gt_bbox', 'gt_class', 'is_crowd', 'difficult'):
                out[key] = value
        records.append(out)
    result = {'records': records, 'cname2cid': dataset.cname2cid}
    if hasattr(dataset, 'catid2clsid'):
        result['catid2clsid'] = {str(k): v for k, v in dataset.catid2clsid.items()}
    return result


def main():
    import paddle
    import ppdet
    from ppdet.data.source.coco import COCODataSet
    from ppdet.data.source.voc import VOCDataSet

    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'ppdet26_datasets_golden.json')
    golden = {'versions': f'paddledet {ppdet.__version__}; paddle {paddle.__version__}',
              'coco': [], 'voc': []}
    with tempfile.TemporaryDirectory() as root:
        build_files(root)
        for case in COCO_CASES:
            ds = COCODataSet(**coco_kwargs(root, case))
            ds.parse_dataset()
            golden['coco'].append({'case': case, **summarize(ds, root)})
        for case in VOC_CASES:
            ds = VOCDataSet(**voc_kwargs(root, case))
            ds.parse_dataset()
            golden['voc'].append({'case': case, **summarize(ds, root)})
    with open(out_path, 'w') as f:
        json.dump(golden, f, indent=1, sort_keys=True)
    print(f'wrote {out_path}')


if __name__ == '__main__':
    main()
