"""Every `miroir ctl` command documents itself: `--help` works, names an example, and offers
`--json`; a usage error exits 2."""

from __future__ import annotations

import argparse

import pytest

from miroir.cli import build_parser
from miroir.cli.ctl import main as ctl_main


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every command that runs something."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield path, parser
        return
    for name, child in actions[0].choices.items():
        yield from leaves(child, (*path, name))


def ctl_parser() -> argparse.ArgumentParser:
    top = build_parser()
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices["ctl"]


def test_every_command_has_an_example_and_json():
    found = list(leaves(ctl_parser()))
    assert len(found) >= 25  # status ... reshard, every nested verb
    for path, parser in found:
        text = parser.format_help()
        assert "example" in text and "miroir ctl" in text, path
        assert "--json" in text, path


def test_help_exits_0_and_a_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as shown:
        ctl_main(["--help"])
    assert shown.value.code == 0
    assert "exit codes: 0 ok, 1 check failed" in capsys.readouterr().out
    for argv in (["nodes"], ["nodes", "add", "x"], ["verify", "--sample", "many"],
                 ["rebalance", "plan", "remove", "n1"]):
        with pytest.raises(SystemExit) as refused:
            ctl_main(argv)
        assert refused.value.code == 2, argv
