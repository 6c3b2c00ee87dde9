"""What a new user meets, without a window: file names, summaries, typed values, dialogs' paths, settings, start-up."""

import numpy as np
import pytest

from renderer.request import RenderRequest


def test_a_float32_slider_value_is_kept_as_typed():
    from app.panels.base import typed_float

    assert typed_float(float(np.float32(0.7))) == 0.7
    assert typed_float(float(np.float32(-0.35))) == -0.35
    assert typed_float(1.0) == 1.0


def test_the_network_summary_names_the_variant_only_when_it_adds_something():
    from app.panels.network import architecture_text

    assert architecture_text({"architecture": "stylegan3-t", "variant": "t"}) == "stylegan3-t"
    assert architecture_text({"architecture": "stylegan", "variant": "stylegan"}) == "stylegan"
    assert architecture_text({"architecture": "stylegan2", "variant": "skip"}) == "stylegan2 (skip)"
    assert architecture_text({"architecture": "stylegan2"}) == "stylegan2"


def test_counts_read_in_the_singular_for_one():
    from app.panels.export import plural

    assert plural(1, "frame") == "1 frame" and plural(2, "frame") == "2 frames" and plural(0, "frame") == "0 frames"
