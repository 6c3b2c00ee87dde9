"""What a new user meets in the real window (Xvfb, xdotool): file dialogs, the default model, mixing, noise, layout, idle CPU."""

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from gui_driver import VirtualScreen, laid_out_app, missing_tools
from test_gui import centre, screen_pos, type_into

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (scripts/system_deps.sh)")
SHOTS = Path(os.environ.get("STYLESCOPE_SHOTS") or Path(tempfile.gettempdir()) / "stylescope_gui_ux")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    (home / "Pictures").mkdir()
    return home


@pytest.fixture(scope="module")
def app(screen, fixtures_dir, tmp_path_factory, home):
    """The window on NVIDIA's StyleGAN2-ADA fixture, as a new user has it: a home with a Pictures
    folder, no settings yet, no export folder forced."""
    workdir = tmp_path_factory.mktemp("gui_ux")
    env = {"HOME": str(home), "STYLESCOPE_SAVE_DIR": ""}
    with laid_out_app(screen, workdir, pkl=fixtures_dir / "sg2ada_64.pkl", extra_env=env, display_filter=None) as app:
        yield app


def shot(app, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)
    return app.screen.screenshot(SHOTS / f"{name}.png")


def click(app, name, after_time=0.0):
    rects = app.wait_for_item(name, after_time=after_time)
    app.screen.click(*centre(screen_pos(rects, name)))


def wait_for_dialog(app, tag, after_time):
    return app.wait_for(lambda ev: [e for e in ev if e["event"] == "dialog" and e["tag"] == tag
                                    and e["time"] > after_time], 30, f"{tag} to open")[-1]


def wait_for_status(app, predicate, after_time, what):
    return app.wait_for(lambda ev: [e for e in ev if e["event"] == "status" and e["time"] > after_time
                                    and predicate(e["text"])], 60, what)[-1]


def test_session_dialogs_take_typed_full_paths_and_remember_the_folder(app, home, tmp_path):
    from test_gui import toggle_panels

    toggle_panels(app, "header_LatentPanel", "header_MixingPanel", "header_TruncationPanel", "header_ExportPanel")
    started = time.time()
    click(app, "session_save")
    dialog = wait_for_dialog(app, "session_save_dialog", started)
    assert dialog["title"] == "Save the session" and dialog["name"] == "session.json"
    assert dialog["folder"] == str(home / "Pictures"), "a new user's first folder is ~/Pictures, not the cwd"
    folder = tmp_path / "sessions"
    folder.mkdir()
    target = folder / "mine.json"
    app.wait_for_item("session_save_dialog_name", after_time=dialog["time"])
    shot(app, "session_save_dialog")
    type_into(app, "session_save_dialog_name", str(target))  # a full path, typed: not glued onto ~/Pictures
    saved = wait_for_status(app, lambda t: t == f"saved session {target}", started, "the session saved")
    assert json.loads(target.read_text())["version"] == 1

    started = time.time()
    click(app, "session_save", after_time=saved["time"])  # once the window is laid out without the dialog
    dialog = wait_for_dialog(app, "session_save_dialog", started)
    assert dialog["folder"] == str(folder), "the folder used last"
    app.wait_for_item("session_save_dialog_name", after_time=dialog["time"])
    type_into(app, "session_save_dialog_name", str(tmp_path / "missing" / "x.json"))
    time.sleep(0.5)
    assert not (tmp_path / "missing").exists()
    click(app, "session_save_dialog_cancel")

    started = time.time()
    click(app, "session_load", after_time=started)
    dialog = wait_for_dialog(app, "session_load_dialog", started)
    assert dialog["title"] == "Load a session" and dialog["name"] == "" and dialog["folder"] == str(folder)
    app.wait_for_item("session_load_dialog_name", after_time=dialog["time"])
    type_into(app, "session_load_dialog_name", str(target))
    wait_for_status(app, lambda t: t.startswith(f"loaded session {target}"), started, "the session loaded")
    settings = json.loads((app.workdir / "config" / "settings.json").read_text())
    assert settings["folders"]["session"] == str(folder)
    assert "Traceback" not in app.output(), app.output()[-3000:]
    assert not app.events("exception")
    toggle_panels(app, "header_ExportPanel", "header_LatentPanel", "header_MixingPanel", "header_TruncationPanel")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_window_waits_for_input_and_wakes_on_a_key(app):
    # Nothing happens: the loop waits for input instead of drawing (bench/idle_cpu.py has the figure).
    started = time.time()
    app.screen.move(5, 5)
    app.wait_for(lambda ev: [e for e in ev if e["event"] == "wait_for_input" and e["on"] and e["time"] > started],
                 30, "the window to wait for input")
    before = cpu_seconds(app.process.pid)
    time.sleep(3)
    used = cpu_seconds(app.process.pid) - before
    assert used < 0.3, f"an idle window used {used:.2f} s of CPU in 3 s"
    frames = len(app.frames())
    seed = app.frames()[-1]["request"]["seeds"][0][0]
    click(app, "image")  # focus the window, not a text field
    app.screen.key("Right")
    frame = app.wait_for_frame(after=frames, predicate=lambda f: f["request"]["seeds"][0][0] == seed + 1)
    assert frame, "the key woke the window and the next seed came"


