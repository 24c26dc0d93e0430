"""tools/infer.py: the same detections as the exported model in deploy/python/infer.py on the same
image, drawn images, COCO results with the dataset's category ids, unreadable images."""

import importlib.util
import json
import os
import re
import sys

import numpy as np
import pytest

from ppdet_lite.engine.export import export_model

from tiny_detector import (CATEGORIES, DEMO, ROOT, assert_same_detections, cli_overrides,
                           overrides, tiny_config, write_categories, write_checkpoint,
                           write_images)

sys.path.insert(0, os.path.join(ROOT, 'deploy', 'python'))
import infer as deploy_infer  # noqa: E402

SIZE = [192, 192]  # square here; test_export covers a non-square size


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'tools_{name}',
                                                  os.path.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('infer')
    anno = write_categories(str(root / 'categories.json'))
    image_dir = root / 'images'
    image_dir.mkdir()
    images = write_images(str(image_dir))
    (image_dir / 'broken.jpg').write_bytes(b'not an image')
    cfg = tiny_config(anno, SIZE)
    stem = str(root / 'model_final')
    write_checkpoint(cfg, stem)
    argv = ['-c', DEMO, '-o', f'weights={stem}'] + cli_overrides(overrides(anno, SIZE))
    return {'root': root, 'anno': anno, 'images': images, 'image_dir': str(image_dir),
            'cfg': cfg, 'weights': stem, 'argv': argv}


@pytest.fixture(scope='module')
def export_dir(setup):
    return export_model(setup['cfg'], str(setup['root'] / 'export'), weights=setup['weights'])


def test_tools_infer_equals_deploy_runner(setup, export_dir):
    out = str(setup['root'] / 'tool_out')
    tool = load_tool('infer')
    predictions = tool.main(setup['argv'] + ['--infer_img', setup['images'][1],
                                             '--output_dir', out, '--save_results'])
    detector = deploy_infer.Detector(export_dir, ir_optim=False)
    (im_file, dets), = predictions
    assert im_file == setup['images'][1] and len(dets) > 0
    assert_same_detections(detector.predict([im_file]), [dets])

    assert os.path.isfile(os.path.join(out, 'img1.png'))
    with open(os.path.join(out, 'bbox.json')) as f:
        results = json.load(f)
    # COCO results: one per detection, class index -> the file's category id, [x, y, w, h]
    catids = [cid for cid, _ in CATEGORIES]
    assert len(results) == len(dets)
    for row, (cls, score, x1, y1, x2, y2) in zip(results, dets.tolist()):
        assert row['file_name'] == 'img1.png' and row['image_id'] == 0
        assert row['category_id'] == catids[int(cls)]
        np.testing.assert_allclose(row['bbox'], [x1, y1, x2 - x1, y2 - y1], rtol=1e-6)
        assert row['score'] == pytest.approx(score)

    # the deploy CLI runs on the same export and writes its drawn image
    deploy_out = str(setup['root'] / 'deploy_out')
    results = deploy_infer.main(['--model_dir', export_dir, '--image_file', im_file,
                                 '--output_dir', deploy_out])
    assert list(results) == [im_file]
    assert os.path.isfile(os.path.join(deploy_out, 'img1.png'))


def test_directory_run_skips_an_unreadable_image(setup, capsys):
    out = str(setup['root'] / 'dir_out')
    predictions = load_tool('infer').main(setup['argv'] + ['--infer_dir', setup['image_dir'],
                                                           '--output_dir', out])
    assert [p for p, _ in predictions] == setup['images']  # broken.jpg left out
    assert sorted(os.listdir(out)) == ['img0.png', 'img1.png']


def test_unreadable_image_is_an_error_naming_it(setup, capsys):
    bad = os.path.join(setup['image_dir'], 'broken.jpg')
    with pytest.raises(SystemExit) as exit_info:
        load_tool('infer').main(setup['argv'] + ['--infer_img', bad,
                                                 '--output_dir', str(setup['root'] / 'bad')])
    assert exit_info.value.code == 1
    assert f'cannot decode image {bad}' in capsys.readouterr().err


def test_deploy_runner_unreadable_and_trt(setup, export_dir, tmp_path):
    bad = os.path.join(setup['image_dir'], 'broken.jpg')
    with pytest.raises(SystemExit, match=f'error: cannot decode image {bad}'):
        deploy_infer.main(['--model_dir', export_dir, '--image_file', bad])
    # a directory run skips it and goes on
    results = deploy_infer.main(['--model_dir', export_dir, '--image_dir', setup['image_dir'],
                                 '--output_dir', str(tmp_path / 'out')])
    assert list(results) == setup['images']
    # TensorRT modes: refused on the CPU, and on a build without TensorRT, before any model load
    with pytest.raises(ValueError, match='need --device GPU'):
        deploy_infer.create_predictor(str(tmp_path), {}, device='CPU', run_mode='trt_fp16')
    import paddle
    from paddle import inference
    if not paddle.is_compiled_with_cuda() or tuple(inference.get_trt_compile_version()) == (0,) * 3:
        with pytest.raises(RuntimeError, match='has no TensorRT'):
            deploy_infer.create_predictor(str(tmp_path), {}, device='GPU', run_mode='trt_fp32')


