"""Build a TensorRT engine from an exported ONNX model (TensorRT Python API; needs a GPU).

    python deploy/tensorrt/build_engine.py --onnx_file output_inference/NAME/model.onnx \\
        [--save_file model.engine] [--precision fp32|fp16] [--min_batch 1 --opt_batch 1
        --max_batch 8] [--min_shape 320 320 --opt_shape 640 640 --max_shape 1280 1280]
        [--efficient_nms --infer_cfg output_inference/NAME/infer_cfg.yml
         [--score_threshold S --iou_threshold T --max_output_boxes K]] [--workspace 1024]

Use the no-NMS ONNX model (``tools/export_model.py -o exclude_nms=True --onnx``): it uses only what
TensorRT's ONNX parser reads. ``--efficient_nms`` first appends TensorRT's EfficientNMS plugin
(``efficient_nms.py``; thresholds from infer_cfg.yml's ``NMS`` unless given), writes that graph beside
the engine as ``<engine stem>_nms.onnx`` and builds from it. The ONNX model with ONNX NMS (the default
export) is for ONNX Runtime: its NonMaxSuppression and Compress need TensorRT >= 8.5 and are slower
there than the plugin.

Optimisation profile: the batch axis is dynamic (``--min/opt/max_batch``); the height and width take
``--min/opt/max_shape`` when the model was exported with a dynamic size (``image_shape [3, -1, -1]``),
and are fixed otherwise. ``scale_factor`` (and ``im_shape``) follow the batch.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import efficient_nms  # noqa: E402

__all__ = ['profile_shapes', 'build_engine', 'main']

TENSORRT_MISSING = ('TensorRT is not installed (import tensorrt failed): building an engine needs an '
                    'NVIDIA GPU and TensorRT >= 8.4 with its Python bindings (pip install tensorrt, '
                    'or the wheel shipped with TensorRT); trtexec --onnx=... builds one as well.')


def profile_shapes(shape, batch, height_width=None):
    """(min, opt, max) shapes of one network input for the optimisation profile.

    Args:
        shape (list[int]): the input's shape in the ONNX model, -1 for dynamic axes.
        batch (tuple[int]): (min, opt, max) batch sizes.
        height_width (tuple | None): ((h, w) min, opt, max) for an image input ``[B, 3, H, W]``
            with dynamic H or W.
    Returns:
        tuple of three lists.
    Raises:
        ValueError: a dynamic axis other than batch, height and width, a dynamic height / width
            without ``height_width``, or sizes not ordered min <= opt <= max.
    """
    if not (1 <= batch[0] <= batch[1] <= batch[2]):
        raise ValueError(f'batch sizes must satisfy 1 <= min <= opt <= max, got {list(batch)}')
    result = []
    for k in range(3):
        dims = list(shape)
        if dims and dims[0] == -1:
            dims[0] = batch[k]
        if len(dims) == 4 and (dims[2] == -1 or dims[3] == -1):
            if height_width is None:
                raise ValueError(f'the input {list(shape)} has a dynamic height / width: give '
                                 f'--min_shape, --opt_shape and --max_shape')
            for axis in (2, 3):
                if dims[axis] == -1:
                    dims[axis] = height_width[k][axis - 2]
        if any(d == -1 for d in dims):
            raise ValueError(f'input shape {list(shape)}: only batch, height and width may be '
                             f'dynamic')
        result.append(dims)
    for axis in range(len(shape)):
        if not result[0][axis] <= result[1][axis] <= result[2][axis]:
            raise ValueError(f'profile of {list(shape)}: axis {axis} sizes {result[0][axis]}, '
                             f'{result[1][axis]}, {result[2][axis]} are not min <= opt <= max')
    return tuple(result)


def build_engine(onnx_file, save_file, precision='fp32', batch=(1, 1, 1), height_width=None,
                 workspace_mb=1024):
    """Parse ``onnx_file`` with TensorRT and write the serialised engine to ``save_file``.

    Raises:
        ImportError: TensorRT is not installed (``TENSORRT_MISSING``).
        RuntimeError: the parser's errors, or a build that returns no engine.
    """
    try:
        import tensorrt as trt
    except ImportError as e:
        raise ImportError(TENSORRT_MISSING) from e
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, '')  # registers EfficientNMS_TRT
    builder = trt.Builder(logger)
    # explicit batch is the only mode of TensorRT 10 (the flag is gone there)
    flag = getattr(trt.NetworkDefinitionCreationFlag, 'EXPLICIT_BATCH', None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    with open(onnx_file, 'rb') as f:
        if not parser.parse(f.read()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise RuntimeError(f'TensorRT could not parse {onnx_file}:\n' + '\n'.join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision == 'fp16':
        if not builder.platform_has_fast_fp16:
            print('warning: this GPU has no fast FP16; building FP16 anyway', file=sys.stderr)
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        low, opt, high = profile_shapes(list(tensor.shape), batch, height_width)
        profile.set_shape(tensor.name, low, opt, high)
        print(f'{tensor.name}: min {low} opt {opt} max {high}')
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f'TensorRT failed to build an engine from {onnx_file} (see its log)')
    with open(save_file, 'wb') as f:
        f.write(serialized)
    return save_file


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--onnx_file', required=True)
    parser.add_argument('--save_file', help='engine file (default: <onnx stem>.engine)')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'fp16'])
    parser.add_argument('--min_batch', type=int, default=1)
    parser.add_argument('--opt_batch', type=int, default=1)
    parser.add_argument('--max_batch', type=int, default=1)
    for name, default in (('min', 320), ('opt', 640), ('max', 1280)):
        parser.add_argument(f'--{name}_shape', type=int, nargs=2, default=[default, default],
                            metavar=('H', 'W'), help=f'{name} image size for dynamic-size models')
    parser.add_argument('--efficient_nms', action='store_true',
                        help='append the EfficientNMS_TRT plugin to a no-NMS model first')
    efficient_nms.add_arguments(parser)
    parser.add_argument('--workspace', type=int, default=1024, help='builder workspace, MiB')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.onnx_file):
        sys.exit(f'error: --onnx_file {args.onnx_file} does not exist')
    try:
        import tensorrt  # noqa: F401  (fail before any file is written)
    except ImportError:
        sys.exit(f'error: {TENSORRT_MISSING}')
    save_file = args.save_file or os.path.splitext(args.onnx_file)[0] + '.engine'
    onnx_file = args.onnx_file
    try:
        if args.efficient_nms:
            try:
                import onnx
            except ImportError:
                sys.exit('error: --efficient_nms edits the ONNX graph with the onnx package: '
                         'pip install onnx')
            settings = efficient_nms.nms_settings(args.infer_cfg, args.score_threshold,
                                                  args.iou_threshold, args.max_output_boxes)
            model = efficient_nms.add_efficient_nms(onnx.load(onnx_file), **settings)
            onnx_file = os.path.splitext(save_file)[0] + '_nms.onnx'
            onnx.save(model, onnx_file)
            print(f'EfficientNMS_TRT appended: {onnx_file}')
        hw = (tuple(args.min_shape), tuple(args.opt_shape), tuple(args.max_shape))
        build_engine(onnx_file, save_file, args.precision,
                     (args.min_batch, args.opt_batch, args.max_batch), hw, args.workspace)
    except (ValueError, RuntimeError) as e:
        sys.exit(f'error: {e}')
    print(f'engine written to {save_file}')
    return save_file


if __name__ == '__main__':
    main()
