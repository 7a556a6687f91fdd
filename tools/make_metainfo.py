"""Write an MMPose metainfo file (keypoints, skeleton, swap pairs, sigmas) from a COCO
keypoint annotation file.

    python tools/make_metainfo.py ANN_FILE OUT.py [--sigma 0.05 | --sigmas S1 ... SK]
        [--category NAME_OR_ID] [--pair A B ...] [--name DATASET_NAME]

Keypoint names and the skeleton come from the category's ``keypoints`` and
``skeleton`` (1-based index pairs). Swap pairs (for flipping) are found from the names:
a name whose first or last word is a side (``left_wrist`` / ``right_wrist``,
``l_wrist`` / ``r_wrist``, ``wrist_l`` / ``wrist_r``, ``Left Wrist`` / ``Right Wrist``,
``LeftWrist`` / ``RightWrist``, ``wrist.L`` / ``wrist.R``) swaps with the name that has
the other side and the same other words; a name without a side is its own mirror image.
A sided name without its counterpart is refused, naming it; ``--pair A B`` states a
pair the names do not show. Keypoints whose names mention hips, legs or feet are
``lower`` body (for MMPose's RandomHalfBody), the others ``upper``. Joint weights are 1;
sigmas (the OKS falloff of each keypoint, used by CocoMetric) are ``--sigma`` for every
keypoint (default 0.05; COCO's range from 0.025 for eyes to 0.107 for hips) or one per
keypoint with ``--sigmas``.

Every annotation of the category must hold 3 numbers per keypoint of the category;
annotations that do not are refused, naming them.
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

DEFAULT_SIGMA = 0.05
SIDES = {'left': 'left', 'l': 'left', 'right': 'right', 'r': 'right'}
LOWER_WORDS = ('hip', 'knee', 'ankle', 'foot', 'feet', 'heel', 'toe', 'leg', 'thigh',
               'shin', 'calf')
# MMPose's COCO colours (RGB): left green, right orange, middle blue
COLOURS = {'left': [0, 255, 0], 'right': [255, 128, 0], None: [51, 153, 255]}


class MetainfoError(ValueError):
    """The annotation file cannot give a consistent metainfo."""


def words(name: str) -> List[str]:
    """``'LeftUpperArm'``, ``'left_upper-arm'``, ``'Left upper.arm'`` ->
    ``['left', 'upper', 'arm']``."""
    spaced = re.sub(r'(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])', ' ', name)
    return [w.lower() for w in re.split(r'[\s_\-.]+', spaced) if w]


def side_of(name: str) -> Tuple[Optional[str], Tuple[str, ...]]:
    """(``'left'``, ``'right'`` or None, the name's other words with the side marked)."""
    w = words(name)
    if len(w) > 1 and w[0] in SIDES:
        return SIDES[w[0]], ('<side>', ) + tuple(w[1:])
    if len(w) > 1 and w[-1] in SIDES:
        return SIDES[w[-1]], tuple(w[:-1]) + ('<side>', )
    return None, tuple(w)


def swap_pairs(names: Sequence[str], extra: Sequence[Tuple[str, str]] = ()
               ) -> Dict[str, str]:
    """{name: its mirror image's name, or '' for a middle keypoint}."""
    swap = {n: '' for n in names}
    stated = set()
    for a, b in extra:
        for n in (a, b):
            if n not in swap:
                raise MetainfoError(f'--pair {a} {b}: {n!r} is not a keypoint '
                                    f'({", ".join(names)})')
            if n in stated:
                raise MetainfoError(f'--pair: {n!r} is paired twice')
            stated.add(n)
        swap[a], swap[b] = b, a
    by_key: Dict[Tuple[Tuple[str, ...], str], List[str]] = {}
    for n in names:
        if n in stated:
            continue
        side, key = side_of(n)
        if side is not None:
            by_key.setdefault((key, side), []).append(n)
    unpaired = []
    for (key, side), found in sorted(by_key.items()):
        if len(found) > 1:
            raise MetainfoError(f'keypoints {found} are the same {side} keypoint spelt '
                                'differently; rename one')
        if side == 'right':
            if (key, 'left') not in by_key:
                unpaired.append(found[0])
            continue
        other = by_key.get((key, 'right'))
        if other is None:
            unpaired.append(found[0])
        else:
            swap[found[0]], swap[other[0]] = other[0], found[0]
    if unpaired:
        raise MetainfoError(
            f'cannot pair {", ".join(repr(n) for n in unpaired)}: no keypoint of the other '
            'side with the same name; rename it, or state the pair with --pair A B')
    return swap


def keypoint_category(coco: dict, category: Optional[str] = None) -> dict:
    """The category with keypoints (the one named or numbered by ``category``)."""
    if not isinstance(coco, dict) or 'categories' not in coco:
        raise MetainfoError('not a COCO annotation file (no "categories")')
    cats = [c for c in coco.get('categories', []) if c.get('keypoints')]
    if category is not None:
        cats = [c for c in cats if category in (str(c.get('id')), c.get('name'))]
    if len(cats) != 1:
        have = [f'{c.get("id")}: {c.get("name")}' for c in coco.get('categories', [])
                if c.get('keypoints')]
        what = f'no category {category!r}' if category is not None and not cats else \
            f'{len(cats)} categories'
        raise MetainfoError(f'{what} with keypoints (have: {have or "none"}); choose one '
                            'with --category')
    return cats[0]


def check_annotations(coco: dict, category: dict) -> None:
    """Every annotation of ``category`` has 3 numbers per keypoint of the category."""
    k = len(category['keypoints'])
    bad = []
    for ann in coco.get('annotations', []):
        if ann.get('category_id', category['id']) != category['id']:
            continue
        kpts = ann.get('keypoints')
        if kpts is None or len(kpts) != 3 * k:
            got = 'none' if kpts is None else f'{len(kpts)} numbers ({len(kpts) / 3:g} ' \
                'keypoints)'
            bad.append(f'annotation {ann.get("id")} (image {ann.get("image_id")}): {got}, '
                       f'the category has {k} keypoints ({3 * k} numbers)')
    if bad:
        more = f'\n  ... and {len(bad) - 10} more' if len(bad) > 10 else ''
        raise MetainfoError(f'{len(bad)} annotation(s) do not match the category '
                            f'{category.get("name")!r}:\n  ' + '\n  '.join(bad[:10]) + more)


def make_metainfo(coco: dict, name: str, category: Optional[str] = None,
                  sigmas: Optional[Sequence[float]] = None, sigma: float = DEFAULT_SIGMA,
                  pairs: Sequence[Tuple[str, str]] = ()) -> dict:
    """MMPose's ``dataset_info`` dict for the keypoints of a COCO annotation dict."""
    cat = keypoint_category(coco, category)
    names = list(cat['keypoints'])
    if len(set(names)) != len(names):
        raise MetainfoError(f'keypoint names repeat: '
                            f'{sorted({n for n in names if names.count(n) > 1})}')
    check_annotations(coco, cat)
    if sigmas is None:
        sigmas = [sigma] * len(names)
    if len(sigmas) != len(names) or not all(s > 0 for s in sigmas):
        raise MetainfoError(f'{len(sigmas)} sigmas for {len(names)} keypoints ({names}); '
                            'give one positive sigma per keypoint')
    swap = swap_pairs(names, pairs)
    sides = {n: side_of(n)[0] for n in names}
    for a, b in pairs:
        sides[a], sides[b] = sides[a] or 'left', sides[b] or 'right'
    keypoint_info = {
        i: dict(name=n, id=i, color=COLOURS[sides[n]], swap=swap[n],
                type='lower' if any(w.startswith(LOWER_WORDS) for w in words(n)) else 'upper')
        for i, n in enumerate(names)}
    skeleton_info = {}
    for j, link in enumerate(cat.get('skeleton') or []):
        if len(link) != 2 or not all(isinstance(i, int) and 1 <= i <= len(names) for i in link):
            raise MetainfoError(f'skeleton link {j} {link}: expected two keypoint numbers '
                                f'from 1 to {len(names)} (COCO numbers keypoints from 1)')
        a, b = names[link[0] - 1], names[link[1] - 1]
        side = sides[a] if sides[a] == sides[b] else None
        skeleton_info[j] = dict(link=(a, b), id=j, color=COLOURS[side])
    return dict(dataset_name=name, paper_info=dict(), keypoint_info=keypoint_info,
                skeleton_info=skeleton_info, joint_weights=[1.0] * len(names),
                sigmas=[float(s) for s in sigmas])


def _call(fields: dict) -> str:
    return 'dict(' + ', '.join(f'{k}={v!r}' for k, v in fields.items()) + ')'


def write_metainfo(info: dict, path: str, source: str) -> None:
    """Save ``info`` as a metainfo .py file (``dataset_info = dict(...)``), one line per
    keypoint and link."""
    lines = ['dataset_info = dict(', f'    dataset_name={info["dataset_name"]!r},',
             f'    paper_info={_call(info["paper_info"])},', '    keypoint_info={']
    lines += [f'        {i}: {_call(k)},' for i, k in info['keypoint_info'].items()]
    lines += ['    },', '    skeleton_info={']
    lines += [f'        {i}: {_call(s)},' for i, s in info['skeleton_info'].items()]
    lines += ['    },', f'    joint_weights={info["joint_weights"]!r},',
              f'    sigmas={info["sigmas"]!r})']
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f'# The keypoints of {source}, written by tools/make_metainfo.py.\n')
        f.write('\n'.join(lines) + '\n')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('ann_file', help='COCO-format keypoint annotations (.json)')
    p.add_argument('out', help='metainfo file to write (.py)')
    p.add_argument('--category', help='name or id of the category (when several have '
                   'keypoints)')
    sig = p.add_mutually_exclusive_group()
    sig.add_argument('--sigma', type=float, default=DEFAULT_SIGMA,
                     help=f'one sigma for every keypoint (default {DEFAULT_SIGMA})')
    sig.add_argument('--sigmas', type=float, nargs='+', help='one sigma per keypoint, in order')
    p.add_argument('--pair', nargs=2, action='append', default=[], metavar=('A', 'B'),
                   help='two keypoints that swap when the image is flipped, where the '
                   'names do not say so (repeatable)')
    p.add_argument('--name', help='dataset name (default: the annotation file name)')
    args = p.parse_args(argv)
    if not args.out.endswith('.py'):
        raise SystemExit(f'error: {args.out}: the metainfo file must end with .py')
    try:
        with open(args.ann_file) as f:
            coco = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f'error: {args.ann_file}: {e}')
    name = args.name or osp.splitext(osp.basename(args.ann_file))[0]
    try:
        info = make_metainfo(coco, name, args.category, args.sigmas, args.sigma, args.pair)
    except MetainfoError as e:
        raise SystemExit(f'error: {args.ann_file}: {e}')
    write_metainfo(info, args.out, osp.basename(args.ann_file))
    kinfo = info['keypoint_info'].values()
    pairs = sum(1 for k in kinfo if k['swap']) // 2
    print(f'{args.out}: {len(kinfo)} keypoints ({pairs} left/right pairs, '
          f'{len(kinfo) - 2 * pairs} middle), {len(info["skeleton_info"])} links')
    return info


if __name__ == '__main__':
    main(sys.argv[1:])
