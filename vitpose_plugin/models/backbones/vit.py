"""Plain Vision Transformer backbone of ViTPose (Xu et al., NeurIPS 2022).

A faithful re-implementation of the official ``ViT`` of the ViTPose repository:
16x16 patch embedding with padding 2, an absolute position embedding whose slot 0
is added to every patch, pre-norm blocks (LN eps 1e-6), a final LayerNorm, and a
feature map of shape (B, C, H/16, W/16) (or H/8 with ``ratio=2``).

Blocks use full attention, or window / shifted-window / pooling-window attention for
high resolution (paper Table 5), with the same parameters either way.

Checkpoints in the official, MMPose-released (mmpretrain), MAE and Hugging Face layouts
load directly (see :mod:`vitpose_plugin.checkpoint.convert`).
"""
import logging
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model.weight_init import trunc_normal_
from mmpose.models.backbones.base_backbone import BaseBackbone
from mmpose.registry import MODELS

from ...checkpoint.convert import convert_on_load, resize_pos_embed
from ...checkpoint.safe_load import load_file
from .attention import Attention
from .window_attention import WindowAttention

# The one table of ViT sizes (benchmarks and tools import it).
ARCHS = {
    'small': dict(embed_dims=384, num_layers=12, num_heads=12, mlp_ratio=4.0),
    'base': dict(embed_dims=768, num_layers=12, num_heads=12, mlp_ratio=4.0),
    'large': dict(embed_dims=1024, num_layers=24, num_heads=16, mlp_ratio=4.0),
    'huge': dict(embed_dims=1280, num_layers=32, num_heads=16, mlp_ratio=4.0),
    # ViT-g (Zhai et al., 2022): the plain ViT of about 1B parameters, the size of the
    # paper's ViTAE-G (never released); FFN 6144 = 1408 x 48/11
    'giant': dict(embed_dims=1408, num_layers=40, num_heads=16, mlp_ratio=48 / 11),
}


def _pair(x) -> Tuple[int, int]:
    return (x, x) if isinstance(x, int) else tuple(x)


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample with prob ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f'p={self.p}'


class PatchEmbed(nn.Module):
    """Image to patch tokens: (B, 3, H, W) -> (B, Hp*Wp, C), (Hp, Wp).

    ``ratio=1``: kernel 16, stride 16, padding 2 (a 256x192 input gives 16x12).
    ``ratio=2``: kernel 16, stride 8, padding 4, overlapping patches at 1/8.
    """

    def __init__(self, in_channels=3, embed_dims=768, patch_size=16, ratio=1):
        super().__init__()
        patch_size = _pair(patch_size)
        stride = tuple(p // ratio for p in patch_size)
        padding = 4 + 2 * (ratio // 2 - 1)  # official formula: 2 for ratio 1, 4 for 2
        self.proj = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=stride,
            padding=padding)

    def forward(self, x):
        x = self.proj(x)
        hw = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), (hw[0], hw[1])


