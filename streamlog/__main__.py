"""``python -m streamlog``: the ``streamlog`` command."""

from streamlog.cli.main import cli

cli(prog_name="python -m streamlog")
