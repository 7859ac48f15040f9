"""Tiny stand-ins for CMP: a randomly initialised CMP (tests) and the hint interpolation ``--tiny`` runs use."""

import torch
import torch.nn.functional as F

from .model import CMP, check_dense_flow_inputs

TINY_CMP_CONFIG = {
    "img_enc_dim": 16,
    "sparse_enc_dim": 4,
    "output_dim": 18,
    "nbins": 9,
    "fmax": 50.0,
    "encoder_width": 4,
    "encoder_blocks": (1, 1, 1, 1),
    "decoder_width": 8,
}


def build_tiny_cmp(seed: int = 0) -> CMP:
    """A CMP with :data:`TINY_CMP_CONFIG`, weights drawn from ``seed`` (global RNG untouched), eval mode, frozen."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CMP(**TINY_CMP_CONFIG)
    return model.eval().requires_grad_(False)


class HintInterpolation(torch.nn.Module):
    """Tiny mode's stand-in for CMP: spreads the sparse hints with a Gaussian instead of a random network.

    A random tiny CMP answers every hint with about the same field, so tiny-mode flow videos would show nothing
    of the drawn tracks. This has no weights and follows :meth:`CMP.dense_flow`'s interface: the flow at a pixel
    is ``conv(sparse) / max(conv(mask), 1)`` with an unnormalised Gaussian of ``sigma`` grid pixels, so an isolated
    hint keeps its value at its own pixel, nearby hints average, and the motion fades to zero far from any hint.
    """

    def __init__(self, sigma: float = 4.0):
        super().__init__()
        radius = max(1, round(3 * sigma))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        self.register_buffer("kernel", torch.exp(-(offsets**2) / (2 * sigma**2)), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.kernel.device

    def _blur(self, planes: torch.Tensor) -> torch.Tensor:
        """Separable unnormalised Gaussian of ``(N, C, G, G)``, zero outside the grid."""
        channels, size = planes.shape[1], self.kernel.numel()
        rows = self.kernel.view(1, 1, size, 1).expand(channels, 1, size, 1)
        columns = self.kernel.view(1, 1, 1, size).expand(channels, 1, 1, size)
        planes = F.conv2d(planes, rows, padding=(size // 2, 0), groups=channels)
        return F.conv2d(planes, columns, padding=(0, size // 2), groups=channels)

    def dense_flow(
        self, image: torch.Tensor, sparse_flow: torch.Tensor, mask: torch.Tensor, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Dense flow from hints, as :meth:`CMP.dense_flow` (``image`` and ``chunk_size`` are accepted and unused).

        Args:
            sparse_flow: ``(N, 2, G, G)`` summed hints in grid pixels, 0 elsewhere.
            mask: ``(N, 2, G, G)`` hint counts.

        Returns:
            ``(N, 2, G, G)`` float32 flow in grid pixels, on ``sparse_flow``'s device.
        """
        check_dense_flow_inputs(image, sparse_flow, mask, chunk_size)
        device = self.kernel.device
        flow = self._blur(sparse_flow.to(device, torch.float32))
        weight = self._blur(mask.to(device, torch.float32)).clamp(min=1.0)
        return (flow / weight).to(sparse_flow.device)
