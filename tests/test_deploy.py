"""Inference speed-ups that keep outputs: BN folding, bf16, ONNX."""
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS

from helpers import REPO, SHARED_DATA, tiny_config
from vitpose_plugin.deploy import fold_batchnorm, inference_precision, set_inference_precision

CLASSIC = 'td-hm_vitpose-base_8xb64-210e_coco-256x192.py'
SIMPLE = 'td-hm_vitpose-base-simple_8xb64-210e_coco-256x192.py'


def tiny_model(name=CLASSIC):
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = MODELS.build(tiny_config(name).model).eval()
    for m in model.modules():  # BN statistics that matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_(1, 0.3)
            m.bias.data.normal_(0, 0.3)
    return model


@pytest.mark.parametrize('name,count', [(CLASSIC, 2), (SIMPLE, 0)])
def test_fold_batchnorm_keeps_heatmaps(name, count):
    model = tiny_model(name)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        before = model._forward(x)
        assert fold_batchnorm(model) == count
        after = model._forward(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert (before - after).abs().max() <= 1e-5


def test_bf16_stores_weights_in_bf16_and_gives_fp32_heatmaps():
    """The bf16 path runs on every CPU (emulated where there are no bf16 units)."""
    model = tiny_model()
    fp32_weights = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 256, 192)
    stream = []  # the dtype of the transformer's residual stream after each block
    for block in model.backbone.layers:
        block.register_forward_hook(lambda m, args, out: stream.append(out.dtype))
    with torch.no_grad():
        fp32 = model._forward(x)
        set_inference_precision(model, 'bf16')
        bf16 = model._forward(x)
    assert inference_precision(model) == 'bf16'
    assert stream == [torch.float32] * 4  # fp32 between blocks, in bf16 mode too
    layer = model.backbone.layers[0]
    assert layer.attn.qkv.weight.dtype == torch.bfloat16  # stored, not cast per call
    assert model.head.final_layer.weight.dtype == torch.bfloat16
    assert layer.norm1.weight.dtype == torch.float32  # norm layers keep fp32 parameters
    assert model.backbone.pos_embed.dtype == torch.float32  # so the stream stays fp32
    assert bf16.dtype == torch.float32  # heatmaps come back in fp32 for decoding
    # bf16 keeps 8 significant bits (relative rounding 2**-8 per operation); through two
    # tiny blocks and the decoder the heatmaps move by about a percent of their range,
    # far less than a wrong graph moves them
    assert 0 < (bf16 - fp32).abs().max() <= 0.05 * fp32.abs().max()
    model.train()
    with pytest.raises(RuntimeError, match="set_inference_precision\\(model, 'fp32'\\)"):
        model._forward(x)
    model.eval()
    set_inference_precision(model, 'fp32')  # the very fp32 weights come back
    for k, v in model.state_dict().items():
        assert v.dtype == fp32_weights[k].dtype and torch.equal(v, fp32_weights[k]), k
    with torch.no_grad():
        assert torch.equal(model._forward(x), fp32)
    with pytest.raises(ValueError, match='int4'):
        set_inference_precision(model, 'int4')


def test_bf16_layernorm_statistics_stay_fp32():
    """A norm layer of the bf16 model given bf16 tokens far from zero (offset 300, spread
    4; the head's BatchNorms see bf16 features): bf16 cannot hold their mean and variance
    (8 significant bits: statistics in bf16 miss by ~0.5), but the output matches an fp32
    LayerNorm of the same inputs up to the bf16 rounding of the normalised value and of
    the output (2**-8 relative each)."""
    model = set_inference_precision(tiny_model(), 'bf16')
    norm = model.backbone.layers[0].norm1
    with torch.no_grad():
        norm.weight.normal_(1, 0.2)
        norm.bias.normal_(0, 0.2)
        x = (300 + 4 * torch.randn(2, 192, norm.normalized_shape[0])).bfloat16()
        got = norm(x)
        want = torch.nn.functional.layer_norm(x.float(), norm.normalized_shape, norm.weight,
                                              norm.bias, norm.eps)
    normalised = torch.nn.functional.layer_norm(x.float(), norm.normalized_shape, eps=norm.eps)
    # + fp32's own error: the mean of values ~300 is exact to ~300 * 2**-24 * a few
    bound = 2**-8 * ((normalised * norm.weight).abs() + want.abs()) + 1e-4
    assert got.dtype == torch.bfloat16
    assert ((got.float() - want).abs() <= bound).all()


