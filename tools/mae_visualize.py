"""Look at MAE reconstructions: masked input | reconstruction | original, per row.

    python tools/mae_visualize.py CONFIG CHECKPOINT [--num 4] [--out mae.png]
        [--cfg-options train_dataloader.dataset.data_root=...]

Samples come from the config's training data (its crops and augmentation). With
``norm_pix_loss`` the predicted patches are in normalised units; they are shown
with the mean and variance of the true patch, as MAE's own figures do.
"""
import argparse

import cv2
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmpose.registry import DATASETS, MODELS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='MAE checkpoint (none: untrained model)')
    p.add_argument('--num', type=int, default=4, help='number of samples (rows)')
    p.add_argument('--out', default='mae_reconstructions.png')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return p.parse_args(argv)


def to_image(t, mean, std):
    """(3, H, W) normalised RGB -> (H, W, 3) uint8 BGR."""
    img = (t.permute(1, 2, 0) * std + mean).clamp(0, 255).byte().numpy()
    return np.ascontiguousarray(img[..., ::-1])


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = MODELS.build(cfg.model).eval()
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    idx = np.linspace(0, len(dataset) - 1, args.num).round().astype(int)
    data = model.data_preprocessor(pseudo_collate([dataset[int(i)] for i in idx]), False)
    imgs = data['inputs']
    with torch.no_grad():
        out = model.reconstruct(imgs)
    target = model.patchify(imgs)
    pred = out['pred']
    if model.norm_pix_loss:  # back to pixel units with the true patch statistics
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        pred = pred * (var + 1e-6)**0.5 + mean
    mask = out['mask'][..., None]
    masked = model.unpatchify(target * (1 - mask), out['hw'])
    recon = model.unpatchify(target * (1 - mask) + pred * mask, out['hw'])
    mean = torch.tensor(cfg.model.data_preprocessor.mean).view(1, 1, 3)
    std = torch.tensor(cfg.model.data_preprocessor.std).view(1, 1, 3)
    rows = []
    for i in range(len(idx)):
        hidden = model.unpatchify(mask.expand_as(target), out['hw'])[i, 0] > 0
        tiles = [to_image(masked[i], mean, std), to_image(recon[i], mean, std),
                 to_image(imgs[i], mean, std)]
        tiles[0][hidden.numpy()] = 127  # hidden patches in grey
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    header = np.full((28, sheet.shape[1], 3), 255, np.uint8)
    w = sheet.shape[1] // 3
    for k, text in enumerate(('masked input (75%)', 'reconstruction', 'original')):
        cv2.putText(header, text, (k * w + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.imwrite(args.out, np.concatenate([header, sheet], axis=0))
    loss = model.reconstruction_loss(imgs, out['pred'], out['mask']).item()
    print(f'{len(idx)} samples, reconstruction loss {loss:.4f} -> {args.out}')


if __name__ == '__main__':
    main()
