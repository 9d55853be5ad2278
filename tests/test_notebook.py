"""examples/quickstart.ipynb runs end to end on the built-in model (a fresh kernel; any
cell's error fails the test, naming the cell)."""
import os
from pathlib import Path

import nbclient  # the test extras (pip install -e '.[test]') hold nbclient, nbformat, ipykernel
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    # The kernel is a user's process: one CPU device, JAX's default promotion rules.
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3          # the pitch track, the generated sample, the composed figure
