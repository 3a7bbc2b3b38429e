"""The compiled loops of the geo tables (numba), imported by the table builders only when they build a table,
so that reading a table, a CLI's --help and the training and report code never load numba.

Each anchor draws from its own splitmix64 stream keyed by (seed, anchor row), so a table depends only on the seed
and the data, never on how many threads built it or in which order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from geocontrast.geo.coords import EARTH_RADIUS_KM

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, inline="always")
def mix64(z):
    """splitmix64 finaliser: a bijective scramble of a uint64."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def stream_key(seed_key, row):
    """Key of the random stream of one anchor row."""
    return mix64(seed_key ^ mix64(np.uint64(row) * _GOLDEN + _GOLDEN))


@njit(cache=True, inline="always")
def uniform_index(key, counter, n):
    """The counter-th draw of stream ``key``: an integer uniform in [0, n)."""
    z = mix64(key + np.uint64(counter) * _GOLDEN)
    return min(np.int64((z >> np.uint64(11)) * _TO_UNIT * n), n - 1)


def seed_key(seed: int) -> np.uint64:
    """uint64 key for a user seed (any int; negative seeds wrap)."""
    return np.uint64(mix64(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF)))


# Negative tables (geocontrast.geo.negatives)


@njit(cache=True, inline="always")
def draw_other(order, start, group, stream, counter):
    """A uniform row of ``order`` outside ``group``'s run [start[group], start[group+1]), or -1 if none."""
    g0, g1 = start[group], start[group + 1]
    n_other = order.size - (g1 - g0)
    if n_other <= 0:
        return -1
    j = uniform_index(stream, counter, n_other)
    return order[j if j < g0 else j + (g1 - g0)]


@njit(cache=True, parallel=True)
def draw_negatives(
    u,
    has_coords,
    obs,
    by_obs_all,
    start_all,
    by_obs_coord,
    start_coord,
    rule,
    lo_chord2,
    hi_chord2,
    key_seed,
    max_tries,
    candidates,
    fallback,
):
    n, m = candidates.shape
    for i in prange(n):
        stream = stream_key(key_seed, i)
        counter = 0
        slot = 0
        if rule != 2 and has_coords[i]:
            while slot < m:
                tries = 0
                while tries < max_tries:
                    q = draw_other(by_obs_coord, start_coord, obs[i], stream, counter)
                    counter += 1
                    tries += 1
                    if q < 0:
                        tries = max_tries
                        break
                    d2 = (u[q, 0] - u[i, 0]) ** 2 + (u[q, 1] - u[i, 1]) ** 2 + (u[q, 2] - u[i, 2]) ** 2
                    # far: strictly beyond r_neg; band: within [r1, r2].
                    if (d2 > lo_chord2) if rule == 0 else (lo_chord2 <= d2 <= hi_chord2):
                        candidates[i, slot] = q
                        slot += 1
                        break
                if tries >= max_tries:
                    fallback[i] = True
                    break
        while slot < m:
            candidates[i, slot] = draw_other(by_obs_all, start_all, obs[i], stream, counter)
            counter += 1
            slot += 1


# Neighbour tables (geocontrast.geo.neighbours)


