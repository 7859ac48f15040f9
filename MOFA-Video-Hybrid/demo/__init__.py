# Copied from MOFA-Video-Traj/demo/__init__.py
"""Gradio demo code: session state, page layout, event handlers and the demo command line."""
