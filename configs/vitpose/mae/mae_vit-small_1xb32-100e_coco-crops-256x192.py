# A small MAE for quick runs (not in the paper): ViT-S encoder, 4-block 256-wide
# decoder, 100 epochs.
_base_ = ['./mae_vit-base_8xb64-1600e_coco-crops-256x192.py']

model = dict(backbone=dict(arch='small'), decoder_dims=256, decoder_depth=4, decoder_heads=8)
max_epochs = 100
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 5, by_epoch=True, begin=5,
         end=max_epochs, convert_to_iter_based=True),
]
train_dataloader = dict(batch_size=32)
