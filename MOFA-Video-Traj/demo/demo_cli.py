"""The command-line options every Gradio demo takes (where to serve, which weights, device and memory)."""

import argparse
from pathlib import Path

from utils.cli_arguments import HelpFormatter, add_device_arguments, add_tiny_argument


def demo_argument_parser(description: str, tiny_help: str, default_memory: str) -> argparse.ArgumentParser:
    """A parser with the demo options: ``--host --port --share --tiny --ckpt_dir --device --dtype --memory
    --output_dir``.

    Args:
        description: first line of ``--help``.
        tiny_help: what ``--tiny`` gives in this demo (it also defaults to on when ``MOFA_TINY=1``).
        default_memory: the memory preset the page starts with, one of ``MEMORY_PRESETS``.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    add_tiny_argument(parser, f"{tiny_help} (also MOFA_TINY=1)")
    parser.add_argument("--ckpt_dir", type=Path, default=None, help="weights folder (default: ckpts/ or MOFA_CKPT_DIR)")
    add_device_arguments(parser, default_memory, "initial memory preset")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs"), help="parent folder of per-run outputs")
    return parser
