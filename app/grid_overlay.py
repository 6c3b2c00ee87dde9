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
        return self.dpg.is_item_shown(self.tag) and self.dpg.is_item_hovered(self.tag)

    def place(self, frame, pos, size):
        request = getattr(frame, "request", None)
        grid = request is not None and request.layer is not None and request.channel_mode == "grid"
        image = getattr(frame, "image", None) if grid else None
        key = (request, tuple(pos), tuple(size)) if image is not None else None
        if key == self.drawn:
            return
        self.drawn = key
        dpg = self.dpg
        dpg.delete_item(self.tag, children_only=True)
        if key is None:
            dpg.configure_item(self.tag, show=False)
            return
        width, height = size
        dpg.configure_item(self.tag, show=True, width=max(1, width), height=max(1, height))
        dpg.set_item_pos(self.tag, list(pos))
        count = min(request.grid_channels, image_channels(frame) - request.channel)
        rows, cols = grid_shape(max(1, count))
        tile_w, tile_h = width / cols, height / rows
        gap = 2 if min(tile_w, tile_h) >= 12 else 1
        for col in range(1, cols):
            dpg.draw_line((col * tile_w, 0), (col * tile_w, height), color=GAP_COLOR, thickness=gap, parent=self.tag)
        for row in range(1, rows):
            dpg.draw_line((0, row * tile_h), (width, row * tile_h), color=GAP_COLOR, thickness=gap, parent=self.tag)
        if min(tile_w, tile_h) < LABEL_MIN_TILE:
            return
        for k in range(count):
            x, y = (k % cols) * tile_w + 3, (k // cols) * tile_h + 2
            label = str(request.channel + k)
            dpg.draw_rectangle((x - 1, y), (x + 7 * len(label) + 1, y + 13), color=(0, 0, 0, 150),
                               fill=(0, 0, 0, 150), parent=self.tag)
            dpg.draw_text((x, y), label, size=13, color=LABEL_COLOR, parent=self.tag)


def image_channels(frame):
    """The shown layer's channel count, from the frame's layer list (else enough for the request)."""
    request = frame.request
    for name, shape, *_ in getattr(frame, "layers", None) or []:
        if name == request.layer and len(shape) >= 3:
            return int(shape[-3])
    return request.channel + request.grid_channels
