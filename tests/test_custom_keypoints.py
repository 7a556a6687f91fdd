"""Your own keypoints end to end: tools/make_metainfo.py, the config template
configs/custom/, and reinit_mismatched (a checkpoint of another keypoint set keeps its
backbone and decoder, only the final layer starts afresh, everything else stays strict)."""
import copy
import json
import logging
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import reference_vitpose as ref
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.registry import MODELS

from helpers import (
    CONFIGS,
    DEMO,
    MIM,
    SHARED_DATA,
    TINY_ARCH,
    last_metrics,
    load_script,
    tiny_config,
)
from vitpose_plugin.checkpoint import to_plugin_layout
from vitpose_plugin.checkpoint.hf_vitpose import to_transformers, transformers_config
from vitpose_plugin.models.pose_estimators.strict_topdown import CheckpointMismatchError

TEMPLATE = CONFIGS / 'custom' / 'td-hm_vitpose-base_custom-keypoints-256x192.py'
SANITY = CONFIGS / 'vitpose' / 'sanity' / 'td-hm_vitpose-tiny_1xb12-150it_shared-coco-256x192.py'
MMPOSE_DATASETS = osp.join(osp.dirname(parse_pose_metainfo.__code__.co_filename), '..', '..',
                           '.mim', 'configs', '_base_', 'datasets')


def _tool():
    return load_script('tools/make_metainfo.py')


make_metainfo = _tool()


def _coco(names, skeleton=(), people=((1, ), )):
    """A COCO annotation dict with one category of ``names`` and one annotation per
    entry of ``people`` (its keypoint count)."""
    anns = [dict(id=i + 1, image_id=1, category_id=1, keypoints=[1, 2, 2] * n,
                 num_keypoints=n) for i, (n, ) in enumerate(people)]
    return dict(images=[dict(id=1, file_name='a.jpg', width=10, height=10)], annotations=anns,
                categories=[dict(id=1, name='thing', keypoints=list(names),
                                 skeleton=[list(s) for s in skeleton])])


def _write(tmp_path, coco, name='ann.json'):
    path = tmp_path / name
    path.write_text(json.dumps(coco))
    return str(path)


# ------------------------------------------------------------------- the tool
@pytest.mark.parametrize('left,right', [
    ('left_wrist', 'right_wrist'), ('l_wrist', 'r_wrist'), ('wrist_l', 'wrist_r'),
    ('Left Wrist', 'Right Wrist'), ('LeftWrist', 'RightWrist'), ('wrist.L', 'wrist.R'),
])
def test_swap_pairs_from_the_usual_spellings(left, right):
    names = ['nose', right, left, 'tail_tip']
    assert make_metainfo.swap_pairs(names) == {'nose': '', right: left, left: right,
                                               'tail_tip': ''}


def test_a_side_inside_a_name_is_not_a_side():
    """Sides are the first or last word: 'front_left_paw' is a middle keypoint, so
    'right_front_paw' has no counterpart."""
    with pytest.raises(make_metainfo.MetainfoError, match="cannot pair 'right_front_paw'"):
        make_metainfo.swap_pairs(['front_left_paw', 'right_front_paw'])


def test_names_it_cannot_pair_are_refused_by_name(tmp_path):
    coco = _coco(['head', 'left_ear', 'right_ear', 'left_fin', 'r_paw'], people=((5, ), ))
    with pytest.raises(SystemExit, match="cannot pair 'left_fin', 'r_paw'"):
        make_metainfo.main([_write(tmp_path, coco), str(tmp_path / 'm.py')])
    # --pair states what the names do not show
    make_metainfo.main([_write(tmp_path, coco), str(tmp_path / 'm.py'),
                        '--pair', 'left_fin', 'r_paw'])
    meta = parse_pose_metainfo(dict(from_file=str(tmp_path / 'm.py')))
    assert meta['flip_indices'] == [0, 2, 1, 4, 3]


