"""Writes ppyoloe_plus_crn_s_state_dict.tsv: PaddleDetection 2.6's state-dict layout of PP-YOLOE+ s.

Run in an environment with ``paddledet==2.6.0`` (never by the tests), with PaddleDetection's v2.6.0
``configs/`` tree at CONFIGS (e.g. ``git archive v2.6.0 configs | tar -x``):

    python tests/data/gen_ppyoloe_plus_layout.py /path/to/PaddleDetection-2.6.0/configs

The rows are ``key <TAB> shape <TAB> dtype`` in the model's ``state_dict()`` order, 80 classes, as
in ../shared/reference/ppyoloe_crn_*_state_dict.tsv.
"""

import json
import os
import sys

from ppdet.core.workspace import create, load_config

CONFIGS = sys.argv[1]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ppyoloe_plus_crn_s_state_dict.tsv')

cfg = load_config(os.path.join(CONFIGS, 'ppyoloe', 'ppyoloe_plus_crn_s_80e_coco.yml'))
model = create(cfg.architecture)
state = model.state_dict()
with open(OUT, 'w') as f:
    f.write(f'# PaddleDetection 2.6 PP-YOLOE+ crn_s (80 classes): {len(state)} entries, written by '
            f'gen_ppyoloe_plus_layout.py\n')
    for key, value in state.items():
        f.write(f'{key}\t{json.dumps(list(value.shape))}\t{str(value.dtype).split(".")[-1]}\n')
print(OUT, len(state))
