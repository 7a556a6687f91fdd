"""Knowledge-token distillation: stage 1 (token), stage 2 (student), end to end."""
import json
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmpose.apis import init_model
from mmpose.registry import DATASETS, MODELS

from conftest import CONFIGS, REPO, tiny_config

PLAIN = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'
TEACHER = dict(embed_dims=64, num_layers=2, num_heads=4)
STUDENT = dict(embed_dims=32, num_layers=2, num_heads=2)
DISTILL = CONFIGS / 'vitpose' / 'distill'


def teacher_file(tmp_path):
    init_default_scope('mmpose')
    torch.manual_seed(0)
    teacher = MODELS.build(tiny_config(PLAIN, TEACHER).model)
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, path)
    return str(path)


def batch(model, coco_dir, n=4):
    cfg = tiny_config(PLAIN)
    ds = dict(cfg.train_dataloader.dataset, data_root=str(coco_dir), ann_file='test_coco.json',
              data_prefix=dict(img=''))
    dataset = DATASETS.build(ds)
    return model.data_preprocessor(pseudo_collate([dataset[i] for i in range(n)]), True)


def stage1_config(teacher_ckpt):
    cfg = Config.fromfile(str(DISTILL / 'td-hm_vitpose-base-token-stage1_8xb64-5e_coco-256x192.py'))
    cfg.model.backbone.arch = dict(TEACHER)
    cfg.model.backbone.knowledge_token_dims = TEACHER['embed_dims']
    cfg.model.head.update(in_channels=TEACHER['embed_dims'], deconv_out_channels=(32, 32))
    cfg.model.teacher_checkpoint = teacher_ckpt
    return cfg


def test_stage1_trains_only_the_token(coco_dir, tmp_path):
    init_default_scope('mmpose')
    learner = MODELS.build(stage1_config(teacher_file(tmp_path)).model)
    learner.init_weights()
    learner.train()
    data = batch(learner, coco_dir)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    trainable = [p for p in learner.parameters() if p.requires_grad]
    assert [n for n, p in learner.named_parameters() if p.requires_grad] == [
        'backbone.knowledge_token']
    opt = torch.optim.AdamW(trainable, lr=5e-2, weight_decay=0)
    losses = []
    for _ in range(10):
        loss = learner.loss(data['inputs'], data['data_samples'])['loss_kpt']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = learner.state_dict()
    for k in before:
        if k == 'backbone.knowledge_token':
            assert not torch.equal(before[k], after[k])
        else:
            assert torch.equal(before[k], after[k]), k  # BN statistics included
    assert losses[-1] < losses[0]


def stage2_config(mode, teacher_ckpt, token_file):
    cfg = Config.fromfile(str(DISTILL / f'td-hm_vitpose-small-from-base-{mode}_8xb64-210e_coco-256x192.py'))
    cfg.model.backbone.update(arch=dict(STUDENT), init_cfg=None,
                              knowledge_token_dims=TEACHER['embed_dims'],
                              knowledge_token_file=token_file)
    cfg.model.head.update(in_channels=STUDENT['embed_dims'], deconv_out_channels=(16, 16))
    cfg.model.teacher = tiny_config(PLAIN, TEACHER).model
    cfg.model.teacher_checkpoint = teacher_ckpt
    return cfg


def test_stage2_tod(coco_dir, tmp_path):
    init_default_scope('mmpose')
    token = torch.randn(1, 1, TEACHER['embed_dims'])
    torch.save({'knowledge_token': token}, tmp_path / 'token.pth')
    cfg = stage2_config('tod', teacher_file(tmp_path), str(tmp_path / 'token.pth'))
    distiller = MODELS.build(cfg.model)
    distiller.init_weights()
    distiller.train()
    assert torch.equal(distiller.backbone.knowledge_token, token)
    assert not distiller.backbone.knowledge_token.requires_grad
    assert distiller.backbone.knowledge_proj.weight.requires_grad  # 64 -> 32 wide
    data = batch(distiller, coco_dir)
    losses = distiller.loss(data['inputs'], data['data_samples'])
    assert losses['loss_kpt'] > 0 and losses['loss_distill'] > 0
    (losses['loss_kpt'] + losses['loss_distill']).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert distiller.backbone.knowledge_proj.weight.grad.abs().sum() > 0
    # the teacher term is the MSE against the frozen teacher's heatmaps
    with torch.no_grad():
        want = distiller.distill_loss(distiller._forward(data['inputs']),
                                      distiller.teacher._forward(data['inputs']),
                                      torch.cat([d.gt_instance_labels.keypoint_weights
                                                 for d in data['data_samples']]))
    assert torch.allclose(losses['loss_distill'], want)

    # student checkpoints hold no teacher and load into the plain student config
    sd = distiller.state_dict()
    assert not any(k.startswith('teacher.') for k in sd) and 'backbone.knowledge_token' in sd
    torch.save({'state_dict': sd}, tmp_path / 'student.pth')
    plain = tiny_config(PLAIN, STUDENT, deconv=(16, 16))
    plain.model.backbone.knowledge_token_dims = TEACHER['embed_dims']
    student = init_model(plain, str(tmp_path / 'student.pth'), device='cpu')
    distiller.eval()
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        assert torch.equal(student._forward(x), distiller._forward(x))


