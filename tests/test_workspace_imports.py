"""PaddleDetection's habit: ``load_config`` + ``create(cfg.architecture)`` with nothing else imported
(issue 11). Loading imports nothing (no Paddle); a name unknown when something is built makes the
workspace import the component packages once and look again."""

import os
import subprocess
import sys
import textwrap

import pytest

from ppdet_lite.core import workspace
from ppdet_lite.core.workspace import ConfigError, TagNode, create, get_registered, load_config

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
CONFIG = os.path.join(ROOT, 'configs', 'ppyoloe', 'ppyoloe_crn_s_300e_coco.yml')


def test_load_imports_nothing_and_create_imports_the_components(tmp_path):
    user_cfg = tmp_path / 'mine.yml'
    user_cfg.write_text(textwrap.dedent(f"""
        _BASE_: ['{CONFIG}']
        my_nms: !MultiClassNMS {{keep_top_k: 50}}
    """))
    script = textwrap.dedent(f"""
        import sys
        from ppdet_lite.core.workspace import load_config, create
        cfg = load_config({str(user_cfg)!r}, overrides=['width_mult=0.25', 'depth_mult=0.33'])
        loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'paddle'
                        or m.startswith('ppdet_lite.modeling'))
        print('after load:', loaded, type(cfg.my_nms).__name__)
        model = create(cfg.architecture)
        nms = create('my_nms')
        print('built:', type(model).__name__, type(model.yolo_head).__name__, type(nms).__name__,
              nms.keep_top_k, cfg.my_nms is nms, 'paddle' in sys.modules)
    """)
    out = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == 'after load: [] TagNode'   # nothing imported; the tag waits for its class
    assert lines[1] == 'built: YOLOv3 PPYOLOEHead MultiClassNMS 50 True True'


@pytest.fixture
def plugin_packages(tmp_path, monkeypatch):
    """Three packages standing for the components: one registers a class, one fails to import
    with a real ImportError, one does not exist."""
    (tmp_path / 'wi_plugin').mkdir()
    (tmp_path / 'wi_plugin' / '__init__.py').write_text(textwrap.dedent("""
        from ppdet_lite.core.workspace import register, serializable

        @register
        @serializable
        class WiPluginHead:
            __shared__ = ['num_classes']

            def __init__(self, num_classes=80):
                self.num_classes = num_classes
    """))
    (tmp_path / 'wi_broken').mkdir()
    (tmp_path / 'wi_broken' / '__init__.py').write_text('import wi_dependency_that_is_not_installed\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(workspace, '_components_imported', False)
    return tmp_path


def test_unknown_name_imports_the_component_packages_once(plugin_packages, monkeypatch):
    monkeypatch.setattr(workspace, 'COMPONENT_PACKAGES', ('wi_not_written_yet', 'wi_plugin'))
    path = plugin_packages / 'a.yml'
    path.write_text('num_classes: 3\narchitecture: WiPluginHead\nhead: !WiPluginHead {}\n')
    cfg = load_config(str(path))
    assert 'wi_plugin' not in sys.modules and isinstance(cfg.head, TagNode)
    assert create(cfg.architecture, cfg).num_classes == 3   # imported on demand; absent one skipped
    assert 'wi_plugin' in sys.modules and create('head', cfg).num_classes == 80
    sys.modules.pop('wi_plugin')
    # once imported, an unknown name does not import again
    with pytest.raises(ConfigError, match="unknown class 'WiNothing'"):
        create('WiNothing', cfg)
    assert 'wi_plugin' not in sys.modules
    assert get_registered('WiPluginHead').__name__ == 'WiPluginHead'


def test_a_real_import_error_inside_a_component_is_not_swallowed(plugin_packages, monkeypatch):
    monkeypatch.setattr(workspace, 'COMPONENT_PACKAGES', ('wi_broken',))
    path = plugin_packages / 'b.yml'
    path.write_text('architecture: WiStillUnknown\n')
    cfg = load_config(str(path))
    with pytest.raises(ImportError, match='wi_dependency_that_is_not_installed'):
        create(cfg.architecture, cfg)
    assert workspace._components_imported is False   # tried again next time, and fails again
