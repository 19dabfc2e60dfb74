"""Model configs: ``sak new-model CONFIG OUT [key=value ...]`` with bad files, keys and values."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Row, check_cli_row, fill, params, run_cli

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"

# Whole files: {name: text}; the rows name them as {cfg}/NAME.
FILES = {
    "empty.yaml": "",
    "comments.yaml": "# a model config\n# to be written\n",
    "list.yaml": "- sample_rate: 8000\n- audio_channels: 1\n",
    "scalar.yaml": "tiny\n",
    "unclosed.yaml": "sample_rate: 8000\nvae:\n  downsampling_ratios: [4, 8\n",
    "tabs.yaml": "sample_rate: 8000\n\tvae: {}\n",
    "duplicate.yaml": "sample_rate: 8000\nsample_rate: 16000\n",
    "binary.yaml": "\x00\x01\x02",
}

NEW = ("new-model", str(TINY), "{work}/model")
FILE_ROWS = [
    Row(
        "missing-file",
        ("new-model", "{work}/nope.yaml", "{work}/model"),
        "config file '{work}/nope.yaml' does not exist",
    ),
    Row("folder", ("new-model", "{inputs}/empty_dir", "{work}/model"), "does not exist"),
    Row("empty", ("new-model", "{cfg}/empty.yaml", "{work}/model"), "is empty (it would build the default model"),
    Row("comments-only", ("new-model", "{cfg}/comments.yaml", "{work}/model"), "comments.yaml' is empty"),
    Row("top-level-list", ("new-model", "{cfg}/list.yaml", "{work}/model"), "must hold a mapping of keys"),
    Row("top-level-scalar", ("new-model", "{cfg}/scalar.yaml", "{work}/model"), "got a str"),
    Row("unclosed-bracket", ("new-model", "{cfg}/unclosed.yaml", "{work}/model"), "is not valid YAML at line"),
    Row("tab-indent", ("new-model", "{cfg}/tabs.yaml", "{work}/model"), "is not valid YAML at line 2, column 1"),
    Row("binary", ("new-model", "{cfg}/binary.yaml", "{work}/model"), "binary.yaml'"),
    Row("output-exists", ("new-model", str(TINY), "{inputs}/empty_dir"), "already exists; pass --force"),
    Row("output-in-proc", ("new-model", str(TINY), "/proc/model"), "'/proc/model/model_index.json' cannot be written"),
    Row("output-under-a-file", ("new-model", str(TINY), "{inputs}/afile.txt/model"), "afile.txt"),
]

# key=value overrides of configs/tiny.yaml: each one value a user can get wrong.
VALUES = [
    ("typo-top", "sample_rte=8000", "unknown key 'sample_rte'; did you mean 'sample_rate'?"),
    ("typo-nested", "vae.latnt_channels=4", "unknown key 'vae.latnt_channels'; did you mean 'vae.latent_channels'?"),
    ("unknown-section", "decoder.layers=2", "unknown key 'decoder'"),
    ("no-equals", "sample_rate", "override 'sample_rate' is not of the form key=value"),
    ("no-key", "=8000", "override '=8000' is not of the form key=value"),
    ("bad-yaml-value", "vae.downsampling_ratios=[4,8", "override 'vae.downsampling_ratios=[4,8': the value is not"),
    ("sample-rate-word", "sample_rate=fast", "sample_rate: Value 'fast' of type 'str' could not be converted"),
    ("sample-rate-float", "sample_rate=8000.5", "sample_rate: Value '8000.5'"),
    ("sample-rate-0", "sample_rate=0", "sample_rate must be a positive integer, got 0"),
    ("sample-rate-negative", "sample_rate=-8000", "sample_rate must be a positive integer, got -8000"),
    ("channels-3", "audio_channels=3", "audio_channels must be 1 or 2, got 3"),
    ("channels-0", "audio_channels=0", "audio_channels must be 1 or 2, got 0"),
    ("window-0", "window_seconds=0", "window_seconds must be a finite number > 0, got 0"),
    ("window-negative", "window_seconds=-1", "window_seconds must be a finite number > 0, got -1"),
    ("window-nan", "window_seconds=.nan", "window_seconds must be a finite number > 0, got nan"),
    ("window-inf", "window_seconds=.inf", "window_seconds must be a finite number > 0, got inf"),
    ("seed-negative", "seed=-1", "seed must be in [0, 2**64 - 1], got -1"),
    ("section-as-list", "vae=[1,2]", "a VAEConfig section must be a mapping of keys, got [1, 2]"),
    ("section-as-number", "unet=3", "a UNetConfig section must be a mapping of keys, got 3"),
    ("list-as-number", "unet.block_out_channels=8", "unet.block_out_channels: expected a list, got 8"),
    ("vae-architecture", "vae.architecture=wavenet", "vae.architecture must be one of"),
    ("vae-latent-channels-0", "vae.latent_channels=0", "vae.latent_channels (0)"),
    ("vae-ratios-empty", "vae.downsampling_ratios=[]", "downsampling_ratios"),
    ("vae-ratios-zero", "vae.downsampling_ratios=[4,0]", "downsampling_ratios"),
    ("vae-multiples-length", "vae.channel_multiples=[1]", "channel_multiples"),
    ("vae-chunk-0", "vae.chunk_seconds=0", "chunk_seconds"),
    ("vae-overlap-too-long", "vae.overlap_seconds=3", "overlap_seconds"),
    ("vae-scaling-0", "vae.scaling_factor=0", "scaling_factor"),
    ("vae-scaling-nan", "vae.scaling_factor=.nan", "scaling_factor"),
    ("text-vocab-small", "text.vocab_size=10", "text.vocab_size must be at least"),
    ("text-heads", "text.num_attention_heads=3", "must be a multiple of text.num_attention_heads (3)"),
    ("text-layers-0", "text.num_hidden_layers=0", "text.num_hidden_layers must be >= 1, got 0"),
    ("text-max-length-0", "text.max_length=0", "text.max_length must be >= 3"),
    ("text-hidden-layer", "text.hidden_layer=9", "text.hidden_layer must be in [-3, 2] for 2 layers, got 9"),
    ("text-pretrained-missing", "text.pretrained=/nonexistent/clap", "text.pretrained '/nonexistent/clap'"),
    ("conditioning-dim-0", "conditioning.dim=0", "dim"),
    ("conditioning-unknown-input", "conditioning.cross_attention=[prompt,mood]", "unknown conditioning input 'mood'"),
    ("conditioning-unknown-film", "conditioning.film=[mood]", "unknown conditioning input 'mood'"),
    ("conditioning-max-seconds-0", "conditioning.max_seconds=0", "max_seconds"),
    ("conditioning-options-unrouted", "conditioning.options={{key: {{wrong: 1}}}}", "conditioning.options names 'key'"),
    ("conditioning-options-wrong", "conditioning.options={{prompt: {{wrong: 1}}}}", "'prompt' takes no options"),
    ("unet-channels-empty", "unet.block_out_channels=[]", "block_out_channels"),
    ("unet-groups", "unet.norm_num_groups=3", "norm_num_groups"),
    ("unet-attention-length", "unet.attention_levels=[true]", "attention_levels"),
    ("unet-layers-0", "unet.layers_per_block=0", "layers_per_block"),
    ("unet-dropout", "unet.dropout=2", "dropout"),
    ("unet-position-odd", "unet.position_embedding_dim=3", "position_embedding_dim must be an even int"),
    ("scheduler-name", "scheduler.name=fastest", "unknown scheduler 'fastest'"),
    ("scheduler-steps-0", "scheduler.num_train_timesteps=0", "scheduler.num_train_timesteps must be >= 2, got 0"),
    ("scheduler-beta", "scheduler.beta_schedule=wiggly", "scheduler.beta_schedule must be one of"),
]
VALUE_ROWS = [Row(f"value-{name}", (*NEW, override), fragment) for name, override, fragment in VALUES]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("configs")
    for name, text in FILES.items():
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("row", params(FILE_ROWS + VALUE_ROWS))
def test_model_config_refused(row, places, cfg, unchanged, capsys, caplog):
    places = {**places, "cfg": cfg}
    result = run_cli(fill(row.args, places), capsys, caplog)
    check_cli_row(Row(row.id, row.args, row.fragment.format(**places), row.code, row.stream), result, "new-model")


def test_an_explicit_empty_mapping_builds_the_defaults_on_purpose(tmp_path):
    """``{}`` is the way to ask for the default model; an empty file is refused (it is usually a mistake)."""
    from stable_audio_kit.config import ModelConfig, load_config

    (tmp_path / "defaults.yaml").write_text("{}\n")
    assert load_config(ModelConfig, tmp_path / "defaults.yaml").sample_rate == 44100