def test_keypoint_counts_that_do_not_match_are_refused_by_annotation(tmp_path):
    coco = _coco(['left_eye', 'right_eye', 'nose'], people=((3, ), (2, ), (3, ), (4, )))
    with pytest.raises(SystemExit) as info:
        make_metainfo.main([_write(tmp_path, coco), str(tmp_path / 'm.py')])
    msg = str(info.value)
    assert '2 annotation(s) do not match' in msg and 'annotation 2 (image 1): 6 numbers' in msg
    assert 'annotation 4 (image 1): 12 numbers' in msg and 'annotation 3' not in msg
    ok = _coco(['left_eye', 'right_eye', 'nose'], people=((3, ), ))
    with pytest.raises(SystemExit, match='2 sigmas for 3 keypoints'):
        make_metainfo.main([_write(tmp_path, ok), str(tmp_path / 'm.py'), '--sigmas', '1', '2'])
    bad_link = _coco(['left_eye', 'right_eye', 'nose'], skeleton=[(1, 4)], people=((3, ), ))
    with pytest.raises(SystemExit, match=r'skeleton link 0 \[1, 4\]'):
        make_metainfo.main([_write(tmp_path, bad_link), str(tmp_path / 'm.py')])


@pytest.mark.parametrize('dataset,ann', [('coco', 'coco/test_coco.json'),
                                         ('aic', 'aic/test_aic.json')])
def test_metainfo_of_shared_sets_equals_mmposes_own(tmp_path, dataset, ann):
    """From the annotation files alone (AIC spells 'Right Shoulder', 'Head top'), the
    tool finds the flip pairs, skeleton and body halves MMPose's metainfo files state."""
    if not (SHARED_DATA / ann).exists():
        pytest.skip(f'shared data not found at {SHARED_DATA / ann}')
    want = parse_pose_metainfo(dict(from_file=osp.join(MMPOSE_DATASETS, f'{dataset}.py')))
    make_metainfo.main([str(SHARED_DATA / ann), str(tmp_path / 'm.py'), '--sigmas']
                       + [str(s) for s in want['sigmas']])
    got = parse_pose_metainfo(dict(from_file=str(tmp_path / 'm.py')))
    assert got['num_keypoints'] == want['num_keypoints']
    assert got['flip_indices'] == want['flip_indices']
    assert sorted(map(sorted, got['skeleton_links'])) == sorted(map(sorted, want['skeleton_links']))
    assert got['upper_body_ids'] == want['upper_body_ids']
    assert got['lower_body_ids'] == want['lower_body_ids']
    np.testing.assert_array_equal(got['sigmas'], want['sigmas'])
    np.testing.assert_array_equal(got['dataset_keypoint_weights'], 1.0)
    default = make_metainfo.make_metainfo(json.loads((SHARED_DATA / ann).read_text()), 'x')
    assert default['sigmas'] == [make_metainfo.DEFAULT_SIGMA] * want['num_keypoints']


# ------------------------------------------------------------- reinit_mismatched
def _tiny_model(num_keypoints, reinit=('head.final_layer', ), simple=False):
    name = 'td-hm_vitpose-base{}_8xb64-210e_coco-256x192.py'.format('-simple' if simple else '')
    cfg = tiny_config(name)
    cfg.model.head.out_channels = num_keypoints
    cfg.model.reinit_mismatched = list(reinit)
    init_default_scope('mmpose')
    torch.manual_seed(1)
    return MODELS.build(cfg.model)


class _Log(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _load(model, path):
    log = _Log()
    logger = MMLogger.get_current_instance()
    logger.addHandler(log)
    try:
        load_checkpoint(model, str(path), map_location='cpu')  # as MMEngine's load_from
    finally:
        logger.removeHandler(log)
    return '\n'.join(log.lines)


def _checkpoint(tmp_path, layout, simple=False):
    """A 17-keypoint tiny ViTPose in ``layout``; (path, its tensors in the plugin layout)."""
    sd = ref.random_checkpoint('official', dims=TINY_ARCH['embed_dims'], simple=simple)
    plugin, _ = to_plugin_layout(dict(sd))
    plugin.pop('backbone.cls_token', None)
    if layout == 'official':
        torch.save({'state_dict': sd}, tmp_path / 'official.pth')
        return tmp_path / 'official.pth', plugin
    if layout == 'mmpretrain':
        sd = ref.random_checkpoint('mmpretrain', dims=TINY_ARCH['embed_dims'], simple=simple)
        plugin, _ = to_plugin_layout(dict(sd), _tiny_model(17, simple=simple))
        torch.save({'state_dict': sd}, tmp_path / 'mmpretrain.pth')
        return tmp_path / 'mmpretrain.pth', plugin
    if layout == 'plugin':
        torch.save({'state_dict': plugin, 'meta': {}}, tmp_path / 'plugin.pth')
        return tmp_path / 'plugin.pth', plugin
    from safetensors.torch import save_file
    folder = tmp_path / 'hf'
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in to_transformers(plugin).items()},
              str(folder / 'model.safetensors'))
    (folder / 'config.json').write_text(json.dumps(transformers_config(_tiny_model(
        17, simple=simple))))
    return folder, plugin