@pytest.mark.parametrize('switch', ['exclude_nms', 'exclude_post_process'])
def test_export_switches_are_refused_by_infer_and_eval(setup, switch, capsys):
    """exclude_nms / exclude_post_process remove the bbox / bbox_num outputs the tools read: both
    stop before building anything, naming the key (they crashed with KeyError 'bbox_num')."""
    argv = setup['argv'] + [f'{switch}=True']
    with pytest.raises(SystemExit) as exit_info:
        load_tool('infer').main(argv + ['--infer_img', setup['images'][0],
                                        '--output_dir', str(setup['root'] / 'switch')])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert f'{switch}=True is an export switch (tools/export_model.py): tools/infer.py' in err
    with pytest.raises(SystemExit) as exit_info:
        load_tool('eval').main(argv)
    assert exit_info.value.code == 1
    assert f'{switch}=True is an export switch (tools/export_model.py): tools/eval.py' in \
        capsys.readouterr().err


def test_eval_refuses_a_checkpoint_of_another_num_classes(setup, capsys):
    """The checkpoint has 5 classes; with num_classes=3 only the class predictor differs in shape.
    Evaluating used to warn and report AP 0.000; now it stops as the exporter does."""
    root = setup['root']
    anno = str(root / 'val.json')
    with open(anno, 'w') as f:
        json.dump({'images': [{'id': 1, 'file_name': 'img0.png', 'height': 150, 'width': 230}],
                   'annotations': [],
                   'categories': [{'id': i, 'name': n} for i, n in CATEGORIES[:3]]}, f)
    argv = setup['argv'] + ['num_classes=3', f'EvalDataset.dataset_dir={root}',
                            'EvalDataset.image_dir=images', f'EvalDataset.anno_path={anno}']
    with pytest.raises(SystemExit) as exit_info:
        load_tool('eval').main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert 'differ in shape' in err and 'was it trained with this config' in err


