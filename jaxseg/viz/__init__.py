"""Rendering scenes for inspection: coloured PLY export and top-down images."""
