"""deploy/tensorrt: the EfficientNMS graph edit (checked without TensorRT) and the engine builder."""

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tensorrt'))
import build_engine  # noqa: E402
import efficient_nms  # noqa: E402
from efficient_nms import OUTPUTS, PLUGIN_DOMAIN, PLUGIN_OP, add_efficient_nms  # noqa: E402

ort = pytest.importorskip('onnxruntime')


def no_nms_model(num_classes=3):
    """The no-NMS export's interface: image [B, 3, H, W] -> bbox [B, L, 4], scores [B, C, L]
    (a stand-in network: L = H*W/64 boxes from an 8x8 average pool)."""
    nodes = [
        helper.make_node('AveragePool', ['image'], ['pooled'], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node('Reshape', ['pooled', 'bcl'], ['flat']),              # [B, 3, L]
        helper.make_node('Transpose', ['flat'], ['t'], perm=[0, 2, 1]),       # [B, L, 3]
        helper.make_node('Concat', ['t', 't'], ['six'], axis=2),
        helper.make_node('Slice', ['six', 'zero', 'four', 'two'], ['bbox']),  # [B, L, 4]
        helper.make_node('Sigmoid', ['flat'], ['sig']),
        helper.make_node('Slice', ['sig', 'zero', 'classes', 'one'], ['scores'])]
    consts = [helper.make_tensor('bcl', TensorProto.INT64, [3], [0, 0, -1]),
              helper.make_tensor('zero', TensorProto.INT64, [1], [0]),
              helper.make_tensor('four', TensorProto.INT64, [1], [4]),
              helper.make_tensor('two', TensorProto.INT64, [1], [2]),
              helper.make_tensor('one', TensorProto.INT64, [1], [1]),
              helper.make_tensor('classes', TensorProto.INT64, [1], [num_classes])]
    graph = helper.make_graph(
        nodes, 'no_nms',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['batch', 3, 'height', 'width'])],
        [helper.make_tensor_value_info('bbox', TensorProto.FLOAT, ['batch', 'num_anchors', 4]),
         helper.make_tensor_value_info('scores', TensorProto.FLOAT,
                                       ['batch', num_classes, 'num_anchors'])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 11)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def test_plugin_node_and_outputs():
    model = add_efficient_nms(no_nms_model(), score_threshold=0.25, iou_threshold=0.6,
                              max_output_boxes=100)
    onnx.checker.check_model(model)  # the custom domain is declared
    assert {(o.domain, o.version) for o in model.opset_import} == {('', 11), (PLUGIN_DOMAIN, 1)}
    plugin = [n for n in model.graph.node if n.op_type == PLUGIN_OP]
    assert len(plugin) == 1 and plugin[0].domain == PLUGIN_DOMAIN
    attrs = {a.name: helper.get_attribute_value(a) for a in plugin[0].attribute}
    assert attrs == {'plugin_version': b'1', 'background_class': -1, 'max_output_boxes': 100,
                     'score_threshold': pytest.approx(0.25), 'iou_threshold': pytest.approx(0.6),
                     'score_activation': 0, 'box_coding': 0}
    # the plugin reads boxes [B, L, 4] and scores transposed to [B, L, C]
    transpose = next(n for n in model.graph.node if n.output[0] == plugin[0].input[1])
    assert transpose.op_type == 'Transpose' and list(transpose.input) == ['scores']
    assert helper.get_attribute_value(transpose.attribute[0]) == [0, 2, 1]
    assert plugin[0].input[0] == 'bbox' and list(plugin[0].output) == list(OUTPUTS)

    def signature(info):
        dims = [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]
        return info.type.tensor_type.elem_type, dims
    assert {o.name: signature(o) for o in model.graph.output} == {
        'num_dets': (TensorProto.INT32, ['batch', 1]),
        'det_boxes': (TensorProto.FLOAT, ['batch', 100, 4]),
        'det_scores': (TensorProto.FLOAT, ['batch', 100]),
        'det_classes': (TensorProto.INT32, ['batch', 100])}


def test_plugin_inputs_carry_the_raw_values():
    """Up to the plugin, the graph is the no-NMS model: ONNX Runtime on the edited graph cut
    before the plugin gives the transposed scores of the original."""
    cut = add_efficient_nms(no_nms_model(), 0.25, 0.6, 100)
    kept = [n for n in cut.graph.node if n.op_type != PLUGIN_OP]
    del cut.graph.node[:], cut.graph.output[:]
    cut.graph.node.extend(kept)
    cut.graph.output.extend([helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
                             for name in ('bbox', 'efficient_nms/scores_blc')])
    image = np.random.RandomState(0).uniform(-1, 1, (2, 3, 32, 48)).astype(np.float32)
    boxes, scores_blc = ort.InferenceSession(cut.SerializeToString()).run(None, {'image': image})
    ref_boxes, ref_scores = ort.InferenceSession(no_nms_model().SerializeToString()).run(
        None, {'image': image})
    assert scores_blc.shape == (2, 24, 3)
    np.testing.assert_array_equal(boxes, ref_boxes)
    np.testing.assert_array_equal(scores_blc, ref_scores.transpose(0, 2, 1))


