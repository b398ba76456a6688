"""Model names on PostgreSQL: concurrent submits for one new name leave exactly one owner."""

import pytest

from tests.unit.test_tenancy import assert_one_owner_wins

pytestmark = pytest.mark.integration


def test_concurrent_submits_for_one_new_name_leave_one_owner_on_postgresql(cluster_settings):
    names = [f"pg-racer-{i}-{cluster_settings.data_dir.name}" for i in range(4)]
    assert_one_owner_wins(cluster_settings, names)
