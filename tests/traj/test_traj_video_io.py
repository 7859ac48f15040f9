"""Image and video files (utils/video_io.py)."""

import os

import av
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from utils.errors import InputError
from utils.video_io import (
    check_output_folder,
    load_image,
    mux_audio,
    read_video,
    resize_and_center_crop,
    save_png,
    to_uint8_frame,
    video_duration,
    write_video,
)


def _frames(num_frames=6, height=48, width=64):
    """Flat-colour frames whose grey level encodes the frame index (robust to compression)."""
    return np.stack([np.full((height, width, 3), 20 + 20 * i, np.uint8) for i in range(num_frames)])


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------- video


def test_written_video_reads_back_with_frame_count_fps_and_content(tmp_path):
    path = write_video(tmp_path / "clip.mp4", _frames(), fps=20)
    video = read_video(path)
    assert video.frames.shape == (6, 48, 64, 3) and video.fps == 20.0
    np.testing.assert_allclose(video.frames.mean(axis=(1, 2, 3)), [20 + 20 * i for i in range(6)], atol=2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert _leftovers(tmp_path) == ["clip.mp4"]


def test_frames_may_be_pil_images_or_float_tensors(tmp_path):
    pil_frames = [Image.fromarray(frame) for frame in _frames(3)]
    assert read_video(write_video(tmp_path / "pil.mp4", pil_frames, fps=7)).frames.shape[0] == 3
    tensor = torch.from_numpy(_frames(4)).permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W) in [0, 1]
    assert read_video(write_video(tmp_path / "tensor.mp4", tensor, fps=7)).frames.shape == (4, 48, 64, 3)


def test_odd_sized_frames_are_padded_to_even(tmp_path):
    video = read_video(write_video(tmp_path / "odd.mp4", _frames(2, height=33, width=45), fps=10))
    assert video.frames.shape == (2, 34, 46, 3)


def test_existing_video_is_not_overwritten_unless_asked(tmp_path):
    path = write_video(tmp_path / "clip.mp4", _frames(3), fps=20)
    with pytest.raises(InputError, match=f"{path}.*already exists"):
        write_video(path, _frames(5), fps=20)
    assert read_video(path).frames.shape[0] == 3
    write_video(path, _frames(5), fps=20, overwrite=True)
    assert read_video(path).frames.shape[0] == 5
    assert _leftovers(tmp_path) == ["clip.mp4"]


def test_failure_mid_write_leaves_no_file(tmp_path):
    def frames_then_crash():
        yield from _frames(3)
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError, match="generator broke"):
        write_video(tmp_path / "clip.mp4", frames_then_crash(), fps=20)
    assert _leftovers(tmp_path) == []


def test_failure_mid_write_keeps_the_previous_file(tmp_path):
    path = write_video(tmp_path / "clip.mp4", _frames(2), fps=20)

    def crash_after_one():
        yield _frames(1)[0]
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError):
        write_video(path, crash_after_one(), fps=20, overwrite=True)
    assert read_video(path).frames.shape[0] == 2 and _leftovers(tmp_path) == ["clip.mp4"]


def test_no_frames_or_bad_fps_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=20)
    with pytest.raises(InputError, match="fps"):
        write_video(tmp_path / "zero.mp4", _frames(2), fps=0)
    assert _leftovers(tmp_path) == []


def test_reading_a_missing_or_broken_video_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_video(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(InputError, match="cannot read video"):
        read_video(broken)


@pytest.mark.parametrize(("read", "kind"), [(read_video, "video"), (load_image, "image")])
def test_a_folder_or_a_missing_file_is_named_as_such(tmp_path, read, kind):
    with pytest.raises(InputError, match=f"^{kind} path is a folder, not a file: {tmp_path}$"):
        read(tmp_path)
    with pytest.raises(InputError, match=f"^{kind} file not found: {tmp_path / 'missing'}$"):
        read(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------- audio


def _wav(path, seconds=1.0, sample_rate=16000):
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 440 * time), sample_rate)
    return path


def test_mux_adds_an_aac_stream_and_keeps_the_video(tmp_path):
    video = write_video(tmp_path / "silent.mp4", _frames(10), fps=10)
    audio = _wav(tmp_path / "tone.wav", seconds=2.0)
    out = mux_audio(video, audio, tmp_path / "with_audio.mp4")
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
        assert [s.codec_context.name for s in container.streams.video] == ["h264"]
    assert read_video(out).frames.shape[0] == 10
    assert _leftovers(tmp_path) == ["silent.mp4", "tone.wav", "with_audio.mp4"]


