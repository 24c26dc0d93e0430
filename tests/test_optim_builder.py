"""OptimizerBuilder: hyper-parameters, regularisation and clipping checked through the updates they
produce (hand-computed), decay exclusions for AdamW, and the error messages."""

import textwrap

import numpy as np
import paddle
import pytest

from ppdet_lite.core.workspace import create, load_config
from ppdet_lite.optim import OptimizerBuilder


class Net(paddle.nn.Layer):
    """A Linear layer (2-D weight, 1-D bias) and a frozen parameter."""

    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(3, 2)
        self.fc.weight.set_value(paddle.to_tensor([[1., -2.], [0.5, 4.], [-1., 2.]]))
        self.fc.bias.set_value(paddle.to_tensor([3., -1.]))
        self.frozen = self.create_parameter([2])
        self.frozen.set_value(paddle.to_tensor([7., 7.]))
        self.frozen.stop_gradient = True


def values(net):
    return {k: np.array(v) for k, v in net.state_dict().items()}


def step(opt, net, loss_fn):
    loss_fn(net).backward()
    opt.step()
    opt.clear_grad()


def zero_grad_loss(net):
    return (net.fc.weight * 0.).sum() + (net.fc.bias * 0.).sum()


def test_momentum_with_l2_decays_weights_and_uses_momentum():
    net = Net()
    w0 = values(net)
    opt = OptimizerBuilder(regularizer={'type': 'L2', 'factor': 0.01},
                           optimizer={'type': 'Momentum', 'momentum': 0.5})(0.1, net)
    # zero loss gradient: the L2 term alone, grad = 0.01 * w, so w1 = w - 0.1 * 0.01 * w
    step(opt, net, zero_grad_loss)
    w1 = values(net)
    np.testing.assert_allclose(w1['fc.weight'], w0['fc.weight'] * (1 - 0.001), rtol=1e-6)
    np.testing.assert_allclose(w1['fc.bias'], w0['fc.bias'] * (1 - 0.001), rtol=1e-6)
    assert (w1['frozen'] == 7.).all()                       # not trainable: left alone
    assert all(p.name != net.frozen.name for p in opt._parameter_list)


def test_momentum_factor_without_regularizer():
    net = Net()
    b0 = values(net)['fc.bias']
    opt = OptimizerBuilder(regularizer=None,
                           optimizer={'type': 'Momentum', 'momentum': 0.5})(0.1, net)
    # d loss / d bias = [1, 2] each step; velocity v1 = g, v2 = 0.5 g + g = 1.5 g
    loss = lambda n: (n.fc.bias * paddle.to_tensor([1., 2.])).sum()  # noqa: E731
    step(opt, net, loss)
    step(opt, net, loss)
    np.testing.assert_allclose(values(net)['fc.bias'], b0 - 0.1 * (1 + 1.5) * np.array([1., 2.]),
                               rtol=1e-6)


def test_adamw_uses_its_own_weight_decay_not_the_regularizer():
    net = Net()
    w0 = values(net)
    opt = OptimizerBuilder(regularizer={'type': 'L2', 'factor': 0.5},
                           optimizer={'type': 'AdamW', 'weight_decay': 0.2})(0.1, net)
    assert isinstance(opt, paddle.optimizer.AdamW)
    # zero gradient: Adam's step is 0 / (0 + eps) = 0; decoupled decay w1 = w * (1 - 0.1 * 0.2);
    # an L2 regulariser (factor 0.5) would instead give a non-zero Adam step of about -lr * sign(w)
    step(opt, net, zero_grad_loss)
    w1 = values(net)
    np.testing.assert_allclose(w1['fc.weight'], w0['fc.weight'] * 0.98, rtol=1e-6)
    np.testing.assert_allclose(w1['fc.bias'], w0['fc.bias'] * 0.98, rtol=1e-6)


def test_adamw_decay_norm_bias_false_exempts_1d_parameters():
    net = paddle.nn.Sequential(paddle.nn.Conv2D(1, 2, 1), paddle.nn.BatchNorm2D(2))
    w0 = values(net)
    opt = OptimizerBuilder(optimizer={'type': 'AdamW', 'weight_decay': 0.2,
                                      'decay_norm_bias': False})(0.1, net)
    loss = lambda n: sum((p * 0.).sum() for p in n.parameters() if p.trainable)  # noqa: E731
    step(opt, net, loss)
    w1 = values(net)
    np.testing.assert_allclose(w1['0.weight'], w0['0.weight'] * 0.98, rtol=1e-6)  # 4-D: decayed
    for key in ('0.bias', '1.weight', '1.bias'):                                # 1-D: exempt
        np.testing.assert_array_equal(w1[key], w0[key], err_msg=key)


def test_clip_by_global_norm_limits_a_huge_gradient():
    net = Net()
    w0 = values(net)
    opt = OptimizerBuilder(clip_grad_by_norm=1.0, regularizer=None,
                           optimizer={'type': 'SGD'})(1.0, net)
    step(opt, net, lambda n: 1e6 * (n.fc.weight.sum() + n.fc.bias.sum()))
    delta = np.concatenate([(w0[k] - values(net)[k]).ravel() for k in ('fc.weight', 'fc.bias')])
    # every gradient is 1e6; clipped to global norm 1 over 8 elements: each 1 / sqrt(8)
    np.testing.assert_allclose(delta, np.full(8, 1 / np.sqrt(8)), rtol=1e-5)


def test_clip_by_value_bounds_each_element():
    net = Net()
    w0 = values(net)['fc.bias']
    opt = OptimizerBuilder(clip_grad_by_value=-0.25, regularizer=None,
                           optimizer={'type': 'SGD'})(1.0, net)
    step(opt, net, lambda n: (n.fc.bias * paddle.to_tensor([1e6, 0.1])).sum())
    np.testing.assert_allclose(values(net)['fc.bias'], w0 - np.array([0.25, 0.1]), rtol=1e-6)


def test_config_section_builds_momentum_with_l2(tmp_path):
    path = tmp_path / 'opt.yml'
    path.write_text(textwrap.dedent("""
        OptimizerBuilder:
          optimizer: {momentum: 0.9, type: Momentum}
          regularizer: {factor: 0.0005, type: L2}
    """))
    builder = create('OptimizerBuilder', load_config(str(path), make_current=False))
    net = Net()
    w0 = values(net)['fc.weight']
    opt = builder(0.1, net)
    assert isinstance(opt, paddle.optimizer.Momentum)
    step(opt, net, zero_grad_loss)
    np.testing.assert_allclose(values(net)['fc.weight'], w0 * (1 - 0.1 * 0.0005), rtol=1e-6)


def test_errors_name_the_key_and_list_supported_values():
    with pytest.raises(ValueError, match=r"optimizer.type: unknown optimizer 'Adamw'; supported: "
                                         r"Momentum, SGD, Adam, AdamW, RMSProp"):
        OptimizerBuilder(optimizer={'type': 'Adamw'})
    with pytest.raises(ValueError, match=r"regularizer.type: unknown regularizer 'L3'; "
                                         r"supported: L1, L2"):
        OptimizerBuilder(regularizer={'type': 'L3', 'factor': 0.1})
    with pytest.raises(ValueError, match='decay_norm_bias is an AdamW option'):
        OptimizerBuilder(optimizer={'type': 'Momentum', 'decay_norm_bias': False})
    with pytest.raises(ValueError, match='Momentum rejected the arguments'):
        OptimizerBuilder(optimizer={'type': 'Momentum', 'beta1': 0.9})(0.1, Net())