class Mlp(nn.Module):
    """FFN: Linear(C, rC) -> GELU -> Linear(rC, C)."""

    def __init__(self, embed_dims, hidden_dims, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MoEMlp(Mlp):
    """ViTPose+ FFN: shared fc1 (C -> rC) and fc2 (rC -> C - p), plus one expert
    Linear(rC, p) per dataset; the outputs are concatenated to C channels and each
    sample uses the expert of its dataset (``dataset_idx``)."""

    def __init__(self, embed_dims, hidden_dims, num_experts, part_features, drop=0.0):
        super().__init__(embed_dims, hidden_dims, drop)
        self.part_features = part_features
        self.fc2 = nn.Linear(hidden_dims, embed_dims - part_features)
        self.experts = nn.ModuleList(
            nn.Linear(hidden_dims, part_features) for _ in range(num_experts))

    def forward(self, x, dataset_idx=None):
        h = self.drop(self.act(self.fc1(x)))
        if dataset_idx is None:
            dataset_idx = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        part = h.new_empty(*h.shape[:-1], self.part_features)
        for e in dataset_idx.unique().tolist():  # only the experts this batch needs
            rows = dataset_idx == e
            part[rows] = self.experts[e](h[rows])
        return self.drop(torch.cat([self.fc2(h), part], dim=-1))


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + FFN(LN(x)).

    ``attn`` is an :class:`Attention` or a :class:`WindowAttention`; both have the
    same parameters.
    """

    def __init__(self, attn, embed_dims, mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.0,
                 num_experts=0, part_features=0):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = attn
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        hidden = int(round(embed_dims * mlp_ratio))
        self.mlp = (MoEMlp(embed_dims, hidden, num_experts, part_features, drop_rate)
                    if num_experts else Mlp(embed_dims, hidden, drop_rate))

    def forward(self, x, hw, dataset_idx=None):
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        mlp = self.mlp(self.norm2(x), dataset_idx) if isinstance(self.mlp, MoEMlp) else \
            self.mlp(self.norm2(x))
        return x + self.drop_path(mlp)


ATTN_TYPES = ('full', 'window', 'window+shift', 'window+pool', 'window+shift+pool')


def block_attention_types(attn_type: str, num_layers: int, full_attn_every: int = 0):
    """Per-block attention: 'full', or (shift, pool) flags of a window block.

    ``'window+shift'`` shifts the windows of every second block (Swin);
    ``full_attn_every=k`` makes every k-th block full attention (ViTDet interleave).
    """
    if attn_type not in ATTN_TYPES:
        raise ValueError(f'attn_type {attn_type!r} is not one of {ATTN_TYPES}')
    kinds = []
    for i in range(num_layers):
        if attn_type == 'full' or (full_attn_every and (i + 1) % full_attn_every == 0):
            kinds.append('full')
        else:
            kinds.append(('shift' in attn_type and i % 2 == 1, 'pool' in attn_type))
    return kinds


@MODELS.register_module()
class ViT(BaseBackbone):
    """ViTPose's plain ViT backbone.

    Args:
        arch: ``'small'``, ``'base'``, ``'large'``, ``'huge'``, ``'giant'`` (ViT-g) or a
            dict with ``embed_dims``, ``num_layers``, ``num_heads`` (and ``mlp_ratio``).
        img_size: (H, W) the position embedding is stored for. Other input sizes
            work: the embedding is resized bicubically at forward time.
        patch_size: patch kernel size (16).
        patch_kernel_fit: how a pre-trained kernel of another size (MAE ViT-H/14's
            14x14) becomes ``patch_size``: ``'pad'`` (zero padding, centred: the
            ViTPose authors' default) or ``'bicubic'`` (their other option).
        ratio: 1 for 1/16 features, 2 for overlapping stride-8 patches (1/8).
        qkv_bias: bias in the qkv projection (True in all ViTPose models).
        drop_rate, attn_drop_rate: dropout after projections / on attention.
        drop_path_rate: stochastic depth of the last block; rises linearly
            from 0 at the first block.
        with_cp: gradient checkpointing (recompute in backward instead of storing
            activations): ``True`` for every block, an int k for the first k blocks
            only (a memory/time trade-off: each block saves the same memory and costs
            the same recomputation; see ``benchmarks/train_memory.py``).
        frozen_stages: -1 trains everything; k >= 0 freezes the patch and position
            embeddings and the first k blocks (blocks 0..k-1; the authors' loop
            freezes blocks 1..k and leaves the position embedding trainable).
        freeze_attn: freeze every block's MHSA and its LayerNorm (paper Table 6).
        freeze_ffn: freeze every block's FFN and its LayerNorm, and, as the authors'
            ``_freeze_stages`` does, the patch and position embeddings (Table 6).
        attn_type: ``'full'`` (default), ``'window'``, ``'window+shift'``,
            ``'window+pool'`` or ``'window+shift+pool'`` (paper Table 5).
        window_size: (h, w) windows, in tokens, of the window types.
        full_attn_every: with a window type, make every k-th block full
            attention (ViTDet-style interleave); 0 for none.
        fused_attn: torch's fused attention kernel; ``False`` for the explicit
            softmax(q k^T) v of the official code. Outputs agree either way.
        num_experts: ViTPose+ mixture of experts: one FFN expert per dataset
            (0: plain FFN). ``forward(x, dataset_idx)`` picks each sample's expert.
        part_features: channels of each expert's output (p; 96 for S, 192 for B,
            256 for L, 320 for H in ViTPose+).
        knowledge_token_dims: width of a knowledge token (paper section 3.5) that is
            prepended to the patch tokens (after the position embedding) and dropped
            before the feature map is formed; None for no token. Distillation learns
            the token at the student's width: a teacher wider than its token in stage
            1, a student as wide as it in stage 2 (docs/distillation.md).
        knowledge_token_file: a file written by ``tools/extract_knowledge_token.py``
            from which ``init_weights()`` loads the token (stage 2).
        freeze_knowledge_token: keep the token fixed (stage 2: t* stays frozen).
        knowledge_token_proj: how a token of another width enters. ``'fixed'``
            (default) takes a token no wider than ``embed_dims`` through Q, a fixed
            (embed_dims, token dims) matrix with orthonormal columns drawn with seed 0
            and independent of the token (the buffer ``knowledge_token_map``): the
            blocks get Q t, a linear, injective, norm-keeping function of t (Q^T Q t =
            t). It refuses a wider token, which no fixed map passes on whole.
            ``'learned'`` uses a learned Linear (``knowledge_proj``, any widths), which
            can move the token anywhere.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint='mae.pth')``;
            official, MMPose, MAE and Hugging Face layouts are all understood.

    Shapes:
        input (B, 3, H, W) -> output tuple with one (B, C, H/16, W/16) map.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Sequence[int]] = (256, 192),
                 patch_size: Union[int, Sequence[int]] = 16,
                 patch_kernel_fit: str = 'pad',
                 ratio: int = 1,
                 in_channels: int = 3,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0,
                 with_cp: Union[bool, int] = False,
                 frozen_stages: int = -1,
                 freeze_attn: bool = False,
                 freeze_ffn: bool = False,
                 attn_type: str = 'full',
                 window_size: Union[int, Sequence[int]] = (8, 8),
                 full_attn_every: int = 0,
                 fused_attn: bool = True,
                 num_experts: int = 0,
                 part_features: int = 0,
                 knowledge_token_dims: Optional[int] = None,
                 knowledge_token_file: Optional[str] = None,
                 freeze_knowledge_token: bool = False,
                 knowledge_token_proj: str = 'fixed',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in ARCHS:
                raise KeyError(f'Unknown ViT arch {arch!r}; choose one of '
                               f'{sorted(ARCHS)} or pass a dict')
            arch = ARCHS[arch]
        missing = {'embed_dims', 'num_layers', 'num_heads'} - set(arch)
        if missing:
            raise KeyError(f'ViT arch dict lacks {sorted(missing)}')
        if patch_kernel_fit not in ('pad', 'bicubic'):
            raise ValueError(f"patch_kernel_fit={patch_kernel_fit!r}: 'pad' or 'bicubic'")
        self.embed_dims = arch['embed_dims']
        self.num_layers = arch['num_layers']
        self.img_size = _pair(img_size)
        self.patch_size = _pair(patch_size)
        self.patch_kernel_fit = patch_kernel_fit
        self.ratio = ratio
        self.with_cp = with_cp
        self._checkpointed_blocks()  # validates with_cp
        self.frozen_stages = frozen_stages
        self.freeze_attn = freeze_attn
        self.freeze_ffn = freeze_ffn

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims, self.patch_size, ratio)
        self.grid = tuple(s // p * ratio for s, p in zip(self.img_size, self.patch_size))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.grid[0] * self.grid[1] + 1, self.embed_dims))
        dpr = torch.linspace(0, drop_path_rate, self.num_layers).tolist()
        self.layers = nn.ModuleList()
        for i, kind in enumerate(
                block_attention_types(attn_type, self.num_layers, full_attn_every)):
            heads = arch['num_heads']
            if kind == 'full':
                attn = Attention(self.embed_dims, heads, qkv_bias, attn_drop_rate, drop_rate,
                                 fused_attn)
            else:
                attn = WindowAttention(self.embed_dims, heads, _pair(window_size), *kind,
                                       qkv_bias, attn_drop_rate, drop_rate, fused_attn)
            self.layers.append(
                Block(attn, self.embed_dims, arch.get('mlp_ratio', 4.0), drop_rate, dpr[i],
                      num_experts, part_features))
        self.last_norm = nn.LayerNorm(self.embed_dims, eps=1e-6)
        self.num_experts = num_experts

        self.knowledge_token_file = knowledge_token_file
        self.knowledge_token = self.knowledge_proj = None
        self.register_buffer('knowledge_token_map', None)
        if knowledge_token_dims:
            if attn_type != 'full':
                raise ValueError('a knowledge token needs attn_type="full" (it belongs to '
                                 f'no window), got {attn_type!r}')
            if knowledge_token_proj not in ('fixed', 'learned'):
                raise ValueError(f"knowledge_token_proj={knowledge_token_proj!r}: 'fixed' "
                                 "or 'learned'")
            if knowledge_token_dims > self.embed_dims and knowledge_token_proj == 'fixed':
                raise ValueError(
                    f'knowledge_token_dims={knowledge_token_dims} is wider than this ViT '
                    f'({self.embed_dims} channels), and no fixed map passes a wider token '
                    'on whole (the map of earlier versions, built from the token itself, '
                    'passed on its norm only). Learn the token at the student\'s width: '
                    f'knowledge_token_dims={self.embed_dims} in the stage-1 (teacher) and '
                    'stage-2 (student) configs; see docs/distillation.md')
            self.knowledge_token = nn.Parameter(torch.zeros(1, 1, knowledge_token_dims),
                                                requires_grad=not freeze_knowledge_token)
            trunc_normal_(self.knowledge_token, std=0.02)
            if knowledge_token_dims != self.embed_dims and knowledge_token_proj == 'learned':
                self.knowledge_proj = nn.Linear(knowledge_token_dims, self.embed_dims)
            elif knowledge_token_dims != self.embed_dims:
                self.register_buffer('knowledge_token_map',
                                     self._fixed_token_map(knowledge_token_dims))

        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_module)
        convert_on_load(self)
        self._freeze()

    @staticmethod
    def _init_module(m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0)

    def _fixed_token_map(self, token_dims: int) -> torch.Tensor:
        """Q, (embed_dims, token_dims) with orthonormal columns (Q^T Q = I), the Q
        factor of a seed-0 Gaussian matrix: the same for every token."""
        g = torch.Generator().manual_seed(0)
        gauss = torch.randn(self.embed_dims, token_dims, generator=g, dtype=torch.float64)
        return torch.linalg.qr(gauss)[0].float()

    def fit_knowledge_token(self, state_dict: dict, prefix: str = '') -> None:
        """Fit, in place, a checkpoint in which a token wider than this ViT entered it
        through ``knowledge_token_map`` (m, t), m < t, as earlier versions saved it. That
        map was built from the token itself, so the blocks received M t = +-|t| along a
        fixed direction and nothing else of t: M t becomes the ViT's own m-wide token,
        and the model computes what it was trained with."""
        key, token_key = prefix + 'knowledge_token_map', prefix + 'knowledge_token'
        old = state_dict.get(key)
        if old is None or old.dim() != 2 or old.shape[0] >= old.shape[1] or \
                token_key not in state_dict:
            return  # no map, or the token-independent one of a ViT wider than its token
        width = old.shape[0]
        if self.knowledge_token is None or self.knowledge_token_map is not None or \
                self.knowledge_proj is not None or self.knowledge_token.shape[-1] != width:
            raise ValueError(
                f'{key} of shape {tuple(old.shape)} is the token-dependent map of earlier '
                f'versions, which passed on the norm of the {old.shape[1]}-wide token only; '
                f'load this checkpoint into a ViT with knowledge_token_dims={width} (its '
                'received token is then kept), or learn the token again at the student\'s '
                'width (docs/distillation.md)')
        state_dict[token_key] = state_dict[token_key] @ old.T
        del state_dict[key]
        print_log(f'{key}: this checkpoint holds the token-dependent map of earlier '
                  f'versions, through which its student received only the norm of the '
                  f'{old.shape[1]}-wide teacher token; that received vector is loaded as the '
                  f'{width}-wide knowledge token (outputs unchanged). To distil what the '
                  'teacher learned, learn the token at the student\'s width and train the '
                  'student again (docs/distillation.md)', logger='current',
                  level=logging.WARNING)

    def _frozen_modules(self):
        if self.frozen_stages >= 0 or self.freeze_ffn:
            yield self.patch_embed
        if self.frozen_stages >= 0:
            yield from self.layers[:self.frozen_stages]
        for layer in self.layers:
            if self.freeze_attn:
                yield from (layer.norm1, layer.attn)
            if self.freeze_ffn:
                yield from (layer.norm2, layer.mlp)

    def _freeze(self):
        if self.frozen_stages >= 0 or self.freeze_ffn:
            self.pos_embed.requires_grad = False
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:  # frozen parts stay in eval mode (no dropout / drop path)
            for m in self._frozen_modules():
                m.eval()
        return self

    def init_weights(self):
        super().init_weights()
        if self.knowledge_token is not None and self.knowledge_token_file:
            token = load_file(self.knowledge_token_file, map_location='cpu')['knowledge_token']
            if token.shape != self.knowledge_token.shape:
                hint = ''
                if token.shape[-1] > self.embed_dims:
                    hint = (f'. A token wider than this {self.embed_dims}-wide ViT (as '
                            'earlier versions learned in stage 1, at the teacher\'s width) '
                            'cannot enter it whole: learn the token again at the '
                            f'student\'s width, knowledge_token_dims={self.embed_dims} '
                            'in the stage-1 config (docs/distillation.md)')
                raise ValueError(f'{self.knowledge_token_file}: token of shape '
                                 f'{tuple(token.shape)}, the model expects '
                                 f'{tuple(self.knowledge_token.shape)}{hint}')
            with torch.no_grad():
                self.knowledge_token.copy_(token)
            print_log(f'ViT: knowledge token loaded from {self.knowledge_token_file}',
                      logger='current')

    def knowledge(self) -> Optional[torch.Tensor]:
        """(1, 1, embed_dims): the knowledge token as the blocks receive it, or None."""
        token = self.knowledge_token
        if token is None:
            return None
        if self.knowledge_proj is not None:
            return self.knowledge_proj(token)
        if self.knowledge_token_map is not None:
            return token @ self.knowledge_token_map.T
        return token

    def _checkpointed_blocks(self) -> int:
        """How many leading blocks ``with_cp`` checkpoints."""
        if isinstance(self.with_cp, bool):
            return self.num_layers if self.with_cp else 0
        if isinstance(self.with_cp, int) and 0 <= self.with_cp <= self.num_layers:
            return self.with_cp
        raise ValueError(f'with_cp must be a bool or a number of blocks in [0, '
                         f'{self.num_layers}], got {self.with_cp!r}')

    def _pos_embed(self, hw: Tuple[int, int]) -> torch.Tensor:
        """(1, Hp*Wp, C): patch embedding of grid ``hw`` plus the shared slot 0."""
        pos = resize_pos_embed(self.pos_embed, self.grid, hw)
        return pos[:, 1:] + pos[:, :1]

    def forward(self, x: torch.Tensor,
                dataset_idx: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor]:
        """(B, 3, H, W) -> ((B, C, Hp, Wp), ); ``dataset_idx`` (B,) long picks the
        ViTPose+ experts (default 0)."""
        b = x.shape[0]
        x, (hp, wp) = self.patch_embed(x)
        x = x + self._pos_embed((hp, wp))
        token = self.knowledge()
        if token is not None:
            x = torch.cat([token.expand(b, -1, -1), x], dim=1)
        checkpointed = self._checkpointed_blocks()
        for i, layer in enumerate(self.layers):
            if i < checkpointed and x.requires_grad:
                x = cp.checkpoint(layer, x, (hp, wp), dataset_idx, use_reentrant=False)
            else:
                x = layer(x, (hp, wp), dataset_idx)
        extra = 0 if token is None else token.shape[1]
        x = self.last_norm(x[:, extra:])  # the knowledge token leaves here
        return (x.transpose(1, 2).reshape(b, self.embed_dims, hp, wp), )
