"""Knowledge-token distillation: stage 1 (token), stage 2 (student), checkpoints, resume.

The token is learned at the student's width (32) in a wider teacher (64), which receives
it through a fixed map; the student receives it unchanged."""
import logging
import subprocess
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpose.apis import init_model
from mmpose.registry import DATASETS, MODELS

from helpers import (
    CONFIGS,
    REPO,
    lifecycle,
    load_script,
    mim_train,
    resume_after_sigkill_matches,
    shared_coco_options,
    tiny_config,
)
from vitpose_plugin.checkpoint import load_state_dict_file
from vitpose_plugin.models.backbones.vit import ARCHS

PLAIN = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'
TEACHER = dict(embed_dims=64, num_layers=2, num_heads=4)
STUDENT = dict(embed_dims=32, num_layers=2, num_heads=2)
DISTILL = CONFIGS / 'vitpose' / 'distill'
SANITY = CONFIGS / 'vitpose' / 'sanity' / 'td-hm_vitpose-tiny_1xb12-150it_shared-coco-256x192.py'
U = 2.0**-24  # fp32 unit roundoff


def teacher_file(tmp_path):
    init_default_scope('mmpose')
    torch.manual_seed(0)
    teacher = MODELS.build(tiny_config(PLAIN, TEACHER).model)
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, path)
    return str(path)


def token_file(tmp_path, token=None, name='token.pth'):
    """A stage-1 token file: ``token``, or a random one at the student's width."""
    if token is None:
        torch.manual_seed(1)
        token = torch.randn(1, 1, STUDENT['embed_dims'])
    torch.save({'knowledge_token': token}, tmp_path / name)
    return str(tmp_path / name)


def batch(model, coco_dir, n=4):
    cfg = tiny_config(PLAIN)
    ds = dict(cfg.train_dataloader.dataset, data_root=str(coco_dir), ann_file='test_coco.json',
              data_prefix=dict(img=''))
    dataset = DATASETS.build(ds)
    return model.data_preprocessor(pseudo_collate([dataset[i] for i in range(n)]), True)


def stage1_config(teacher_ckpt):
    cfg = Config.fromfile(str(DISTILL / 'td-hm_vitpose-base-token-stage1_8xb64-5e_coco-256x192.py'))
    cfg.model.backbone.arch = dict(TEACHER)
    cfg.model.backbone.knowledge_token_dims = STUDENT['embed_dims']
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
    assert before['backbone.knowledge_token_map'].shape == (TEACHER['embed_dims'],
                                                            STUDENT['embed_dims'])
    for k in before:
        if k == 'backbone.knowledge_token':
            assert not torch.equal(before[k], after[k])
        else:
            assert torch.equal(before[k], after[k]), k  # BN statistics included
    assert losses[-1] < losses[0]


def extract_token_tool():
    return load_script('tools/extract_knowledge_token.py')


def test_student_receives_the_token_stage1_learned(tmp_path):
    """Stage 1's 64-wide teacher receives Q t for the 32-wide token t, Q one fixed matrix
    with orthonormal columns, whatever t is: t -> Q t is linear and injective. Through
    the extraction tool, stage 2's 32-wide student receives t itself: two tokens of equal
    norm reach two students as two different tokens."""
    init_default_scope('mmpose')
    n = STUDENT['embed_dims']
    learner = MODELS.build(stage1_config(teacher_file(tmp_path)).model)
    learner.init_weights()
    torch.manual_seed(1)  # another initial token: the same map
    other = MODELS.build(stage1_config('unused.pth').model)
    q = learner.backbone.knowledge_token_map
    assert q.shape == (TEACHER['embed_dims'], n)
    assert not torch.equal(learner.backbone.knowledge_token, other.backbone.knowledge_token)
    assert torch.equal(q, other.backbone.knowledge_token_map)  # independent of the token
    # orthonormal columns up to rounding Q to fp32 (|E| <= U |Q| elementwise): the
    # singular values are within ||E||_F <= U ||Q||_F = U sqrt(n) of 1, so Q is injective
    sv = torch.linalg.svdvals(q.double())
    assert (sv - 1).abs().max() <= U * n**0.5 + 1e-12

    torch.manual_seed(2)
    t1, t2 = torch.randn(2, 1, 1, n)
    t2 = t2 * (t1.norm() / t2.norm())
    assert torch.cosine_similarity(t1.flatten(), t2.flatten(), 0).abs() < 0.5
    # the teacher's view is the fixed linear map Q: within the fp32 bound of an n-term
    # dot product, gamma_n |Q| |t|, of the exact product, for t1, t2 and a combination
    gamma = n * U / (1 - n * U)
    for t in (t1, t2, 0.3 * t1 - 2.0 * t2):
        with torch.no_grad():
            learner.backbone.knowledge_token.copy_(t)
            got = learner.backbone.knowledge().double()
        exact = t.double() @ q.double().T
        assert ((got - exact).abs() <= gamma * (t.double().abs() @ q.double().abs().T)).all()

    tool, received = extract_token_tool(), []
    for i, t in enumerate((t1, t2)):
        with torch.no_grad():
            learner.backbone.knowledge_token.copy_(t)
        torch.save({'state_dict': learner.state_dict()}, tmp_path / 'stage1.pth')
        tool.main([str(tmp_path / 'stage1.pth'), str(tmp_path / f'token{i}.pth')])
        student = MODELS.build(stage2_config('td', 'unused.pth',
                                             str(tmp_path / f'token{i}.pth')).model)
        student.init_weights()
        received.append(student.backbone.knowledge())
    assert torch.equal(received[0], t1) and torch.equal(received[1], t2)