def test_mux_refuses_to_overwrite_and_reports_bad_inputs(tmp_path):
    video = write_video(tmp_path / "silent.mp4", _frames(4), fps=10)
    audio = _wav(tmp_path / "tone.wav")
    with pytest.raises(InputError, match="already exists"):
        mux_audio(video, audio, video)
    with pytest.raises(InputError, match="audio file not found"):
        mux_audio(video, tmp_path / "missing.wav", tmp_path / "out.mp4")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("hello")
    with pytest.raises(InputError, match="cannot mux"):
        mux_audio(video, not_audio, tmp_path / "out.mp4")
    assert _leftovers(tmp_path) == ["notes.wav", "silent.mp4", "tone.wav"]


def test_mux_in_place_with_overwrite(tmp_path):
    video = write_video(tmp_path / "clip.mp4", _frames(4), fps=10)
    mux_audio(video, _wav(tmp_path / "tone.wav"), video, overwrite=True)
    with av.open(str(video)) as container:
        assert len(container.streams.audio) == 1


def _audio_track(path):
    """(mono samples of the first audio stream, its sample rate, its codec name)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().mean(axis=0) for frame in container.decode(stream)]
        return np.concatenate(chunks), stream.rate, stream.codec_context.name


def test_video_duration_counts_every_frame(tmp_path):
    assert video_duration(write_video(tmp_path / "clip.mp4", _frames(11), fps=25)) == pytest.approx(0.44)
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello")
    with pytest.raises(InputError, match="cannot read video"):
        video_duration(not_video)
    with pytest.raises(InputError, match="has no video stream"):
        video_duration(_wav(tmp_path / "tone.wav"))


@pytest.mark.parametrize("audio_seconds", [0.2, 0.4, 2.0])
def test_mux_keeping_all_frames_pads_or_cuts_the_audio_to_the_video(tmp_path, audio_seconds):
    # a talking-head video of 0.4 s of speech: 1 + ceil(25 * 0.4) = 11 frames, 0.44 s at 25 fps
    video = write_video(tmp_path / "silent.mp4", _frames(11), fps=25)
    audio = _wav(tmp_path / "tone.wav", seconds=audio_seconds)
    out = mux_audio(video, audio, tmp_path / "with_audio.mp4", keep_all_frames=True)
    assert read_video(out).frames.shape[0] == 11
    samples, rate, codec = _audio_track(out)
    assert codec == "aac"
    assert abs(len(samples) / rate - 0.44) <= 1 / 25
    assert np.sqrt(np.mean(samples[: rate // 10] ** 2)) > 0.1  # the tone is there
    if audio_seconds < 0.3:
        assert np.abs(samples[int(0.3 * rate) :]).max() < 1e-3  # padded with silence
    assert _leftovers(tmp_path) == ["silent.mp4", "tone.wav", "with_audio.mp4"]


def test_mux_by_default_ends_with_the_audio_and_drops_the_last_frames(tmp_path):
    video = write_video(tmp_path / "silent.mp4", _frames(11), fps=25)
    out = mux_audio(video, _wav(tmp_path / "tone.wav", seconds=0.4), tmp_path / "with_audio.mp4")
    assert read_video(out).frames.shape[0] < 11


def test_mux_keeping_all_frames_reports_bad_inputs(tmp_path):
    video = write_video(tmp_path / "silent.mp4", _frames(4), fps=10)
    with pytest.raises(InputError, match="audio file not found"):
        mux_audio(video, tmp_path / "missing.wav", tmp_path / "out.mp4", keep_all_frames=True)
    with pytest.raises(InputError, match="video file not found"):
        mux_audio(tmp_path / "missing.mp4", _wav(tmp_path / "tone.wav"), tmp_path / "out.mp4", keep_all_frames=True)
    assert _leftovers(tmp_path) == ["silent.mp4", "tone.wav"]


# ---------------------------------------------------------------------------------------------- images


def test_to_uint8_frame_layouts():
    chw = torch.zeros(3, 2, 4)
    chw[0] = 1.0
    assert to_uint8_frame(chw).shape == (2, 4, 3) and to_uint8_frame(chw)[0, 0].tolist() == [255, 0, 0]
    assert to_uint8_frame(np.full((2, 4), 0.5)).tolist()[0][0] == [128, 128, 128]
    with pytest.raises(ValueError, match="frame must be"):
        to_uint8_frame(np.zeros((2, 4, 5)))


def test_png_round_trip_and_overwrite_refusal(tmp_path):
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    path = save_png(tmp_path / "sub" / "frame.png", image)
    np.testing.assert_array_equal(np.asarray(load_image(path)), image)
    with pytest.raises(InputError, match="already exists"):
        save_png(path, image)
    save_png(path, Image.new("RGBA", (6, 4), (1, 2, 3, 4)), overwrite=True)
    assert Image.open(path).mode == "RGBA"
    assert _leftovers(tmp_path / "sub") == ["frame.png"]


def test_loading_non_images_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="image file not found"):
        load_image(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InputError, match=r"^notes\.png is not a readable image \(unknown format\)$"):
        load_image(text)
    truncated = tmp_path / "truncated.png"
    save_png(tmp_path / "good.png", np.zeros((64, 64, 3), np.uint8))
    truncated.write_bytes((tmp_path / "good.png").read_bytes()[:60])
    with pytest.raises(InputError, match=r"^truncated\.png is not a readable image \(truncated or corrupt data\)$"):
        load_image(truncated)


def test_loaded_image_is_rgb(tmp_path):
    Image.new("L", (5, 3), 77).save(tmp_path / "grey.png")
    image = load_image(tmp_path / "grey.png")
    assert image.mode == "RGB" and image.size == (5, 3)


@pytest.mark.parametrize(
    "size, expected",
    [((300, 300), (512, 512)), ((1920, 1080), (896, 512)), ((1080, 1920), (512, 896)), ((700, 500), (704, 512))],
)
def test_preprocessing_sizes(size, expected):
    assert resize_and_center_crop(Image.new("RGB", size)).size == expected


def test_preprocessing_crops_the_centre():
    image = np.zeros((512, 1000, 3), np.uint8)  # 1000 -> 960: 20 columns cut on each side
    image[:, 20] = 255
    image[:, 979] = 128
    cropped = np.asarray(resize_and_center_crop(Image.fromarray(image)))
    assert cropped.shape == (512, 960, 3)
    assert cropped[0, 0].tolist() == [255, 255, 255] and cropped[0, 959].tolist() == [128, 128, 128]
    assert cropped[:, 1:959].max() == 0


def test_preprocessing_parameters():
    assert resize_and_center_crop(Image.new("RGB", (640, 480)), short_side=64, multiple=8).size == (80, 64)
    with pytest.raises(InputError, match="cannot be cropped"):
        resize_and_center_crop(Image.new("RGB", (4000, 10)), short_side=4, multiple=64)


def test_outputs_are_readable_by_others_under_the_usual_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        video = write_video(tmp_path / "v.mp4", _frames(), fps=25)
        png = save_png(tmp_path / "p.png", _frames()[0])
        os.umask(0o077)  # a private umask is kept too
        private = save_png(tmp_path / "private.png", _frames()[0])
    finally:
        os.umask(previous)
    assert [path.stat().st_mode & 0o777 for path in (video, png, private)] == [0o644, 0o644, 0o600]


def test_check_output_folder_names_the_file_in_the_way_and_accepts_new_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("a file")
    check_output_folder(tmp_path / "new" / "deeper")  # created later by the writers
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(InputError, match=f"^cannot write to {tmp_path}/notes.txt/a: {tmp_path}/notes.txt is a file"):
        check_output_folder(tmp_path / "notes.txt" / "a")


def _encoded(path, num_frames, codec):
    """``num_frames`` 64x48 frames of a moving gradient, encoded with PyAV (``mpeg4`` = MPEG-4 Part 2, ``h264``)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(num_frames):
            pixels = np.roll(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (48, 1, 3)), index, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize(("name", "codec"), [("drive.avi", "mpeg4"), ("drive.mp4", "h264")])
