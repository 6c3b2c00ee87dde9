"""The Directions panel in the real window under Xvfb: a SeFa direction, a StyleSpace channel slider (search,
find from examples, undo) and a direction learned from images labelled in the window, then a sweep grid."""

import time

import numpy as np
import pytest
from PIL import Image

from gui_driver import laid_out_app, missing_tools
from test_gui import centre, headless_render, image_on_screen, screen_pos, settled_frame, shown_image, toggle_panels, \
    type_into

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")
GLASSES_EXAMPLES = "5,7,15,16,22,24,29,31,33"  # default-model seeds wearing glasses (README)


@pytest.fixture(scope="module")
def app(screen, tmp_path_factory):
    """The window on the embedded default model."""
    with laid_out_app(screen, tmp_path_factory.mktemp("gui_directions")) as app:
        yield app


@pytest.fixture(scope="module")
def headless():
    from renderer.renderer import Renderer

    return Renderer(device="cpu")


def drag_slider(app, name, start, end):
    x0, y0, x1, y1 = screen_pos(app.wait_for_item(name), name)
    y = (y0 + y1) / 2
    app.screen.drag(x0 + (x1 - x0) * start, y, x0 + (x1 - x0) * end, y, steps=8, pause=0.05)
    return settled_frame(app)


def wait_status(app, words, after, timeout=60):
    return app.wait_for(lambda ev: [e for e in ev if e["event"] == "status" and e["time"] > after
                                    and words in e["text"]], timeout, f"status '{words}'")[0]


def click(app, name):
    app.screen.click(*centre(screen_pos(app.wait_for_item(name), name)))


