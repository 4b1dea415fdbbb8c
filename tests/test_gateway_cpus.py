"""`slokit gateway --cpus`: the CPU list, where workers and the store go, and the
errors for a list this machine cannot honour. The processes' real affinity is checked
in test_gateway_process.py."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from slokit.cli import app
from slokit.gateway.cpus import (
    auto_cpus,
    check_cpus,
    format_cpus,
    parse_cpu_list,
    store_cpus,
    usable,
    worker_cpu,
)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0", (0,)), ("1,0", (1, 0)), ("2-4", (2, 3, 4)), (" 0 , 2-3 ", (0, 2, 3)), ("1,1-2", (1, 2))],
)
def test_cpu_lists(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a CPU number or range"),
        ("a", "'a' is not a CPU number or range; use numbers and ranges like 0,2-3, or auto"),
        ("-1", "'-1' is not a CPU number"),
        ("0,", "'' is not a CPU number"),
        ("3-1", "'3-1': a range goes from low to high, like 1-3"),
    ],
)
def test_bad_cpu_lists_say_what_is_valid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        parse_cpu_list(text)


def test_workers_take_the_list_in_turn_and_the_store_the_rest() -> None:
    assert [worker_cpu((2, 3), i) for i in range(5)] == [2, 3, 2, 3, 2]
    assert store_cpus((0,), {0, 1, 2, 3}) == {1, 2, 3}
    assert store_cpus((0, 1), {0, 1}) == {0, 1}  # nothing left: the store may use any
    assert format_cpus({5, 0, 1, 2, 7, 8}) == "0-2,5,7-8"


def test_auto_gives_each_worker_a_cpu_from_the_lowest() -> None:
    assert auto_cpus({3, 1, 2, 0}, 1) == (0,)
    assert auto_cpus({3, 1, 2, 0}, 2) == (0, 1)
    assert store_cpus(auto_cpus({0, 1, 2, 3}, 2), {0, 1, 2, 3}) == {2, 3}
    assert auto_cpus({4, 5}, 3) == (4, 5)  # more workers than CPUs: in turn
    assert [worker_cpu(auto_cpus({4, 5}, 3), i) for i in range(3)] == [4, 5, 4]


def test_cpus_outside_this_process_are_refused() -> None:
    assert check_cpus((0, 1), {0, 1}) is None
    assert check_cpus((1, 4, 5), {0, 1}) == (
        "CPU 4, 5 is not one this process may run on (it may use 0-1)"
    )
    assert check_cpus((0,), set()) is not None  # no sched_setaffinity: not Linux


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux only")
def test_the_cli_refuses_a_cpu_it_cannot_use_before_starting_anything() -> None:
    beyond = max(usable()) + 1
    r = CliRunner().invoke(
        app, ["gateway", "--upstream", "http://127.0.0.1:9", "--cpus", str(beyond)]
    )
    assert r.exit_code == 2
    assert f"Invalid value for --cpus: CPU {beyond} is not one this process may run on" in " ".join(
        r.output.replace("│", " ").split()
    )
    r = CliRunner().invoke(app, ["gateway", "--upstream", "http://127.0.0.1:9", "--cpus", "x"])
    assert r.exit_code == 2 and "'x' is not a CPU number or range" in r.output


def test_an_empty_cpu_list_means_no_pinning_and_auto_one_cpu_a_worker() -> None:
    from slokit.cli_gateway import _cpus

    assert _cpus(None, 2) == () and _cpus("", 2) == () and _cpus(" ", 1) == ()
    if hasattr(os, "sched_getaffinity"):
        assert _cpus("auto", 1) == (min(usable()),)
