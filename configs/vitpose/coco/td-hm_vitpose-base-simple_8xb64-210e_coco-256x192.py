# ViTPose-B, simple decoder (ReLU, bilinear x4, 3x3 conv), COCO
# 256x192 (paper Table 1, simple decoder: 75.5 AP). The simple decoder is MMPose's
# FeatureMapProcessor (ReLU + x4 resize) followed by a HeatmapHead without deconvs.
_base_ = ['./td-hm_vitpose-base_8xb64-210e_coco-256x192.py']

model = dict(
    neck=dict(type='FeatureMapProcessor', scale_factor=4.0, apply_relu=True),
    head=dict(
        deconv_out_channels=[],
        deconv_kernel_sizes=[],
        final_layer=dict(kernel_size=3, padding=1)))
