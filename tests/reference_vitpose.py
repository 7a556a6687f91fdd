"""An independent, functional ViTPose written from the paper's / repos' formulas.

It reads raw state dicts in the official ViTPose layout or the MMPose-released
(mmpretrain) layout and never imports the plugin, so parity tests compare two
separate implementations. ``random_checkpoint`` makes such state dicts.
"""
import torch
import torch.nn.functional as F

# Key templates of the two source layouts ({i}: block index).
LAYOUTS = {
    'official': dict(
        patch='backbone.patch_embed.proj', pos='backbone.pos_embed', block='backbone.blocks.{i}.',
        norm1='norm1', qkv='attn.qkv', proj='attn.proj', norm2='norm2', fc1='mlp.fc1',
        fc2='mlp.fc2', last='backbone.last_norm', head='keypoint_head.'),
    'mmpretrain': dict(
        patch='backbone.patch_embed.projection', pos='backbone.pos_embed',
        block='backbone.layers.{i}.', norm1='ln1', qkv='attn.qkv', proj='attn.proj',
        norm2='ln2', fc1='ffn.layers.0.0', fc2='ffn.layers.1', last='backbone.ln1',
        head='head.'),
}


def random_checkpoint(layout, dims=64, depth=2, grid=(16, 12), patch=16, num_kpts=17,
                      deconv=(32, 32), simple=False, seed=0):
    """A state dict of random weights in ``layout`` (shapes from the papers)."""
    g = torch.Generator().manual_seed(seed)
    n = lambda *s, std=0.2: torch.randn(*s, generator=g) * std  # noqa: E731
    k = LAYOUTS[layout]
    sd = {k['patch'] + '.weight': n(dims, 3, patch, patch, std=0.05),
          k['patch'] + '.bias': n(dims)}
    tokens = grid[0] * grid[1]
    if layout == 'official':
        sd[k['pos']] = n(1, tokens + 1, dims)  # slot 0 is added to every patch
        sd['backbone.cls_token'] = n(1, 1, dims)  # present in official files, unused
    else:
        sd[k['pos']] = n(1, tokens, dims)
    for i in range(depth):
        b = k['block'].format(i=i)
        for name, shape in ((k['norm1'], (dims, )), (k['norm2'], (dims, ))):
            sd[b + name + '.weight'] = 1 + n(*shape)
            sd[b + name + '.bias'] = n(*shape)
        for name, (o, c) in ((k['qkv'], (3 * dims, dims)), (k['proj'], (dims, dims)),
                             (k['fc1'], (4 * dims, dims)), (k['fc2'], (dims, 4 * dims))):
            sd[b + name + '.weight'] = n(o, c, std=c**-0.5)
            sd[b + name + '.bias'] = n(o)
    sd[k['last'] + '.weight'] = 1 + n(dims)
    sd[k['last'] + '.bias'] = n(dims)
    h = k['head']
    c = dims
    if not simple:
        for j, out in zip((0, 3), deconv):
            sd[f'{h}deconv_layers.{j}.weight'] = n(c, out, 4, 4, std=(c * 4)**-0.5)
            sd[f'{h}deconv_layers.{j + 1}.weight'] = 1 + n(out)
            sd[f'{h}deconv_layers.{j + 1}.bias'] = n(out)
            sd[f'{h}deconv_layers.{j + 1}.running_mean'] = n(out)
            sd[f'{h}deconv_layers.{j + 1}.running_var'] = 0.5 + torch.rand(out, generator=g)
            sd[f'{h}deconv_layers.{j + 1}.num_batches_tracked'] = torch.tensor(100)
            c = out
        sd[f'{h}final_layer.weight'] = n(num_kpts, c, 1, 1, std=c**-0.5)
    else:
        sd[f'{h}final_layer.weight'] = n(num_kpts, c, 3, 3, std=(9 * c)**-0.5)
    sd[f'{h}final_layer.bias'] = n(num_kpts)
    return sd


def _ln(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[name + '.weight'], sd[name + '.bias'], eps=1e-6)


def _lin(x, sd, name):
    return x @ sd[name + '.weight'].T + sd[name + '.bias']


def _resize_grid(pos, src, dst):
    """Bicubic resize of a (1, h*w, C) grid embedding."""
    if tuple(src) == tuple(dst):
        return pos
    c = pos.shape[-1]
    img = pos.reshape(1, src[0], src[1], c).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=dst, mode='bicubic', align_corners=False)
    return img.flatten(2).transpose(1, 2)


def forward(sd, layout, img, num_heads, grid=(16, 12), simple=False):
    """Heatmaps (B, K, H/4, W/4) of ViTPose for normalised images (B, 3, H, W)."""
    k = LAYOUTS[layout]
    x = F.conv2d(img, sd[k['patch'] + '.weight'], sd[k['patch'] + '.bias'], stride=16,
                 padding=2)
    b, c, hp, wp = x.shape
    t = x.flatten(2).transpose(1, 2)
    pos = sd[k['pos']]
    if layout == 'official':  # x + pos[:, 1:] + pos[:, :1]
        t = t + _resize_grid(pos[:, 1:], grid, (hp, wp)) + pos[:, :1]
    else:
        t = t + _resize_grid(pos, grid, (hp, wp))
    d = c // num_heads
    i = 0
    while k['block'].format(i=i) + k['qkv'] + '.weight' in sd:
        p = k['block'].format(i=i)
        h = _ln(t, sd, p + k['norm1'])
        q, kk, v = _lin(h, sd, p + k['qkv']).reshape(b, -1, 3, num_heads, d).permute(
            2, 0, 3, 1, 4)
        attn = torch.softmax(q @ kk.transpose(-2, -1) * d**-0.5, dim=-1)
        t = t + _lin((attn @ v).transpose(1, 2).reshape(b, -1, c), sd, p + k['proj'])
        h = _ln(t, sd, p + k['norm2'])
        t = t + _lin(F.gelu(_lin(h, sd, p + k['fc1'])), sd, p + k['fc2'])
        i += 1
    t = _ln(t, sd, k['last'])
    f = t.transpose(1, 2).reshape(b, c, hp, wp)
    h = k['head']
    if simple:
        f = F.interpolate(F.relu(f), scale_factor=4, mode='bilinear', align_corners=False)
        return F.conv2d(f, sd[h + 'final_layer.weight'], sd[h + 'final_layer.bias'],
                        padding=1)
    for j in (0, 3):
        bn = f'{h}deconv_layers.{j + 1}'
        f = F.conv_transpose2d(f, sd[f'{h}deconv_layers.{j}.weight'], stride=2, padding=1)
        f = F.batch_norm(f, sd[bn + '.running_mean'], sd[bn + '.running_var'],
                         sd[bn + '.weight'], sd[bn + '.bias'], training=False, eps=1e-5)
        f = F.relu(f)
    return F.conv2d(f, sd[h + 'final_layer.weight'], sd[h + 'final_layer.bias'])
