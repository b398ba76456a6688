"""`capas code`: a job as a standalone plain PyTorch or Keras script."""

from pathlib import Path
from typing import Annotated, Literal

import typer

from capas.cli.console import api_client, console, say

app = typer.Typer()


@app.command()
def code(job: str,
         framework: Annotated[Literal["pytorch", "tensorflow"] | None, typer.Option(
             help="the script's framework (default: the job's)")] = None,
         output: Annotated[Path | None, typer.Option(
             "--output", "-o", help="write the script to this file (default: print it)")
         ] = None) -> None:
    """Print (or write) the job as a plain script: the same network, data and training."""
    with api_client() as client:
        script = client.job_code(job, framework)
    if output is None:
        console.print(script, markup=False, highlight=False, soft_wrap=True, end="")
    else:
        output.write_text(script)
        say(f"wrote {output}; run it with: python {output}")
