"""The shell commands of README.md and docs/*.md run as written.

Every ```bash block carries a marker on the line before it:

    <!-- runs: in the checkout -->               run with the checkout as working directory
    <!-- runs: installed, from any folder -->    run in an empty folder, with this checkout
                                                 installed as a package (a wheel)
    <!-- not run: REASON -->                     e.g. it downloads weights or trains for hours

The runnable blocks run here with ``bash -e`` and this environment's ``python`` and
``mim`` first on PATH; a block that fails, or a block without a marker, fails the test."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, installed_package

DOCS = [REPO / 'README.md'] + sorted((REPO / 'docs').glob('*.md'))
MARKER = re.compile(r'^<!-- (runs: in the checkout|runs: installed, from any folder|'
                    r'not run: (?P<reason>.+?)) -->$')


def bash_blocks():
    """(file, line, marker or None, text) of every ```bash block."""
    blocks = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == '```bash':
                end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == '```')
                before = next((lines[j].strip() for j in range(i - 1, -1, -1)
                               if lines[j].strip()), '')
                m = MARKER.match(before)
                blocks.append((path.relative_to(REPO), i + 1, m, '\n'.join(lines[i + 1:end])))
                i = end
            i += 1
    return blocks


def test_every_shell_block_says_whether_it_runs_here():
    unmarked = [f'{path}:{line}' for path, line, m, _ in bash_blocks() if m is None]
    assert not unmarked, ('```bash blocks without <!-- runs: ... --> or <!-- not run: '
                          f'REASON --> on the line before: {unmarked}')
    reasons = [m.group('reason') for _, _, m, _ in bash_blocks() if m and m.group('reason')]
    assert all(len(r.split()) >= 3 for r in reasons), reasons  # a reason, not a word


RUNNABLE = [b for b in bash_blocks() if b[2] is not None and b[2].group(1).startswith('runs')]


@pytest.mark.parametrize('block', RUNNABLE, ids=[f'{p}:{n}' for p, n, _, _ in RUNNABLE])
def test_documented_command_runs_as_written(block, tmp_path):
    path, line, marker, text = block
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                 os.environ.get('PATH', '')]))
    if marker.group(1) == 'runs: in the checkout':
        cwd = REPO
        work_dirs = REPO / 'work_dirs'
        existed = work_dirs.exists()
        before = set(work_dirs.rglob('*')) if existed else set()
    else:
        cwd = tmp_path
        env['PYTHONPATH'] = os.pathsep.join([str(installed_package())]
                                            + [p for p in [env.get('PYTHONPATH')] if p])
    try:
        res = subprocess.run(['bash', '-e', '-o', 'pipefail', '-c', text], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=300)
    finally:
        if cwd == REPO and work_dirs.exists():  # what the block wrote there
            for p in sorted(set(work_dirs.rglob('*')) - before, reverse=True):
                p.rmdir() if p.is_dir() else p.unlink()
            if not existed:
                work_dirs.rmdir()
    assert res.returncode == 0, f'{path}:{line}\n{text}\n{res.stdout[-2000:]}{res.stderr[-3000:]}'
