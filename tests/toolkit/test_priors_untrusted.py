"""Untrusted prior folders: nothing is ever unpickled, and every malformed folder is one
clear InputError before anything large is allocated."""

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import save_file

from reddiff import InputError
from reddiff.priors import UNetPrior, load_prior, make_unet, save_prior


class Payload:
    """Pickles into code that writes a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def tiny(tmp_path):
    folder = save_prior(UNetPrior(make_unet(1, block_out_channels=(8, 8), norm_num_groups=4), name="tiny"),
                        tmp_path / "tiny")
    return folder


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)


def _pickle_file(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"weights": Payload(marker)}, f)


def test_the_tiny_folder_loads(tiny, no_unpickling):
    assert load_prior(tiny).channels == 1


@pytest.mark.parametrize("plant, message", [
    ("bin_only", "no diffusion_pytorch_model.safetensors"),
    ("index_to_bin", "only .safetensors files"),
    ("index_outside", "only .safetensors files"),
    ("pickle_named_safetensors", "cannot read safetensors"),
])
def test_pickled_weights_are_never_loaded(tiny, tmp_path, no_unpickling, plant, message):
    marker = tmp_path / "PWNED"
    weights = tiny / "diffusion_pytorch_model.safetensors"
    if plant == "bin_only":
        weights.unlink()
        _pickle_file(tiny / "diffusion_pytorch_model.bin", marker)
    elif plant in ("index_to_bin", "index_outside"):
        target = "weights.bin" if plant == "index_to_bin" else "../evil.safetensors"
        _pickle_file(tiny / "weights.bin", marker)
        keys = list(json.loads((tiny / "config.json").read_text()))[:1]
        (tiny / "diffusion_pytorch_model.safetensors.index.json").write_text(
            json.dumps({"weight_map": {k: target for k in keys}}))
        weights.unlink()
        (tiny / "x.safetensors").write_bytes(b"")
    else:
        _pickle_file(weights, marker)
    with pytest.raises(InputError, match=message):
        load_prior(tiny)
    assert not marker.exists()


def _edit(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    (lambda f: (f / "config.json").write_text("[1, 2]"), "expected a JSON object"),
    (lambda f: (f / "reddiff_prior.json").write_text("[]"), "expected a JSON object"),
    (lambda f: _edit(f / "reddiff_prior.json", format_version="2"), "format_version"),
    (lambda f: _edit(f / "reddiff_prior.json", format_version=99), "newer than this"),
    (lambda f: _edit(f / "reddiff_prior.json", transform={"kind": "affine", "scale": 2.0, "colour": 1}),
     "value transform 'affine'"),
    (lambda f: _edit(f / "reddiff_prior.json", transform={"kind": "affine", "scale": 0.0}), "non-zero"),
    (lambda f: _edit(f / "reddiff_prior.json", schedule={"num_train_timesteps": -5}), "num_train_timesteps"),
    (lambda f: _edit(f / "reddiff_prior.json", schedule={"num_train_timesteps": 0}), "num_train_timesteps"),
    (lambda f: _edit(f / "reddiff_prior.json", schedule={"num_train_timesteps": 10**9}), "num_train_timesteps"),
    (lambda f: _edit(f / "reddiff_prior.json", schedule=[1]), "schedule must be a JSON object"),
    (lambda f: _edit(f / "config.json", layers_per_block=100000), "layers_per_block"),
    (lambda f: _edit(f / "config.json", block_out_channels=[8192] * 8), "parameters"),
    (lambda f: _edit(f / "config.json", block_out_channels=[16, 16]), "of another shape"),
    (lambda f: save_file({"conv_in.weight": torch.zeros(1)}, f / "diffusion_pytorch_model.safetensors"),
     "missing"),
])
def test_malformed_folders_are_one_clear_error(tiny, no_unpickling, edit, message):
    edit(tiny)
    with pytest.raises(InputError, match=message) as info:
        load_prior(tiny)
    assert "\n" not in str(info.value) and str(tiny) in str(info.value)


def test_a_copied_folder_without_the_record_still_loads(tiny, tmp_path, no_unpickling):
    copy = shutil.copytree(tiny, tmp_path / "copy")
    (copy / "reddiff_prior.json").unlink()
    assert load_prior(copy).num_timesteps == 1000
