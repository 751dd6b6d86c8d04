"""Partition shapes and target selection: pure functions of node ids and a seeded RNG;
and the partition fault's modes (drop, blackhole) on a mesh's link faults."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from nemesis.faults.base import majority_size, minority_size, pick_targets
from nemesis.faults.partition import (
    SHAPES,
    PartitionFault,
    complete_grudge,
    heard_by,
    minority_third_size,
    shape_bridge,
    shape_majorities_ring,
    shape_majority,
    shape_minority_third,
    shape_one,
    shape_one_way,
)
from nemesis.proxy import ProxyMesh

SIZES = [3, 5]
SEEDS = range(20)


def nodes_of(count: int) -> list[str]:
    return [f"n{i}" for i in range(1, count + 1)]


def components_of(grudge: dict[str, set[str]], node_ids: Sequence[str]) -> list[set[str]]:
    """For a complete grudge: the groups of nodes that hear each other."""
    hears = heard_by(grudge, node_ids)
    groups: list[set[str]] = []
    for node in node_ids:
        if not any(node in group for group in groups):
            groups.append(hears[node])
    return groups


def assert_complete(grudge: dict[str, set[str]], node_ids: Sequence[str]) -> list[set[str]]:
    """Symmetric and transitive: the nodes split into groups that hear exactly each other."""
    groups = components_of(grudge, node_ids)
    hears = heard_by(grudge, node_ids)
    for group in groups:
        for node in group:
            assert hears[node] == group
    assert sorted(node for group in groups for node in group) == sorted(node_ids)
    return groups


@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_one_isolates_exactly_one_node(count: int, seed: int) -> None:
    node_ids = nodes_of(count)
    groups = assert_complete(shape_one(node_ids, random.Random(seed)), node_ids)
    assert sorted(len(group) for group in groups) == [1, count - 1]


@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_majority_splits_into_halves(count: int, seed: int) -> None:
    node_ids = nodes_of(count)
    groups = assert_complete(shape_majority(node_ids, random.Random(seed)), node_ids)
    assert sorted(len(group) for group in groups) == [count // 2, count - count // 2]


@pytest.mark.parametrize("count", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("seed", SEEDS)
def test_majorities_ring_every_node_hears_a_distinct_majority(count: int, seed: int) -> None:
    node_ids = nodes_of(count)
    grudge = shape_majorities_ring(node_ids, random.Random(seed))
    hears = heard_by(grudge, node_ids)
    for node, visible in hears.items():
        assert node in visible
        assert len(visible) == majority_size(count)
    assert len({frozenset(visible) for visible in hears.values()}) == count
    if count == 5:  # the perfect ring: every cut is two-way, each node hears its neighbours
        for node, dropped in grudge.items():
            for other in dropped:
                assert node in grudge[other]


@pytest.mark.parametrize("count", SIZES + [7, 9])
@pytest.mark.parametrize("seed", SEEDS)
def test_minority_third_cuts_off_at_most_a_third(count: int, seed: int) -> None:
    node_ids = nodes_of(count)
    groups = assert_complete(shape_minority_third(node_ids, random.Random(seed)), node_ids)
    smallest = min(len(group) for group in groups)
    assert smallest == minority_third_size(count)
    assert smallest == 1 or smallest < count / 3
    assert {3: 1, 5: 1, 7: 2, 9: 2}[count] == smallest


@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_bridge_keeps_one_node_connected_to_both_halves(count: int, seed: int) -> None:
    node_ids = nodes_of(count)
    grudge = shape_bridge(node_ids, random.Random(seed))
    hears = heard_by(grudge, node_ids)
    bridges = [node for node in node_ids if hears[node] == set(node_ids)]
    assert len(bridges) == 1
    bridge = bridges[0]
    assert all(bridge not in dropped for dropped in grudge.values())
    rest = [node for node in node_ids if node != bridge]
    sides = assert_complete({n: d for n, d in grudge.items()}, rest)
    assert sorted(len(side) for side in sides) == [count // 2, count - count // 2 - 1]
    for node in rest:
        assert bridge in hears[node]


@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_one_way_cuts_a_single_direction(count: int, seed: int) -> None:
    node_ids = nodes_of(count)
    grudge, node, direction = shape_one_way(node_ids, random.Random(seed))
    others = set(node_ids) - {node}
    if direction == "mute":
        assert grudge == {other: {node} for other in others}
    else:
        assert direction == "deaf"
        assert grudge == {node: others}


def test_one_way_uses_both_directions_across_seeds() -> None:
    directions = {shape_one_way(nodes_of(5), random.Random(seed))[2] for seed in SEEDS}
    assert directions == {"mute", "deaf"}


@pytest.mark.parametrize(
    "shape",
    [shape_one, shape_majority, shape_majorities_ring, shape_minority_third, shape_bridge],
)
def test_shapes_are_reproducible_from_the_seed_and_vary_across_seeds(shape: object) -> None:
    node_ids = nodes_of(5)
    assert shape(node_ids, random.Random(42)) == shape(node_ids, random.Random(42))  # type: ignore[operator]
    variety = {
        tuple(sorted((k, tuple(sorted(v))) for k, v in shape(node_ids, random.Random(s)).items()))  # type: ignore[operator]
        for s in SEEDS
    }
    assert len(variety) > 1


def test_complete_grudge_of_explicit_components() -> None:
    grudge = complete_grudge([["a"], ["b", "c"]])
    assert grudge == {"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}
    assert complete_grudge([["a", "b"]]) == {}


def test_shape_names_are_jepsens() -> None:
    assert SHAPES == (
        "one",
        "majority",
        "majorities-ring",
        "minority-third",
        "bridge",
        "leader",
        "one-way",
    )


@pytest.mark.parametrize("count", SIZES)
def test_target_sizes(count: int) -> None:
    node_ids = nodes_of(count)
    rng = random.Random(1)
    assert len(pick_targets("one", node_ids, rng)) == 1
    assert len(pick_targets("minority", node_ids, rng)) == minority_size(count) == count // 2
    assert len(pick_targets("majority", node_ids, rng)) == majority_size(count) == count // 2 + 1
    assert pick_targets("all", node_ids, rng) == node_ids
    for target in ("minority", "majority"):
        chosen = pick_targets(target, node_ids, rng)
        assert len(set(chosen)) == len(chosen) and set(chosen) <= set(node_ids)
    with pytest.raises(ValueError, match="unknown target"):
        pick_targets("most", node_ids, rng)


class _MeshOnly:
    """What PartitionFault uses of a ClusterControl: node ids, the mesh, the leader."""

    def __init__(self, mesh: ProxyMesh) -> None:
        self.mesh = mesh
        self.node_ids = mesh.node_ids

    async def current_leader(self) -> str | None:
        return "n1"


def _mesh() -> ProxyMesh:
    # Never served: applying a grudge only sets each link's faults.
    return ProxyMesh({f"n{i}": ("127.0.0.1", 18980 + i) for i in range(1, 4)}, base_port=18990)


async def test_partition_modes_drop_by_default_and_blackhole_on_request() -> None:
    for modes, flag in (((), "blocked"), (("blackhole",), "blackhole")):
        ctx = _MeshOnly(_mesh())
        fault = PartitionFault(["leader"], **({"modes": modes} if modes else {}))
        event = await fault.start(ctx, random.Random(3))  # type: ignore[arg-type]
        assert event.value["mode"] == ("blackhole" if modes else "drop")
        cut = {
            (source, destination)
            for destination, sources in event.value["grudge"].items()
            for source in sources
        }
        assert cut == {("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n3", "n1")}
        for link, faults in ctx.mesh.link_faults.items():
            assert getattr(faults, flag) == (link in cut)
            assert not getattr(faults, "blackhole" if flag == "blocked" else "blocked")
        await fault.stop(ctx)  # type: ignore[arg-type]
        assert all(faults.passing for faults in ctx.mesh.link_faults.values())


async def test_partition_mode_draws_keep_the_default_schedule_and_mix_when_asked() -> None:
    # One mode draws nothing from the RNG: the default's shapes are those of before modes.
    async def start(fault: PartitionFault, seed: int) -> dict[str, object]:
        return (await fault.start(_MeshOnly(_mesh()), random.Random(seed))).value  # type: ignore[arg-type]

    single = [(await start(PartitionFault(), seed))["shape"] for seed in SEEDS]
    assert single == [random.Random(seed).choice(SHAPES) for seed in SEEDS]
    both = PartitionFault(modes=("drop", "blackhole"))
    mixed = {(await start(both, seed))["mode"] for seed in SEEDS}
    assert mixed == {"drop", "blackhole"}
    with pytest.raises(ValueError, match="unknown partition mode"):
        PartitionFault(modes=("hold",))
