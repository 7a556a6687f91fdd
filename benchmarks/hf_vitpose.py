"""Hugging Face transformers' ViTPose with the plugin model's weights (benchmarks only).

``hf_from_plugin(model, arch)`` builds ``transformers.VitPoseForPoseEstimation`` with
the classic decoder and copies a plugin ViTPose's weights into it (the fused qkv
projection split into query / key / value; LayerNorm eps 1e-6 as in the official
model), so the three implementations can be timed on identical weights.
"""
import torch

ARCHS = {'small': (384, 12, 12), 'base': (768, 12, 12), 'large': (1024, 24, 16),
         'huge': (1280, 32, 16)}


def hf_from_plugin(model, arch):
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation
    dims, layers, heads = ARCHS[arch]
    backbone = VitPoseBackboneConfig(
        image_size=[256, 192], patch_size=[16, 16], hidden_size=dims,
        num_hidden_layers=layers, num_attention_heads=heads, mlp_ratio=4,
        layer_norm_eps=1e-6, qkv_bias=True, out_indices=[layers])
    hf = VitPoseForPoseEstimation(VitPoseConfig(
        backbone_config=backbone, use_simple_decoder=False, num_labels=17)).eval()
    src = model.state_dict()
    dst = {'backbone.embeddings.position_embeddings': src['backbone.pos_embed'],
           'backbone.embeddings.patch_embeddings.projection.weight':
           src['backbone.patch_embed.proj.weight'],
           'backbone.embeddings.patch_embeddings.projection.bias':
           src['backbone.patch_embed.proj.bias'],
           'backbone.layernorm.weight': src['backbone.last_norm.weight'],
           'backbone.layernorm.bias': src['backbone.last_norm.bias']}
    for i in range(layers):
        a, b = f'backbone.layers.{i}.', f'backbone.encoder.layer.{i}.'
        for kind in ('weight', 'bias'):
            q, k, v = src[a + f'attn.qkv.{kind}'].chunk(3)
            dst.update({b + f'attention.attention.query.{kind}': q,
                        b + f'attention.attention.key.{kind}': k,
                        b + f'attention.attention.value.{kind}': v,
                        b + f'attention.output.dense.{kind}': src[a + f'attn.proj.{kind}'],
                        b + f'layernorm_before.{kind}': src[a + f'norm1.{kind}'],
                        b + f'layernorm_after.{kind}': src[a + f'norm2.{kind}'],
                        b + f'mlp.fc1.{kind}': src[a + f'mlp.fc1.{kind}'],
                        b + f'mlp.fc2.{kind}': src[a + f'mlp.fc2.{kind}']})
    head = {'deconv1': 'deconv_layers.0', 'batchnorm1': 'deconv_layers.1',
            'deconv2': 'deconv_layers.3', 'batchnorm2': 'deconv_layers.4',
            'conv': 'final_layer'}
    for name, ours in head.items():
        for key, value in src.items():
            if key.startswith(f'head.{ours}.'):
                dst[f'head.{name}.' + key[len(f'head.{ours}.'):]] = value
    missing, unexpected = hf.load_state_dict(dst, strict=False)
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    if missing or unexpected:
        raise RuntimeError(f'HF ViTPose weight mapping: missing {missing[:5]}, '
                           f'unexpected {unexpected[:5]}')
    return hf


def hf_heatmaps(hf):
    """images (B, 3, H, W) -> heatmaps, fp32, no grad."""
    def run(x):
        with torch.no_grad():
            return hf(pixel_values=x).heatmaps
    return run
