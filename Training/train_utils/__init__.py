"""Training helpers for the MOFA-Adapter: data, optical flow, sparse hints, loss and the trainer."""
