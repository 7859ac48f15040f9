"""The demos' shared command-line options (demo/demo_cli.py)."""

from pathlib import Path

import pytest

from demo.demo_cli import demo_argument_parser


def _parser():
    return demo_argument_parser("A demo.", tiny_help="random weights", default_memory="balanced")


def test_defaults_serve_locally_with_real_weights_and_the_given_memory_preset(monkeypatch):
    monkeypatch.delenv("MOFA_TINY", raising=False)
    args = _parser().parse_args([])
    assert (args.host, args.port, args.share, args.tiny) == ("127.0.0.1", 7860, False, False)
    assert (args.ckpt_dir, args.device, args.dtype, args.memory) == (None, None, "auto", "balanced")
    assert args.output_dir == Path("outputs")


def test_mofa_tiny_turns_tiny_mode_on_by_default(monkeypatch):
    monkeypatch.setenv("MOFA_TINY", "1")
    assert _parser().parse_args([]).tiny is True
    monkeypatch.setenv("MOFA_TINY", "0")
    assert _parser().parse_args([]).tiny is False


def test_options_are_parsed_and_checked(capsys):
    args = _parser().parse_args(["--port", "7861", "--memory", "low", "--dtype", "bf16", "--ckpt_dir", "w"])
    assert (args.port, args.memory, args.dtype, args.ckpt_dir) == (7861, "low", "bf16", Path("w"))
    with pytest.raises(SystemExit):
        _parser().parse_args(["--memory", "huge"])
    assert "invalid choice: 'huge'" in capsys.readouterr().err
    help_text = _parser().format_help()
    assert "A demo." in help_text and "random weights (also MOFA_TINY=1)" in help_text
