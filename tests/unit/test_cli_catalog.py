"""`capas catalog` shows what `GET /catalog` serves, lists and descriptions included, and keeps no
list of its own."""


def _words(text: str) -> str:
    """The text with the table's borders and line breaks gone."""
    return " ".join(text.replace("│", " ").split())


def test_an_unknown_kind_is_answered_with_every_list_the_catalog_holds(capas, api):
    served = [name for name, entry in api.get("/catalog").json().items()
              if isinstance(entry, list)]
    refused = capas("catalog", "nope")
    assert refused.exit_code == 1
    assert {"job_statuses", "formats", "metrics", "training"} <= set(served)
    assert f"choose from {', '.join(served)}" in _words(refused.stderr)


def test_the_training_block_is_shown_with_its_descriptions(capas):
    # wide enough for the optimizer's default, written out, to leave the descriptions whole
    shown = capas("catalog", "training", columns=400)
    assert shown.exit_code == 0, shown.output
    assert "epochs 10 how many passes over the training split" in _words(shown.stdout)
