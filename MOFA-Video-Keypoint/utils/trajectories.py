# Copied from MOFA-Video-Traj/utils/trajectories.py
"""Trajectories -> sparse hints -> dense CMP flow, plus the trajectory and motion-brush drawings of the demos.

A *track* is the list of clicks a user made for one trajectory, ``[(x0, y0), (x1, y1), ...]`` in image
pixels (x = column, y = row). The first click is where the motion starts; a track with one click is a
static pin (it asks CMP for zero motion at that point).

From tracks to the dense flow the adapter consumes (``trajectories_to_flow``), as the released weights expect:

1. every click is mapped to the square CMP grid of side G (384 for the released CMP) as
   ``(int(x * G / W), int(y * G / H))``;
2. each grid track is resampled to T points with PCHIP over a uniform click parameter
   ``tau = linspace(0, 1, #clicks)``: ``p_0 .. p_{T-1}``, ``p_0`` being the first click;
3. a track whose start pixel is inside the motion brush (brush resized to G x G bilinearly, value == 255)
   belongs to the *in-brush* group, any other track to the *out-brush* group;
4. per group, frame ``i`` (1..T-1) gets the hint ``trunc(p_i - p_0)`` at the single start pixel, summed over
   the group's tracks (coincident starts add up); the hint mask counts the tracks starting at each pixel;
5. one batched CMP call per non-empty group turns the hints into dense flow on the grid; the in-brush
   flow is multiplied by ``brush / 255``;
6. both flows are upsampled with nearest to H x W and rescaled per axis (dx * W / G, dy * H / G);
7. merge: the in-brush flow where both of its components are non-zero, else the out-brush flow.

Flow tensors are ``(T-1, 2, H, W)`` float32 in pixels, channel 0 = dx (columns), channel 1 = dy (rows),
displacement from frame 0 to frame t.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.interpolate import PchipInterpolator

from .errors import InputError

Point = tuple[float, float]
Track = Sequence[Point]

CMP_GRID = 384
"""Side of the square grid the released CMP runs on."""

CMP_SATURATION_WARN_PX = 45.0
"""Per-axis displacement on the CMP grid above which a warning is raised (CMP output saturates at +-49.5 px)."""

HINT_NUM_POINTS = 16
"""Points per track in the hint image."""

BRUSH_RGBA = (0, 0, 255, 255)
"""RGBA colour of the motion brush in its drawings."""

TRACK_RGB = (255, 0, 0)
"""Colour of the tracks in the hint image."""

TRACK_PALETTE = ((255, 0, 0), (255, 160, 0), (220, 0, 220), (0, 170, 255), (0, 200, 90), (255, 255, 0))
"""Colours of the tracks in the editor, one per track (cycled): the first is ``TRACK_RGB``."""


class CMPFunction(Protocol):
    """Sparse-to-dense motion: ``cmp(image, sparse, mask) -> dense flow``.

    Args:
        image: ``(N, 3, G, G)`` float32 in [0, 1].
        sparse: ``(N, 2, G, G)`` float32 sparse flow in grid pixels (dx, dy).
        mask: ``(N, 2, G, G)`` float32 hint counts (both channels equal).

    Returns:
        ``(N, 2, G, G)`` float32 dense flow in grid pixels.
    """

    def __call__(self, image: torch.Tensor, sparse: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


@dataclass
class TrajectoryFlowInfo:
    """What ``trajectories_to_flow`` did, for logs and the UI.

    Attributes:
        in_brush: indices of the tracks whose start lies inside the motion brush.
        out_brush: indices of the other tracks.
        max_grid_displacement: the largest per-axis ``|p_i - p_0|`` over all tracks, in CMP-grid pixels.
        warnings: human-readable warnings for the caller to show (nothing is emitted through :mod:`warnings`).
    """

    in_brush: list[int] = field(default_factory=list)
    out_brush: list[int] = field(default_factory=list)
    max_grid_displacement: float = 0.0
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------
# validation and resampling


def validate_tracks(tracks: Sequence[Track], width: int, height: int) -> list[np.ndarray]:
    """Checks user tracks and returns them as arrays.

    Args:
        tracks: one or more tracks, each a non-empty sequence of ``(x, y)`` clicks in image pixels.
        width, height: image size; every click must satisfy ``0 <= x < width`` and ``0 <= y < height``.

    Returns:
        One float64 array ``(num_clicks, 2)`` per track.

    Raises:
        InputError: no tracks, an empty track, a click that is not a finite ``(x, y)`` pair, or a click
            outside the image; the message names the track (and click) index.
    """
    if tracks is None or len(tracks) == 0:
        raise InputError("no trajectories given: add at least one track of (x, y) clicks")
    checked = []
    for track_index, track in enumerate(tracks):
        try:
            points = np.asarray(track, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InputError(f"track {track_index}: clicks must be (x, y) number pairs ({error})") from None
        if points.size == 0:
            raise InputError(f"track {track_index} is empty: a track needs at least one (x, y) click")
        if points.ndim != 2 or points.shape[1] != 2:
            raise InputError(
                f"track {track_index}: expected a list of (x, y) clicks, got an array of shape {points.shape}"
            )
        for point_index, (x, y) in enumerate(points):
            if not (math.isfinite(x) and math.isfinite(y)):
                raise InputError(f"track {track_index}, click {point_index}: ({x}, {y}) is not finite")
            if not (0 <= x < width and 0 <= y < height):
                raise InputError(
                    f"track {track_index}, click {point_index}: ({x:g}, {y:g}) is outside the "
                    f"{width}x{height} image (need 0 <= x < {width}, 0 <= y < {height})"
                )
        checked.append(points)
    return checked


def resample_track(track: np.ndarray | Track, num_points: int) -> np.ndarray:
    """Resamples a track to ``num_points`` points with PCHIP over ``tau = linspace(0, 1, #clicks)``.

    x(tau) and y(tau) are interpolated separately; the first and last points are the first and last clicks.
    A one-click track (a static pin) is repeated ``num_points`` times.

    Args:
        track: ``(num_clicks, 2)`` points.
        num_points: number of output points (>= 1).

    Returns:
        float64 array ``(num_points, 2)``.
    """
    points = np.asarray(track, dtype=np.float64).reshape(-1, 2)
    if len(points) == 1:
        return np.repeat(points, num_points, axis=0)
    tau = np.linspace(0.0, 1.0, len(points))
    new_tau = np.linspace(0.0, 1.0, num_points)
    return np.stack([PchipInterpolator(tau, points[:, axis])(new_tau) for axis in (0, 1)], axis=1)


def tracks_to_grid(tracks: Sequence[np.ndarray], width: int, height: int, grid: int = CMP_GRID) -> list[np.ndarray]:
    """Maps image-pixel clicks to the G x G CMP grid as ``(int(x * G / W), int(y * G / H))``.

    Returns:
        One float64 array ``(num_clicks, 2)`` of integer values per track.
    """
    scale = np.array([grid / width, grid / height])
    return [np.trunc(np.asarray(track, dtype=np.float64) * scale) for track in tracks]


# ----------------------------------------------------------------------------------------------------------
# motion brush


def empty_brush(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A blank motion brush: mask ``(H, W)`` uint8 zeros and its RGBA drawing ``(H, W, 4)`` uint8 zeros."""
    return np.zeros((height, width), np.uint8), np.zeros((height, width, 4), np.uint8)


def stamp_brush(
    mask: np.ndarray,
    viz: np.ndarray,
    center: tuple[int, int],
    radius: int,
    color: tuple[int, int, int, int] = BRUSH_RGBA,
) -> tuple[np.ndarray, np.ndarray]:
    """Stamps one filled circle into the motion brush.

    Args:
        mask: ``(H, W)`` brush mask, 0 outside and 255 inside the brush.
        viz: ``(H, W, 4)`` uint8 RGBA drawing of the brush.
        center: ``(x, y)`` in image pixels.
        radius: circle radius in pixels.
        color: RGBA colour of the circle in ``viz``.

    Returns:
        New ``(mask, viz)`` arrays (the inputs are not modified).
    """
    mask, viz = mask.copy(), viz.copy()
    center = (int(center[0]), int(center[1]))
    cv2.circle(mask, center, int(radius), 255, -1)
    cv2.circle(viz, center, int(radius), tuple(int(c) for c in color), -1)
    return mask, viz


def resize_brush_to_grid(brush_mask: np.ndarray, grid: int = CMP_GRID) -> np.ndarray:
    """Resizes an ``(H, W)`` 0/255 brush to ``(G, G)`` float64 with bilinear interpolation (soft edges).

    Bilinear is what the released demo effectively used; the in-brush test is ``value == 255``.
    """
    return cv2.resize(np.asarray(brush_mask, dtype=np.float64), (grid, grid), interpolation=cv2.INTER_LINEAR)


def split_tracks_by_brush(
    grid_tracks: Sequence[np.ndarray], brush_grid: np.ndarray | None
) -> tuple[list[int], list[int]]:
    """Splits tracks by whether their start pixel lies in the brush (``brush_grid[y, x] == 255``).

    Args:
        grid_tracks: tracks on the grid, each ``(num_points, 2)``; point 0 is the start.
        brush_grid: ``(G, G)`` brush on the grid (see ``resize_brush_to_grid``), or None for no brush.

    Returns:
        ``(in_brush, out_brush)`` lists of track indices.
    """
    in_brush, out_brush = [], []
    for index, track in enumerate(grid_tracks):
        x, y = int(track[0, 0]), int(track[0, 1])
        inside = brush_grid is not None and brush_grid[y, x] == 255
        (in_brush if inside else out_brush).append(index)
    return in_brush, out_brush


# ----------------------------------------------------------------------------------------------------------
# hints and dense flow


def sparse_hints(
    grid_tracks: Sequence[np.ndarray], grid: int = CMP_GRID, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Builds the single-pixel sparse hints of one group of resampled grid tracks.

    Frame ``i`` (1..T-1) gets ``trunc(p_i - p_0)`` (rounded toward zero) at the start pixel
    ``(row int(y_0), col int(x_0))``; tracks with the same start pixel add up, and the mask counts them.

    Args:
        grid_tracks: K tracks, each ``(T, 2)`` grid points (all the same T >= 2).
        grid: grid side G.
        device: device of the returned tensors.

    Returns:
        ``(sparse, mask)``: ``sparse`` ``(T-1, 2, G, G)`` float32 integer-valued grid pixels (dx, dy);
        ``mask`` ``(T-1, 2, G, G)`` float32 hint counts, the same in both channels and in every frame.
    """
    tracks = np.stack([np.asarray(track, dtype=np.float64) for track in grid_tracks])  # (K, T, 2)
    num_flows = tracks.shape[1] - 1
    starts = tracks[:, 0].astype(np.int64)  # (K, 2) x, y
    displacements = np.trunc(tracks[:, 1:] - tracks[:, :1])  # (K, T-1, 2)

    pixel_index = torch.from_numpy(starts[:, 1] * grid + starts[:, 0]).to(device)  # (K,) row-major
    sparse = torch.zeros(grid * grid, num_flows, 2, dtype=torch.float32, device=device)
    sparse.index_add_(0, pixel_index, torch.from_numpy(displacements).to(device, torch.float32))
    counts = torch.zeros(grid * grid, dtype=torch.float32, device=device)
    counts.index_add_(0, pixel_index, torch.ones(len(starts), dtype=torch.float32, device=device))

    sparse = sparse.reshape(grid, grid, num_flows, 2).permute(2, 3, 0, 1).contiguous()
    mask = counts.reshape(1, 1, grid, grid).expand(num_flows, 2, grid, grid).contiguous()
    return sparse, mask


def image_to_grid(image: torch.Tensor, grid: int = CMP_GRID) -> torch.Tensor:
    """Resizes a ``(3, H, W)`` image in [0, 1] to ``(3, G, G)`` with nearest (aspect ratio not kept)."""
    return F.interpolate(image[None].float(), size=(grid, grid), mode="nearest")[0]


def dense_flow_on_grid(
    cmp: CMPFunction,
    image_grid: torch.Tensor,
    sparse: torch.Tensor,
    mask: torch.Tensor,
    brush_grid: np.ndarray | None = None,
) -> torch.Tensor:
    """Runs CMP once on all T-1 hint frames of one group.

    Args:
        cmp: the sparse-to-dense motion callable.
        image_grid: ``(3, G, G)`` float in [0, 1].
        sparse, mask: ``(T-1, 2, G, G)`` from ``sparse_hints``.
        brush_grid: ``(G, G)`` brush on the grid; when given, the flow is multiplied by ``brush / 255``.

    Returns:
        ``(T-1, 2, G, G)`` float32 dense flow in grid pixels.
    """
    num_flows, _, grid, _ = sparse.shape
    images = image_grid.float().unsqueeze(0).repeat(num_flows, 1, 1, 1)
    flow = cmp(images, sparse.float(), mask.float()).float()
    if flow.shape != sparse.shape:
        raise ValueError(f"cmp returned flow of shape {tuple(flow.shape)}, expected {tuple(sparse.shape)}")
    if brush_grid is not None:
        brush = torch.from_numpy(np.asarray(brush_grid, dtype=np.float64) / 255.0).to(flow.device, torch.float32)
        flow = flow * brush
    return flow


def upsample_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-upsamples grid flow to ``H x W`` and rescales it per axis to image pixels.

    Args:
        flow: ``(N, 2, G, G)`` flow in grid pixels.

    Returns:
        ``(N, 2, H, W)`` float32 flow in image pixels (dx * W / G, dy * H / G).
    """
    grid_height, grid_width = flow.shape[-2:]
    flow = F.interpolate(flow.float(), size=(height, width), mode="nearest")
    scale = torch.tensor([width / grid_width, height / grid_height], dtype=flow.dtype, device=flow.device)
    return flow * scale.view(1, 2, 1, 1)


def merge_brush_flows(flow_in_brush: torch.Tensor, flow_out_brush: torch.Tensor) -> torch.Tensor:
    """Per pixel and frame: the in-brush flow where both of its components are non-zero, else the out-brush flow.

    Args:
        flow_in_brush, flow_out_brush: ``(N, 2, H, W)``.

    Returns:
        ``(N, 2, H, W)``.
    """
    use_in_brush = (flow_in_brush != 0).all(dim=1, keepdim=True)
    return torch.where(use_in_brush, flow_in_brush, flow_out_brush)


def _image_to_tensor(image: torch.Tensor | Image.Image | np.ndarray) -> torch.Tensor:
    """``(3, H, W)`` float32 in [0, 1] from a PIL image, an ``(H, W, 3)`` uint8 array or a ``(3, H, W)`` tensor."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"image: expected an (H, W, 3) array, got shape {image.shape}")
        return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
    if image.ndim != 3 or image.shape[0] != 3:
        raise InputError(f"image: expected a (3, H, W) tensor in [0, 1], got shape {tuple(image.shape)}")
    return image.float()


def _saturation_warnings(grid_tracks: Sequence[np.ndarray], grid: int, threshold: float) -> tuple[float, list[str]]:
    """The largest per-axis displacement on the grid and one warning per track exceeding ``threshold``."""
    messages, largest = [], 0.0
    for index, track in enumerate(grid_tracks):
        displacement = float(np.abs(track - track[:1]).max())
        largest = max(largest, displacement)
        if displacement > threshold:
            messages.append(
                f"track {index} moves {displacement:.1f} px on the {grid}-px CMP grid (more than {threshold:g}); "
                "CMP flow saturates near 49.5 px per axis, so this motion will be cut short; "
                "use shorter drags or chain several clips"
            )
    return largest, messages


@torch.no_grad()
def trajectories_to_flow(
    image: torch.Tensor | Image.Image | np.ndarray,
    tracks: Sequence[Track],
    brush_mask: np.ndarray | None,
    num_frames: int,
    cmp: CMPFunction,
    grid: int = CMP_GRID,
    device: torch.device | str | None = None,
    saturation_warn_px: float = CMP_SATURATION_WARN_PX,
) -> tuple[torch.Tensor, TrajectoryFlowInfo]:
    """Turns user tracks (and an optional motion brush) into the dense flow that conditions the adapter.

    Args:
        image: the first frame, ``(3, H, W)`` float tensor in [0, 1], an ``(H, W, 3)`` uint8 array or a PIL
            image; its size is the generation size and the frame of the track coordinates.
        tracks: tracks of ``(x, y)`` clicks in image pixels (see module docstring).
        brush_mask: ``(H, W)`` motion brush, 0 outside and 255 inside (a bool mask also works), or None.
        num_frames: T, frames of the video including frame 0 (>= 2).
        cmp: sparse-to-dense motion callable (``CMPFunction``); called once per non-empty track group.
        grid: side G of the square CMP grid (384 for the released CMP).
        device: where the CMP inputs and the result live; defaults to the image tensor's device (CPU for
            arrays and PIL images).
        saturation_warn_px: warn when a track's per-axis displacement on the grid exceeds this.

    Returns:
        ``(flow, info)``: ``flow`` ``(T-1, 2, H, W)`` float32 in image pixels; ``info`` a
        ``TrajectoryFlowInfo``.

    Raises:
        InputError: invalid tracks, brush or frame count.
    """
    if int(num_frames) != num_frames or num_frames < 2:
        raise InputError(f"num_frames must be an integer >= 2, got {num_frames}")
    image = _image_to_tensor(image)
    device = torch.device(device) if device is not None else image.device
    _, height, width = image.shape
    tracks = validate_tracks(tracks, width, height)
    brush_grid = None
    if brush_mask is not None:
        brush_mask = np.asarray(brush_mask)
        if brush_mask.dtype == bool:
            brush_mask = brush_mask.astype(np.uint8) * 255
        if brush_mask.shape != (height, width):
            raise InputError(f"brush_mask: expected shape ({height}, {width}) like the image, got {brush_mask.shape}")
        brush_grid = resize_brush_to_grid(brush_mask, grid)

    grid_tracks = [resample_track(track, num_frames) for track in tracks_to_grid(tracks, width, height, grid)]
    in_brush, out_brush = split_tracks_by_brush(grid_tracks, brush_grid)
    largest, messages = _saturation_warnings(grid_tracks, grid, saturation_warn_px)

    image_grid = image_to_grid(image.to(device), grid)
    group_flows = []
    for indices, group_brush in ((in_brush, brush_grid), (out_brush, None)):
        if not indices:
            group_flows.append(torch.zeros(num_frames - 1, 2, height, width, device=device))
            continue
        sparse, mask = sparse_hints([grid_tracks[i] for i in indices], grid, device)
        grid_flow = dense_flow_on_grid(cmp, image_grid, sparse, mask, group_brush)
        group_flows.append(upsample_flow(grid_flow, height, width))
    flow = merge_brush_flows(*group_flows)
    info = TrajectoryFlowInfo(in_brush, out_brush, largest, messages)
    return flow, info


# ----------------------------------------------------------------------------------------------------------
# drawings


def _rgba(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return image.convert("RGBA")


def _draw_polyline_with_arrow(
    layer: np.ndarray, points: np.ndarray, color: tuple[int, int, int, int], thickness: int = 2
) -> None:
    """Draws ``points`` as a polyline on ``layer`` (in place) with an arrowhead on the last segment."""
    corners = [(int(x), int(y)) for x, y in points]
    for index, (start, end) in enumerate(zip(corners[:-1], corners[1:])):
        length = math.hypot(end[0] - start[0], end[1] - start[1])
        if index == len(corners) - 2 and length > 0:
            cv2.arrowedLine(layer, start, end, color, thickness, tipLength=4 * thickness / length)
        else:
            cv2.line(layer, start, end, color, thickness)


def _draw_track_marks(
    layer: np.ndarray,
    tracks: Sequence[Track],
    colors: Sequence[tuple[int, int, int, int]],
    dot_radius: int,
    num_points: int | None = None,
    thickness: int = 2,
) -> None:
    """Draws every track on the RGBA ``layer`` (in place), track ``i`` in ``colors[i % len(colors)]``: a one-click
    track as a dot of ``dot_radius``, a longer one as a polyline with an arrowhead (through its clicks, or
    ``num_points`` PCHIP-resampled points when given). Empty tracks are skipped but keep their colour slot."""
    for index, track in enumerate(tracks):
        color = colors[index % len(colors)]
        points = np.asarray(track, dtype=np.float64).reshape(-1, 2)
        if len(points) == 1:
            cv2.circle(layer, (int(points[0, 0]), int(points[0, 1])), dot_radius, color, -1)
        elif len(points) > 1:
            corners = points if num_points is None else resample_track(points, num_points)
            _draw_polyline_with_arrow(layer, corners, color, thickness)


def draw_tracks(
    image: Image.Image | np.ndarray, tracks: Sequence[Track], scale: int = 1, palette: Sequence = (TRACK_RGB,)
) -> Image.Image:
    """Draws the clicked tracks over the image for the trajectory editor.

    Each track with two or more clicks is a polyline (thickness 2) with an arrowhead on its last segment; a
    one-click track is a dot of radius 3. Track ``i`` is drawn in ``palette[i % len(palette)]`` (default: all
    red). Empty tracks are skipped.

    Args:
        image: PIL image or ``(H, W, 3)`` uint8 array, already ``scale`` times the size the clicks refer to.
        tracks: tracks of ``(x, y)`` clicks in image pixels (of the unscaled image).
        scale: display magnification: click ``(x, y)`` is drawn at the centre of its ``scale x scale`` block,
            with lines and dots ``max(1, scale // 4)`` times thicker.
        palette: RGB colours.

    Returns:
        RGB PIL image of the same size as ``image``.
    """
    background = _rgba(image)
    layer = np.zeros((background.height, background.width, 4), np.uint8)
    shown = [[(x * scale + scale // 2, y * scale + scale // 2) for x, y in track] for track in tracks]
    weight = max(1, scale // 4)
    colors = [(*rgb, 255) for rgb in palette]
    _draw_track_marks(layer, shown, colors, dot_radius=3 * weight, thickness=2 * weight)
    return Image.alpha_composite(background, Image.fromarray(layer)).convert("RGB")


def draw_hint_image(
    image: Image.Image | np.ndarray,
    tracks: Sequence[Track],
    brush_viz: np.ndarray | None = None,
    num_points: int = HINT_NUM_POINTS,
) -> Image.Image:
    """The hint image saved next to the outputs: image at 50% alpha, smoothed tracks, motion brush below.

    Tracks are resampled to ``num_points`` points (PCHIP) and drawn as red lines (alpha 192, thickness 2)
    with an arrowhead on the last segment; a one-click track is a dot of radius 2. The result is composited
    over the brush drawing.

    Args:
        image: PIL image or ``(H, W, 3)`` uint8 array.
        tracks: tracks of ``(x, y)`` clicks in image pixels; empty tracks are skipped.
        brush_viz: ``(H, W, 4)`` uint8 RGBA brush drawing (``stamp_brush``), or None.
        num_points: points per drawn track.

    Returns:
        RGBA PIL image of the same size (semi-transparent where there is no brush).
    """
    background = np.array(_rgba(image))
    background[..., 3] = 128
    layer = np.zeros_like(background)
    _draw_track_marks(layer, tracks, [(*TRACK_RGB, 192)], dot_radius=2, num_points=num_points)
    drawing = Image.alpha_composite(Image.fromarray(background), Image.fromarray(layer))
    if brush_viz is None:
        brush_viz = np.zeros_like(background)
    return Image.alpha_composite(Image.fromarray(np.asarray(brush_viz, dtype=np.uint8)).convert("RGBA"), drawing)