@njit(cache=True, inline="always")
def chord2_to_km(d2):
    """Great-circle km for a squared chord, in float64 before the float32 store."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(min(0.5 * np.sqrt(d2), 1.0))


@njit(cache=True, inline="always")
def eligible(d2, chord2, min_chord2, obs, anchor_obs, observer, anchor_observer, exclude_observer):
    """Whether a pool photo at squared chord ``d2`` can be the anchor's positive: within the radius, beyond the
    minimum distance, another observation, and (with ``exclude_observer``) another known observer."""
    return (
        d2 <= chord2
        and d2 >= min_chord2
        and obs != anchor_obs
        and not (exclude_observer and anchor_observer >= 0 and observer == anchor_observer)
    )


@njit(cache=True, inline="always")
def find_cell(cell_keys, key):
    """Index of ``key`` in the sorted ``cell_keys``, or -1."""
    j = np.searchsorted(cell_keys, key)
    if j < cell_keys.size and cell_keys[j] == key:
        return j
    return -1


@njit(cache=True, parallel=True)
def pool_sizes(cell_keys, cell_start, n_side):
    """Points in the 3×3×3 block of cells around each cell."""
    n_cells = cell_keys.size
    sizes = np.zeros(n_cells, dtype=np.int64)
    for c in prange(n_cells):
        key = cell_keys[c]
        total = 0
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                for dz in range(-1, 2):
                    j = find_cell(cell_keys, key + (dx * n_side + dy) * n_side + dz)
                    if j >= 0:
                        total += cell_start[j + 1] - cell_start[j]
        sizes[c] = total
    return sizes


@njit(cache=True, parallel=True)
def sample_neighbours(
    su,
    sobs,
    sobserver,
    srow,
    cell_keys,
    cell_start,
    n_side,
    chunks,
    pool_size,
    chord2,
    min_chord2,
    k,
    reject_limit,
    key_seed,
    exclude_observer,
    slots,
    dist_km,
    counts,
):
    """Fill ``slots[r*k : r*k+counts[r]]`` with sampled neighbour positions for every anchor position r.

    Inputs are sorted by cell (``srow`` maps a sorted point back to its position among rows with coordinates).
    Each cell resets its pool permutation, so results do not depend on which thread handles which chunk. After
    ``reject_limit`` rejected draws an anchor enumerates the rest of its pool.
    """
    for ch in prange(chunks.size - 1):
        c0, c1 = chunks[ch], chunks[ch + 1]
        cap = 0
        for c in range(c0, c1):
            cap = max(cap, pool_size[c])
        px = np.empty(cap)
        py = np.empty(cap)
        pz = np.empty(cap)
        pobs = np.empty(cap, dtype=np.int64)
        pobserver = np.empty(cap, dtype=np.int64)
        prow = np.empty(cap, dtype=np.int32)
        perm = np.empty(cap, dtype=np.int32)
        found = np.empty(cap, dtype=np.int32)
        for c in range(c0, c1):
            # Gather the pool once for all anchors of this cell.
            size = 0
            key = cell_keys[c]
            for dx in range(-1, 2):
                for dy in range(-1, 2):
                    for dz in range(-1, 2):
                        j = find_cell(cell_keys, key + (dx * n_side + dy) * n_side + dz)
                        if j < 0:
                            continue
                        for s in range(cell_start[j], cell_start[j + 1]):
                            px[size] = su[s, 0]
                            py[size] = su[s, 1]
                            pz[size] = su[s, 2]
                            pobs[size] = sobs[s]
                            pobserver[size] = sobserver[s]
                            prow[size] = srow[s]
                            size += 1
            for t in range(size):
                perm[t] = t
            for a in range(cell_start[c], cell_start[c + 1]):
                ax, ay, az = su[a, 0], su[a, 1], su[a, 2]
                aobs, aobserver = sobs[a], sobserver[a]
                row = srow[a]
                base = row * k
                stream = stream_key(key_seed, row)
                got = 0
                t = 0
                # Partial Fisher–Yates: perm[:t] are the pool slots drawn so far, each at most once.
                while got < k and t < size and t - got <= reject_limit:
                    j = t + uniform_index(stream, t, size - t)
                    q = perm[j]
                    perm[j] = perm[t]
                    perm[t] = q
                    t += 1
                    d2 = (px[q] - ax) ** 2 + (py[q] - ay) ** 2 + (pz[q] - az) ** 2
                    if eligible(d2, chord2, min_chord2, pobs[q], aobs, pobserver[q], aobserver, exclude_observer):
                        slots[base + got] = prow[q]
                        dist_km[base + got] = chord2_to_km(d2)
                        got += 1
                if got < k and t < size:
                    # Rejection keeps failing: enumerate the undrawn rest of the pool, then sample from it.
                    n_found = 0
                    for i in range(t, size):
                        q = perm[i]
                        d2 = (px[q] - ax) ** 2 + (py[q] - ay) ** 2 + (pz[q] - az) ** 2
                        if eligible(d2, chord2, min_chord2, pobs[q], aobs, pobserver[q], aobserver, exclude_observer):
                            found[n_found] = q
                            n_found += 1
                    draws = 0
                    while got < k and n_found > 0:
                        j = uniform_index(stream, size + draws, n_found)
                        draws += 1
                        q = found[j]
                        found[j] = found[n_found - 1]
                        n_found -= 1
                        d2 = (px[q] - ax) ** 2 + (py[q] - ay) ** 2 + (pz[q] - az) ** 2
                        slots[base + got] = prow[q]
                        dist_km[base + got] = chord2_to_km(d2)
                        got += 1
                counts[row] = got


@njit(cache=True)
def compact_rows(slots, dist_km, counts, k, rows):
    """Move the stride-k rows to CSR order in place (each row moves forward, so nothing is overwritten),
    turning positions among rows with coordinates into manifest rows."""
    pos = 0
    for r in range(counts.size):
        base = r * k
        for i in range(counts[r]):
            slots[pos + i] = rows[slots[base + i]]
            dist_km[pos + i] = dist_km[base + i]
        pos += counts[r]
    return pos
