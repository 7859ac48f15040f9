"""MOFA-Video-Traj Gradio demo (placeholder page until the trajectory app lands)."""

import argparse

import gradio as gr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    with gr.Blocks(title="MOFA-Video-Traj") as demo:
        gr.Markdown("# MOFA-Video-Traj\nThe trajectory demo is being built; this page confirms the set-up works.")
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