@pytest.mark.parametrize('layout', ['plugin', 'official', 'mmpretrain', 'transformers'])
def test_another_keypoint_set_keeps_backbone_and_decoder(tmp_path, layout):
    path, want = _checkpoint(tmp_path, layout)
    model = _tiny_model(12)
    fresh = copy.deepcopy(model.head.final_layer.state_dict())
    log = _load(model, path)
    got = model.state_dict()
    for k, v in want.items():
        if k.startswith('head.final_layer.'):
            assert torch.equal(got[k], fresh[k.rsplit('.', 1)[1]]), k  # the model's own
        else:
            assert torch.equal(got[k], v), k
    assert 'head.final_layer.weight (checkpoint (17, 32, 1, 1), model (12, 32, 1, 1))' in log
    assert 'head.final_layer.bias (checkpoint (17,), model (12,))' in log
    assert 'kept ' in log and 'backbone.layers (' in log and 'head.deconv_layers (' in log


def test_without_the_setting_the_hint_names_it(tmp_path):
    path, _ = _checkpoint(tmp_path, 'official')
    with pytest.raises(CheckpointMismatchError, match=r"reinit_mismatched=\['head.final_layer'\]"):
        load_checkpoint(_tiny_model(12, reinit=()), str(path), map_location='cpu')


def test_the_rest_stays_strict(tmp_path):
    """The setting forgives only mis-shaped tensors of the modules it names: a decoder of
    another kind, a missing key or an unknown module name are still refused."""
    path, want = _checkpoint(tmp_path, 'official')  # classic decoder
    with pytest.raises(CheckpointMismatchError, match='head.deconv_layers.0.weight'):
        load_checkpoint(_tiny_model(12, simple=True), str(path), map_location='cpu')
    sd = ref.random_checkpoint('official', dims=TINY_ARCH['embed_dims'])
    del sd['backbone.blocks.1.norm1.bias']
    torch.save({'state_dict': sd}, tmp_path / 'missing.pth')
    with pytest.raises(CheckpointMismatchError, match=r'missing keys \(1\)'):
        load_checkpoint(_tiny_model(12), str(tmp_path / 'missing.pth'), map_location='cpu')
    with pytest.raises(ValueError, match="no module 'head.last_layer'"):
        load_checkpoint(_tiny_model(12, reinit=['head.last_layer']), str(path),
                        map_location='cpu')
    # the same keypoint count: nothing is re-initialised, nothing is logged
    model = _tiny_model(17)
    assert 're-initialised' not in _load(model, path)
    assert torch.equal(model.head.final_layer.bias, want['head.final_layer.bias'])


# ------------------------------------------------------------------ the template
def config_from_template(path, **values):
    """The template with the variables of its first lines set (as a user edits it);
    ``base`` and ``metainfo`` replace the two ``_base_`` entries."""
    head, rest = re.split(r'^# -+ the rest follows$', TEMPLATE.read_text(), flags=re.MULTILINE)
    bases = re.findall(r"^    '([^']+)',$", head, re.MULTILINE)
    head = head.replace(bases[0], str(values.pop('base', bases[0])))
    head = head.replace(bases[1], str(values.pop('metainfo', bases[1])))
    for key, value in values.items():
        head, n = re.subn(rf'^{key} = .*?(?=^\w|^#|\Z)', f'{key} = {value!r}\n', head,
                          flags=re.MULTILINE | re.DOTALL)
        assert n == 1, key
    path.write_text(head + '# the rest follows' + rest)
    return path


