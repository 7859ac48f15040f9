# Copied from MOFA-Video-Traj/models/cmp/model.py
"""CMP (conditional motion propagation): one image plus sparse flow hints -> dense optical flow.

MOFA-Video uses the released CMP (ResNet-50 image encoder, shallow hint encoder, skip-layer decoder,
99 flow bins per axis) frozen, in eval mode and fp32, on a square grid of ``CMP_GRID_SIZE`` pixels.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from .checkpoint import check_cmp_state_dict, read_cmp_state_dict
from .flow_decoder import SkipLayerFlowDecoder
from .fuser import fuse_flow_bins
from .image_encoder import BOTTLENECK_EXPANSION, DilatedResNetEncoder, ImageFeatures
from .sparse_encoder import SparseFlowEncoder

CMP_GRID_SIZE = 384
"""Side, in pixels, of the square grid on which images and hints are given to CMP (as the released weights expect)."""
MIN_INPUT_SIZE = 64
"""Smallest side for which the coarsest decoder branch (1/64 of the input) still has a pixel."""


class CMP(ModelMixin, ConfigMixin):
    r"""Sparse-to-dense flow network: dilated ResNet image encoder + shallow hint encoder + skip-layer decoder.

    The defaults are the released model. The width/depth knobs only exist to build tiny test models.

    Args:
        img_enc_dim: channels of the image features at 1/8 resolution.
        sparse_enc_dim: channels of the hint features at 1/8 resolution.
        output_dim: decoder output channels; must be ``2 * nbins`` (x bins, then y bins).
        nbins: flow bins per axis.
        fmax: the bins span [-fmax, fmax] pixels.
        encoder_width: ResNet stem width (64 for ResNet-50).
        encoder_blocks: bottlenecks in each of the four ResNet stages ((3, 4, 6, 3) for ResNet-50).
        decoder_width: width of the decoder's context branches (128 when released).
    """

    @register_to_config
    def __init__(
        self,
        img_enc_dim: int = 256,
        sparse_enc_dim: int = 16,
        output_dim: int = 198,
        nbins: int = 99,
        fmax: float = 50.0,
        encoder_width: int = 64,
        encoder_blocks: Sequence[int] = (3, 4, 6, 3),
        decoder_width: int = 128,
    ):
        super().__init__()
        if output_dim != 2 * nbins:
            raise ValueError(f"output_dim must be 2 * nbins = {2 * nbins}, got {output_dim}")
        self.image_encoder = DilatedResNetEncoder(img_enc_dim, encoder_width, encoder_blocks)
        self.flow_encoder = SparseFlowEncoder(sparse_enc_dim)
        self.flow_decoder = SkipLayerFlowDecoder(
            in_channels=img_enc_dim + sparse_enc_dim,
            out_channels=output_dim,
            width=decoder_width,
            stem_channels=encoder_width,
            stage1_channels=encoder_width * BOTTLENECK_EXPANSION,
        )

    def decode(self, image_features: ImageFeatures, sparse_input: torch.Tensor) -> torch.Tensor:
        """Flow-bin logits from encoded images and raw hints.

        Args:
            image_features: from ``self.image_encoder``, batch B or 1 (then shared by all B hint sets).
            sparse_input: (B, 4, H, W): (dx, dy) in pixels at hint pixels, then the two mask channels.
        Returns:
            (B, output_dim, H/2, W/2) logits.
        """
        hint_features = self.flow_encoder(sparse_input)  # (B, sparse_enc_dim, H/8, W/8)
        image_deep = image_features.deep.expand(hint_features.shape[0], -1, -1, -1)
        fused = torch.cat([image_deep, hint_features], dim=1)  # (B, img_enc_dim + sparse_enc_dim, H/8, W/8)
        return self.flow_decoder(fused, stem=image_features.stem, stage1=image_features.stage1)

    def forward(self, image: torch.Tensor, sparse_input: torch.Tensor) -> torch.Tensor:
        """The raw network. image: (B or 1, 3, H, W) in [-1, 1]; sparse_input: (B, 4, H, W)
        -> (B, output_dim, H/2, W/2) flow-bin logits (see :meth:`logits_to_flow`)."""
        return self.decode(self.image_encoder(image), sparse_input)

    def logits_to_flow(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 2 * nbins, h, w) logits -> (B, 2, h, w) flow in pixels (softmax expectation over bin centres)."""
        return fuse_flow_bins(logits, self.config.nbins, self.config.fmax)

    @classmethod
    def from_checkpoint(cls, path: str | Path, fetch_mode: str = "traj", **config) -> "CMP":
        """Build CMP and load the released training checkpoint (``ckpt_iter_42000.pth.tar``) as it is.

        Absent BatchNorm ``num_batches_tracked`` counters are tolerated; any other missing, unexpected
        or mis-shaped key raises. The model is returned in eval mode with gradients off.

        Args:
            path: the ``.pth.tar`` file.
            fetch_mode: the ``make fetch MODE=...`` named when the file is missing.
            config: overrides of the constructor arguments (the defaults are the released model).
        Raises:
            CheckpointError: the file is missing or unreadable, or its keys do not fit the network.
        """
        state_dict = read_cmp_state_dict(path, fetch_mode)
        model = cls(**config)
        check_cmp_state_dict(model.state_dict(), state_dict, path)
        model.load_state_dict(state_dict, strict=False)
        return model.eval().requires_grad_(False)

    @torch.no_grad()
    def dense_flow(
        self,
        image: torch.Tensor,
        sparse_flow: torch.Tensor,
        mask: torch.Tensor,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Propagate sparse flow hints to a dense flow field, as MOFA-Video calls CMP.

        The network runs in fp32 (autocast off) on the model's device whatever the input dtype;
        the flow is upsampled bilinearly (align_corners=True) to the input size, values unchanged.

        Args:
            image: (N or 1, 3, G, G) in [0, 1]; one image is shared by all N hint sets (encoded once).
            sparse_flow: (N, 2, G, G) pixels on the G grid, (dx, dy) at hint pixels and 0 elsewhere.
            mask: (N, 2, G, G), nonzero (1, or the number of coinciding hints) at hint pixels, 0 elsewhere.
            chunk_size: run at most this many hint sets at a time to bound memory (None: all at once).
        Returns:
            (N, 2, G, G) float32 dense flow in pixels of the G grid, on ``sparse_flow``'s device; each
            axis lies within +-fmax * (1 - 1/nbins) (+-49.495 for the released model).
        """
        if self.training:
            raise RuntimeError("CMP.dense_flow needs eval mode (BatchNorm running statistics); call .eval() first")
        if self.dtype != torch.float32:
            raise RuntimeError(f"CMP runs in float32 (as the released weights expect); the model is in {self.dtype}")
        check_dense_flow_inputs(image, sparse_flow, mask, chunk_size)
        num_items, _, height, width = sparse_flow.shape
        step = chunk_size or num_items
        to_model = {"device": self.device, "dtype": torch.float32}
        image = image.to(**to_model) * 2 - 1
        sparse_input = torch.cat([sparse_flow.to(**to_model), mask.to(**to_model)], dim=1)
        chunks = []
        with torch.autocast(self.device.type, enabled=False):
            shared_features = self.image_encoder(image) if image.shape[0] == 1 else None
            for start in range(0, num_items, step):
                stop = min(start + step, num_items)
                features = shared_features if shared_features is not None else self.image_encoder(image[start:stop])
                flow = self.logits_to_flow(self.decode(features, sparse_input[start:stop]))  # (n, 2, G/2, G/2)
                flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=True)
                chunks.append(flow.to(sparse_flow.device))
        return torch.cat(chunks)


def check_dense_flow_inputs(
    image: torch.Tensor, sparse_flow: torch.Tensor, mask: torch.Tensor, chunk_size: int | None
) -> None:
    """Raise ValueError naming the argument whose shape does not fit :meth:`CMP.dense_flow`."""
    if sparse_flow.ndim != 4 or sparse_flow.shape[1] != 2 or sparse_flow.shape[0] == 0:
        raise ValueError(f"sparse_flow must be (N >= 1, 2, G, G), got {tuple(sparse_flow.shape)}")
    num_items, _, height, width = sparse_flow.shape
    if mask.shape != sparse_flow.shape:
        raise ValueError(f"mask must have sparse_flow's shape {tuple(sparse_flow.shape)}, got {tuple(mask.shape)}")
    if image.ndim != 4 or image.shape[1] != 3 or image.shape[0] not in (1, num_items):
        raise ValueError(f"image must be (1 or {num_items}, 3, G, G), got {tuple(image.shape)}")
    if image.shape[-2:] != sparse_flow.shape[-2:]:
        raise ValueError(f"image size {tuple(image.shape[-2:])} differs from sparse_flow size {(height, width)}")
    if height % 8 or width % 8 or min(height, width) < MIN_INPUT_SIZE:
        raise ValueError(
            f"CMP needs sides that are multiples of 8 and at least {MIN_INPUT_SIZE}, got {(height, width)}"
        )
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
