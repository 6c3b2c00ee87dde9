"""Video writers: MP4 (H.264 through imageio-ffmpeg) and GIF (pillow), fed one RGB frame at a time."""

from pathlib import Path

import numpy as np

VIDEO_FORMATS = ("mp4", "gif")


def video_format(path):
    """'mp4' or 'gif', from the file name's suffix."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("mp4", "m4v", "mov"):
        return "mp4"
    if suffix == "gif":
        return "gif"
    raise ValueError(f"{path}: unknown video type {suffix!r}; use .mp4 or .gif")


def pad_to_even(image):
    """Repeat the last row/column where a size is odd: H.264 in yuv420p needs even sizes.

    imageio's default (macro_block_size=16) would rescale the picture instead; padding by
    at most one pixel keeps every pixel as rendered.
    """
    height, width = image.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if not (pad_h or pad_w):
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


class VideoWriter:
    """Writes frames to one file; close() finishes it. The caller owns the file's fate
    (renderer/export.py writes to a temporary name and renames it when done)."""

    def __init__(self, path, fps=30, quality=8, fmt=None):
        self.path = str(path)
        self.fps = float(fps)
        self.quality = quality
        self.format = fmt or video_format(path)
        if self.format not in VIDEO_FORMATS:
            raise ValueError(f"unknown video format {self.format!r}")
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        self.frames_written = 0
        self._size = None
        self._ffmpeg = None
        self._gif_frames = []

    def append(self, image):
        """Add one frame, uint8 [H, W, 3]; every frame must have the first frame's size."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"a video frame must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
        if self._size is None:
            self._size = image.shape[:2]
        elif image.shape[:2] != self._size:
            raise ValueError(f"frame size {image.shape[:2]} differs from the first frame's {self._size}")
        if self.format == "mp4":
            self._append_mp4(pad_to_even(image))
        else:
            self._gif_frames.append(image.copy())
        self.frames_written += 1

    def _append_mp4(self, image):
        if self._ffmpeg is None:
            import imageio.v2 as imageio

            self._ffmpeg = imageio.get_writer(
                self.path,
                format="FFMPEG",  # explicit: the temporary file name may not end in .mp4
                mode="I",
                fps=self.fps,
                codec="libx264",
                quality=self.quality,  # 1..10, imageio turns it into x264's crf
                pixelformat="yuv420p",  # what every player decodes
                macro_block_size=1,  # sizes are made even by pad_to_even, never rescaled
                output_params=["-f", "mp4"],
                ffmpeg_log_level="error",
            )
        self._ffmpeg.append_data(image)

    def close(self):
        """Finish the file (flushes ffmpeg, or writes the whole GIF)."""
        if self.format == "mp4":
            if self._ffmpeg is not None:
                writer, self._ffmpeg = self._ffmpeg, None
                writer.close()
            elif self.frames_written == 0:
                raise ValueError("no frames to write")
            return
        self._close_gif()

    def _close_gif(self):
        from PIL import Image

        if not self._gif_frames:
            raise ValueError("no frames to write")
        pictures = [Image.fromarray(frame) for frame in self._gif_frames]
        # GIF delays are whole hundredths of a second.
        duration_ms = max(10, int(round(100.0 / self.fps)) * 10)
        pictures[0].save(
            self.path,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=duration_ms,
            loop=0,
            optimize=False,
        )
        self._gif_frames = []

    def abort(self):
        """Stop without finishing; the (partial) file is the caller's to delete."""
        self._gif_frames = []
        if self._ffmpeg is not None:
            writer, self._ffmpeg = self._ffmpeg, None
            try:
                writer.close()
            except Exception:  # an aborted write may leave ffmpeg unhappy; the file goes anyway
                pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def read_video(path):
    """All frames of a video file as uint8 [H, W, 3] arrays (for tests and checks)."""
    if video_format(path) == "gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as picture:
            return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(picture)]
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path), format="FFMPEG")
    try:
        return [np.asarray(frame)[..., :3] for frame in reader]
    finally:
        reader.close()
