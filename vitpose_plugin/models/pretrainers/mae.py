"""MAE pre-training of the ViTPose backbone (He et al. 2022; ViTPose paper Table 3).

A random 75% of each image's patch tokens is hidden; the encoder (the plugin's
``ViT``) sees only the visible tokens with their position embeddings; a light
transformer decoder with a learned mask token reconstructs the pixels of the hidden
patches; the loss is the MSE over hidden patches only, optionally on per-patch
normalised pixels. The encoder is the model's ``backbone``, so a pose config picks
it up with ``init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=...)``.

ViTPose's patch convolution (kernel 16, stride 16, padding 2) reads a 2-pixel strip of
the patches above and left of each token. So that a visible token never sees a hidden
patch, the pixels of hidden patches are zeroed (the mean colour, after normalisation)
before the convolution; fine-tuning then uses the same convolution on whole images.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.model.weight_init import trunc_normal_
from mmpose.registry import MODELS

from ..backbones.attention import Attention
from ..backbones.vit import Block
from ..utils.position_encoding import sincos_position_embedding


@MODELS.register_module()
class ViTMAE(BaseModel):
    """Masked auto-encoder around the plugin's ViT.

    Args:
        backbone: a ``ViT`` config (full attention, no experts/token).
        decoder_dims, decoder_depth, decoder_heads: the light decoder (512 / 8 / 16).
        mask_ratio: fraction of patches hidden per image (0.75).
        norm_pix_loss: targets are the patch's pixels normalised by their own
            mean and variance.
        data_preprocessor: e.g. MMPose's ``PoseDataPreprocessor`` (labels unused).

    Shapes:
        inputs (B, 3, H, W) with H, W multiples of the patch size; patches (B, N,
        p*p*3) with N = (H/p)*(W/p).
    """

    def __init__(self, backbone: dict, decoder_dims: int = 512, decoder_depth: int = 8,
                 decoder_heads: int = 16, mask_ratio: float = 0.75, norm_pix_loss: bool = True,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        enc = self.backbone
        if enc.ratio != 1 or enc.num_experts or enc.knowledge_token is not None or any(
                type(layer.attn) is not Attention for layer in enc.layers):
            raise ValueError('MAE needs a plain ViT (ratio 1, full attention, no experts or '
                             'knowledge token)')
        self.patch = enc.patch_size[0]
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        c = enc.embed_dims
        # MAE's fixed sin-cos position embedding (slot 0 stays 0: nothing is added)
        with torch.no_grad():
            enc.pos_embed.zero_()
            enc.pos_embed[:, 1:] = sincos_position_embedding(c, enc.grid)
        enc.pos_embed.requires_grad = False

        self.decoder_embed = nn.Linear(c, decoder_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dims))
        self.register_buffer('decoder_pos_embed', sincos_position_embedding(decoder_dims, enc.grid),
                             persistent=False)
        self.decoder_layers = nn.ModuleList(
            Block(Attention(decoder_dims, decoder_heads), decoder_dims)
            for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dims, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dims, self.patch**2 * 3)
        trunc_normal_(self.mask_token, std=0.02)
        for m in (self.decoder_embed, self.decoder_layers, self.decoder_norm, self.decoder_pred):
            m.apply(enc._init_module)

    # ------------------------------------------------------------------ pieces
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N, p*p*3), row-major patches as the token grid."""
        p = self.patch
        b, c, h, w = imgs.shape
        x = imgs.reshape(b, c, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)

    def unpatchify(self, patches: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`patchify` for a (h, w) patch grid."""
        p = self.patch
        b = patches.shape[0]
        x = patches.reshape(b, hw[0], hw[1], p, p, 3).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, 3, hw[0] * p, hw[1] * p)

    def random_masking(self, b: int, n: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per image: indices of the kept tokens (B, n_keep) and a (B, N) mask, 1 =
        hidden. Exactly round(mask_ratio * N) tokens are hidden."""
        num_masked = int(round(self.mask_ratio * n))
        order = torch.rand(b, n, device=device).argsort(dim=1)
        keep = order[:, :n - num_masked].sort(dim=1).values
        mask = torch.ones(b, n, device=device)
        mask.scatter_(1, keep, 0.0)
        return keep, mask

    def visible_pixels(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``imgs`` with the pixels of hidden patches (``mask`` (B, N), 1 = hidden) set
        to 0."""
        b, _, h, w = imgs.shape
        hidden = mask.reshape(b, 1, h // self.patch, w // self.patch)
        keep = 1.0 - F.interpolate(hidden, scale_factor=self.patch, mode='nearest')
        return imgs * keep.to(imgs.dtype)

    def encode(self, imgs: torch.Tensor, keep: torch.Tensor, mask: torch.Tensor):
        """Latents (B, n_keep, C) of the visible tokens, and the token grid."""
        enc = self.backbone
        x, hw = enc.patch_embed(self.visible_pixels(imgs, mask))
        x = x + enc._pos_embed(hw)
        x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))  # visible tokens only
        for layer in enc.layers:
            x = layer(x, hw)
        return enc.last_norm(x), hw

    def decode(self, latent: torch.Tensor, keep: torch.Tensor, n: int) -> torch.Tensor:
        x = self.decoder_embed(latent)
        b, _, c = x.shape
        full = self.mask_token.expand(b, n, c).to(x.dtype)  # x is bf16 under autocast
        full = full.scatter(1, keep[..., None].expand(-1, -1, c), x)  # visible back in place
        x = full + self.decoder_pos_embed
        for layer in self.decoder_layers:
            x = layer(x, None)
        return self.decoder_pred(self.decoder_norm(x)).float()  # the loss in fp32

    def reconstruction_loss(self, imgs, pred, mask) -> torch.Tensor:
        """Mean over hidden patches of the per-patch MSE (visible patches ignored)."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6)**0.5
        per_patch = (pred - target).pow(2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    # ------------------------------------------------------------------- modes
    def reconstruct(self, imgs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Predicted patches, mask and grid for a batch of normalised images."""
        b, _, h, w = imgs.shape
        if h % self.patch or w % self.patch:
            raise ValueError(f'input {(h, w)}: MAE needs sizes that are multiples of '
                             f'{self.patch}')
        n = (h // self.patch) * (w // self.patch)
        keep, mask = self.random_masking(b, n, imgs.device)
        latent, hw = self.encode(imgs, keep, mask)
        return dict(pred=self.decode(latent, keep, n), mask=mask, hw=hw)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        out = self.reconstruct(inputs)
        if mode == 'loss':
            return dict(loss=self.reconstruction_loss(inputs, out['pred'], out['mask']))
        if mode == 'tensor':
            return out['pred']
        raise RuntimeError(f'ViTMAE has no {mode!r} mode (pre-training has no validation); '
                           'use tools/mae_visualize.py to look at reconstructions')
