# TokenPose-T (no COCO figure of it in the TokenPose paper): the pure-transformer
# variant. No CNN: 16x12 patches of the normalised image are the visual tokens; 12
# layers, 16 heads, 192-d.
_base_ = ['./td-hm_tokenpose-s-v1_4xb32-300e_coco-256x192.py']

model = dict(
    backbone=dict(_delete_=True, type='ImageAsFeature'),
    head=dict(in_channels=3, patch_size=(16, 12), num_heads=16, head_scale=True))
