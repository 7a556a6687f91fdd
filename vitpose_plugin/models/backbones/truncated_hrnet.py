"""HRNet cut after stage 1, 2 or 3: the CNN front end of TransPose-H and TokenPose.

TransPose-H and TokenPose-B/L keep HRNet's stem and stages 1-3 and read only the
highest-resolution branch (1/4 of the input); the last module of the last kept stage
fuses into that branch alone, as in the authors' code. TokenPose-S keeps only the stem
and stage 1 (two stride-2 3x3 convs and four bottlenecks, 256 channels at 1/4).

The layers are MMPose's own (``HRNet``'s stem, ``_make_layer``, ``_make_transition_layer``
and ``_make_stage``) under the same names, so ImageNet HRNet checkpoints and the
authors' checkpoints load without renaming (the keys of the cut stages are unused).
"""
import copy

from mmcv.cnn import build_conv_layer, build_norm_layer
from mmpose.models.backbones.hrnet import HRNet
from mmpose.models.backbones.resnet import get_expansion
from mmpose.registry import MODELS
from torch import nn


@MODELS.register_module()
class TruncatedHRNet(HRNet):
    """Args:
        extra: MMPose's HRNet stage dicts (``stage1`` ... ``stage{num_stages}``; later
            ones are ignored).
        num_stages: 1, 2 or 3 stages kept.
        in_channels, conv_cfg, norm_cfg, norm_eval, with_cp, frozen_stages, init_cfg:
            as in MMPose's ``HRNet`` (``frozen_stages`` up to ``num_stages``).

    Shapes:
        (B, 3, H, W) -> ((B, C, H/4, W/4), ) with C = stage ``num_stages``'s first
        branch (stage 1: 4 x its channels, the bottleneck expansion).
    """

    def __init__(self, extra: dict, num_stages: int = 3, in_channels: int = 3,
                 conv_cfg=None, norm_cfg=dict(type='BN'), norm_eval: bool = False,
                 with_cp: bool = False, frozen_stages: int = -1,
                 init_cfg=[dict(type='Normal', std=0.001, layer=['Conv2d']),
                           dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])]):
        if num_stages not in (1, 2, 3):
            raise ValueError(f'TruncatedHRNet keeps 1, 2 or 3 stages, got num_stages={num_stages}')
        if frozen_stages > num_stages:
            raise ValueError(f'frozen_stages={frozen_stages} > num_stages={num_stages}')
        # HRNet.__init__ always builds four stages: build the kept parts here with its helpers
        super(HRNet, self).__init__(init_cfg=init_cfg)
        self.extra, self.num_stages = extra, num_stages
        self.conv_cfg, self.norm_cfg = conv_cfg, copy.deepcopy(norm_cfg)
        self.norm_eval, self.with_cp, self.frozen_stages = norm_eval, with_cp, frozen_stages
        self.zero_init_residual = False
        self.upsample_cfg = extra.get('upsample', dict(mode='nearest', align_corners=None))

        self.conv1 = build_conv_layer(conv_cfg, in_channels, 64, 3, stride=2, padding=1, bias=False)
        self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, 64, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(conv_cfg, 64, 64, 3, stride=2, padding=1, bias=False)
        self.norm2_name, norm2 = build_norm_layer(self.norm_cfg, 64, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.relu = nn.ReLU(inplace=True)

        stage1 = extra['stage1']
        block = self.blocks_dict[stage1['block']]
        channels = [stage1['num_channels'][0] * get_expansion(block)]
        self.layer1 = self._make_layer(block, 64, channels[0], stage1['num_blocks'][0])
        for i in range(2, num_stages + 1):
            cfg = extra[f'stage{i}']
            block = self.blocks_dict[cfg['block']]
            branch_channels = [c * get_expansion(block) for c in cfg['num_channels']]
            setattr(self, f'transition{i - 1}',
                    self._make_transition_layer(channels, branch_channels))
            stage, channels = self._make_stage(
                cfg, branch_channels, multiscale_output=i < num_stages)
            setattr(self, f'stage{i}', stage)
        self.out_channels = channels[0]
        self._freeze_stages()

    def _freeze_stages(self):
        frozen = []
        if self.frozen_stages >= 0:
            frozen += [self.conv1, self.norm1, self.conv2, self.norm2]
        for i in range(1, self.frozen_stages + 1):
            frozen.append(self.layer1 if i == 1 else getattr(self, f'stage{i}'))
            if i < self.num_stages:
                frozen.append(getattr(self, f'transition{i}'))
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def forward(self, x):
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.relu(self.norm2(self.conv2(x)))
        ys = [self.layer1(x)]
        for i in range(2, self.num_stages + 1):
            transition = getattr(self, f'transition{i - 1}')
            # new lower-resolution branches come from the lowest one, as in HRNet
            xs = [ys[j] if t is None else t(ys[-1]) for j, t in enumerate(transition)]
            ys = getattr(self, f'stage{i}')(xs)
        return (ys[0], )