def _width(cfg):
    arch = cfg.model.backbone.arch
    return (ARCHS[arch] if isinstance(arch, str) else arch)['embed_dims']


def test_shipped_tokens_are_learned_at_the_students_width():
    """ViTPose-L -> B and B -> S: stage 1 learns the token as wide as the student that
    reads it, which is narrower than the teacher; every stage-1 token fits its teacher."""
    for teacher, student in (('large', 'base'), ('base', 'small')):
        stage1 = Config.fromfile(
            str(DISTILL / f'td-hm_vitpose-{teacher}-token-stage1_8xb64-5e_coco-256x192.py'))
        for mode in ('td', 'tod'):
            name = f'td-hm_vitpose-{student}-from-{teacher}-{mode}_8xb64-210e_coco-256x192.py'
            stage2 = Config.fromfile(str(DISTILL / name))
            dims = stage2.model.backbone.knowledge_token_dims
            assert dims == _width(stage2) == stage1.model.backbone.knowledge_token_dims
            assert dims < _width(stage1)
    for path in DISTILL.glob('*-token-stage1_*.py'):
        stage1 = Config.fromfile(str(path))
        assert stage1.model.backbone.knowledge_token_dims <= _width(stage1), path.name


def token_dependent_map(token, width):
    """The map earlier versions built for a token wider than the ViT: orthonormal rows
    spanning the token and seed-0 directions, so that M t = +-|t| e_1."""
    t = token.reshape(-1, 1).double()
    rest = torch.randn(t.shape[0], width - 1, generator=torch.Generator().manual_seed(0),
                       dtype=torch.float64)
    return torch.linalg.qr(torch.cat([t, rest], 1))[0].T.float()


def test_token_wider_than_the_student(tmp_path):
    """Refused in the config and in a token file, with what to do; a checkpoint saved
    with the token-dependent map of earlier versions loads with the token its student
    received (so it computes what it was trained with) and says so."""
    init_default_scope('mmpose')
    cfg = stage2_config('td', 'unused.pth', token_file(tmp_path))
    wide = dict(cfg.model, backbone=dict(cfg.model.backbone,
                                         knowledge_token_dims=TEACHER['embed_dims']))
    with pytest.raises(ValueError, match=r'(?s)knowledge_token_dims=64 is wider.*norm only.*'
                                         r'knowledge_token_dims=32 in the stage-1'):
        MODELS.build(wide)
    torch.manual_seed(3)
    t_wide = torch.randn(1, 1, TEACHER['embed_dims'])
    from_file = dict(cfg.model, backbone=dict(
        cfg.model.backbone, knowledge_token_file=token_file(tmp_path, t_wide, 'wide.pth')))
    with pytest.raises(ValueError, match=r'(?s)wide.pth: token of shape \(1, 1, 64\).*'
                                         r'knowledge_token_dims=32 in the stage-1 config'):
        MODELS.build(from_file).init_weights()

    student = MODELS.build(cfg.model)
    old = student.state_dict()
    old_map = token_dependent_map(t_wide, STUDENT['embed_dims'])
    old.update({'backbone.knowledge_token': t_wide, 'backbone.knowledge_token_map': old_map})
    torch.save({'state_dict': old}, tmp_path / 'old.pth')
    records, handler = [], logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        loaded = init_model(cfg, str(tmp_path / 'old.pth'), device='cpu')
    finally:
        logger.removeHandler(handler)
    # what the blocks of the saved student received: token @ map^T
    assert torch.equal(loaded.backbone.knowledge(), t_wide @ old_map.T)
    assert any('token-dependent map of earlier versions' in r.getMessage() for r in records)
    mine = loaded.state_dict()
    assert mine.keys() == student.state_dict().keys()
    assert all(torch.equal(mine[k], v) for k, v in old.items() if k in mine and
               k != 'backbone.knowledge_token')


