"""Reading and writing videos and images as uint8 RGB arrays, and moving them to/from torch.

Every reader returns frames as numpy uint8 arrays of shape (H, W, 3) in RGB order, whatever the
source: a video file (.mp4/.mov/.avi/.mkv/.webm, decoded with PyAV), an animated .gif (PIL), a
folder of image frames (sorted by name, numbers compared as numbers so ``frame2`` < ``frame10``)
or a single still image (a one-frame video). Grayscale, RGBA and 16-bit images are converted.

Writers:
  * ``.mp4``/``.mov``/``.mkv``/``.avi`` -> H.264 (libx264, yuv420p). yuv420p needs even sizes, so
    an odd height or width is padded by one row/column that repeats the edge pixels (nothing is
    resized, so content is never resampled; the decoded video is then at most one pixel larger).
    x264's macroblock-tree rate control is off: with it, the same frames gave files that decode
    differently from run to run (PyAV 18, FFmpeg 8; a few levels on some pixels), which made
    `kp-motion synth` depend on its --workers. Without it the same frames give the same bytes.
  * ``.gif`` -> PIL, one adaptive palette per frame. The GIF encoder merges identical consecutive
    frames into one longer frame, so the frame count can shrink (the timing is preserved).
  * a path without suffix -> a folder of lossless PNG frames ``000000.png``, ``000001.png``, ...

Errors are readable: a missing path raises FileNotFoundError naming it; a file that cannot be
decoded raises ValueError("<path>: no frames could be decoded (corrupt or empty video?)") rather
than a codec traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
GIF_SUFFIXES = (".gif",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
H264_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi")
DEFAULT_FPS = 25.0
# Folder outputs are named by frame index; this pattern finds stale frames from an older write.
_FRAME_FILE_PATTERN = re.compile(r"^\d{6}\.png$")
# A folder output holds this marker: its NNNNNN.png files were written by a VideoWriter, so a
# later write may replace them. Frame files in a folder without it are the user's: refused.
FRAMES_MARKER = ".kp_motion-frames"


# --------------------------------------------------------------------------------------------
# Frame normalisation
# --------------------------------------------------------------------------------------------


def _pil_to_rgb(image) -> np.ndarray:
    """Any PIL image (L, LA, P, RGBA, I;16, I, F, CMYK...) -> uint8 (H, W, 3) RGB."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            # Float images hold either 0..1 or 0..255 intensities.
            scale = 255.0 if values.max() <= 1.0 else 1.0
        elif image.mode.startswith("I;16") or values.max() > 255:
            scale = 255.0 / 65535.0  # 16-bit samples
        else:
            scale = 1.0  # 32-bit integer image that only uses 8-bit values
        gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels often hold arbitrary colours; composite over white so they read
        # as a clean background (the look of most animation datasets) instead of garbage.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def as_rgb_frame(frame: np.ndarray, where: str = "frame") -> np.ndarray:
    """Check/convert one frame to contiguous uint8 (H, W, 3); accepts (H, W) and (H, W, 1)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(
            f"{where}: expected uint8 pixels, got {frame.dtype} (use from_tensor for floats)"
        )
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise ValueError(f"{where}: expected an (H, W, 3) image, got shape {frame.shape}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[..., :3]
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{where}: empty image of shape {frame.shape}")
    return np.ascontiguousarray(frame)


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers: frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | Path) -> list[Path]:
    """Image files of a frame folder, in natural name order."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


def is_video_source(path: str | Path) -> bool:
    """True for anything read_video understands by its name: video/gif/image file or a folder."""
    path = Path(path)
    if path.is_dir():
        return True
    return path.suffix.lower() in VIDEO_SUFFIXES + GIF_SUFFIXES + IMAGE_SUFFIXES


def _check_exists(path: Path, what: str = "video") -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")


def _no_frames_error(path: Path, detail: str = "") -> ValueError:
    suffix = f" [{detail}]" if detail else ""
    return ValueError(f"{path}: no frames could be decoded (corrupt or empty video?){suffix}")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_image(path: str | Path) -> np.ndarray:
    """One image -> uint8 (H, W, 3) RGB. Grayscale, RGBA, palette and 16-bit are converted.

    A video/gif path or a frame folder gives its first frame.
    """
    path = Path(path)
    _check_exists(path, "image")
    if path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES + GIF_SUFFIXES:
        return read_video(path, max_frames=1)[0]
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            # Phone photos store their rotation in EXIF; apply it so the picture is upright.
            image = ImageOps.exif_transpose(image)
            return _pil_to_rgb(image)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from None


