# APT-36K (Yang et al., NeurIPS 2022 Datasets and Benchmarks): animal videos annotated
# in AP-10K's 17-keypoint format. Same keypoints, skeleton and sigmas as AP-10K; only
# the name differs, so that multi-dataset models can tell the two apart.
_base_ = ['mmpose::_base_/datasets/ap10k.py']

dataset_info = dict(
    dataset_name='apt36k',
    paper_info=dict(
        author='Yang, Yuxiang and Yang, Junjie and Xu, Yufei and Zhang, Jing and Lan, Long '
        'and Tao, Dacheng',
        title='APT-36K: A Large-scale Benchmark for Animal Pose Estimation and Tracking',
        container='Advances in Neural Information Processing Systems',
        year='2022',
        homepage='https://github.com/pandorgan/APT-36K',
    ))
