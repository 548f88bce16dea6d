"""`vlmtune --version`, and help texts that show each option's default."""

from __future__ import annotations

import importlib.metadata

import pytest

from vlmtune.cli import build_parser, main


def help_of(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"vlmtune {importlib.metadata.version('vlmtune')}"


def test_nested_subcommands_show_defaults_even_without_help_text(capsys):
    text = help_of(capsys, "data", "demo")
    assert "training instances per task (default: 64)" in text
    assert "--seed SEED (default: 0)" in text  # 0 is a default worth showing, not "no default"


def test_a_default_already_in_the_help_is_not_repeated(capsys):
    text = help_of(capsys, "data", "prepare")
    assert text.count("(default: 256.0)") == 1


def test_flags_and_empty_defaults_say_nothing(capsys):
    text = help_of(capsys, "run")
    assert "(default: False)" not in text and "(default: [])" not in text and "(default: None)" not in text


def test_every_subcommand_parser_uses_the_formatter():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps subparsers here
    for name, sub in commands.items():
        assert sub.formatter_class.__name__ == "HelpFormatter", name