def test_plugin_refuses_what_it_cannot_express():
    with pytest.raises(ValueError, match='max_output_boxes must be an int >= 1'):
        add_efficient_nms(no_nms_model(), 0.25, 0.6, -1)
    with pytest.raises(ValueError, match='iou_threshold must be in'):
        add_efficient_nms(no_nms_model(), 0.25, 1.5, 10)
    nms_model = no_nms_model()
    nms_model.graph.output[1].name = 'bbox_num'
    with pytest.raises(ValueError, match="no output 'scores'.*exclude_nms=True"):
        add_efficient_nms(nms_model, 0.25, 0.6, 10)


def test_script_takes_the_settings_from_infer_cfg(tmp_path):
    onnx_file, save_file = str(tmp_path / 'm.onnx'), str(tmp_path / 'trt.onnx')
    onnx.save(no_nms_model(), onnx_file)
    infer_cfg = tmp_path / 'infer_cfg.yml'
    infer_cfg.write_text('NMS: {score_threshold: 0.01, nms_top_k: 1000, keep_top_k: 300, '
                         'nms_threshold: 0.7, normalized: true, nms_eta: 1.0}\n')
    efficient_nms.main(['--onnx_file', onnx_file, '--save_file', save_file, '--infer_cfg',
                        str(infer_cfg), '--max_output_boxes', '50'])
    plugin = next(n for n in onnx.load(save_file).graph.node if n.op_type == PLUGIN_OP)
    attrs = {a.name: helper.get_attribute_value(a) for a in plugin.attribute}
    assert attrs['score_threshold'] == pytest.approx(0.01)
    assert attrs['iou_threshold'] == pytest.approx(0.7)
    assert attrs['max_output_boxes'] == 50  # the flag wins over keep_top_k
    with pytest.raises(SystemExit, match='needs score_threshold, iou_threshold'):
        efficient_nms.main(['--onnx_file', onnx_file, '--save_file', save_file,
                            '--max_output_boxes', '5'])


def test_profile_shapes():
    # dynamic batch and size: batch from the batch triple, H x W from the size triples
    assert build_engine.profile_shapes([-1, 3, -1, -1], (1, 2, 8),
                                       ((320, 320), (640, 480), (1280, 1280))) == (
        [1, 3, 320, 320], [2, 3, 640, 480], [8, 3, 1280, 1280])
    # a fixed export size stays fixed; scale_factor follows the batch
    assert build_engine.profile_shapes([-1, 3, 640, 640], (1, 1, 4), None) == (
        [1, 3, 640, 640], [1, 3, 640, 640], [4, 3, 640, 640])
    assert build_engine.profile_shapes([-1, 2], (1, 1, 4)) == ([1, 2], [1, 2], [4, 2])
    with pytest.raises(ValueError, match='dynamic height / width'):
        build_engine.profile_shapes([-1, 3, -1, -1], (1, 1, 1))
    with pytest.raises(ValueError, match='min <= opt <= max'):
        build_engine.profile_shapes([-1, 2], (2, 1, 4))


def test_builder_without_tensorrt_says_so(tmp_path, monkeypatch):
    onnx_file = str(tmp_path / 'm.onnx')
    onnx.save(no_nms_model(), onnx_file)
    monkeypatch.setitem(sys.modules, 'tensorrt', None)  # import tensorrt -> ImportError
    with pytest.raises(SystemExit, match='TensorRT is not installed'):
        build_engine.main(['--onnx_file', onnx_file])
    assert os.listdir(tmp_path) == ['m.onnx']


def test_builder_builds_an_engine(tmp_path):
    pytest.importorskip('tensorrt', reason='TensorRT is not installed (needs an NVIDIA GPU); '
                                           'the graph edit is tested above without it')
    onnx_file = str(tmp_path / 'm.onnx')
    onnx.save(no_nms_model(), onnx_file)
    engine = build_engine.main(['--onnx_file', onnx_file, '--efficient_nms',
                                '--score_threshold', '0.2', '--iou_threshold', '0.5',
                                '--max_output_boxes', '10', '--max_batch', '2',
                                '--min_shape', '32', '32', '--opt_shape', '64', '64',
                                '--max_shape', '128', '128'])
    assert os.path.getsize(engine) > 0
