"""The window's look: dearpygui theme colours and styles, greyed-out controls, the dark image area."""


def apply_theme(dpg):
    with dpg.theme() as theme:
        with dpg.theme_component(dpg.mvAll):
            dpg.add_theme_style(dpg.mvStyleVar_FrameRounding, 4)
            dpg.add_theme_style(dpg.mvStyleVar_GrabRounding, 4)
            dpg.add_theme_style(dpg.mvStyleVar_ChildRounding, 6)
            dpg.add_theme_style(dpg.mvStyleVar_ItemSpacing, 8, 6)
            dpg.add_theme_color(dpg.mvThemeCol_WindowBg, (24, 26, 30))
            dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (30, 33, 38))
            dpg.add_theme_color(dpg.mvThemeCol_Header, (52, 74, 110))
            dpg.add_theme_color(dpg.mvThemeCol_HeaderHovered, (66, 96, 140))
            # A slim, see-through handle: the value printed in the middle of a slider stays readable
            # when the handle sits on it (psi 1.0, gain 0 dB, translate 0, a blend weight 0.5).
            dpg.add_theme_style(dpg.mvStyleVar_GrabMinSize, 6)
            dpg.add_theme_color(dpg.mvThemeCol_SliderGrab, (110, 160, 230, 120))
            dpg.add_theme_color(dpg.mvThemeCol_SliderGrabActive, (150, 195, 255, 150))
            dpg.add_theme_color(dpg.mvThemeCol_CheckMark, (120, 190, 255))
        # Greyed-out controls (a cutoff that is off, StyleGAN3's noise) look it: dearpygui draws
        # disabled items like enabled ones unless told otherwise.
        for kind in (dpg.mvSliderFloat, dpg.mvSliderInt, dpg.mvInputInt, dpg.mvRadioButton, dpg.mvButton,
                     dpg.mvCheckbox, dpg.mvCombo):
            with dpg.theme_component(kind, enabled_state=False):
                dpg.add_theme_color(dpg.mvThemeCol_Text, (105, 108, 116))
                dpg.add_theme_color(dpg.mvThemeCol_SliderGrab, (70, 82, 98, 110))
                dpg.add_theme_color(dpg.mvThemeCol_CheckMark, (80, 96, 114))
                dpg.add_theme_color(dpg.mvThemeCol_FrameBg, (36, 38, 43))
    dpg.bind_theme(theme)
    with dpg.theme() as image_area_theme:
        with dpg.theme_component(dpg.mvAll):
            dpg.add_theme_color(dpg.mvThemeCol_ChildBg, (16, 17, 20))
            dpg.add_theme_style(dpg.mvStyleVar_WindowPadding, 0, 0)
    dpg.bind_item_theme("image_area", image_area_theme)
