"""Hugging Face transformers' ViTPose both ways: its save_pretrained folders load into
the plugin with the same heatmaps, and the plugin's models export to folders transformers
loads. transformers is a test dependency only; the plugin never imports it."""
import json
import subprocess
import sys

import pytest
import torch
import transformers  # noqa: F401  (requirements/tests.txt: fails here rather than skipping)
from mmengine.registry import init_default_scope
from mmpose.apis import init_model
from mmpose.registry import MODELS

from helpers import REPO, TINY_ARCH, run_main, tiny_config

CLASSIC = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'
SIMPLE = 'td-hm_vitpose-base-simple_8xb64-210e_coco-256x192.py'
EXPERTS, PART = 2, 16


def hf_model(simple=False, experts=1, eps=1e-12, seed=0):
    """A randomly initialised transformers ViTPose of the tiny test size."""
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation
    torch.manual_seed(seed)
    backbone = VitPoseBackboneConfig(
        image_size=[256, 192], patch_size=[16, 16], hidden_size=TINY_ARCH['embed_dims'],
        num_hidden_layers=TINY_ARCH['num_layers'],
        num_attention_heads=TINY_ARCH['num_heads'],
        mlp_ratio=4, qkv_bias=True, layer_norm_eps=eps, num_experts=experts,
        part_features=PART if experts > 1 else 0, out_indices=[TINY_ARCH['num_layers']])
    model = VitPoseForPoseEstimation(VitPoseConfig(
        backbone_config=backbone, use_simple_decoder=simple, num_labels=17)).eval()
    with torch.no_grad():  # transformers initialises biases and BN statistics trivially
        for name, p in model.named_parameters():
            if name.endswith('bias'):
                p.normal_(0, 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def plugin_config(simple=False, experts=0):
    cfg = tiny_config(SIMPLE if simple else CLASSIC, deconv=(256, 256))
    if experts:
        cfg.model.backbone.update(num_experts=experts, part_features=PART)
    return cfg


def heatmaps_hf(model, x, dataset=0):
    with torch.no_grad():
        kwargs = dict(dataset_index=torch.full((x.shape[0], ), dataset))
        if model.config.backbone_config.num_experts == 1:
            kwargs = {}
        return model(pixel_values=x, **kwargs).heatmaps


@pytest.mark.parametrize('simple,experts', [(False, 1), (True, 1), (False, EXPERTS)],
                         ids=['classic', 'simple', 'vitpose-plus'])
def test_save_pretrained_folder_loads_with_the_same_heatmaps(tmp_path, simple, experts):
    hf = hf_model(simple, experts)
    hf.save_pretrained(tmp_path / 'hf')
    assert (tmp_path / 'hf' / 'model.safetensors').is_file()
    # a folder, as load_from / init_model / --pose-checkpoint take it
    ours = init_model(plugin_config(simple, experts if experts > 1 else 0),
                      str(tmp_path / 'hf'), device='cpu')
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        got = ours._forward(x)
    want = heatmaps_hf(hf, x)
    # config.json's LayerNorm eps (1e-12) is applied to the plugin's model: the same
    # network, equal to fp32 rounding
    assert {m.eps for m in ours.backbone.modules() if isinstance(m, torch.nn.LayerNorm)} \
        == {1e-12}
    assert (got - want).abs().max() <= 1e-5


def test_vitpose_plus_expert_split_equals_transformers(tmp_path):
    """A ViTPose+ file converted to a plain ViTPose of one dataset (its expert merged into
    fc2) gives transformers' heatmaps for that dataset."""
    hf = hf_model(experts=EXPERTS)
    hf.save_pretrained(tmp_path / 'hf')
    # in this process; the tool's command line: test_checkpoint_io.py
    run_main('tools/convert_checkpoint.py', tmp_path / 'hf', tmp_path / 'coco.pth',
             '--dataset', 'coco')
    plain = init_model(plugin_config(), str(tmp_path / 'coco.pth'), device='cpu')
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        assert (plain._forward(x) - heatmaps_hf(hf, x, 0)).abs().max() <= 1e-4


def test_architecture_mismatch_names_both(tmp_path):
    hf = hf_model()
    hf.config.backbone_config.num_attention_heads = 2  # same weights, other heads
    hf.save_pretrained(tmp_path / 'hf')
    with pytest.raises(ValueError) as info:
        init_model(plugin_config(), str(tmp_path / 'hf'), device='cpu')
    msg = str(info.value)
    assert 'config.json' in msg and 'num_attention_heads: checkpoint 2 vs model 4' in msg


@pytest.mark.parametrize('simple,experts', [(False, 0), (True, 0), (False, EXPERTS)],
                         ids=['classic', 'simple', 'vitpose-plus'])
def test_export_loads_in_transformers_and_round_trips_exactly(tmp_path, simple, experts):
    init_default_scope('mmpose')
    cfg = plugin_config(simple, experts)
    torch.manual_seed(1)
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    cfg.dump(str(tmp_path / 'cfg.py'))
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'plugin.pth')
    args = [tmp_path / 'cfg.py', tmp_path / 'plugin.pth', tmp_path / 'hf']
    if not simple and not experts:  # the command line once; the same main(argv) otherwise
        res = subprocess.run([sys.executable, str(REPO / 'tools' / 'export_hf.py')]
                             + [str(a) for a in args], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-3000:]
    else:
        run_main('tools/export_hf.py', *args)
    from transformers import VitPoseForPoseEstimation, VitPoseImageProcessor
    hf = VitPoseForPoseEstimation.from_pretrained(str(tmp_path / 'hf')).eval()
    processor = VitPoseImageProcessor.from_pretrained(str(tmp_path / 'hf'))
    assert processor.size == dict(height=256, width=192)
    assert hf.config.id2label[0] == 'nose' and len(hf.config.id2label) == 17
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        assert (model._forward(x) - heatmaps_hf(hf, x)).abs().max() <= 1e-5
    # and back: transformers' folder -> the plugin, bit for bit
    again = init_model(str(tmp_path / 'cfg.py'), str(tmp_path / 'hf'), device='cpu')
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    meta = json.loads((tmp_path / 'hf' / 'config.json').read_text())
    assert meta['backbone_config']['layer_norm_eps'] == 1e-6


def test_plugin_reads_transformers_folders_without_transformers(tmp_path):
    """With transformers made unimportable, the plugin still loads a save_pretrained
    folder (it reads safetensors and config.json itself). MMEngine imports transformers
    on its own when it is installed, so its absence is simulated."""
    hf_model().save_pretrained(tmp_path / 'hf')
    plugin_config().dump(str(tmp_path / 'cfg.py'))
    code = ('import sys; sys.modules["transformers"] = None\n'
            'from mmpose.apis import init_model\n'
            f'm = init_model({str(tmp_path / "cfg.py")!r}, {str(tmp_path / "hf")!r}, '
            'device="cpu")\n'
            'print(type(m).__name__, sys.modules["transformers"] is None)')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith('StrictTopdownPoseEstimator True')