def test_token_learner_lifecycle(coco_dir, tmp_path, images):
    """Stage 1 through the runner: only the token trains and the loss falls; the
    checkpoint (teacher + token) reloads strictly, resumes, infers and tests."""
    cfg = stage1_config(teacher_file(tmp_path))
    cfg.optim_wrapper.optimizer.lr = 5e-2
    lifecycle(cfg, coco_dir, tmp_path / 'work', images / 'sunglasses.jpg', lr=5e-2)


def stage2_config(mode, teacher_ckpt, token, student=STUDENT):
    name = f'td-hm_vitpose-small-from-base-{mode}_8xb64-210e_coco-256x192.py'
    cfg = Config.fromfile(str(DISTILL / name))
    cfg.model.backbone.update(arch=dict(student), init_cfg=None,
                              knowledge_token_dims=STUDENT['embed_dims'],
                              knowledge_token_file=token)
    cfg.model.head.update(in_channels=student['embed_dims'], deconv_out_channels=(16, 16))
    if mode == 'tod':
        cfg.model.teacher = tiny_config(PLAIN, TEACHER).model
    cfg.model.teacher_checkpoint = teacher_ckpt
    return cfg


def test_stage2_tod(coco_dir, tmp_path):
    init_default_scope('mmpose')
    cfg = stage2_config('tod', teacher_file(tmp_path), token_file(tmp_path))
    distiller = MODELS.build(cfg.model)
    distiller.init_weights()
    distiller.train()
    token = torch.load(tmp_path / 'token.pth')['knowledge_token']
    assert torch.equal(distiller.backbone.knowledge_token, token)
    assert not distiller.backbone.knowledge_token.requires_grad
    # the teacher is nowhere in the model's parameters or state
    assert not any(n.startswith('teacher.') for n, _ in distiller.named_parameters())
    assert not any(k.startswith('teacher.') for k in distiller.state_dict())

    # the student receives t* itself, at its own width
    received = distiller.backbone.knowledge().detach().clone()
    assert distiller.backbone.knowledge_token_map is None
    assert received.shape == (1, 1, STUDENT['embed_dims']) and torch.equal(received, token)

    data = batch(distiller, coco_dir)
    calls, bn = [], distiller.head.deconv_layers[1]
    handle = distiller.head.final_layer.register_forward_hook(lambda *a: calls.append(1))
    batches_seen = int(bn.num_batches_tracked)
    losses = distiller.loss(data['inputs'], data['data_samples'])
    handle.remove()
    assert len(calls) == 1 and int(bn.num_batches_tracked) == batches_seen + 1  # head ran once
    assert losses['loss_kpt'] > 0 and losses['loss_distill'] > 0
    opt = torch.optim.AdamW([p for p in distiller.parameters() if p.requires_grad], lr=1e-2)
    (losses['loss_kpt'] + losses['loss_distill']).backward()
    opt.step()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert torch.equal(distiller.backbone.knowledge(), received)  # bit-identical after a step

    # the teacher term is the plain MSE over all heatmaps; the masked one is an option
    distiller.eval()
    with torch.no_grad():
        student = distiller._forward(data['inputs'])
        teacher = distiller.teacher._forward(data['inputs'])
        distiller.train()
        torch.manual_seed(0)
        got = distiller.loss(data['inputs'], data['data_samples'])['loss_distill']
        torch.manual_seed(0)
        heatmaps = distiller.head.forward(distiller.extract_feat(data['inputs']))
    assert torch.allclose(got, ((heatmaps - teacher)**2).mean())
    assert not torch.allclose(student, teacher)
    masked = MODELS.build(dict(cfg.model, distill_visible_only=True))
    assert masked.distill_loss.use_target_weight and not distiller.distill_loss.use_target_weight

    # its checkpoint loads strictly into the distiller and into the plain student config
    sd = distiller.state_dict()
    torch.save({'state_dict': sd}, tmp_path / 'student.pth')
    again = MODELS.build(cfg.model)
    again.load_state_dict(torch.load(tmp_path / 'student.pth')['state_dict'], strict=True)
    plain = tiny_config(PLAIN, STUDENT, deconv=(16, 16))
    plain.model.backbone.knowledge_token_dims = STUDENT['embed_dims']
    student = init_model(plain, str(tmp_path / 'student.pth'), device='cpu')
    distiller.eval()
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        assert torch.equal(student._forward(x), distiller._forward(x))


