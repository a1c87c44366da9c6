"""What handing a sub-agent's changes to its parent costs (run by hand; not part of the tests).

When a sub-agent finishes, the host takes its diff (`Sandbox.diff`, new files included) before the
sandbox goes. This times that step on real sandboxes of a generated repository: an untouched
checkout, and one where the agent edited a file and created another.

    python bench/bench_child_diff.py [--files 30000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.genrepo import generate  # noqa: E402
from bot.rlm import (
    engine,  # noqa: E402
    load_config,  # noqa: E402
)
from bot.rlm.sandbox import make_provider  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlm-bench-diff-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        generate(work / "repo", files=args.files)
        config = load_config(None, {"sandbox.cache_dir": str(work / "cache")}, environ={})
        prepared = engine.prepare(config, str(work / "repo"))
        provider = make_provider(config, prepared, "bench-diff")
        try:
            clean, changed = [], []
            for i in range(args.rounds):
                box = provider.create(f"root.{i}")
                start = time.monotonic()
                assert box.diff() == ""
                clean.append(time.monotonic() - start)
                checkout = Path(box.path)
                target = next((checkout / "pkg" / "mod00").rglob("*.py"))
                target.write_text(target.read_text() + "\n# edited\n")
                (checkout / "pkg" / "new_module.py").write_text("X = 1\n")
                start = time.monotonic()
                patch = box.diff()
                changed.append(time.monotonic() - start)
                assert "new_module.py" in patch and "# edited" in patch
                box.destroy()
        finally:
            provider.close()
    print(f"{args.files} files, {args.rounds} sandboxes")
    print(
        f"  diff of an untouched sandbox: median {statistics.median(clean) * 1000:.0f} ms, max {max(clean) * 1000:.0f} ms"
    )
    print(
        f"  diff with an edit + a new file: median {statistics.median(changed) * 1000:.0f} ms, max {max(changed) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
