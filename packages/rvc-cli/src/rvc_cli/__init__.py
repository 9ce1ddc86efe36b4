"""rvc-cli: the ``rvc`` command line for RVC voice conversion on MLX.

The command is :data:`rvc_cli.main.app` (a typer app; entry point ``rvc``). Importing this
package loads neither MLX nor FAISS: the commands import the rvc packages when they run.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
