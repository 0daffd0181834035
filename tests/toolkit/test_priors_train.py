"""Training priors: end to end from files, exact resume, DDP on 2 CPU processes, the CLI."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from reddiff import InputError
from reddiff.cli import app
from reddiff.priors import AffineTransform, load_prior, train_prior
from reddiff.priors.card import write_model_card

TINY = {"block_out_channels": (8, 16), "norm_num_groups": 4}
TINY_CLI = ["--block-out-channels", "8,16", "--patch-size", "16", "--batch-size", "8", "--no-card"]


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:48]
    return [np.sin(x / rng.uniform(2, 6)) * np.cos(y / rng.uniform(2, 6)) + 2.0 for _ in range(3)]


@pytest.fixture
def png_folder(tmp_path, images):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray((image * 60).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def train(images, out, steps, **kwargs):
    options = dict(channels=1, transform=AffineTransform(offset=2.0, scale=1.0), patch_size=16,
                   batch_size=8, steps=steps, model_config=TINY, checkpoint_every=2)
    return train_prior(images, out, **{**options, **kwargs})


def test_training_learns_and_writes_a_loadable_prior(images, tmp_path):
    result = train(images, tmp_path / "p", steps=30, lr=2e-3)
    losses = np.array(result.losses)
    assert len(losses) == 30 and losses[-10:].mean() < 0.6 * losses[:3].mean()
    prior = load_prior(tmp_path / "p")
    assert prior.transform.to_config() == result.prior.transform.to_config()
    assert prior.info["final_loss"] == pytest.approx(losses[-3:].mean())
    assert "CPU" in prior.info["hardware"] and prior.info["steps"] == 30
    x, t = torch.randn(1, 1, 24, 24), torch.tensor([100])
    assert torch.allclose(prior.eps(x, t), result.prior.eps(x, t), atol=1e-6)


def test_resuming_repeats_the_uninterrupted_run_exactly(images, tmp_path):
    straight = train(images, tmp_path / "a", steps=6)
    train(images, tmp_path / "b", steps=3)
    resumed = train(images, tmp_path / "b", steps=6)
    assert resumed.losses == straight.losses
    for (name, a), b in zip(straight.prior.unet.state_dict().items(), resumed.prior.unet.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_refuses_other_settings_and_no_resume_starts_over(images, tmp_path):
    train(images, tmp_path, steps=2)
    with pytest.raises(InputError, match="patch_size"):
        train(images, tmp_path, steps=4, patch_size=8)
    with pytest.raises(InputError, match="data_sha256"):
        train(images[:2], tmp_path, steps=4)
    assert len(train(images, tmp_path, steps=4, patch_size=8, resume=False).losses) == 4


def test_fine_tuning_starts_from_a_priors_weights_and_keeps_its_units(images, tmp_path):
    base = train(images, tmp_path / "base", steps=20, lr=2e-3)
    tuned = train_prior(images, tmp_path / "tuned", patch_size=16, batch_size=8, steps=2, lr=1e-5,
                        init_from=tmp_path / "base")  # architecture and transform from the prior
    fresh = train(images, tmp_path / "fresh", steps=2, lr=1e-5)
    assert tuned.prior.transform.to_config() == base.prior.transform.to_config()
    assert np.mean(tuned.losses) < 0.7 * np.mean(fresh.losses)  # it starts trained
    source = load_prior(tmp_path / "tuned").info["init_from"]
    assert source["prior"] == str(tmp_path / "base") and len(source["weights_sha256"]) == 64
    with pytest.raises(InputError, match="init_from"):  # resuming without it is another run
        train(images, tmp_path / "tuned", steps=4)
    shutil.copytree(tmp_path / "base", tmp_path / "moved")  # the same weights read from elsewhere resume
    resumed = train_prior(images, tmp_path / "tuned", patch_size=16, batch_size=8, steps=3, lr=1e-5,
                          init_from=tmp_path / "moved")
    assert len(resumed.losses) == 3 and resumed.losses[:2] == tuned.losses
    card = write_model_card(resumed.prior, tmp_path / "tuned", n_samples=1, sample_size=16, sample_steps=2)
    assert "Fine-tuned from `base`" in card.read_text() and "20 steps" in card.read_text()
    with pytest.raises(InputError, match="architecture"):
        train(images, tmp_path / "wide", steps=1, init_from=tmp_path / "base",
              model_config={"block_out_channels": (8, 8), "norm_num_groups": 4})
    with pytest.raises(InputError, match="channel"):
        train(images, tmp_path / "two", steps=1, init_from=tmp_path / "base", channels=2,
              transform=None)
    with pytest.raises(InputError, match="value transform"):
        train(images, tmp_path / "units", steps=1, init_from=tmp_path / "base",
              transform=AffineTransform(offset=0.0, scale=3.0))


def test_cli_fine_tunes_a_prior(png_folder, tmp_path):
    runner = CliRunner()
    base = runner.invoke(app, ["train-prior", str(png_folder), "--out", str(tmp_path / "base"), "--steps", "2",
                               *TINY_CLI])
    assert base.exit_code == 0, base.output
    tuned = runner.invoke(app, ["train-prior", str(png_folder), "--out", str(tmp_path / "tuned"), "--steps", "1",
                                "--patch-size", "16", "--batch-size", "8", "--no-card",
                                "--init-from", str(tmp_path / "base")])
    assert tuned.exit_code == 0, tuned.output
    record = json.loads((tmp_path / "tuned" / "reddiff_prior.json").read_text())["training"]
    assert record["model_config"]["block_out_channels"] == [8, 16] and "--init-from" in record["command"]


def test_checkpoint_files_follow_the_umask(images, tmp_path):
    old = os.umask(0o022)
    try:
        train(images, tmp_path, steps=2)
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "checkpoint").iterdir()} == {"0o644"}


def test_training_input_errors(images, tmp_path):
    with pytest.raises(InputError, match="steps"):
        train(images, tmp_path, steps=0)
    with pytest.raises(InputError, match="smaller than patch_size"):
        train(images, tmp_path, steps=1, patch_size=64)


def test_cli_trains_from_a_folder_and_resumes(png_folder, tmp_path):
    out = tmp_path / "prior"
    runner = CliRunner()
    first = runner.invoke(app, ["train-prior", str(png_folder), "--out", str(out), "--steps", "2",
                                "--checkpoint-every", "1", *TINY_CLI])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["train-prior", str(png_folder), "--out", str(out), "--steps", "4", *TINY_CLI])
    assert second.exit_code == 0, second.output
    state = json.loads((out / "checkpoint" / "training_state.json").read_text())
    assert state["step"] == 4 and len(state["losses"]) == 4
    record = json.loads((out / "reddiff_prior.json").read_text())["training"]
    assert record["command"].startswith("reddiff ") and record["data"] == str(png_folder)
    assert load_prior(out).channels == 1


def test_cli_writes_a_model_card_with_samples(png_folder, tmp_path):
    result = CliRunner().invoke(app, ["train-prior", str(png_folder), "--out", str(tmp_path), "--steps", "1",
                                      "--block-out-channels", "8,16", "--patch-size", "16",
                                      "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "## Retrain" in card and "reddiff train-prior" in card and "samples.png" in card
    assert (tmp_path / "samples.png").stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    ([], "IMAGES"),
    (["--recipe", "cats"], "unknown recipe"),
    (["--recipe", "ct", "x.png"], "--recipe"),
    (["--recipe", "ct", "--channels", "2"], "--channels"),
    (["x.png", "--transform", "{not json"], "error"),
])
def test_cli_errors_are_one_line_and_exit_1(args, message, tmp_path):
    result = CliRunner().invoke(app, ["train-prior", "--out", str(tmp_path), *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_process_ddp_gives_the_single_process_loss_curve(tmp_path):
    image = tmp_path / "image.npy"
    np.save(image, np.random.default_rng(0).standard_normal((40, 40)).astype(np.float32))
    args = ["train-prior", str(image), "--steps", "6", "--threads", "1", *TINY_CLI]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    hang_guard = 600  # s; alone it takes ~30 s, beside a busy xdist worker on 2 cores it once passed 120
    subprocess.run([sys.executable, "-m", "reddiff", *args, "--out", str(tmp_path / "one")],
                   check=True, capture_output=True, env=env, timeout=hang_guard)
    subprocess.run(["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "reddiff", *args,
                    "--out", str(tmp_path / "two")], check=True, capture_output=True, env=env, timeout=hang_guard)
    curves = [json.loads((tmp_path / d / "checkpoint" / "training_state.json").read_text())["losses"]
              for d in ("one", "two")]
    # every process draws the step's whole batch and trains on its half: same curve up to rounding
    assert np.allclose(curves[0], curves[1], rtol=1e-5)
    assert json.loads((tmp_path / "two" / "reddiff_prior.json").read_text())["training"]["world_size"] == 2


def test_a_checkpoint_exports_as_a_prior_mid_training(tmp_path):
    from reddiff.priors import export_checkpoint, load_prior

    images = [np.random.default_rng(0).standard_normal((24, 24)).astype(np.float32)]
    result = train_prior(images, tmp_path / "run", patch_size=8, batch_size=2, steps=3, checkpoint_every=2,
                         model_config={"block_out_channels": (8, 8), "norm_num_groups": 4})
    exported = load_prior(export_checkpoint(tmp_path / "run", tmp_path / "at3", name="mid"))
    assert exported.name == "mid" and exported.info["exported_at_step"] == 3
    for a, b in zip(exported.unet.state_dict().values(), result.prior.unet.state_dict().values()):
        assert torch.equal(a, b)  # the final checkpoint holds the EMA weights the run saved