def _iter_container(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    import av

    count = 0
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise _no_frames_error(path, type(error).__name__) from None
    try:
        if not container.streams.video:
            raise ValueError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context.width * stream.codec_context.height >= 256 * 256:
            # Frame threads pay off for large frames; for tiny ones their start-up dominates.
            stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except (av.FFmpegError, OSError) as error:
            if count == 0:
                raise _no_frames_error(path, type(error).__name__) from None
            # A truncated recording still has usable frames: keep them, say where it stopped.
            log.warning("%s: decoding stopped after %d frames (%s)", path, count, error)
    finally:
        container.close()
    if count == 0:
        raise _no_frames_error(path)


def _iter_gif(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    # A corrupt header can claim a gigantic canvas; PIL refuses it with DecompressionBombError.
    unreadable = (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        EOFError,
    )
    count = 0
    try:
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                yield _pil_to_rgb(frame)
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
    except unreadable as error:
        if count == 0:
            raise _no_frames_error(path, type(error).__name__) from None
        log.warning("%s: decoding stopped after %d frames (%s)", path, count, error)
    if count == 0:
        raise _no_frames_error(path)


def _iter_folder(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    files = list_frame_files(path)
    if not files:
        raise ValueError(f"{path}: no image frames ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    if max_frames is not None:
        files = files[:max_frames]
    for file in files:
        yield read_image(file)


def iter_video(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Stream frames (uint8 (H, W, 3) RGB) from a video file, gif, frame folder or image.

    The path is checked now (FileNotFoundError / ValueError for an unknown type); decoding
    errors surface on the first next() as ValueError naming the file.
    """
    path = Path(path)
    _check_exists(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if path.is_dir():
        return _iter_folder(path, max_frames)
    suffix = path.suffix.lower()
    if suffix in GIF_SUFFIXES:
        return _iter_gif(path, max_frames)
    if suffix in VIDEO_SUFFIXES:
        return _iter_container(path, max_frames)
    if suffix in IMAGE_SUFFIXES:
        return iter([read_image(path)])
    known = ", ".join(VIDEO_SUFFIXES + GIF_SUFFIXES + IMAGE_SUFFIXES)
    raise ValueError(f"{path}: unknown video type {suffix!r} (expected a folder or {known})")


def read_video(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Whole video -> uint8 (T, H, W, 3) RGB (see iter_video for the accepted sources)."""
    frames = list(iter_video(path, max_frames=max_frames))
    first_shape = frames[0].shape
    for index, frame in enumerate(frames):
        if frame.shape != first_shape:
            raise ValueError(
                f"{path}: frame {index} has shape {frame.shape}, frame 0 has {first_shape}"
            )
    return np.stack(frames)


def video_fps(path: str | Path, default: float = DEFAULT_FPS) -> float:
    """Frame rate stored in a video or gif; `default` for folders, images and unknown rates."""
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if path.is_file() and suffix in VIDEO_SUFFIXES:
        return _container_fps(path, default)
    if path.is_file() and suffix in GIF_SUFFIXES:
        return _gif_fps(path, default)
    return float(default)


def _container_fps(path: Path, default: float) -> float:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return float(default)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except (av.FFmpegError, OSError):
        raise _no_frames_error(path) from None
    return float(rate) if rate else float(default)


def _gif_fps(path: Path, default: float) -> float:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            duration_ms = image.info.get("duration", 0)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise _no_frames_error(path, type(error).__name__) from None
    return 1000.0 / duration_ms if duration_ms else float(default)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    """yuv420p subsamples colour 2x2, so H.264 needs even sizes: repeat the last row/column."""
    pad_rows = frame.shape[0] % 2
    pad_cols = frame.shape[1] % 2
    if not (pad_rows or pad_cols):
        return frame
    return np.pad(frame, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")


class VideoWriter:
    """Incremental writer: ``with VideoWriter(path, fps) as out: out.write(frame)``.

    The target format follows the path (see the module docstring). All frames must share the
    size of the first one.
    """

    def __init__(self, path: str | Path, fps: float = DEFAULT_FPS, crf: int = 18) -> None:
        self.path = Path(path)
        if not fps or fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = float(fps)
        self.crf = int(crf)
        self.count = 0
        self._frame_shape: tuple[int, ...] | None = None
        self._container = None
        self._stream = None
        self._gif_frames: list = []
        suffix = self.path.suffix.lower()
        if suffix in H264_SUFFIXES:
            self._kind = "h264"
        elif suffix in GIF_SUFFIXES:
            self._kind = "gif"
        elif suffix == "":
            self._kind = "folder"
        else:
            raise ValueError(
                f"{self.path}: cannot write {suffix!r} videos "
                f"(use {', '.join(H264_SUFFIXES)}, .gif or a folder path without suffix)"
            )
        check_output(self.path)
        if self._kind == "folder":
            self._prepare_folder()

    def _prepare_folder(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        # Frames left by an earlier, longer write would be read back as part of this video;
        # check_output has refused a folder whose frame files this writer did not write.
        for stale in _frame_files(self.path):
            stale.unlink()
        (self.path / FRAMES_MARKER).write_text("frames written by kp_motion's VideoWriter\n")

    def write(self, frame: np.ndarray) -> None:
        frame = as_rgb_frame(frame, where=f"{self.path} frame {self.count}")
        if self._frame_shape is None:
            self._frame_shape = frame.shape
        elif frame.shape != self._frame_shape:
            raise ValueError(
                f"{self.path}: frame {self.count} has shape {frame.shape}, "
                f"the first frame had {self._frame_shape}"
            )
        if self._kind == "h264":
            self._write_h264(frame)
        elif self._kind == "gif":
            self._gif_frames.append(frame)
        else:
            import cv2

            target = self.path / f"{self.count:06d}.png"
            if not cv2.imwrite(str(target), np.ascontiguousarray(frame[..., ::-1])):
                raise ValueError(f"{target}: could not write the PNG frame")
        self.count += 1

    def _write_h264(self, frame: np.ndarray) -> None:
        import av

        frame = _pad_to_even(frame)
        if self._container is None:
            self._container = av.open(str(self.path), mode="w")
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = None
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.height, self._stream.width = frame.shape[:2]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf), "x264-params": "mbtree=0"}
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def close(self) -> None:
        if self._kind == "h264" and self._container is not None:
            container, self._container = self._container, None
            try:
                if self._stream is not None:  # a stream that failed to open has nothing queued
                    for packet in self._stream.encode():  # flush the encoder's delayed frames
                        container.mux(packet)
            finally:
                container.close()
        elif self._kind == "gif" and self._gif_frames:
            self._save_gif()
            self._gif_frames = []

    def _save_gif(self) -> None:
        from PIL import Image

        images = [Image.fromarray(frame) for frame in self._gif_frames]
        # GIF stores delays in 1/100 s; round to the nearest representable delay.
        duration_ms = max(10, int(round(100.0 / self.fps)) * 10)
        images[0].save(
            self.path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0
        )

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close()


def _frame_files(folder: Path) -> list[Path]:
    return [entry for entry in folder.iterdir() if _FRAME_FILE_PATTERN.match(entry.name)]


def _probe_writable(path: Path) -> None:
    """OSError unless `path` can be opened for writing. A file this creates is removed again;
    an existing file is opened for appending, which changes nothing."""
    existed = path.exists()
    with open(path, "ab"):
        pass
    if not existed:
        path.unlink()


def check_output(path: str | Path) -> None:
    """One readable error (ValueError / FileNotFoundError) unless a VideoWriter could write
    `path`: checked before any work, so that a bad output fails before a long render.

    A video or gif needs an existing, writable parent folder and must not be a folder; a
    frame folder must not be a file, and may only hold NNNNNN.png files a VideoWriter wrote.
    """
    path = Path(path)
    if path.suffix == "":
        _check_frame_folder(path)
        return
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"output folder not found: {parent}")
    if not parent.is_dir():
        raise ValueError(f"{path}: cannot write there, {parent} is a file, not a folder")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name such as {path}.mp4")
    try:
        _probe_writable(path)
    except OSError as error:
        raise ValueError(f"{path}: cannot write ({error.strerror})") from None


def _check_frame_folder(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a folder")
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"{path}: cannot create it, {existing} is a file, not a folder")
    if path.is_dir():
        if _frame_files(path) and not (path / FRAMES_MARKER).is_file():
            raise ValueError(f"{path}: already holds NNNNNN.png frames that kp_motion did not "
                             "write; choose an empty or new folder")
        probe = path / FRAMES_MARKER
    else:
        probe = existing / f".kp_motion-probe-{path.name}" if existing else None
    if probe is not None:
        try:
            _probe_writable(probe)
        except OSError as error:
            raise ValueError(f"{path}: cannot write ({error.strerror})") from None


def write_video(
    path: str | Path, frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS, crf: int = 18
) -> Path:
    """Write uint8 (H, W, 3) RGB frames (an array (T, H, W, 3) or any iterable of frames).

    ``.mp4`` etc. -> libx264 yuv420p at quality `crf` (odd sizes padded by one edge pixel),
    ``.gif`` -> PIL, no suffix -> folder of PNG frames. Returns the path written.
    """
    with VideoWriter(path, fps=fps, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
        if writer.count == 0:
            raise ValueError(f"{path}: no frames to write")
    return Path(path)


def write_image(path: str | Path, frame: np.ndarray) -> Path:
    """Save one uint8 RGB frame (format from the suffix, e.g. .png)."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(as_rgb_frame(frame, where=str(path))).save(path)
    return path


# --------------------------------------------------------------------------------------------
# Resizing and tensors
# --------------------------------------------------------------------------------------------


def resize_frame(frame: np.ndarray, size: int | tuple[int, int], fit: str = "resize") -> np.ndarray:
    """Frame of any shape -> uint8 (size, size, 3) (or (height, width, 3) for a tuple).

    fit="resize" stretches the whole frame; fit="crop" first cuts the largest centred region
    with the target aspect ratio, then resizes (no distortion, borders are lost).
    """
    import cv2

    frame = as_rgb_frame(frame)
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if height < 1 or width < 1:
        raise ValueError(f"resize_frame: size must be positive, got {size}")
    if fit == "crop":
        frame = _centre_crop_to_aspect(frame, width / height)
    elif fit != "resize":
        raise ValueError(f"resize_frame: fit must be 'resize' or 'crop', got {fit!r}")
    if frame.shape[:2] == (height, width):
        return frame.copy()
    shrinking = height < frame.shape[0] or width < frame.shape[1]
    # INTER_AREA averages source pixels when shrinking (no aliasing); bilinear when enlarging.
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def _centre_crop_to_aspect(frame: np.ndarray, aspect: float) -> np.ndarray:
    rows, cols = frame.shape[:2]
    if cols / rows > aspect:
        new_cols = max(1, int(round(rows * aspect)))
        left = (cols - new_cols) // 2
        return frame[:, left : left + new_cols]
    new_rows = max(1, int(round(cols / aspect)))
    top = (rows - new_rows) // 2
    return frame[top : top + new_rows]


def resize_video(
    frames: np.ndarray, size: int | tuple[int, int], fit: str = "resize"
) -> np.ndarray:
    """resize_frame applied to every frame of a (T, H, W, 3) array."""
    return np.stack([resize_frame(frame, size, fit) for frame in frames])


def to_tensor(frames: np.ndarray):
    """uint8 (H, W, 3) or (T, H, W, 3) -> float32 torch tensor (B, 3, H, W) in [0, 1]."""
    import torch

    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"to_tensor: expected uint8 frames, got {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"to_tensor: expected (H, W, 3) or (T, H, W, 3), got {frames.shape}")
    # .float() copies anyway, so going through torch.tensor (a copy) costs nothing extra and
    # accepts read-only arrays (decoded frames, memory maps) without a warning.
    tensor = torch.tensor(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return tensor.float().div_(255.0).contiguous()


def from_tensor(tensor) -> np.ndarray:
    """float (B, 3, H, W) or (3, H, W) in [0, 1] -> uint8 (B, H, W, 3) or (H, W, 3).

    Values outside [0, 1] are clipped; rounding is to the nearest level.
    """
    import torch

    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(np.asarray(tensor))
    if tensor.ndim not in (3, 4) or tensor.shape[-3] != 3:
        raise ValueError(
            f"from_tensor: expected (B, 3, H, W) or (3, H, W), got {tuple(tensor.shape)}"
        )
    pixels = tensor.detach().to("cpu", torch.float32).clamp(0.0, 1.0).mul(255.0).round()
    pixels = pixels.to(torch.uint8).movedim(-3, -1)
    return np.ascontiguousarray(pixels.numpy())
