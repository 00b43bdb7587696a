"""Memory of a server's process tree: PSS in all and by mapping.

    python -m bench.memory --model-dir DIR --data TGZ [--seconds 5] [--workers 2]

starts the server as ``bench.run`` does (nginx → gunicorn, the model), puts a short
concurrency-8 load of the 200-post mix on it (``wrk``, bounded in time, 127.0.0.1 only), then
prints the PSS of the master, the workers and nginx, in all and summed per mapping name
(``Pss:`` lines of ``/proc/PID/smaps``: a memory-mapped file by its path, ``[heap]``,
``[anon]`` for anonymous mappings), largest first, as JSON.

PSS (proportional set size) counts a page shared by n processes as 1/n in each, so the sum over
the tree is the memory the server really holds (Linux: Documentation/filesystems/proc.rst).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

# A mapping header of /proc/PID/smaps: "start-end perms offset dev inode [path]".
_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$")


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants (gunicorn's workers, nginx's master and worker)."""
    pids, queue = [], [root_pid]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            queue += [int(p) for p in children.read_text().split()]
    return pids


def pss_mb(root_pid: int) -> float:
    """PSS of a process and all its descendants, in MB."""
    total_kb = 0
    for pid in process_tree(root_pid):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)


def mapping_name(path: str) -> str:
    """A short name for a mapping: the file's base name, ``[heap]``, ``[stack]``, ``[anon]``."""
    path = path.strip()
    if not path:
        return "[anon]"
    if path.startswith("["):
        return path.split(":")[0] + ("]" if ":" in path else "")
    return Path(path.removesuffix(" (deleted)")).name


def pss_by_mapping(pids: list[int]) -> dict[str, float]:
    """PSS in MB summed per mapping name over ``pids``, largest first."""
    kb: dict[str, int] = defaultdict(int)
    for pid in pids:
        name = "[anon]"
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            header = _HEADER.match(line)
            if header:
                name = mapping_name(header.group(1))
            elif line.startswith("Pss:"):
                kb[name] += int(line.split()[1])
    return {name: round(value / 1024, 1)
            for name, value in sorted(kb.items(), key=lambda item: -item[1])}


def process_name(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")


def report(root_pid: int, top: int = 25) -> dict[str, Any]:
    """PSS of the tree in all, per process and by mapping (the ``top`` largest mappings)."""
    pids = process_tree(root_pid)
    per_process = {f"{pid} {process_name(pid)}": round(sum(pss_by_mapping([pid]).values()), 1)
                   for pid in pids}
    mappings = pss_by_mapping(pids)
    return {"pss_mb": pss_mb(root_pid), "per_process_mb": per_process,
            "by_mapping_mb": dict(list(mappings.items())[:top])}


def main(argv: list[str] | None = None) -> int:
    from bench import inprocess, loadgen
    from bench.run import start_server
    from serving.cli import Parser
    from serving.data import load_splits

    parser = Parser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    posts = [t.encode() for t in inprocess.mix(load_splits(args.data).test.texts)]
    proc, port, _ = start_server(args.model_dir, workers=args.workers)
    try:
        loadgen.wrk("127.0.0.1", port, "/invocations", posts, "text/plain", connections=8,
                    seconds=args.seconds)
        print(json.dumps(report(proc.pid), indent=1))
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
