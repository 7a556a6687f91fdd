"""benchmarks/complexity.py: parameters and GFLOPs per config, attention matmuls included."""
import json
import subprocess
import sys

from helpers import REPO


def test_complexity_counts_attention_and_matches_tokenpose_s(tmp_path):
    out = tmp_path / 'complexity.json'
    res = subprocess.run(
        [sys.executable, '-m', 'benchmarks.complexity', '--configs',
         'tokenpose/coco/td-hm_tokenpose-s-v1_4xb32-300e_coco-256x192.py', '--out', str(out)],
        capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    row, = json.load(open(out))
    assert 'td-hm_tokenpose-s-v1' in res.stdout and '72.5' in res.stdout  # beside the paper
    assert abs(row['params_m'] - 6.6) < 0.066 and row['paper_params_m'] == 6.6
    # attention: 12 layers x (q k^T + attn v), 17 keypoint + 16*16 visual tokens, 192-d
    tokens = 17 + (64 // 4) * (48 // 3)
    attention = 12 * 2 * tokens**2 * 192 / 1e9
    assert abs(row['gflops'] - row['gflops_without_attention'] - attention) < 1e-3
    # the rest: stem + 4 bottlenecks at 1/4 and the transformer's linear layers
    linear = 12 * tokens * (4 * 192**2 + 2 * 192 * 576) / 1e9
    assert linear < row['gflops_without_attention'] < linear + 1.3
