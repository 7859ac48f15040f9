"""EDM noise levels, preconditioning, loss, conditioning dropout, time ids and the train/inference conventions."""

from types import SimpleNamespace

import pytest
import torch
from call_recording import CallRecorder

from train_utils.conditioning import (
    ConditioningDropout,
    TrainingConventions,
    build_added_time_ids,
    clip_pixel_input,
    encode_video_latents,
    first_frame_latents,
)
from train_utils.edm import denoising_loss, loss_weight, precondition, sample_sigmas


def test_sigma_density_matches_the_released_training_statistics():
    sigmas = sample_sigmas(50_000, torch.Generator().manual_seed(0))
    assert sigmas.dtype == torch.float32
    assert 0.002 <= sigmas.min() and sigmas.max() <= 700.0
    assert sigmas.median().item() == pytest.approx(0.71, abs=0.03)
    assert sigmas.quantile(0.1).item() == pytest.approx(0.087, rel=0.1)
    assert sigmas.quantile(0.9).item() == pytest.approx(5.8, rel=0.1)


def test_sigmas_are_stratified_one_per_quantile_bin_across_the_batch():
    sigmas = sample_sigmas(4, torch.Generator().manual_seed(1))
    assert torch.all(sigmas[:-1] > sigmas[1:])  # u in [0,1/4), [1/4,1/2), ... maps to decreasing sigma
    assert sigmas[1] > 0.71 > sigmas[2]  # the median separates the two middle bins


def test_preconditioning_identities():
    sigmas = torch.tensor([0.01, 0.5, 1.0, 7.0, 300.0], dtype=torch.float64)
    scalings = precondition(sigmas)
    assert torch.allclose(scalings.c_in**2 * (sigmas**2 + 1), torch.ones_like(sigmas))
    assert torch.allclose(scalings.c_skip, scalings.c_in**2)
    assert torch.allclose(scalings.c_out, -sigmas * scalings.c_in)
    assert torch.allclose(scalings.c_noise, sigmas.log() / 4)
    assert torch.allclose(scalings.c_out**2 * loss_weight(sigmas), torch.ones_like(sigmas))


def test_loss_is_the_v_prediction_mse_hand_computed_at_sigma_one():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 3, 4, 2, 2, generator=generator)
    unet_output = torch.randn(1, 3, 4, 2, 2, generator=generator)
    latents = torch.zeros_like(noise)
    sigmas = torch.ones(1)
    # sigma = 1: c_out = -1/sqrt2, c_skip = 1/2, w = 2  =>  loss = mean((F - n/sqrt2)^2)
    expected = ((unet_output - noise / 2**0.5) ** 2).mean()
    assert denoising_loss(unet_output, latents + noise, latents, sigmas).item() == pytest.approx(
        expected.item(), rel=1e-5
    )
    assert denoising_loss(noise / 2**0.5, latents + noise, latents, sigmas).item() == pytest.approx(0.0, abs=1e-10)


def test_loss_averages_per_sample_means_over_the_batch():
    latents = torch.zeros(2, 1, 1, 1, 2)
    unet_output = torch.zeros(2, 1, 1, 1, 2)
    noisy = torch.tensor([[[[[2.0, 0.0]]]], [[[[0.0, 0.0]]]]])
    sigmas = torch.tensor([1.0, 1.0])
    # sample 0: D = noisy/2 = [1, 0], w = 2 -> mean(2 * [1, 0]) = 1; sample 1: 0
    assert denoising_loss(unet_output, noisy, latents, sigmas).item() == pytest.approx(0.5)


def test_quirk_conditioning_dropout_thresholds_give_10_10_10_percent_on_every_process():
    dropout = ConditioningDropout(0.1)
    drop_embedding, drop_latents = dropout.draw(200_000)
    embedding_only = (drop_embedding & ~drop_latents).float().mean().item()
    both = (drop_embedding & drop_latents).float().mean().item()
    latents_only = (~drop_embedding & drop_latents).float().mean().item()
    assert embedding_only == pytest.approx(0.1, abs=0.005)
    assert both == pytest.approx(0.1, abs=0.005)
    assert latents_only == pytest.approx(0.1, abs=0.005)
    other_rank = ConditioningDropout(0.1)
    assert all(torch.equal(a, b) for a, b in zip(ConditioningDropout(0.1).draw(64), other_rank.draw(64)))