def test_stage2_td_has_no_teacher(tmp_path):
    init_default_scope('mmpose')
    torch.save({'knowledge_token': torch.randn(1, 1, 64)}, tmp_path / 'token.pth')
    cfg = stage2_config('td', 'unused.pth', str(tmp_path / 'token.pth'))
    distiller = MODELS.build(cfg.model)
    assert distiller.teacher is None


def _mim_train(config, work_dir, coco_dir, *opts):
    data = [f'{s}_dataloader.dataset.data_root={coco_dir}' for s in ('train', 'val', 'test')]
    data += [f'{s}_evaluator.ann_file={coco_dir}/test_coco.json' for s in ('val', 'test')]
    subprocess.run([sys.executable, '-m', 'mim', 'train', 'mmpose', str(config), '--work-dir',
                    str(work_dir), '--cfg-options'] + data + list(opts),
                   check=True, cwd=REPO, capture_output=True)
    records = [json.loads(line) for p in sorted(work_dir.rglob('scalars.json'))
               for line in p.read_text().splitlines() if '"coco/AP"' in line]
    return records[-1]['coco/AP']


@pytest.mark.slow
def test_end_to_end_teacher_token_student(coco_dir, tmp_path):
    """Through `mim train`: tiny teacher -> token (stage 1) -> distilled student."""
    sanity = CONFIGS / 'vitpose' / 'sanity' / 'td-hm_vitpose-tiny_1xb12-150it_shared-coco-256x192.py'
    teacher_ap = _mim_train(sanity, tmp_path / 'teacher', coco_dir)

    stage1 = Config.fromfile(str(sanity))
    stage1.model.type = 'KnowledgeTokenLearner'
    stage1.model.teacher_checkpoint = str(tmp_path / 'teacher' / 'iter_150.pth')
    stage1.model.backbone.knowledge_token_dims = 128
    stage1.train_cfg.max_iters = stage1.train_cfg.val_interval = 30
    stage1.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    stage1.optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0))
    stage1.default_hooks.checkpoint.interval = 30
    stage1.dump(str(tmp_path / 'stage1.py'))
    token_ap = _mim_train(tmp_path / 'stage1.py', tmp_path / 'stage1', coco_dir)
    subprocess.run([sys.executable, str(REPO / 'tools' / 'extract_knowledge_token.py'),
                    str(tmp_path / 'stage1' / 'iter_30.pth'), str(tmp_path / 'token.pth')],
                   check=True, capture_output=True)

    stage2 = Config.fromfile(str(sanity))
    stage2.model.type = 'KnowledgeTokenDistiller'
    stage2.model.mode = 'tod'
    stage2.model.teacher = Config.fromfile(str(sanity)).model
    stage2.model.teacher_checkpoint = str(tmp_path / 'teacher' / 'iter_150.pth')
    stage2.model.backbone.update(arch=dict(embed_dims=64, num_layers=2, num_heads=4),
                                 knowledge_token_dims=128,
                                 knowledge_token_file=str(tmp_path / 'token.pth'),
                                 freeze_knowledge_token=True)
    stage2.model.head.in_channels = 64
    stage2.optim_wrapper.paramwise_cfg.num_layers = 2
    stage2.dump(str(tmp_path / 'stage2.py'))
    student_ap = _mim_train(tmp_path / 'stage2.py', tmp_path / 'stage2', coco_dir)
    print(f'teacher AP {teacher_ap:.3f}, teacher + token AP {token_ap:.3f}, '
          f'student AP {student_ap:.3f}')
    assert teacher_ap >= 0.9 and token_ap >= 0.9
    assert student_ap >= 0.5
