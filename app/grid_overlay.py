"""GridOverlay: gaps between the tiles of a feature-map grid, and each tile's channel number, drawn over the picture."""

import math

GAP_COLOR = (16, 17, 20)  # the image area's background: tiles read as separate pictures
LABEL_COLOR = (255, 220, 120)
LABEL_MIN_TILE = 28  # screen pixels a tile needs for its channel number to fit without hiding it


def grid_shape(count):
    """(rows, cols) of the renderer's grid of `count` channels: near-square, row by row."""
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


class GridOverlay:
    """A drawlist laid over the image widget, drawn only while a grid of channels is shown."""

    def __init__(self, dpg, parent):
        self.dpg = dpg
        self.tag = dpg.add_drawlist(1, 1, tag="image_overlay", parent=parent, pos=(0, 0), show=False)
        self.drawn = None

    def hovered(self):
        """The mouse is on the picture under the overlay (which covers the image area)."""
        if not self.dpg.is_item_shown(self.tag) or not self.dpg.is_item_hovered(self.tag):
            return False
        (x0, y0), (x1, y1) = self.dpg.get_item_rect_min("image"), self.dpg.get_item_rect_max("image")
        x, y = self.dpg.get_mouse_pos(local=False)
        return x0 <= x < x1 and y0 <= y < y1

    def place(self, frame, area_size, size):
        """Draw over the image (its on-screen size `size`) when the frame shows a grid of channels.
        The drawlist covers the whole area at its origin and draws at the image's offset, read
        from both items' screen rects (one frame late after a move)."""
        request = getattr(frame, "request", None)
        grid = request is not None and request.layer is not None and request.channel_mode == "grid"
        image = getattr(frame, "image", None) if grid else None
        dpg = self.dpg
        image_min, overlay_min = dpg.get_item_rect_min("image"), dpg.get_item_rect_min(self.tag)
        offset = (image_min[0] - overlay_min[0], image_min[1] - overlay_min[1])
        key = (request, tuple(area_size), tuple(size), offset) if image is not None else None
        if key == self.drawn:
            return
        self.drawn = key
        dpg.delete_item(self.tag, children_only=True)
        if key is None:
            dpg.configure_item(self.tag, show=False)
            return
        dpg.configure_item(self.tag, show=True, width=max(1, int(area_size[0])), height=max(1, int(area_size[1])))
        self.draw_grid(frame, request, offset, size)

    def draw_grid(self, frame, request, offset, size):
        dpg, parent = self.dpg, self.tag
        (ox, oy), (width, height) = offset, size
        count = min(request.grid_channels, image_channels(frame) - request.channel)
        rows, cols = grid_shape(max(1, count))
        tile_w, tile_h = width / cols, height / rows
        gap = 2 if min(tile_w, tile_h) >= 12 else 1
        for col in range(1, cols):
            x = ox + col * tile_w
            dpg.draw_line((x, oy), (x, oy + height), color=GAP_COLOR, thickness=gap, parent=parent)
        for row in range(1, rows):
            y = oy + row * tile_h
            dpg.draw_line((ox, y), (ox + width, y), color=GAP_COLOR, thickness=gap, parent=parent)
        if min(tile_w, tile_h) < LABEL_MIN_TILE:
            return
        for k in range(count):
            x, y = ox + (k % cols) * tile_w + 3, oy + (k // cols) * tile_h + 2
            label = str(request.channel + k)
            dpg.draw_rectangle((x - 1, y), (x + 7 * len(label) + 1, y + 13), color=(0, 0, 0, 150),
                               fill=(0, 0, 0, 150), parent=parent)
            dpg.draw_text((x, y), label, size=13, color=LABEL_COLOR, parent=parent)


def image_channels(frame):
    """The shown layer's channel count, from the frame's layer list (else enough for the request)."""
    request = frame.request
    for name, shape, *_ in getattr(frame, "layers", None) or []:
        if name == request.layer and len(shape) >= 3:
            return int(shape[-3])
    return request.channel + request.grid_channels