def test_auto_precision_follows_the_instruction_set():
    from vitpose_plugin.deploy.auto import choose_precision
    avx2 = ('avx2', 'fma')
    assert choose_precision('cpu', False, avx2)[0] == 'fp32'
    assert choose_precision('cpu', True, avx2)[0] == 'int8'
    assert choose_precision('cpu', False, avx2 + ('avx512f', 'avx512_vnni'))[0] == 'fp32'
    zen4 = avx2 + ('avx512f', 'avx512_vnni', 'avx512_bf16')  # bf16 slower than fp32 there
    assert choose_precision('cpu', False, zen4)[0] == 'fp32'
    precision, why = choose_precision('cpu', True, zen4)
    assert precision == 'int8' and 'AVX512-BF16 but no AMX' in why
    assert choose_precision('cpu', True, zen4 + ('amx_tile', 'amx_bf16', 'amx_int8')) == (
        'bf16', 'the CPU has AMX bf16 tiles (amx_bf16)')


def test_auto_precision_on_this_machine_is_logged_and_set(monkeypatch):
    from vitpose_plugin.deploy import precision
    from vitpose_plugin.deploy.auto import choose_precision
    logged = []
    monkeypatch.setattr(precision, 'print_log', lambda msg, **kw: logged.append(msg))
    model = tiny_model()
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        fp32 = model._forward(x)
        set_inference_precision(model, 'auto')
        got = model._forward(x)
    want, why = choose_precision('cpu', int8_ready=False)  # no calibration data: no int8
    assert inference_precision(model) == want and want in ('bf16', 'fp32')
    assert logged[0] == f"inference precision 'auto' -> {want!r}: {why}"
    assert got.dtype == torch.float32
    assert (got - fp32).abs().max() <= 0.05 * fp32.abs().max()