def test_a_whole_video_reads_every_frame(tmp_path, name, codec):
    video = read_video(_encoded(tmp_path / name, 121, codec))
    assert video.frames.shape == (121, 48, 64, 3) and video.fps == 25


def test_a_video_that_decodes_only_partly_is_refused_naming_both_counts(tmp_path):
    whole = _encoded(tmp_path / "whole.avi", 121, "mpeg4").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: len(whole) // 2])  # the header still announces 121 frames (4.84 s)
    with pytest.raises(
        InputError, match=r"cut.avi is damaged or cut: only (\d+) of the 121 frames \(4.84 s\)"
    ) as error:
        read_video(cut)
    assert int(error.value.args[0].split("only ")[1].split()[0]) < 0.9 * 121


def test_transparent_pixels_are_composited_on_white_with_a_notice(tmp_path, caplog):
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[..., 0] = 200
    pixels[2:6, 2:6, 3] = 255
    Image.fromarray(pixels).save(tmp_path / "cutout.png")
    pixels[..., 3] = 255
    Image.fromarray(pixels).save(tmp_path / "opaque.png")
    with caplog.at_level("WARNING"):
        image = load_image(tmp_path / "cutout.png")
        assert load_image(tmp_path / "opaque.png").getpixel((0, 0)) == (200, 0, 0)  # opaque: nothing to say
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((3, 3)) == (200, 0, 0)
    assert [record.getMessage() for record in caplog.records] == [
        "cutout.png has transparent pixels: composited on white"
    ]
