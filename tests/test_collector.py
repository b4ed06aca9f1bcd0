"""collector_paused: the cyclic collector is off inside, back as it was after, even after an error or nested."""

import gc

import pytest

from drift.collector import collector_paused


def test_the_collector_is_off_inside_and_back_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block does not turn it back on under the outer one
    assert gc.isenabled()


def test_an_error_inside_still_turns_it_back_on():
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_it_leaves_a_collector_that_was_off_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.django_db
def test_the_tables_a_cycle_writes_are_analyzed_in_one_statement():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from drift.snapshot.cycle import analyze_recorded_tables

    with CaptureQueriesContext(connection) as queries:
        analyze_recorded_tables()
    [statement] = [q["sql"] for q in queries.captured_queries]
    assert statement.startswith("ANALYZE ") and '"drift_observation"' in statement and '"drift_pod"' in statement
