"""The per-frame loop: queued callbacks, keys and panels, the request sent when the state changed,
the newest frame shown, then dearpygui draws; an idle window waits for input."""

import inspect
import os
import time

IDLE_AFTER_SECONDS = 1.0  # no input for this long: the window is idle
IDLE_FPS = 20  # frame rate of an idle window while something runs in the background (else it waits for input)


class FrameLoop:
    """Runs the window one UI frame at a time: step() per frame, loop() until the window closes."""

    def __init__(self, window):
        self.window = window
        self.frames_drawn = 0
        self.submitted = None  # the state version of the last request sent
        self.preview_prepared_for = ""  # the network (pkl; None: the default model) a first preview was made for
        self.render_error_shown = False
        self.last_good_pkl = None
        self.last_step = time.perf_counter()
        self.last_activity = None
        self.last_active_at = time.perf_counter()
        self.waiting_for_input = False

    def loop(self):
        window = self.window
        self.last_step = time.perf_counter()
        while window.dpg.is_dearpygui_running():
            started = time.perf_counter()
            self.step()
            if self.idle_for() > IDLE_AFTER_SECONDS:
                # Nobody is touching the window. With nothing left to come from the background either,
                # the next frame waits for input (a mouse move, a key, the window manager): an idle
                # window draws nothing. While a render or an export runs, frames come at IDLE_FPS.
                window.observer.before_wait(window)  # (the tests' map of the window, before it may wait)
                self.wait_for_input(not self.background_busy())
                if not self.waiting_for_input:
                    time.sleep(max(0.0, 1 / IDLE_FPS - (time.perf_counter() - started)))
            else:
                self.wait_for_input(False)

    def step(self):
        """One UI frame: queued callbacks, the app's own work, then dearpygui draws.
        Returns the seconds spent before drawing (the app's share of the frame)."""
        window = self.window
        picture = window.picture
        start = time.perf_counter()
        dt, self.last_step = start - self.last_step, start
        picture.frame_times.append(dt)
        self.run_callbacks()
        try:
            self.tick(dt)
        except Exception as exc:
            window.report_exception("frame", exc)
        work = time.perf_counter() - start
        window.dpg.render_dearpygui_frame()
        self.frames_drawn += 1
        if self.frames_drawn == 3:
            self.read_gl_info()  # the GL context is current on this thread between frames
        if picture.texture.crisp_pending and self.frames_drawn >= 3:
            picture.texture.make_crisp()
        window.observer.drawn(window)
        return work

    def tick(self, dt):
        from app.file_dialog import tick_dialogs

        window = self.window
        window.shortcuts.poll_keys()
        tick_dialogs()
        for panel in window.panels:
            try:
                panel.tick()
            except Exception as exc:
                window.report_exception(panel.title, exc)
        window.shortcuts.handle_image_drag()
        self.animate(dt)
        self.submit_if_changed()
        self.poll_frame()
        window.layout_image()

    def run_callbacks(self):
        """Run queued callbacks on this thread, each guarded: one failing control never stops the app."""
        for job in self.window.dpg.get_callback_queue() or []:
            callback = job[0]
            if callback is None:
                continue
            try:
                callback(*job[1:1 + positional_count(callback)])
            except Exception as exc:
                self.window.report_exception("callback", exc)

    def read_gl_info(self):
        try:
            from OpenGL.GL import GL_RENDERER, GL_VENDOR, glGetString

            info = tuple((glGetString(k) or b"?").decode(errors="replace") for k in (GL_VENDOR, GL_RENDERER))
        except Exception as exc:  # no GL context or no PyOpenGL: show why, keep going
            info = ("unavailable", f"{type(exc).__name__}")
        self.window.picture.gl_info = info

    def animate(self, dt):
        state = self.window.state
        if state["animate"] and state["animate_speed"] > 0:
            # Animation moves the seed without filling the undo history (and walks the seeds, not a loaded vector).
            state.adjust({"seed_x": round(state["seed_x"] + state["animate_speed"] * dt, 4), "latent": None})
            self.window.panel("Latent").sync()

    def can_render(self):
        engine = self.window.ctx.engine
        return engine is not None and (self.window.state["pkl"] is not None or engine.has_default_model())

    def submit_if_changed(self):
        """Send the state to the worker when it changed. While a slider moves each new request
        cancels the one in flight; on a slow device the worker shows a preview of each first,
        so the picture keeps moving, and the last request's full frame follows when the hand stops."""
        window = self.window
        state, engine = window.state, window.ctx.engine
        if not self.can_render() or state.version == self.submitted:
            return
        self.submitted = state.version
        engine.set_preview(state["preview"])
        try:
            engine.submit(state.to_request(device=engine.device, z_dim=engine.z_dim))
        except Exception as exc:  # a value the request refuses: say which, keep the window
            window.report_exception("request", exc)

    def poll_frame(self):
        window = self.window
        ctx, picture = window.ctx, window.picture
        if ctx.engine is None:
            return
        frame = ctx.engine.new_frame()
        if frame is None:
            return
        if frame.error:
            self.on_render_error(frame, frame.error)
            return
        if frame.cancelled or frame.image is None:
            return
        picture.show(frame.image)
        picture.last_frame = frame
        if not frame.preview:
            picture.last_full_frame = frame
            # Previews are decided by the cost of a whole pass: a cached fine-layer re-render or a
            # recalled recent frame is quick, but the next coarse change is not.
            if not frame.reused_blocks and not frame.recalled:
                picture.render_ms = render_ms(frame)
        self.on_model(frame)
        if self.render_error_shown and not frame.preview:
            self.render_error_shown = False  # the picture is good again: the old error no longer applies
            window.set_status(f"rendered in {picture.render_ms:.0f} ms" if picture.render_ms else "ready")
        for panel in window.panels:
            panel.on_frame(frame)
        window.observer.frame_shown(window, frame)

    def on_model(self, frame):
        """A frame of another network (or with more about it): the panels learn of it; once per
        network, its first full frame starts the preparation for drags."""
        from app import bridge

        window = self.window
        ctx, dpg = window.ctx, window.dpg
        info = bridge.model_info(frame)
        if info and "layers" not in info and info.get("pkl") == ctx.model_info.get("pkl"):
            info["layers"] = ctx.model_info.get("layers", [])  # previews carry no layer list
            info["noise_layers"] = ctx.model_info.get("noise_layers", [])
        if info and info != ctx.model_info:
            if info.get("pkl") != ctx.model_info.get("pkl") and frame.preview:
                window.picture.render_ms = None  # the network's first preview: its render time is yet to come
            ctx.model_info = info
            self.last_good_pkl = info.get("pkl")
            for panel in window.panels:
                panel.on_model(info)
                dpg.configure_item(panel.header, show=panel.visible_for(info))
            window.set_status(f"loaded {info.get('pkl') or 'the embedded default model'}")
        if info and not frame.preview and info.get("pkl") != self.preview_prepared_for:
            self.preview_prepared_for = info.get("pkl")  # once per network: its first full frame
            if ctx.engine.prepare_for_drags(window.state):
                window.observer.note("prepare_for_drags", pkl=info.get("pkl"))

    def on_render_error(self, frame, error):
        window = self.window
        failed_pkl = frame.request.pkl if frame.request is not None else None
        if failed_pkl != self.last_good_pkl and failed_pkl == window.state["pkl"] and window.ctx.model_info:
            # A file that fails to load leaves the current model (and its picture, vectors) in place.
            window.state.restore_previous_network(self.last_good_pkl)
            window.sync_panels()
        window.set_status(error, error=True)
        self.render_error_shown = failed_pkl == self.last_good_pkl  # an error of this model's view, not a load

    # --- idle -------------------------------------------------------------------------------------
    def wait_for_input(self, wait):
        if wait == self.waiting_for_input or os.environ.get("STYLESCOPE_NO_INPUT_WAIT"):  # (the bench's baseline)
            return
        self.window.dpg.configure_app(wait_for_input=wait)
        self.waiting_for_input = wait
        self.window.observer.note("wait_for_input", on=wait)

    def background_busy(self):
        """Whether something may change the picture or a panel without input: a request not sent,
        a render or a worker call in flight, a frame not shown yet, a panel's job (an export)."""
        window = self.window
        engine = window.ctx.engine
        if engine is not None and not engine.idle():
            return True
        if self.can_render() and window.state.version != self.submitted:
            return True
        if window.observer.busy(window):
            return True  # (the tests' map of the window is due after a new picture)
        return any(panel.busy() for panel in window.panels)

    def idle_for(self):
        """Seconds since the last sign of life: mouse moved or held, a key, an edit, a new frame, animation."""
        window = self.window
        dpg, state = window.dpg, window.state
        now = time.perf_counter()
        mouse = tuple(dpg.get_mouse_pos(local=False))
        activity = (mouse, state.version, window.picture.texture.uploads, state["animate"])
        if (activity != self.last_activity or dpg.is_mouse_button_down(dpg.mvMouseButton_Left)
                or dpg.is_mouse_button_down(dpg.mvMouseButton_Right) or state["animate"]
                or window.shortcuts.text_input_active()):  # typing: keep every keystroke prompt
            self.last_activity = activity
            self.last_active_at = now
        return now - self.last_active_at


def render_ms(frame):
    """Mapping plus synthesis time of a frame (loading a network is not rendering); None if not rendered."""
    timings = frame.timings or {}
    if "synthesis" not in timings:
        return None
    return (timings.get("mapping", 0.0) + timings["synthesis"]) * 1000


def positional_count(callback, most=3):
    """How many of (sender, app_data, user_data) a callback takes, as dearpygui itself decides."""
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return most
    count = 0
    for param in params:
        if param.kind == param.VAR_POSITIONAL:
            return most
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, most)
