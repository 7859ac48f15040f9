"""Gradio demo code: session state, page layout, event handlers and the demo command line."""
