"""Flow-bin fuser: CMP predicts, per pixel and axis, logits over ``nbins`` equal bins spanning
[-fmax, fmax] pixels; the flow is the softmax-weighted mean of the bin centres.

With the released values (nbins 99, fmax 50) the centres are -50 + (100/99)(i + 0.5), from -49.495
to +49.495, so CMP flow per axis can never leave that range.
"""

import torch


def flow_bin_centres(nbins: int, fmax: float, device: torch.device | None = None) -> torch.Tensor:
    """(nbins,) float32 centres of ``nbins`` equal bins over [-fmax, fmax]."""
    bin_width = 2.0 * fmax / nbins
    return (torch.arange(nbins, dtype=torch.float32, device=device) + 0.5) * bin_width - fmax


def fuse_flow_bins(logits: torch.Tensor, nbins: int, fmax: float) -> torch.Tensor:
    """Expected flow under the per-axis bin distributions.

    Args:
        logits: (B, 2 * nbins, H, W); channels [0, nbins) are x (dx) bins, [nbins, 2 * nbins) y (dy) bins.
    Returns:
        (B, 2, H, W) flow in pixels, (dx, dy), each within +-fmax * (1 - 1/nbins).
    """
    if logits.shape[1] != 2 * nbins:
        raise ValueError(f"expected {2 * nbins} logit channels for {nbins} bins, got {logits.shape[1]}")
    centres = flow_bin_centres(nbins, fmax, device=logits.device).to(logits.dtype)
    probabilities = logits.unflatten(1, (2, nbins)).softmax(dim=2)  # (B, 2, nbins, H, W)
    return torch.einsum("banhw,n->bahw", probabilities, centres)