def test_template_loaders_head_and_metric_follow_its_variables(tmp_path):
    make_metainfo.main([_write(tmp_path, _coco(['l_ear', 'r_ear', 'nose'], [(1, 3), (2, 3)],
                                               ((3, ), ))), str(tmp_path / 'ears.py')])
    (tmp_path / 'cfg').mkdir()
    cfg = Config.fromfile(str(config_from_template(
        tmp_path / 'cfg' / 'mine.py', metainfo='../ears.py',
        base=CONFIGS / 'vitpose' / 'coco' / 'td-hm_vitpose-small_8xb64-210e_coco-256x192.py',
        load_from='/ckpt/x.pth', data_root='../data', train_ann='t.json', val_ann='v.json',
        img_prefix='img/')))
    root = str(tmp_path / 'cfg' / '../data')
    assert cfg.model.head.out_channels == 3 and cfg.model.backbone.arch == 'small'
    assert cfg.model.reinit_mismatched == ['head.final_layer'] and cfg.load_from == '/ckpt/x.pth'
    for loader, ann in (('train', 't.json'), ('val', 'v.json'), ('test', 'v.json')):
        ds = cfg[f'{loader}_dataloader'].dataset
        assert (ds.data_root, ds.ann_file, ds.data_prefix.img) == (root, ann, 'img/')
        meta = parse_pose_metainfo(copy.deepcopy(ds.metainfo))
        assert meta['flip_indices'] == [1, 0, 2] and meta['keypoint_id2name'][0] == 'l_ear'
    assert cfg.val_evaluator.ann_file == cfg.test_evaluator.ann_file == osp.join(root, 'v.json')
    init_default_scope('mmpose')
    assert MODELS.build(cfg.model).head.final_layer.out_channels == 3


# ----------------------------------------------------------------- end to end
FACELESS = ['left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist',
            'right_wrist', 'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle',
            'right_ankle']
# renamed as another annotation tool might spell them
RENAMED = ['L.Shoulder', 'R.Shoulder', 'L.Elbow', 'R.Elbow', 'L.Wrist', 'R.Wrist', 'L.Hip',
           'R.Hip', 'L.Knee', 'R.Knee', 'L.Ankle', 'R.Ankle']


def faceless_coco(src, dst):
    """The shared COCO people with 12 keypoints (COCO without the face), renamed."""
    coco = json.loads(src.read_text())
    cat = coco['categories'][0]
    keep = [cat['keypoints'].index(n) for n in FACELESS]
    links = [[keep.index(a - 1) + 1, keep.index(b - 1) + 1] for a, b in cat['skeleton']
             if a - 1 in keep and b - 1 in keep]
    coco['categories'] = [dict(cat, keypoints=RENAMED, skeleton=links)]
    for ann in coco['annotations']:
        kpts = np.array(ann['keypoints']).reshape(-1, 3)[keep]
        ann['keypoints'] = kpts.flatten().tolist()
        ann['num_keypoints'] = int((kpts[:, 2] > 0).sum())
    dst.write_text(json.dumps(coco))
    return coco


FINETUNE_ITERS = 30


