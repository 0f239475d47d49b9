"""Execute one notebook in the Colab simulation (run by the simulation's own Python, in the
notebook's folder): every cell in order, in a fresh kernel of that Python. Prints one line,
`ok <seconds> s, <cells> cells; slowest: ...` or `failed <seconds> s, cell <n>: <error>`, and
exits 1 on a failure.

    python execute.py NOTEBOOK [--timeout SECONDS]
"""

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError


def slowest(nb: nbformat.NotebookNode, count: int = 3) -> str:
    """The cells that took longest, from the timing the executor records: 'cell 5 12 s, ...'."""
    times = []
    for i, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            times.append(((end - start).total_seconds(), i))
    return ", ".join(f"cell {i} {t:.0f} s" for t, i in sorted(times, reverse=True)[:count])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    nb = nbformat.read(args.notebook, as_version=4)
    # a notebook may allow its cells more, as the book build reads it (myst-nb's metadata)
    timeout = max(args.timeout, nb.metadata.get("mystnb", {}).get("execution_timeout", 0))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.notebook.parent)}})
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:
        failure = exc
    finally:
        nbformat.write(nb, args.notebook.with_suffix(".executed.ipynb"))
    seconds = time.perf_counter() - start
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if failure is None:
        print(f"ok {seconds:.0f} s, {len(code)} cells; slowest: {slowest(nb)}")
        return 0
    ran = [i for i in code if nb.cells[i].get("execution_count")]
    where = ran[-1] if ran else code[0]
    errors = [o for o in nb.cells[where].get("outputs", []) if o.get("output_type") == "error"]
    what = (f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors
            else str(failure).strip().splitlines()[-1])
    print(f"failed {seconds:.0f} s, cell {where}: {what}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
