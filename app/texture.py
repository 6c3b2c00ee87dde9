"""FrameTexture: shows uint8 images through one dearpygui raw texture, double-buffered, no per-frame allocation."""

import numpy as np


def fit_size(image_w, image_h, area_w, area_h):
    """The on-screen size of an image in an area: integer zoom when it fits, else scaled down to fit."""
    if image_w <= 0 or image_h <= 0:
        return 0, 0
    zoom = min(area_w // image_w, area_h // image_h)
    if zoom >= 1:
        return image_w * zoom, image_h * zoom
    scale = min(area_w / image_w, area_h / image_h)
    return max(1, int(image_w * scale)), max(1, int(image_h * scale))


DISPLAY_FILTERS = {"auto": "Smooth above 4x, pixel-exact below", "smooth": "Smooth", "pixel": "Pixel-exact"}
SMOOTH_ABOVE_ZOOM = 4  # "auto": a 64 px image at 13x is a mosaic of blocks in nearest sampling


def wants_nearest(mode, zoom):
    """Whether the picture is magnified pixel-exact for a display filter mode at a zoom factor."""
    if mode == "pixel":
        return True
    if mode == "smooth":
        return False
    return zoom <= SMOOTH_ABOVE_ZOOM


def to_rgb_uint8(image):
    """Any HxW, HxWx1, HxWx3 or HxWx4 uint8 image as HxWx3 (grey repeated, alpha dropped)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"frame image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"frame image must be HxWxC with C in 1, 3, 4; got shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image[:, :, :3]


class FrameTexture:
    """A raw float RGB texture with two buffers: fill the hidden one, then point the texture at it.

    dearpygui keeps a pointer to the array it was given and uploads it every frame, so
    writing into the shown buffer would tear; and it silently reads past the end of a
    wrong-sized or wrong-typed array, so every buffer here is checked float32, C-contiguous.
    """

    def __init__(self, dpg, registry, width=64, height=64):
        self.dpg = dpg
        self.registry = registry
        self.tag = None
        self.width = self.height = 0
        self._buffers = []
        self._front = 0
        self.uploads = 0
        self.foreign_gl_names = None  # GL textures that are not ours (found at the first scan)
        self.crisp_pending = False  # the magnification filter is to be (re)applied
        self.nearest = True  # magnify with whole pixels (pixel-exact) or smoothly (linear)
        self._allocate(width, height)

    def _allocate(self, width, height):
        self.width, self.height = width, height
        self._buffers = [np.zeros(width * height * 3, dtype=np.float32) for _ in range(2)]
        self._front = 0
        old = self.tag
        self.crisp_pending = True  # its GL texture exists after the next drawn frame
        self.tag = self.dpg.add_raw_texture(
            width, height, default_value=self._buffers[0], format=self.dpg.mvFormat_Float_rgb,
            parent=self.registry)
        return old

    def show(self, image):
        """Display an HxWxC uint8 image. Returns the old texture tag when the size changed (caller rebinds)."""
        rgb = to_rgb_uint8(image)
        height, width = rgb.shape[:2]
        old_tag = None
        if (width, height) != (self.width, self.height):
            old_tag = self._allocate(width, height)
        back = self._buffers[1 - self._front]
        np.multiply(rgb.reshape(-1), np.float32(1 / 255), out=back)
        assert back.dtype == np.float32 and back.flags.c_contiguous and back.size == width * height * 3
        self.dpg.set_value(self.tag, back)
        self._front = 1 - self._front
        self.uploads += 1
        return old_tag

    def set_nearest(self, nearest):
        """Pixel-exact (nearest) or smooth (linear) magnification, applied between frames."""
        if nearest != self.nearest:
            self.nearest = nearest
            self.crisp_pending = True

    def make_crisp(self):
        """Magnify with nearest-neighbour sampling (self.nearest), so an integer zoom shows whole
        pixels, or linear sampling, which shows a small image enlarged many times smoothly.

        dearpygui creates textures with linear filtering and does not tell their GL names; ours
        are the textures of our size, less those of other sizes seen at the first scan (the
        font atlas). Needs the GL context, which is current on the main thread between frames.
        Returns True once done (or when it cannot be done: the picture is then only softer).
        """
        self.crisp_pending = False
        try:
            from OpenGL import GL

            first_scan = self.foreign_gl_names is None
            if first_scan:
                self.foreign_gl_names = set()
            for name in range(1, 1024):
                if name in self.foreign_gl_names or not GL.glIsTexture(name):
                    continue
                GL.glBindTexture(GL.GL_TEXTURE_2D, name)
                size = (int(GL.glGetTexLevelParameteriv(GL.GL_TEXTURE_2D, 0, GL.GL_TEXTURE_WIDTH)),
                        int(GL.glGetTexLevelParameteriv(GL.GL_TEXTURE_2D, 0, GL.GL_TEXTURE_HEIGHT)))
                if size == (self.width, self.height):
                    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER,
                                       GL.GL_NEAREST if self.nearest else GL.GL_LINEAR)
                elif first_scan:
                    self.foreign_gl_names.add(name)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        except Exception:  # no PyOpenGL or no context: linear filtering stays
            return False
        return True

    def shown_pixels(self):
        """The uint8 HxWx3 image currently in the texture (for tests and screenshots)."""
        front = self._buffers[self._front]
        return np.rint(front * 255).astype(np.uint8).reshape(self.height, self.width, 3)
