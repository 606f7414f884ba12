"""Thin typer commands, one file per command; heavy imports happen inside the commands."""

from scalelab.cli import accuracy, analyze, calibrate, compare, devices, explain, kinds, plot, scale, schema, zoo  # noqa: F401  (each registers its command)
from scalelab.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
