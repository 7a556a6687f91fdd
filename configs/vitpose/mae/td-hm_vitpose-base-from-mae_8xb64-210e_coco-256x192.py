# Step 2: fine-tune ViTPose-B from your own MAE run (paper Table 3: 74.5 AP from COCO
# crops, 75.8 AP from COCO + AIC crops) (any of the mae_vit-base configs
# here): point mae_run at its last checkpoint. The encoder is the MAE model's
# `backbone`, hence prefix='backbone.'.
_base_ = ['../coco/td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

mae_run = 'work_dirs/mae_vit-base_8xb64-1600e_coco-crops-256x192/epoch_1600.pth'
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=mae_run)))
