"""The table of the 23 nets of the cascade (Sun, Wang, Tang, CVPR 2013, Table 1 and section 3).

Every other part (prototxt templates, data generation, training, inference) reads this table;
adding a net is adding a row.
"""
from __future__ import annotations

from dataclasses import dataclass

POINTS = ("LE", "RE", "N", "LM", "RM")
# Mirroring an image swaps left and right features.
MIRROR_ORDER = (1, 0, 2, 4, 3)


@dataclass(frozen=True)
class CascadeNet:
    name: str                 # e.g. "F1", "LE21"
    level: int                # 1, 2 or 3
    template: str             # layer template model/templates/<template>.prototxt.j2: S0 (F1), S1 (EN1/NM1), S2 (15x15)
    height: int               # input rows
    width: int                # input columns
    points: tuple[str, ...]   # points predicted, in output order
    # level 1: crop region relative to the face box (left, right, top, bottom)
    region: tuple[float, float, float, float] | None = None
    # levels 2-3: half-size of the square patch, as a fraction of box width/height
    half_size: float | None = None
    # training starts from this net's trained weights (`caffe train --weights`; same layer
    # shapes), not from random ones: level 3 from level 2's net of the same point
    starts_from: str | None = None

    @property
    def key(self) -> str:
        """Folder and file stem: '1_F1', '2_LE21'."""
        return f"{self.level}_{self.name}"

    @property
    def n_outputs(self) -> int:
        return 2 * len(self.points)

    @property
    def point_indices(self) -> tuple[int, ...]:
        return tuple(POINTS.index(p) for p in self.points)


def _patch_nets(level: int, half_sizes: tuple[float, float], starts_from_level: int | None = None) -> list[CascadeNet]:
    return [
        CascadeNet(f"{p}{level}{i + 1}", level, "S2", 15, 15, (p,), half_size=h,
                   starts_from=f"{p}{starts_from_level}{i + 1}" if starts_from_level else None)
        for p in POINTS
        for i, h in enumerate(half_sizes)
    ]


NETS: tuple[CascadeNet, ...] = (
    CascadeNet("F1", 1, "S0", 39, 39, POINTS, region=(-0.05, 1.05, -0.05, 1.05)),
    CascadeNet("EN1", 1, "S1", 31, 39, ("LE", "RE", "N"), region=(-0.05, 1.05, -0.04, 0.84)),
    CascadeNet("NM1", 1, "S1", 31, 39, ("N", "LM", "RM"), region=(-0.05, 1.05, 0.18, 1.05)),
    *_patch_nets(2, (0.16, 0.18)),
    *_patch_nets(3, (0.11, 0.12), starts_from_level=2),
)
# The cascade's levels, in order: everything that loops over levels or offers --level reads this.
LEVELS: tuple[int, ...] = tuple(sorted({s.level for s in NETS}))


def mirror_partner(spec: CascadeNet, specs: "list[CascadeNet] | tuple[CascadeNet, ...]") -> tuple[int, tuple[int, ...]] | None:
    """The net of `specs` whose crop is the mirror image of `spec`'s crop, for test-time
    mirroring: (its index in `specs`, and for each of its points the output of `spec` that
    finds that point on its flipped crop). `spec` run on the partner's flipped crop sees a face
    as in a mirror: its left eye is the partner's right eye. None if no net of `specs` has
    the mirrored crop and points."""
    mirrored = [POINTS[MIRROR_ORDER[POINTS.index(p)]] for p in spec.points]
    region = None if spec.region is None else (1 - spec.region[1], 1 - spec.region[0], *spec.region[2:])
    for i, other in enumerate(specs):
        if (other.level == spec.level and (other.width, other.height) == (spec.width, spec.height)
                and sorted(other.points) == sorted(mirrored) and other.half_size == spec.half_size
                and (region is None) == (other.region is None)
                and (region is None or all(abs(a - b) < 1e-9 for a, b in zip(region, other.region)))):
            return i, tuple(mirrored.index(p) for p in other.points)
    return None


def by_name(name: str) -> CascadeNet:
    for spec in NETS:
        if spec.name == name or spec.key == name:
            return spec
    raise KeyError(f"no net named {name!r}; known: {', '.join(s.name for s in NETS)}")


def of_level(level: int) -> list[CascadeNet]:
    nets = [s for s in NETS if s.level == level]
    if not nets:
        raise ValueError(f"no nets at level {level}; levels are {', '.join(map(str, LEVELS))}")
    return nets
