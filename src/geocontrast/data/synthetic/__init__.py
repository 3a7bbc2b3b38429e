"""Data source `synthetic`: an embedded flora world that behaves like iNaturalist plant observations.

    world = generate_world(config["world"])
    render_photos(world, config["world"], image_root, workers=2)

See world.py for the assembly, and config/README.md for every parameter and what the world cannot show.
"""

from .world import World, generate_world, render_photos, write_truth

__all__ = ["World", "generate_world", "render_photos", "write_truth"]
