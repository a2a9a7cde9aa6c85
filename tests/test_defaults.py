"""Each stage states its defaults once, in its settings dataclass: a command line without flags must
give exactly that dataclass's defaults."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module, config_class", [
    ("train.train", "TrainConfig"),
    ("export.cli", "ExportConfig"),
    ("edge.camera", "CameraConfig"),
])
def test_flags_default_to_the_config_defaults(module, config_class):
    mod = importlib.import_module(module)
    assert mod.config(mod.get_args_parser().parse_args([])) == getattr(mod, config_class)()
