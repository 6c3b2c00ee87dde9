"""Video writers: MP4 (H.264 through imageio-ffmpeg) and GIF (pillow), fed one RGB frame at a time."""

import math
from pathlib import Path

import numpy as np

VIDEO_FORMATS = ("mp4", "gif")
# yuv444p keeps full colour resolution: small renders (64-256 px) of GAN textures lose ~10 dB
# PSNR to 4:2:0 chroma subsampling (28 dB vs 39 dB on the 64 px fixtures at quality 8), and
# it is what ffmpeg itself picks for RGB input. yuv420p is the choice for players that need
# it (Safari/QuickTime, phones, some browsers).
PIXEL_FORMATS = ("yuv444p", "yuv420p")


def video_format(path):
    """'mp4' or 'gif', from the file name's suffix."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("mp4", "m4v", "mov"):
        return "mp4"
    if suffix == "gif":
        return "gif"
    raise ValueError(f"{path}: unknown video type {suffix!r}; use .mp4 or .gif")


def gif_delays_cs(fps, count):
    """Each frame's GIF delay in hundredths of a second (the format's unit), chosen so that the
    delays add up to the frame rate over time: 30 fps is 3, 4, 3, 3, 4, 3, ... cs (33.3 ms on
    average), not 3 cs each (33.3 fps). At least 2 cs: players slow shorter delays to 10 cs."""
    step = 100.0 / float(fps)
    return [max(2, round((i + 1) * step) - round(i * step)) for i in range(count)]


def check_video_settings(fps, quality):
    """(fps, quality) as floats, or ValueError naming the field: fps a finite number > 0,
    quality a finite number in 0-10 (imageio's scale; 10 is lossless H.264)."""
    try:
        fps_value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps: {fps!r} is not a number") from None
    if not math.isfinite(fps_value) or fps_value <= 0:
        raise ValueError(f"fps: must be a number above 0, got {fps!r}")
    try:
        quality_value = float(quality)
    except (TypeError, ValueError):
        raise ValueError(f"quality: {quality!r} is not a number") from None
    if not math.isfinite(quality_value) or not 0 <= quality_value <= 10:
        raise ValueError(f"quality: must be a number from 0 to 10, got {quality!r}")
    return fps_value, quality_value


def pad_to_even(image):
    """Repeat the last row/column where a size is odd: H.264 in yuv420p needs even sizes
    (yuv444p does not).

    imageio's writer (macro_block_size=16) would rescale the picture instead; padding by
    at most one pixel keeps every pixel as rendered.
    """
    height, width = image.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if not (pad_h or pad_w):
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


class VideoWriter:
    """Writes frames to one file; close() finishes it. The caller owns the file's fate
    (renderer/export_jobs.py's atomic_output writes to a temporary name and renames it when done)."""

    def __init__(self, path, fps=30, quality=8, fmt=None, pixel_format="yuv444p"):
        self.path = str(path)
        self.fps, self.quality = check_video_settings(fps, quality)
        if pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"pixel format {pixel_format!r}: use one of {', '.join(PIXEL_FORMATS)}")
        self.pixel_format = pixel_format
        self.format = fmt or video_format(path)
        if self.format not in VIDEO_FORMATS:
            raise ValueError(f"unknown video format {self.format!r}")
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
            self._append_mp4(pad_to_even(image) if self.pixel_format == "yuv420p" else image)
        else:
            self._gif_frames.append(image.copy())
        self.frames_written += 1

    def _append_mp4(self, image):
        if self._ffmpeg is None:
            self._ffmpeg = self._start_ffmpeg(image.shape[1], image.shape[0])
        try:
            self._ffmpeg.stdin.write(np.ascontiguousarray(image).tobytes())
        except OSError:
            # ffmpeg died (full disk, unwritable file...); its own message says why.
            raise self._ffmpeg_failure() from None

    def _start_ffmpeg(self, width, height):
        """ffmpeg (the binary inside the imageio-ffmpeg wheel) reading raw RGB on stdin.

        Run directly rather than through imageio's writer because that writer does not
        report ffmpeg's exit status, so a full disk would pass as a finished video.
        """
        import subprocess
        import tempfile

        import imageio_ffmpeg

        # imageio's scale: quality 10 is crf 0 (lossless), quality 0 is crf 51.
        crf = int(round((1.0 - min(max(float(self.quality), 0.0), 10.0) / 10.0) * 51))
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y", "-loglevel", "error", "-nostdin",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{self.fps}",
            "-i", "-",
            "-an", "-c:v", "libx264", "-crf", str(crf),
            "-pix_fmt", self.pixel_format,
            "-movflags", "+faststart",
            "-f", "mp4",  # explicit: the temporary file name is not the final one
            self.path,
        ]
        self._ffmpeg_log = tempfile.TemporaryFile()  # a file, not a pipe: no deadlock on chatter
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._ffmpeg_log)

    def _ffmpeg_failure(self):
        """Wait for ffmpeg and describe why it failed, as an OSError (errno set when known)."""
        import errno

        process, self._ffmpeg = self._ffmpeg, None
        try:
            process.stdin.close()
        except OSError:
            pass
        process.wait()
        self._ffmpeg_log.seek(0)
        text = self._ffmpeg_log.read().decode("utf-8", "replace").strip()
        self._ffmpeg_log.close()
        lines = [line for line in text.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"ffmpeg exited with status {process.returncode}"
        if "No space left" in text:
            return OSError(errno.ENOSPC, "No space left on device")
        if "Permission denied" in text:
            return OSError(errno.EACCES, "Permission denied")
        if "Read-only file system" in text:
            return OSError(errno.EROFS, "Read-only file system")
        return OSError(f"video encoder failed: {reason}")

    def close(self):
        """Finish the file (flushes ffmpeg, or writes the whole GIF)."""
        if self.format == "mp4":
            if self._ffmpeg is None:
                if self.frames_written == 0:
                    raise ValueError("no frames to write")
                return
            try:
                self._ffmpeg.stdin.close()
            except OSError:
                pass
            if self._ffmpeg.wait() != 0:
                raise self._ffmpeg_failure()
            self._ffmpeg = None
            self._ffmpeg_log.close()
            return
        self._close_gif()

    def _close_gif(self):
        from PIL import Image

        if not self._gif_frames:
            raise ValueError("no frames to write")
        pictures = [Image.fromarray(frame) for frame in self._gif_frames]
        durations_ms = [10 * cs for cs in gif_delays_cs(self.fps, len(pictures))]
        pictures[0].save(
            self.path,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=durations_ms,
            loop=0,
            optimize=False,
        )
        self._gif_frames = []

    def abort(self):
        """Stop without finishing; the (partial) file is the caller's to delete."""
        self._gif_frames = []
        if self._ffmpeg is not None:
            process, self._ffmpeg = self._ffmpeg, None
            process.kill()  # the partial file is deleted by the caller; no need to finish it
            process.wait()
            self._ffmpeg_log.close()

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