def test_learned_projection_is_a_named_option(tmp_path):
    init_default_scope('mmpose')
    cfg = stage2_config('td', 'unused.pth', token_file(tmp_path))
    cfg.model.backbone.update(knowledge_token_dims=TEACHER['embed_dims'],
                              knowledge_token_file=None, knowledge_token_proj='learned')
    model = MODELS.build(cfg.model)
    assert model.backbone.knowledge_token_map is None
    assert model.backbone.knowledge_proj.weight.requires_grad
    # stage 1 never trains a projection: the teacher must see the token through Q
    learner = stage1_config('unused.pth')
    learner.model.backbone.knowledge_token_proj = 'learned'
    with pytest.raises(ValueError, match="knowledge_token_proj='fixed'"):
        MODELS.build(learner.model)


def test_td_has_no_teacher_and_tod_needs_its_checkpoint(tmp_path):
    init_default_scope('mmpose')
    distiller = MODELS.build(stage2_config('td', 'unused.pth', token_file(tmp_path)).model)
    assert distiller.teacher is None
    cfg = stage2_config('tod', None, token_file(tmp_path))
    with pytest.raises(ValueError, match='teacher_checkpoint'):
        MODELS.build(cfg.model)


def _runner_config(mode, tmp_path):
    cfg = stage2_config(mode, teacher_file(tmp_path), token_file(tmp_path))
    cfg.optim_wrapper.paramwise_cfg.num_layers = STUDENT['num_layers']
    return cfg


@pytest.mark.parametrize('mode', ['td', 'tod'])
def test_distiller_lifecycle(mode, coco_dir, tmp_path, images):
    """Trains (the loss falls), saves, reloads its own checkpoint strictly, resumes,
    infers and tests, and the saved config file tests its checkpoint as `mim test` does
    (MMPose's tools/test.py: ``load_from``, then ``Runner.test``), in this process; the
    `mim test` command line itself: test_runner.py::test_mim_train_and_test_cli."""
    cfg = _runner_config(mode, tmp_path)
    lifecycle(cfg, coco_dir, tmp_path / 'work', images / 'sunglasses.jpg')
    test = Config.fromfile(str(tmp_path / 'work' / 'lifecycle_cfg.py'))
    test.work_dir, test.load_from = str(tmp_path / 'test'), str(tmp_path / 'work' / 'iter_4.pth')
    test.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    metrics = Runner.from_cfg(test).test()
    assert 0.0 <= metrics['coco/AP'] <= 1.0


