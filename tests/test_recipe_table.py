"""The recipe table (benchmarks/results/recipe_table.md) is current: regenerated from the committed official
values and the YAMLs the package ships, it is the committed file, and every difference of a Base config
from the official recipe has its reason."""

import json
import re
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import recipe_table  # noqa: E402


def official():
    return json.loads(recipe_table.OFFICIAL_VALUES.read_text(encoding="utf-8"))


def rows(text: str, setting: str):
    """The cells of the table rows whose first cell is ``setting``."""
    found = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")]
    return [r for r in found if r[0] == setting]


def test_regenerating_the_table_gives_the_committed_file():
    committed = recipe_table.TABLE.read_text(encoding="utf-8")
    assert "\n".join(recipe_table.document(official())) == committed, (
        "benchmarks/results/recipe_table.md is out of date: run `python benchmarks/recipe_table.py`"
    )


def test_every_shipped_config_has_a_column_and_a_system():
    from fast_hubert_plugin.config import config_dir

    text = "\n".join(recipe_table.document(official()))
    for kind in ("pretraining", "finetuning"):
        names = sorted(p.stem for p in config_dir(kind).glob("*.yaml"))
        assert names, kind
        for name in names:
            assert f"| `{kind}/{name}.yaml` | " in text, name
            assert f"`{name}`" in text.split(f"## {kind.capitalize()}")[1].splitlines()[2], name


def test_every_difference_of_a_base_config_is_explained():
    text = "\n".join(recipe_table.document(official()))
    assert "not explained" not in text
    # the ones a reader comes for
    (pre,) = rows(text.split("## Finetuning")[0], "`dataset.max_tokens`")
    assert pre[1] == "1400000" and "sample count copied into a frame-based dataset" in pre[-1]
    (ils,) = rows(text, "ILS: supervised blocks (1-based)")
    assert ils[1] == "[4, 12]" and "`fast_hubert_base_ils.yaml` the ILS one" in ils[-1]
    (grad,) = rows(text.split("## Finetuning")[0], "`model.feature_grad_mult`")
    assert grad[1] == "0.1" and "acts as 1.0" in grad[-1]


def test_the_table_reads_what_the_yamls_say():
    """A value changed in one of our configs shows in its column, with a reason demanded when it differs
    from the official value."""
    configs = {"fast_hubert_base_librispeech": {"model._name": "fast_hubert", "model.mask_prob": 0.65}}
    table = recipe_table.table("pretraining", official(), configs)
    (mask,) = rows("\n".join(table), "`model.mask_prob`")
    assert mask[1:] == ["0.8", "0.65", "**not explained**"]
    (logit,) = rows("\n".join(table), "`model.logit_temp`")
    assert logit[1:] == ["0.1 (default)", "=", ""]  # our model config's default is the official one


def test_official_values_name_their_source():
    values = official()
    assert values["commit"] == recipe_table.OFFICIAL_COMMIT
    assert values["pretraining"]["dataset.max_tokens"] == {"value": 1400000, "source": "yaml"}
    assert values["pretraining"]["model.predict_layers"]["value"] == "[3,11]"
    assert values["finetuning_run"]["dataset.max_tokens"] == 8750
    assert re.fullmatch(r"default.*", values["finetuning"]["w2v.time_mask_T"]["source"])