def test_a_display_that_cannot_make_a_window_gives_one_line_not_an_abort(fixtures_dir, tmp_path):
    # An X server without GLX: GLFW cannot create the window, and dearpygui would abort the process
    # (glfwSetWindowPos: Assertion window != NULL, exit 134). The child-process probe says why.
    import subprocess
    import sys

    from gui_driver import ROOT, free_display

    number = free_display()
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "800x600x24", "-nolisten", "tcp",
                               "-extension", "GLX"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        env = {**os.environ, "DISPLAY": f":{number}", "PYTHONPATH": str(ROOT)}
        result = subprocess.run([sys.executable, str(ROOT / "run_app.py"), "--pkl", str(fixtures_dir / "sg2ada_64.pkl")],
                                env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(10)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, lines)
    assert lines == [f"stylescope: cannot open a window on :{number} (GLX: GLX extension not found; tried 3 times)"]


def test_a_long_error_is_cut_in_its_place_and_the_big_picture_is_smooth(app, tmp_path):
    from test_gui import assert_screen_shows, image_on_screen, shown_image

    before = app.rects()
    # A 64 px picture at 13x: smooth by default above 4x (pixels inside a zoomed block differ).
    on_screen, _ = image_on_screen(app, tmp_path, "smooth")
    zoom = on_screen.shape[0] // 64
    block = on_screen[zoom * 20 + 1:zoom * 21 - 1, zoom * 20 + 1:zoom * 21 - 1].astype(int)
    assert zoom >= 8 and np.ptp(block) > 0, "a zoomed pixel is drawn smoothly, not as a flat block"
    shot(app, "smooth_display")

    long_path = "/no/such/folder/" + "a_very_long_folder_name_" * 12 + "network.pkl"
    errors = len(app.events("error"))
    type_into(app, "net_path", long_path)
    error = app.wait_for(lambda ev: [e for e in ev if e["event"] == "error"][errors:], 60, "the error")[0]
    # The log (and the tooltip) has the message as every message is: one line, a long value cut
    # with an ellipsis at the message limit; the status line cuts it further to fit.
    from models.errors import MESSAGE_LIMIT

    message = error["message"]
    assert long_path[:100] in message and message.endswith("…") and len(message) == MESSAGE_LIMIT, message
    after = app.wait_for_rects(after_time=error["time"])
    status, caption = after["rects"]["status"], after["rects"]["image_caption"]
    assert status[2] < caption[0], "the error stops before the image caption"
    assert abs(caption[2] - before["rects"]["image_caption"][2]) <= 8, "the caption keeps its place"
    shot(app, "long_error")

    # View > Pixel-exact: whole pixels again, as the frame holds them.
    click(app, "menu_view")
    time.sleep(0.5)
    x0, _, _, y1 = screen_pos(app.rects(), "menu_view")
    app.screen.click(x0 + 40, y1 + 46 + 8)  # its third item, Pixel-exact (ImGui's menu rows: 19 px from 8)
    app.wait_for(lambda ev: [e for e in ev if e["event"] == "status" and e["text"] == "display: pixel-exact"],
                 30, "pixel-exact display")
    on_screen, _ = image_on_screen(app, tmp_path, "pixel_exact")
    assert_screen_shows(on_screen, shown_image(app.frames()[-1]), tolerance=1.0)
    assert json.loads((app.workdir / "config" / "settings.json").read_text())["display_filter"] == "pixel"
    app.screen.key("F1")
    shot(app, "help_and_pixel_exact")
    app.screen.key("F1")


def test_a_saved_frames_name_has_the_seed_shown_after_a_drag(app, home):
    from app.panels.latent import combined_seed

    rects = app.rects()
    x0, y0, x1, y1 = screen_pos(rects, "image")
    frames = len(app.frames())
    app.screen.drag(x0 + 40, y0 + 40, x0 + 40 + 290, y0 + 40 + 150)
    app.wait_for_frame(after=frames, predicate=lambda f: f["request"]["seed_xy"] is not None)
    app.wait_for(lambda ev: time.time() - app.frames()[-1]["time"] > 1.5, 60, "the drag's last frame")
    x, y = app.frames()[-1]["request"]["seed_xy"]
    seed = combined_seed(x, y)
    assert seed > 100, (x, y)
    click(app, "image")
    app.screen.key("ctrl+s")
    saved = app.wait_for(lambda ev: list((home / "Pictures").glob("stylescope_*.png")), 60, "a PNG in ~/Pictures")
    assert any(f"stylescope_seed{seed}-blend_" in p.name for p in saved), (seed, [p.name for p in saved])


