"""Packs, as git stores them: .pack files, their .idx and .rev, and the multi-pack-index (or its chain).

  backend.py           PackBackend: a pack directory's id sources in lookup order; refresh; fallbacks
  id_sources.py        the id sources as peers: a pack's own .idx, a multi-pack-index, a chain of them
  multi_pack_index.py  the multi-pack-index (v1, v2): one sorted id table over many packs
  midx_chain.py        incremental multi-pack-index chains (multi-pack-index.d/) and their layers
  index.py             .idx v1/v2: id -> offset in the .pack, and back
  reverse_index.py     offset -> index position through a .rev file (RIDX) or a table built in memory
  packfile.py          Pack: .pack v2/v3, entry headers (read with pread), bounded zlib inflation, streaming
  fanout.py            the one id search (exact and prefix) of .idx and midx, and the one bisection
                       of sorted ids (the mount's listings use it too)
"""

from .packfile import Pack

__all__ = ["Pack"]