def test_onnx_export_matches_pytorch(tmp_path):
    model = tiny_model()
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'tiny.pth')
    cfg = tiny_config(CLASSIC)
    cfg.dump(str(tmp_path / 'tiny.py'))
    res = subprocess.run([sys.executable, str(REPO / 'tools' / 'export_onnx.py'),
                          str(tmp_path / 'tiny.py'), str(tmp_path / 'tiny.pth'),
                          str(tmp_path / 'tiny.onnx')], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    diff = float(re.search(r'max \|onnxruntime - pytorch\| = (\S+)', res.stdout).group(1))
    assert diff <= 1e-4
    import onnxruntime as ort
    session = ort.InferenceSession(str(tmp_path / 'tiny.onnx'), providers=['CPUExecutionProvider'])
    x = torch.randn(3, 3, 256, 192)  # another batch size than the export's
    with torch.no_grad():
        want = model._forward(x).numpy()
    got = session.run(None, {'images': x.numpy()})[0]
    assert got.shape == (3, 17, 64, 48) and np.abs(got - want).max() <= 1e-4


def test_onnxruntime_backend_gives_the_same_keypoints_through_inference_topdown():
    """use_onnxruntime swaps only the backbone's eval-mode forward: MMPose's crop, head,
    flip test and decoding run as before, and every method of the model still works."""
    from mmpose.apis import inference_topdown, init_model

    from vitpose_plugin.deploy import OnnxRuntimeBackbone, restore_pytorch_backbone, use_onnxruntime
    image = SHARED_DATA / 'images' / 'sunglasses.jpg'
    if not image.is_file():
        pytest.skip(f'shared demo image not found at {image} (set VITPOSE_SHARED_DATA)')
    cfg = tiny_config(CLASSIC)
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = init_model(cfg, None, device='cpu')
    with torch.no_grad():  # a peaked head, so that the argmax is not a tie
        model.head.final_layer.weight.normal_(0, 0.5)
    fold_batchnorm(model)
    model.test_cfg['output_heatmaps'] = True
    boxes = np.array([[20, 10, 200, 250], [90, 30, 240, 230]], np.float32)
    want = inference_topdown(model, str(image), boxes)
    keys = list(model.state_dict())
    use_onnxruntime(model)
    assert isinstance(model.backbone, OnnxRuntimeBackbone)
    assert list(model.state_dict()) == keys  # the wrapper keeps the backbone's keys
    got = inference_topdown(model, str(image), boxes)
    assert model.backbone.calls == 2  # the graph ran, on the crops and their flips
    # fp32 kernels of two engines: the heatmaps (|h| < ~1) differ by ~1e-6
    atol = 1e-4
    checked = 0
    for w, g in zip(want, got):
        assert torch.allclose(w.pred_fields.heatmaps, g.pred_fields.heatmaps, atol=atol)
        assert np.abs(w.pred_instances.keypoint_scores -
                      g.pred_instances.keypoint_scores).max() < atol
        # where the peak beats the runner-up by more than twice the heatmap bound, the
        # argmax cannot move, so the decoded keypoints start from the same cell
        flat = w.pred_fields.heatmaps.flatten(1)
        top = flat.topk(2, dim=1).values
        sure = (top[:, 0] - top[:, 1]) > 2 * atol
        assert torch.equal(flat.argmax(1)[sure], g.pred_fields.heatmaps.flatten(1).argmax(1)[sure])
        checked += int(sure.sum())
    assert checked >= 17, checked
    # every method keeps working: the loss runs the PyTorch backbone, with gradients
    data = model.data_preprocessor(dict(
        inputs=[torch.zeros(3, 256, 192, dtype=torch.uint8)], data_samples=[]), False)
    model.train()
    feats = model.extract_feat(data['inputs'])
    assert feats[0].requires_grad and model.backbone.calls == 2
    model.eval()
    restore_pytorch_backbone(model)
    assert not isinstance(model.backbone, OnnxRuntimeBackbone)
    with pytest.raises(FileNotFoundError, match='nowhere.onnx'):
        use_onnxruntime(model, 'nowhere.onnx')


def test_detector_precision_runs_its_convolutions_in_bf16(tiny_models, images):
    """The detector's backbone and neck under bf16 autocast (eager, and compiled) give
    fp32 features within bf16 rounding of fp32's, and boxes through the same decoding and
    NMS; RTMDet's head runs its stacked convolutions in bf16 and its prediction layers in
    fp32."""
    import cv2
    from mmdet.apis import init_detector

    from vitpose_plugin.apis.detectors import detect, prediction_layers, set_detector_precision
    det = init_detector(tiny_models[tiny_models.index('--det-config') + 1],
                        tiny_models[tiny_models.index('--det-checkpoint') + 1], device='cpu')
    img = cv2.imread(str(images / 'sunglasses.jpg'))
    x = torch.randn(1, 3, 160, 160)
    head, layers = det.bbox_head, prediction_layers(det.bbox_head)
    assert len(layers) == 6  # class scores and box distances at 3 levels
    with torch.no_grad():  # the fixture zeroed the box layers' weights to force boxes
        for conv in head.rtm_reg:
            conv.weight.normal_(std=0.02)
    out_dtypes = []
    layers[-1].register_forward_hook(lambda m, a, out: out_dtypes.append(out.dtype))

    def close(want, got):  # a few convolutions and BNs, each rounding to 8 bits
        for w, g in zip(want, got):
            assert g.dtype == torch.float32
            assert 0 < (w - g).abs().max() <= 0.05 * w.abs().max()

    with torch.no_grad():
        want, boxes32 = det.extract_feat(x), detect(det, img, (0, ), 0.3, 0.3)
        scores32, dists32 = head(want)
        set_detector_precision(det, 'bf16')
        got, boxes16 = det.extract_feat(x), detect(det, img, (0, ), 0.3, 0.3)
        close(want, got)
        out_dtypes.clear()
        scores, dists = head(want)
        assert out_dtypes == [torch.float32]  # not bf16 as autocast alone would give
        close(scores32, scores)
        close(dists32, dists)
        # the tiny detector's forced scores tie, so which tied box wins may change
        assert boxes16.shape[1] == 5 and len(boxes16) > 0 and len(boxes32) > 0
        set_detector_precision(det, 'bf16', compile=True)  # as the demo's --compile
        compiled = det.extract_feat(x)
        scores, dists = head(want)
        assert det.backbone.forward.sizes == {1} and det.neck.forward.sizes == {1}
        assert head.forward.sizes == {1} and head.forward.error is None
        close(want, compiled)  # the same bf16 arithmetic, fused and frozen
        close(scores32, scores)
        close(dists32, dists)
        set_detector_precision(det, 'fp32')
        assert all(torch.equal(w, g) for w, g in zip(want, det.extract_feat(x)))
        scores, dists = head(want)
        assert all(map(torch.equal, list(scores32) + list(dists32), list(scores) + list(dists)))
        assert not any('forward' in vars(m) for m in [det.backbone, head] + layers)


def test_detector_precision_with_a_head_whose_layers_are_shared_by_the_levels():
    """RTMDetHead keeps one class / box / objectness layer for all levels (not a list):
    those run in fp32 under bf16, and fp32 gives back the exact outputs."""
    import mmdet
    from mmdet.apis import init_detector
    from mmengine.config import Config

    from vitpose_plugin.apis.detectors import prediction_layers, set_detector_precision
    cfg = Config.fromfile(f'{mmdet.__path__[0]}/.mim/configs/rtmdet/rtmdet_tiny_8xb32-300e_coco.py')
    cfg.model.backbone.init_cfg = None
    cfg.model.bbox_head.type = 'RTMDetHead'
    for key in ('share_conv', 'exp_on_reg'):  # RTMDetSepBNHead's own arguments
        cfg.model.bbox_head.pop(key)
    cfg.model.bbox_head.with_objectness = True
    torch.manual_seed(0)
    det = init_detector(cfg, None, device='cpu')
    head = det.bbox_head
    assert prediction_layers(head) == [head.rtm_cls, head.rtm_reg, head.rtm_obj]
    x = torch.randn(1, 3, 128, 128)
    dtypes = []
    head.rtm_reg.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    with torch.no_grad():
        feats = det.extract_feat(x)
        want = head(feats)
        set_detector_precision(det, 'bf16')
        got = head(feats)
        set_detector_precision(det, 'fp32')
        again = head(feats)
    assert dtypes == [torch.float32] * 9  # 3 levels, 3 calls
    for w, g, a in zip(sum(map(list, want), []), sum(map(list, got), []),
                       sum(map(list, again), [])):
        assert g.dtype == torch.float32 and 0 < (w - g).abs().max() <= 0.05 * w.abs().max()
        assert torch.equal(w, a)


def test_compiled_bf16_runs_each_batch_in_chunks_and_comes_back_eager():
    """``compile=True`` through the validation hook (MMEngine calls ``before_val`` while
    the model still trains): no-grad eval calls run inductor graphs with the weights
    frozen in, a batch of 5 as chunks of 4 and 1 (the tiny head's square 32 -> 32
    deconvolution with its BatchNorm is what inductor's own folding gets wrong); autograd
    calls and non-finite inputs run eagerly; 'fp32' gives back the modules' own forwards
    and exact heatmaps; compiling again after the weights changed never runs the old
    frozen graphs."""
    from types import SimpleNamespace

    from vitpose_plugin.deploy import InferencePrecisionHook
    from vitpose_plugin.deploy.torch_compile import chunks, compiled_sizes
    assert chunks(37) == [16, 16, 4, 1] and chunks(3) == [1, 1, 1] and chunks(0) == []
    model = tiny_model()
    eager = set_inference_precision(tiny_model(), 'bf16')
    x = torch.randn(5, 3, 256, 192)
    with torch.no_grad():
        fp32 = model._forward(x)
        want = eager._forward(x)
        model.train()
        InferencePrecisionHook('bf16', compile=True).before_val(SimpleNamespace(model=model))
        model.eval()
        got = model._forward(x)
        alone = model._forward(x[:1])  # sample 0 ran in the chunk of 4 above
        poisoned = x[:1].clone()
        poisoned[0, 0, 5, 5] = float('nan')
        poisoned = model._forward(poisoned)
    # one NaN pixel: attention spreads it to every heatmap eagerly, while the fused
    # kernels would drop it, so such an input runs eagerly
    assert poisoned.isnan().all()
    assert model.backbone.forward.error is None and model.head.forward.error is None
    assert compiled_sizes(model) == {'backbone': [1, 4], 'head': [1, 4]}
    assert got.dtype == torch.float32 and got.shape == want.shape
    # compiled and eager bf16 round at different places (each differs from fp32 by bf16
    # rounding, as above); each sample's heatmaps stay far closer to its own eager ones
    # than to any other sample's, so no chunk is lost, repeated or out of order
    err = (got - want).abs().flatten(1).amax(1)
    apart = (want[:, None] - want[None]).abs().flatten(2).amax(2)
    assert err.max() <= 0.05 * fp32.abs().max()
    assert err.max() < 0.2 * apart[~torch.eye(5, dtype=torch.bool)].min()
    assert (got[:1] - alone).abs().max() <= 0.05 * fp32.abs().max()  # chunk of 4 vs 1
    with torch.enable_grad():  # autograd: the module's own (eager) forward
        assert torch.equal(model._forward(x), want)
    set_inference_precision(model, 'fp32')
    assert 'forward' not in vars(model.backbone) and 'forward' not in vars(model.head)
    with torch.no_grad():
        assert torch.equal(model._forward(x), fp32)
        before = model.backbone(x[:1])[0]
        model.backbone.last_norm.weight.mul_(-2)  # the same tensor, new values
        changed = model.backbone(x[:1])[0]
        set_inference_precision(model, 'bf16', compile=True)
        again = model.backbone(x[:1])[0]  # the size-1 graph was compiled above too
    scale = before.abs().max()
    assert (changed - before).abs().max() > 0.2 * scale
    assert (again - changed).abs().max() <= 0.05 * scale  # the new weights, in bf16
    with pytest.raises(ValueError, match="compile=True runs with precision fp32 or bf16"):
        set_inference_precision(model, 'fp16', compile=True)


def test_compile_without_a_compiler_is_refused_by_name(monkeypatch):
    from vitpose_plugin.deploy import torch_compile
    monkeypatch.setattr(torch_compile, 'compiler_available', lambda: False)
    model = tiny_model()
    with pytest.raises(RuntimeError, match='needs a C\\+\\+ compiler'):
        set_inference_precision(model, 'bf16', compile=True)


def test_a_part_that_cannot_be_compiled_runs_eagerly_and_input_errors_stay_the_callers():
    from vitpose_plugin.deploy.torch_compile import CompiledForward

    class Routing(torch.nn.Module):  # data-dependent control flow: no single graph
        def forward(self, x):
            return x * len(x.unique().tolist())

    class Picky(torch.nn.Module):
        def forward(self, x):
            if x.shape[-1] != 3:
                raise ValueError(f'expected 3 channels last, got {x.shape[-1]}')
            return x + 1

    x = torch.tensor([[1.0, 2.0, 2.0]])
    routing, picky = CompiledForward(Routing().eval(), 'routing'), CompiledForward(Picky().eval())
    with torch.no_grad():
        assert torch.equal(routing(x), x * 2)  # the module's own forward ran
        with pytest.raises(ValueError, match='expected 3 channels last, got 2'):
            picky(x[:, :2])
        assert torch.equal(picky(x), x + 1)
    assert routing.error is not None and routing.sizes == set()  # off for good, and said
    assert picky.error is None and picky.sizes == {1}  # a bad input is not the compiler's