def test_back_to_the_default_model_which_says_how_little_it_uses_noise(app):
    from test_gui import toggle_panels

    started = time.time()
    click(app, "net_default")
    app.wait_for(lambda ev: [e for e in ev if e["event"] == "frame" and e["time"] > started
                             and e["request"]["pkl"] is None and not e["preview"]], 120, "the default model's frame")
    def measured(events):
        found = {e["layer"]: e["levels"] for e in events
                 if e["event"] == "noise_usage" and e["time"] > started and e["pkl"] is None}
        return found if len(found) == 10 else None

    usage = app.wait_for(measured, 180, "the noise use of every layer")
    assert usage[None] < 1.0, "the default model barely uses its noise: the panel says so"
    assert set(usage) - {None} == {"b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1", "b32.conv0",
                                   "b32.conv1", "b64.conv0", "b64.conv1"}
    toggle_panels(app, "header_LatentPanel", "header_MixingPanel", "noise_layers_node")
    shot(app, "default_model_noise_usage")
    assert app.rects()["pkl"] is None and "net_default" in app.rects()["rects"]


def test_stylegan3_says_why_coarse_does_nothing_and_mixing_takes_layers_when_ticked(fixtures_dir, tmp_path):
    screen = VirtualScreen()
    try:
        with laid_out_app(screen, tmp_path, pkl=fixtures_dir / "sg3_t_64.pkl") as app:
            rects = app.rects()
            assert "noise_layers_node" not in rects["rects"], "no per-layer noise node without noise inputs"
            started = time.time()
            click(app, "mix_coarse")
            status = wait_for_status(app, lambda t: t.startswith("Coarse:"), started, "why Coarse does nothing")
            assert "no coarse layers (4-8 px)" in status["text"] and status["error"]
            shot(app, "sg3_coarse")
            started = time.time()
            click(app, "mix_enabled")
            status = wait_for_status(app, lambda t: t.startswith("style mixing: no layers were chosen"), started,
                                     "what ticking mixing took")
            values = app.wait_for_rects(after_time=status["time"])["values"]
            assert values["mix_enabled"] and values["mix_layers"], values
            frame = app.wait_for_frame(predicate=lambda f: f["request"]["mix_layers"] != [])
            assert frame["request"]["mix_seed"] == values["mix_seed"]
            shot(app, "sg3_mixing_ticked")
            started = time.time()
            click(app, "mix_none")
            app.wait_for(lambda ev: (lambda r: r if r and not r["values"]["mix_enabled"] else None)(app.rects(started)),
                         30, "None to untick mixing")
    finally:
        screen.close()


def conditional_network(path):
    import torch

    from models.loader import save_safetensors
    from models.stylegan2 import Generator

    torch.manual_seed(3)
    G = Generator(z_dim=16, c_dim=5, w_dim=16, img_resolution=32, img_channels=3,
                  synthesis_kwargs=dict(channel_base=256, channel_max=16)).eval()
    save_safetensors(G, path)
    return G


def test_the_window_takes_seed_flags_shows_the_class_in_use_and_labels_the_grid(tmp_path):
    from renderer.session import seed_class

    pkl = tmp_path / "conditional.safetensors"
    G = conditional_network(pkl)
    screen = VirtualScreen()
    try:
        flags = ["--seed", "5", "--layer", "b8.conv1", "--channels", "grid:9"]
        with laid_out_app(screen, tmp_path, pkl=pkl, extra_args=flags) as app:
            request = app.frames()[-1]["request"]
            assert request["seeds"] == [[5, 1.0]] and request["layer"] == "b8.conv1"
            assert request["channel_mode"] == "grid" and request["grid_channels"] == 9 and request["class_idx"] is None
            shown = app.wait_for(lambda ev: [e for e in ev if e["event"] == "class_shown"], 30, "the class shown")[-1]
            assert shown["value"] == seed_class(5, G.z_dim, G.c_dim) and shown["how"] == "from seed 5"
            assert not shown["enabled"], "greyed: it is the seed's class, not a chosen one"
            from test_gui import toggle_panels

            toggle_panels(app, "header_MixingPanel", "header_TruncationPanel", "header_LayersPanel")
            rects = app.wait_for_item("channel_mode", after_time=app.frames()[-1]["time"])
            assert "image_overlay" in rects["rects"] and "grid_channels" not in rects["disabled"]
            shot(app, "class_from_seed_and_grid_labels")
            # The grid's channel count has no say in the "one" view.
            x0, y0, x1, y1 = screen_pos(rects, "channel_mode")
            started = time.time()
            app.screen.click(x0 + 61, (y0 + y1) / 2)  # the radio's second button, "one"
            rects = app.wait_for(lambda ev: (lambda r: r if r and r["values"]["channel_mode"] == "one" else None)(
                app.rects(started)), 30, "the one view")
            assert "grid_channels" in rects["disabled"] and "image_overlay" not in rects["rects"]
    finally:
        screen.close()
