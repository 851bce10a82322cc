"""The example campaign.toml: `lookups run --config` accepts it, it lists every field with a
comment, and a malformed one names the bad field and its line."""

import re
from pathlib import Path

import pytest

from api.cli.run import build_config
from lookups import InvalidInputError
from services.campaigns.config import CampaignConfig

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "campaign.toml"


def test_lookups_run_accepts_the_example():
    config = build_config(EXAMPLE)
    assert config.neurons == ["27:1263", "27:876", "29:1135"]  # the README's campaign
    assert (config.max_train_docs, config.max_test_docs, config.context_length) == (200, 100, 128)
    assert build_config(EXAMPLE, max_train_docs=500).max_train_docs == 500  # flags override it


def test_the_example_sets_or_comments_out_every_field_each_with_a_comment():
    text = EXAMPLE.read_text()
    for field in CampaignConfig.model_fields:  # `field = value  # why`, or a table under a comment
        found = (re.search(rf"^(# )?{field} = [^#\n]+#", text, re.MULTILINE)
                 or re.search(rf"^#.*\n\[{field}\]$", text, re.MULTILINE))
        assert found, f"campaign.toml: {field} is missing or has no comment"


def test_the_readme_links_the_example():
    assert "(campaign.toml)" in (REPO / "README.md").read_text()


def test_a_bad_field_is_named_with_its_line(tmp_path):
    path = tmp_path / "campaign.toml"
    path.write_text('corpus = "docs.jsonl"\n\n# heads\nworth_range = [0.8, 0.2]\ncolour = "blue"\n')
    with pytest.raises(InvalidInputError) as raised:
        build_config(path)
    assert "worth_range (line 4): Value error, worth_range must satisfy 0 <= low <= high <= 1" in str(raised.value)
    assert "colour (line 5): Extra inputs are not permitted" in str(raised.value)


def test_a_value_from_a_flag_has_no_line_in_the_file(tmp_path):
    path = tmp_path / "campaign.toml"
    path.write_text('corpus = "docs.jsonl"\nscorers = ["zero-shot"]\n')
    with pytest.raises(InvalidInputError, match=r"scorers: Value error, unknown scorer 'nope'"):
        build_config(path, scorers=["nope"])


def test_broken_toml_names_the_line(tmp_path):
    path = tmp_path / "campaign.toml"
    path.write_text('corpus = "docs.jsonl"\ntop_k = \n')
    with pytest.raises(InvalidInputError, match=r"cannot read campaign config .*at line 2"):
        build_config(path)
