"""CHGNet's crystal graph for a structure, the same tensors as its own converter, with the bond graph built in numpy.

A batched relaxation rebuilds every structure's graph at every step (the geometry moves, and a graph kept past
its cutoffs would change the three-body set and so the energies).  CHGNet's converter finds the neighbours in C,
but lists the bond graph (the pairs of bonds shorter than 3 Å that share an atom: CHGNet's angles) in a Python
loop over edge objects: ~70% of a 20-atom cell's conversion, a few per cent of each relaxation step
(benchmarks/RESULTS-mlip.md).  :func:`crystal_graph` takes the converter's own neighbour list and graph, and
lists the same angles, in the same order, with array operations; the result is tensor for tensor what
``converter(structure)`` returns (tested), so energies, forces and stresses are the same to the bit.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from pymatgen.core import Structure


def line_graph(graph, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """``Graph.line_graph_adjacency_list(cutoff)`` of CHGNet, as arrays: rows ``[atom, undirected bond i,
    directed bond i, undirected bond j, directed bond j]`` (shape (m, 5)) and ``undirected2directed``.

    CHGNet's order: undirected bonds in order, skipping those longer than ``cutoff``; for each, its two ends;
    for each end, every other directed bond from that atom shorter than ``cutoff``, in the order of the atom's
    neighbour table.  That table is walked once here (one pass over the directed bonds), the rest is gathers.
    """
    directed = graph.directed_edges_list
    undirected = graph.undirected_edges_list
    if len(directed) != 2 * len(undirected):
        raise ValueError(f"number of directed edges={len(directed)} != 2 * number of undirected edges="
                         f"{len(undirected)}: the directed edges are not complete")
    distance = np.array([e.info["distance"] for e in directed], dtype=float)
    undirected_of = np.array([e.info["undirected_edge_index"] for e in directed], dtype=np.int64)
    to_directed = np.array([u.info["directed_edge_index"][0] for u in undirected], dtype=np.int64)
    # each atom's directed bonds in its neighbour table's order, the short ones only
    table = [np.array([e.index for edges in node.neighbors.values() for e in edges], dtype=np.int64)
             for node in graph.nodes]
    table = [t[distance[t] < cutoff] if len(t) else t for t in table]
    lengths = np.array([len(t) for t in table], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.concatenate(table) if table else np.zeros(0, dtype=np.int64)
    # the ends of the short undirected bonds, in CHGNet's order
    centers, bonds, own = [], [], []
    for u in undirected:
        if u.info["distance"] > cutoff:
            continue
        pair = u.info["directed_edge_index"]
        if len(pair) != 2:
            raise ValueError(f"undirected edge {u} has {len(pair)} directed edges, not 2")
        centers.extend(u.nodes)
        bonds.extend((u.index, u.index))
        own.extend(pair)
    if not centers:
        return np.zeros((0, 5), dtype=np.int64), to_directed
    center = np.array(centers, dtype=np.int64)
    per_end = lengths[center]
    end = np.repeat(np.arange(len(center)), per_end)
    offset = np.arange(len(end)) - np.repeat(np.cumsum(per_end) - per_end, per_end)
    other = flat[starts[center][end] + offset]
    keep = other != np.array(own, dtype=np.int64)[end]
    end, other = end[keep], other[keep]
    rows = np.stack([center[end], np.array(bonds, dtype=np.int64)[end], np.array(own, dtype=np.int64)[end],
                     undirected_of[other], other], axis=1)
    return rows, to_directed


def crystal_graph(converter, structure: Structure):
    """``converter(structure)`` (a CHGNet ``CrystalGraphConverter``), the bond graph listed by :func:`line_graph`."""
    from chgnet.graph.converter import TORCH_DTYPE
    from chgnet.graph.crystalgraph import CrystalGraph

    n_atoms = len(structure)
    atomic_number = torch.tensor([site.specie.Z for site in structure], dtype=torch.int32, requires_grad=False)
    atom_frac_coord = torch.tensor(structure.frac_coords, dtype=TORCH_DTYPE, requires_grad=True)
    lattice = torch.tensor(structure.lattice.matrix, dtype=TORCH_DTYPE, requires_grad=True)
    center_index, neighbor_index, image, distance = structure.get_neighbor_list(
        r=converter.atom_graph_cutoff, sites=structure.sites, numerical_tol=1e-8)
    graph = converter.create_graph(n_atoms, center_index, neighbor_index, image, distance)
    atom_graph, directed2undirected = graph.adjacency_list()
    bond_rows, undirected2directed = line_graph(graph, converter.bond_graph_cutoff)
    isolated = n_atoms - len(set(center_index.tolist()))
    if isolated:
        msg = (f"Structure graph_id=None has {isolated} isolated atom(s) with "
               f"atom_graph_cutoff={converter.atom_graph_cutoff}. CHGNet calculation will likely go wrong")
        if converter.on_isolated_atoms == "error":
            raise ValueError(msg)
        if converter.on_isolated_atoms == "warn":
            print(msg, file=sys.stderr)
    return CrystalGraph(
        atomic_number=atomic_number,
        atom_frac_coord=atom_frac_coord,
        atom_graph=torch.tensor(atom_graph, dtype=torch.int32),
        neighbor_image=torch.tensor(image, dtype=TORCH_DTYPE),
        directed2undirected=torch.tensor(directed2undirected, dtype=torch.int32),
        undirected2directed=torch.from_numpy(undirected2directed).to(torch.int32),
        # CHGNet's own converter gives an empty bond graph the shape (0,): kept, the model tests its length
        bond_graph=torch.from_numpy(bond_rows).to(torch.int32) if len(bond_rows) else torch.tensor([], dtype=torch.int32),
        lattice=lattice,
        graph_id=None,
        mp_id=None,
        composition=structure.composition.formula,
        atom_graph_cutoff=converter.atom_graph_cutoff,
        bond_graph_cutoff=converter.bond_graph_cutoff,
    )