def truncated_jpeg(source, path):
    """The first third of a JPEG of ``source``: cv2.imread decodes it half grey (with 'Premature
    end of JPEG file'), cv2.imdecode (the Preprocessor's rule) refuses it."""
    import cv2
    ok, data = cv2.imencode('.jpg', cv2.imread(source))
    path.write_bytes(data.tobytes()[:len(data) // 3])
    assert cv2.imread(str(path)) is not None  # what the runners used to accept
    return str(path)


def test_deploy_runner_refuses_a_truncated_jpeg(setup, export_dir, tmp_path):
    bad = truncated_jpeg(setup['images'][0], tmp_path / 'truncated.jpg')
    with pytest.raises(SystemExit, match=f'error: cannot decode image {bad}: not an image OpenCV'):
        deploy_infer.main(['--model_dir', export_dir, '--image_file', bad,
                           '--output_dir', str(tmp_path / 'out')])
    # a directory of unreadable images only: an error, not an empty success
    with pytest.raises(SystemExit, match='none of its 1 images could be read'):
        deploy_infer.main(['--model_dir', export_dir, '--image_dir', str(tmp_path),
                           '--output_dir', str(tmp_path / 'out')])


@pytest.mark.parametrize('extra, message', [
    (['--batch_size', '0'], '--batch_size must be >= 1, got 0'),
    (['--batch_size', '-1'], '--batch_size must be >= 1, got -1'),
    (['--threshold', '1.5'], r'--threshold must be in \[0, 1\], got 1.5')])
def test_deploy_runner_argument_checks(setup, export_dir, extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        deploy_infer.main(['--model_dir', export_dir, '--image_file', setup['images'][0]] + extra)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_deploy_directory_run_keeps_relative_paths_and_protects_sources(setup, export_dir,
                                                                        tmp_path, capsys):
    """sub/a/x.png and sub/b/x.png used to be drawn to the same output file; an --output_dir
    equal to the input directory overwrote the sources; an unreadable first image crashed the
    benchmark warm-up."""
    import shutil
    for sub in ('a', 'b'):
        (tmp_path / 'in' / sub).mkdir(parents=True)
        shutil.copy(setup['images'][int(sub == 'b')], tmp_path / 'in' / sub / 'x.png')
    (tmp_path / 'in' / 'a' / '0bad.jpg').write_bytes(b'not an image')
    out = tmp_path / 'out'
    deploy_infer.main(['--model_dir', export_dir, '--image_dir', str(tmp_path / 'in'),
                       '--output_dir', str(out)])
    assert sorted(str(p.relative_to(out)) for p in out.rglob('*.png')) == ['a/x.png', 'b/x.png']
    with pytest.raises(SystemExit) as exit_info:
        deploy_infer.main(['--model_dir', export_dir, '--image_dir', str(tmp_path / 'in'),
                           '--output_dir', str(tmp_path / 'in')])
    assert exit_info.value.code == 2 and 'would overwrite them' in capsys.readouterr().err
    # the warm-up takes the first readable image (0bad.jpg comes first)
    results = deploy_infer.main(['--model_dir', export_dir, '--image_dir', str(tmp_path / 'in'),
                                 '--run_benchmark'])
    assert len(results) == 2 and 'ms per image' in capsys.readouterr().out


def test_tools_infer_directory_outputs_and_coco_image_ids(setup, tmp_path, capsys):
    """Relative output paths (sub/a/x.png, sub/b/x.png used to collide), the input directory
    refused as --output_dir, a directory of unreadable images an error, and bbox.json's image_id
    taken from the TestDataset's COCO file (img1.png is listed there as id 42; x.png is not, so
    its position in the run: a/x.png 1, b/x.png 2)."""
    import shutil
    for sub in ('a', 'b'):
        (tmp_path / 'in' / sub).mkdir(parents=True)
        shutil.copy(setup['images'][int(sub == 'b')], tmp_path / 'in' / sub / 'x.png')
    shutil.copy(setup['images'][1], tmp_path / 'in' / 'img1.png')
    anno = str(tmp_path / 'test.json')
    with open(anno, 'w') as f:
        json.dump({'images': [{'id': 42, 'file_name': 'val/img1.png', 'height': 200,
                               'width': 170}], 'annotations': [],
                   'categories': [{'id': i, 'name': n} for i, n in CATEGORIES]}, f)
    tool = load_tool('infer')
    out = tmp_path / 'out'
    argv = setup['argv'] + [f'TestDataset.anno_path={anno}']
    predictions = tool.main(argv + ['--infer_dir', str(tmp_path / 'in'), '--output_dir', str(out),
                                    '--save_results'])
    assert sorted(str(p.relative_to(out)) for p in out.rglob('*.png')) == [
        'a/x.png', 'b/x.png', 'img1.png']
    with open(out / 'bbox.json') as f:
        ids = {(row['file_name'], row['image_id']) for row in json.load(f)}
    # run order: the directory's own files, then its subdirectories
    assert [os.path.relpath(p, tmp_path / 'in') for p, _ in predictions] == [
        'img1.png', 'a/x.png', 'b/x.png']
    assert ids == {('img1.png', 42), ('x.png', 1), ('x.png', 2)}

    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv + ['--infer_dir', str(tmp_path / 'in'), '--output_dir',
                          str(tmp_path / 'in')])
    assert exit_info.value.code == 2 and 'would overwrite them' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv + ['--infer_dir', str(tmp_path / 'in'), '--draw_threshold', '1.5'])
    assert exit_info.value.code == 2 and '--draw_threshold must be in [0, 1], got 1.5' in \
        capsys.readouterr().err
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / 'b.jpg').write_bytes(b'not an image')
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv + ['--infer_dir', str(tmp_path / 'bad'), '--output_dir', str(out)])
    assert exit_info.value.code == 1 and 'none of its 1 images could be read' in \
        capsys.readouterr().err


def test_deploy_runner_enable_mkldnn(setup, export_dir, tmp_path):
    """Paddle 3.x's oneDNN refuses the neck's upsampling attribute (it was a raw
    NotImplementedError traceback): a clear error; Paddle 2.6 runs it."""
    import paddle
    argv = ['--model_dir', export_dir, '--image_file', setup['images'][0], '--enable_mkldnn',
            '--output_dir', str(tmp_path)]
    if int(paddle.__version__.split('.')[0]) >= 3:
        with pytest.raises(SystemExit, match='--enable_mkldnn: oneDNN refuses this program on '
                                             'Paddle 3.x .*works on Paddle 2.6'):
            deploy_infer.main(argv)
    else:
        assert list(deploy_infer.main(argv)) == [setup['images'][0]]


def test_directory_runs_and_single_images_accept_the_same_extensions():
    """One list: what --infer_img reads, --infer_dir / --image_dir list (webp included)."""
    import importlib.util
    from ppdet_lite.data.datasets.image_folder import IMAGE_EXTENSIONS
    spec = importlib.util.spec_from_file_location(
        'deploy_preprocess', os.path.join(os.path.dirname(__file__), '..', 'deploy', 'python',
                                          'preprocess.py'))
    deploy_preprocess = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy_preprocess)
    assert deploy_preprocess.IMAGE_EXTENSIONS == IMAGE_EXTENSIONS
    assert '.webp' in IMAGE_EXTENSIONS