@pytest.mark.slow
def test_finetune_a_17_keypoint_checkpoint_to_12_keypoints(trained_sanity, coco_dir, tmp_path,
                                                           images):
    """mim train from the 17-keypoint sanity model (AP ~0.98) to COCO's 12 body keypoints
    renamed, mim test with CocoMetric and COCO's sigmas of those keypoints, and the demo,
    all run outside the checkout."""
    work17, _ = trained_sanity
    coco = faceless_coco(coco_dir / 'test_coco.json', tmp_path / 'body12.json')
    coco_sigmas = parse_pose_metainfo(dict(from_file=osp.join(MMPOSE_DATASETS, 'coco.py')))[
        'sigmas'][5:]
    make_metainfo.main([str(tmp_path / 'body12.json'), str(tmp_path / 'body12_metainfo.py'),
                        '--sigmas'] + [str(s) for s in coco_sigmas])
    config = config_from_template(
        tmp_path / 'body12.py', base=SANITY, metainfo='body12_metainfo.py',
        load_from=str(work17 / 'iter_150.pth'), data_root=str(coco_dir),
        train_ann=str(tmp_path / 'body12.json'), val_ann=str(tmp_path / 'body12.json'),
        img_prefix='')
    n = FINETUNE_ITERS
    with open(config, 'a') as f:  # a short fine-tune of the sanity recipe
        f.write(f'\ntrain_cfg = dict(max_iters={n}, val_interval={n})\n'
                f'param_scheduler = [dict(type="LinearLR", begin=0, end=5, start_factor=0.1, '
                f'by_epoch=False), dict(type="CosineAnnealingLR", begin=5, end={n}, '
                f'eta_min=1e-5, by_epoch=False)]\n'
                f'default_hooks = dict(checkpoint=dict(interval={n}))\n')
    work = tmp_path / 'work'
    train = subprocess.run(MIM + ['train', 'mmpose', str(config), '--work-dir', str(work)],
                           cwd=tmp_path, capture_output=True, text=True)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    log = train.stdout + train.stderr
    assert re.search(r're-initialised head\.final_layer\.weight \(checkpoint \(17, 64, 1, 1\), '
                     r'model \(12, 64, 1, 1\)\)', log), log[-3000:]
    assert re.search(r'kept .*backbone\.layers \(\d+ tensors\).*head\.deconv_layers', log)
    test = subprocess.run(MIM + ['test', 'mmpose', str(config), '--checkpoint',
                                 str(work / f'iter_{n}.pth'), '--work-dir', str(tmp_path / 'test')],
                          cwd=tmp_path, capture_output=True, text=True)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 're-initialised' not in test.stdout + test.stderr
    ap = last_metrics(tmp_path / 'test')['coco/AP']
    assert ap >= 0.9, ap

    # the demo draws the 12 keypoints, their names and their skeleton
    boxes = {}
    for ann in coco['annotations']:
        if ann['num_keypoints'] and ann['image_id'] == 196141:
            x, y, w, h = ann['bbox']
            boxes.setdefault('196141.png', []).append([x, y, x + w, y + h, 1.0])
    import cv2
    cv2.imwrite(str(tmp_path / '196141.png'), cv2.imread(str(coco_dir / '000000196141.jpg')))
    (tmp_path / 'boxes.json').write_text(json.dumps(boxes))
    demo = subprocess.run(
        [sys.executable, DEMO, str(tmp_path / '196141.png'), '--out-dir',
         str(tmp_path / 'demo'), '--pose-config', str(config), '--pose-checkpoint',
         str(work / f'iter_{n}.pth'), '--bboxes', str(tmp_path / 'boxes.json')],
        cwd=tmp_path, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr[-3000:]
    out = json.loads((tmp_path / 'demo' / '196141.png.json').read_text())
    assert out['keypoint_names'] == RENAMED
    assert len(out['persons']) == len(boxes['196141.png'])
    anns = [a for a in coco['annotations'] if a['num_keypoints'] and a['image_id'] == 196141]
    drawn = cv2.imread(str(tmp_path / 'demo' / '196141.png')).astype(int)
    plain = cv2.imread(str(tmp_path / '196141.png')).astype(int)
    meta = parse_pose_metainfo(dict(from_file=str(tmp_path / 'body12_metainfo.py')))
    for person, ann in zip(out['persons'], anns):
        kpts = np.array(person['keypoints'])
        gt = np.array(ann['keypoints']).reshape(-1, 3)
        seen = gt[:, 2] > 0
        assert np.abs(kpts[seen] - gt[seen, :2]).max() < 0.1 * max(ann['bbox'][2:]), person
        # a line is drawn along every link of the 12-keypoint skeleton: along its middle,
        # away from the keypoints' dots, the picture changed
        for a, b in meta['skeleton_links']:
            if min(person['keypoint_scores'][a], person['keypoint_scores'][b]) < 0.3 or \
                    np.linalg.norm(kpts[a] - kpts[b]) < 12:
                continue
            changed = 0
            for t in np.linspace(0.3, 0.7, 5):
                x, y = np.round(kpts[a] + t * (kpts[b] - kpts[a])).astype(int)
                patch = np.abs(drawn - plain)[y - 1:y + 2, x - 1:x + 2].sum(2)
                changed += patch.max() > 30
            assert changed >= 4, (RENAMED[a], RENAMED[b], changed)