@pytest.mark.slow
def test_distillation_resumes_bit_identical_after_sigkill(coco_dir, tmp_path):
    cfg = _runner_config('tod', tmp_path)
    sanity = Config.fromfile(str(SANITY))
    for key in ('train_cfg', 'train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'test_evaluator', 'param_scheduler', 'log_processor'):
        cfg[key] = sanity[key]
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 12
    cfg.param_scheduler = [dict(type='MultiStepLR', milestones=[6], by_epoch=False)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=3, by_epoch=False)
    cfg.randomness = dict(seed=7, deterministic=True)
    cfg.train_dataloader.batch_size = 4
    cfg.dump(str(tmp_path / 'tod.py'))
    resume_after_sigkill_matches(tmp_path / 'tod.py', coco_dir, tmp_path, kill_at=3, last=12)


@pytest.mark.slow
def test_end_to_end_teacher_token_student(trained_sanity, coco_dir, tmp_path):
    """Through `mim train`: tiny teacher (the trained sanity model, 128 wide) -> token at
    the student's width (stage 1) -> distilled 64-wide student, which sees the token stage
    1 saved bit for bit after saving, reloading and resuming."""
    import sys
    teacher_dir, teacher_ap = trained_sanity

    stage1 = Config.fromfile(str(SANITY))
    stage1.model.type = 'KnowledgeTokenLearner'
    stage1.model.teacher_checkpoint = str(teacher_dir / 'iter_150.pth')
    stage1.model.backbone.knowledge_token_dims = 64
    stage1.train_cfg.max_iters = stage1.train_cfg.val_interval = 30
    stage1.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    stage1.optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0))
    stage1.default_hooks.checkpoint.interval = 30
    stage1.dump(str(tmp_path / 'stage1.py'))
    token_ap = mim_train(tmp_path / 'stage1.py', tmp_path / 'stage1', coco_dir)
    subprocess.run([sys.executable, str(REPO / 'tools' / 'extract_knowledge_token.py'),
                    str(tmp_path / 'stage1' / 'iter_30.pth'), str(tmp_path / 'token.pth')],
                   check=True, capture_output=True)

    stage2 = Config.fromfile(str(SANITY))
    stage2.model.type = 'KnowledgeTokenDistiller'
    stage2.model.mode = 'tod'
    stage2.model.teacher = Config.fromfile(str(SANITY)).model
    stage2.model.teacher_checkpoint = str(teacher_dir / 'iter_150.pth')
    stage2.model.backbone.update(arch=dict(embed_dims=64, num_layers=2, num_heads=4),
                                 knowledge_token_dims=64,
                                 knowledge_token_file=str(tmp_path / 'token.pth'),
                                 freeze_knowledge_token=True)
    stage2.model.head.in_channels = 64
    stage2.optim_wrapper.paramwise_cfg.num_layers = 2
    stage2.dump(str(tmp_path / 'stage2.py'))
    student_ap = mim_train(tmp_path / 'stage2.py', tmp_path / 'stage2', coco_dir)
    print(f'teacher AP {teacher_ap:.3f}, teacher + token AP {token_ap:.3f}, '
          f'student AP {student_ap:.3f}')
    assert teacher_ap >= 0.9 and token_ap >= 0.9
    assert student_ap >= 0.5

    learned = load_state_dict_file(str(tmp_path / 'stage1' / 'iter_30.pth'))
    token = learned['backbone.knowledge_token']
    assert token.shape == (1, 1, 64)
    # the teacher saw it through the fixed map any ViT of these widths builds
    init_default_scope('mmpose')
    vit = MODELS.build(dict(stage1.model.backbone, knowledge_token_file=None))
    assert torch.equal(learned['backbone.knowledge_token_map'], vit.knowledge_token_map)
    student = init_model(str(tmp_path / 'stage2.py'), str(tmp_path / 'stage2' / 'iter_150.pth'),
                         device='cpu')
    assert torch.equal(student.backbone.knowledge(), token)
    # one more iteration, resumed in this process from the saved run (at batch 1: the
    # runner first replays the 150 batches the run has seen)
    resumed = Config.fromfile(str(tmp_path / 'stage2.py'))
    resumed.merge_from_dict(dict(o.split('=', 1) for o in shared_coco_options(coco_dir)))
    resumed.work_dir, resumed.resume = str(tmp_path / 'stage2'), True
    resumed.val_cfg = resumed.val_dataloader = resumed.val_evaluator = None
    resumed.train_dataloader.batch_size = 1
    resumed.train_cfg.max_iters = 151
    resumed.visualizer.name = 'visualizer_resumed_student'
    runner = Runner.from_cfg(resumed)
    runner.train()
    assert runner.iter == 151
    assert torch.equal(runner.model.backbone.knowledge(), token)
    saved = load_state_dict_file(str(tmp_path / 'stage2' / 'iter_151.pth'))
    assert torch.equal(saved['backbone.knowledge_token'], token)