def test_sefa_stylespace_and_learned_directions(app, headless, tmp_path):
    from renderer import directions
    from renderer.request import RenderRequest

    opened = app.rects()["opened"]
    folded = [h for h in ("header_LatentPanel", "header_MixingPanel", "header_TruncationPanel", "header_LayersPanel")
              if opened.get(h)]
    toggle_panels(app, *folded, "header_VectorsPanel", "header_DirectionsPanel")
    base = RenderRequest()
    _, G = headless.load(base)

    # SeFa: the strongest direction of every layer, added and dragged: w_offset is strength x the closed form.
    click(app, "sefa_add")
    last, values = drag_slider(app, "direction_0", 0.5, 0.75)
    name, strength = values["directions"][0][:2]
    assert name == "SeFa0 all" and strength > 0.5, values["directions"][0][:3]
    expected = strength * directions.sefa_rows(G.synthesis, "all", 0)
    np.testing.assert_allclose(np.asarray(last["request"]["w_offset"]), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(shown_image(last), headless_render(last["request"], tmp_path))
    sefa_shot, _ = image_on_screen(app, tmp_path, "sefa")
    click(app, "direction_remove_0")
    toggle_panels(app, "header_VectorsPanel")

    # StyleSpace: a channel typed into the search box, its slider dragged: the request's style offset is
    # strength x that channel's std, and the picture is the headless one. Undo takes the drag back.
    type_into(app, "style_search", "b64.conv0:31")
    last, values = drag_slider(app, "style_channel_0", 0.5, 0.8)
    layer, channel, strength, unit = values["style_channels"][0]
    assert (layer, channel) == ("b64.conv0", 31) and strength > 3, values["style_channels"]
    assert np.isclose(unit, directions.style_channel_std(headless, base, layer, channel), rtol=1e-5)
    np.testing.assert_allclose(last["request"]["style_offsets"][0][2], strength * unit, rtol=1e-6)
    assert last["request"]["w_offset"] is None
    np.testing.assert_array_equal(shown_image(last), headless_render(last["request"], tmp_path))
    style_shot, _ = image_on_screen(app, tmp_path, "stylespace")
    count = len(app.frames())
    app.screen.click(*centre(screen_pos(app.rects(), "image")))
    app.screen.key("ctrl+z")
    undone = app.wait_for_frame(count, lambda f: f["request"]["style_offsets"] == [])
    assert np.abs(shown_image(undone).astype(int) - shown_image(last).astype(int)).max() > 0
    app.screen.key("ctrl+y")
    app.wait_for_frame(len(app.frames()) - 1, lambda f: f["request"]["style_offsets"] == last["request"]["style_offsets"])

    # Find from examples: seeds wearing glasses; the first result, clicked, becomes a slider.
    type_into(app, "style_examples", GLASSES_EXAMPLES)
    click(app, "style_find")
    best = directions.example_channels(headless, base, [int(s) for s in GLASSES_EXAMPLES.split(",")], 1)[0]
    click(app, "style_found_0")
    app.wait_for_item("style_channel_1")
    settled, values = settled_frame(app)
    assert [tuple(c[:2]) for c in values["style_channels"]] == [("b64.conv0", 31), best[:2]]
    click(app, "style_remove_1")
    click(app, "style_remove_0")
    app.wait_for_frame(len(app.frames()) - 1, lambda f: f["request"]["style_offsets"] == [])
    for picture in (sefa_shot, style_shot):
        assert picture.std() > 10


def test_a_direction_learned_from_images_labelled_in_the_window(app, headless, tmp_path):
    from renderer import directions
    from renderer.request import RenderRequest

    opened = app.rects()["opened"]
    wanted = {"header_LatentPanel": False, "header_MixingPanel": False, "header_TruncationPanel": False,
              "header_LayersPanel": False, "header_VectorsPanel": False, "header_DirectionsPanel": True}
    toggle_panels(app, *[h for h, want in wanted.items() if bool(opened.get(h)) != want])
    # Learned: of seeds 0-9, the three brightest labelled positive and the three darkest negative, one
    # image at a time as a person would; Fit adds a direction that brightens the image.
    light = {seed: float(headless.render(RenderRequest(seeds=seed)).image.mean()) for seed in range(10)}
    ranked = sorted(light, key=light.get)
    labels = {**{s: "learn_positive" for s in ranked[-3:]}, **{s: "learn_negative" for s in ranked[:3]}}
    for seed, button in sorted(labels.items()):
        app.screen.click(*centre(screen_pos(app.rects(), "image")))
        app.screen.key("Home")
        for _ in range(seed):
            app.screen.key("Right")
        app.wait_for_frame(len(app.frames()) - 1, lambda f, s=seed: f["request"]["seeds"] == [[s, 1.0]])
        now = time.time()
        click(app, button)
        wait_status(app, f"example: {seed}", now)
    now = time.time()
    click(app, "learn_fit")
    wait_status(app, "direction added: learned 1 (3+/3-)", now)
    toggle_panels(app, "header_DirectionsPanel", "header_VectorsPanel")
    before = shown_image(app.frames()[-1])
    last, values = drag_slider(app, "direction_0", 0.5, 0.85)
    name, strength = values["directions"][0][:2]
    assert name.startswith("learned 1") and strength > 2, values["directions"][0][:3]
    image_ws = {s: directions.image_w_row(headless, RenderRequest(seeds=s)) for s in labels}
    normal = directions.fit_direction([image_ws[s] for s in ranked[-3:]], [image_ws[s] for s in ranked[:3]])
    np.testing.assert_allclose(np.asarray(last["request"]["w_offset"])[0], strength * normal, rtol=0, atol=1e-4)
    assert shown_image(last).mean() > before.mean() + 2, "the learned direction brightens the image"
    learned_shot, shot = image_on_screen(app, tmp_path, "learned")
    Image.fromarray(shot).save(tmp_path / "window_learned.png")

    # The sweep grid of the learned direction: two seeds, five steps, a PNG in the export folder.
    toggle_panels(app, "header_VectorsPanel", "header_DirectionsPanel")
    type_into(app, "edit_grid_seeds", "3,8")
    now = time.time()
    click(app, "edit_grid")
    saved = wait_status(app, "saved ", now, timeout=120)
    path = saved["text"].split("saved ", 1)[1].strip()
    grid = np.asarray(Image.open(path).convert("RGB"))
    assert grid.shape == (2 * 64, 5 * 64, 3), grid.shape
    left, right = grid[:64, :64].astype(float).mean(), grid[:64, -64:].astype(float).mean()
    assert right > left, "the grid's columns run from the darker to the brighter edit"
    Image.fromarray(grid).save(tmp_path / "sweep_grid.png")
    assert learned_shot.std() > 10
