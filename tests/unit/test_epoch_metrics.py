"""The per-epoch metric fields are `ml.epochs.EpochMetrics`'s, wherever a metric row appears."""

from api.routes.jobs import CSV_COLUMNS
from api.schemas.jobs import MetricRow
from core.models import JobMetric
from ml.epochs import METRIC_FIELDS, EpochMetrics, metric_catalog


def test_the_table_the_api_and_the_csv_carry_the_declared_fields_in_order():
    assert METRIC_FIELDS[0] == "loss" and "epoch" not in METRIC_FIELDS
    stored = [c.name for c in JobMetric.__table__.columns if c.name not in ("job_id",
                                                                           "recorded_at")]
    assert stored == ["epoch", *METRIC_FIELDS]
    assert list(MetricRow.model_fields) == ["epoch", *METRIC_FIELDS]
    assert CSV_COLUMNS == ("epoch", *METRIC_FIELDS)
    assert list(EpochMetrics(epoch=1, loss=0.5).as_dict()) == ["epoch", *METRIC_FIELDS]


def test_the_catalog_describes_every_field(api):
    listed = api.get("/catalog").json()["metrics"]
    assert listed == metric_catalog()
    assert [m["name"] for m in listed] == list(METRIC_FIELDS)
    assert all(m["description"] for m in listed)
    assert {m["name"] for m in listed if m["bookkeeping"]} == {"learning_rate", "duration_s",
                                                               "samples_per_s"}