def test_conditioning_dropout_state_round_trips():
    dropout = ConditioningDropout(0.1)
    dropout.draw(5)
    state = dropout.state_dict()
    expected = dropout.draw(8)
    restored = ConditioningDropout(0.1)
    restored.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(restored.draw(8), expected))


def test_quirk_training_time_ids_are_svd_xtend_order_6_0_02_127():
    released = build_added_time_ids(2, "svd_xtend")
    assert released.tolist() == [[6.0, pytest.approx(0.02), 127.0]] * 2
    svd = build_added_time_ids(1, "svd", motion_bucket_id=128)
    assert svd.tolist() == [[6.0, 128.0, pytest.approx(0.02)]]
    with pytest.raises(ValueError, match="time_ids_order"):
        build_added_time_ids(1, "fps_first")


def test_conventions_default_to_the_released_training_and_the_fix_flag_switches_all():
    assert TrainingConventions.from_flags(False) == TrainingConventions(False, False, False, "svd_xtend")
    assert TrainingConventions.from_flags(True) == TrainingConventions(True, True, True, "svd")
    assert TrainingConventions.from_flags(False, "svd").time_ids_order == "svd"


def test_quirk_training_clip_input_is_normalised_unlike_inference():
    image = torch.full((2, 3, 40, 60), 0.5)
    pixels = clip_pixel_input(image, 32, [0.4, 0.5, 0.6], [0.1, 0.2, 0.5])
    assert pixels.shape == (2, 3, 32, 32)
    assert torch.allclose(pixels[:, 0], torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(pixels[:, 1], torch.tensor(0.0), atol=1e-5)
    assert torch.allclose(pixels[:, 2], torch.tensor(-0.2), atol=1e-5)


class PoolingVAE(torch.nn.Module):
    """Encodes an image to its 2x2 average pool (4 channels); the posterior sample adds nothing."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(scaling_factor=0.5)
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    @property
    def dtype(self):
        return self.anchor.dtype

    def encode(self, images):
        mean = torch.nn.functional.avg_pool2d(images, 2)
        mean = torch.cat([mean, mean[:, :1]], dim=1)
        return SimpleNamespace(latent_dist=SimpleNamespace(sample=lambda generator=None: mean, mode=lambda: mean))


def test_quirk_training_vae_input_is_0_1_frames_unless_fixed():
    frames = torch.rand(2, 3, 3, 4, 4)
    with CallRecorder(PoolingVAE(), method="encode") as encode:
        latents = encode_video_latents(encode.targets[0], frames, signed_input=False, chunk_size=4)
    assert latents.shape == (2, 3, 4, 2, 2)
    assert [arguments["images"].shape[0] for arguments in encode.arguments] == [4, 2]
    assert torch.allclose(
        latents[:, :, :3], torch.nn.functional.avg_pool2d(frames.flatten(0, 1), 2).unflatten(0, (2, 3)) * 0.5
    )
    signed = encode_video_latents(PoolingVAE(), frames, signed_input=True)
    assert torch.allclose(signed, latents * 2 - 0.5, atol=1e-6)  # (2x-1) pooled, times 0.5


def test_quirk_first_frame_latents_reuse_frame_0_of_the_diffusion_noise():
    vae = PoolingVAE()
    latents, noise = torch.randn(1, 3, 4, 2, 2), torch.randn(1, 3, 4, 2, 2)
    with CallRecorder(vae, method="encode") as encode:
        first = first_frame_latents(vae, latents, noise, torch.rand(1, 3, 4, 4), TrainingConventions())
    assert torch.allclose(first, (latents[:, 0] + 0.02 * noise[:, 0]) / 0.5)
    assert encode.calls == []


def test_fixed_first_frame_latents_encode_the_noised_signed_image_mode():
    vae = PoolingVAE()
    image = torch.rand(1, 3, 4, 4)
    with CallRecorder(vae, method="encode") as encode:
        first = first_frame_latents(
            vae,
            torch.zeros(1, 2, 4, 2, 2),
            torch.zeros(1, 2, 4, 2, 2),
            image,
            TrainingConventions.from_flags(True),
            generator=torch.Generator().manual_seed(0),
        )
    (arguments,) = encode.arguments
    encoded = arguments["images"]
    pixel_noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(encoded, image * 2 - 1 + 0.02 * pixel_noise)
    assert first.shape == (1, 4, 2, 2)
