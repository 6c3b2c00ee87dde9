"""The picture on screen: its texture, the frames it shows, their render time and the UI frame times."""

from collections import deque

from app.texture import FrameTexture


class Picture:
    """What the image area shows and what the Performance and Drag panels read of it."""

    def __init__(self, dpg, texture_registry, on_pixels=lambda: None):
        self.dpg = dpg
        self.texture_registry = texture_registry
        self.texture = FrameTexture(dpg, texture_registry, 64, 64)
        self.on_pixels = on_pixels  # called after show_pixels (the tests' observer keeps a copy)
        self.last_frame = None
        self.last_full_frame = None
        self.render_ms = None  # mapping plus synthesis of the last whole pass
        self.frame_times = deque(maxlen=240)  # seconds between UI frames
        self.gl_info = ("?", "?")  # (vendor, renderer) of the OpenGL that draws the window
        self.tool_active = False  # True while a panel's tool takes clicks on the image

    def show(self, image):
        """Upload an image into the texture (dearpygui swaps to the new buffer's tag)."""
        old = self.texture.show(image)
        if self.texture.uploads == 1:
            self.dpg.configure_item("image", show=True)
            self.dpg.configure_item("welcome", show=False)
        if old is not None:
            self.dpg.configure_item("image", texture_tag=self.texture.tag)
            self.dpg.delete_item(old)

    def show_pixels(self, image):
        """Show an image that is no render of the state (a drag's frames); the next frame replaces it."""
        self.show(image)
        self.on_pixels()
