"""Incremental multi-pack-index chains: pack/multi-pack-index.d/multi-pack-index-chain and its layers.

The chain file names one layer per line, base first, by the layer's checksum in hex; layer $H
lives in multi-pack-index-$H.midx beside it. Each layer indexes its own packs, and its objects
take the positions after those of the layers below it (git's num_objects_in_base).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ..errors import CorruptObject
from ..mapped_file import file_identity, open_regular, read_all
from .multi_pack_index import MultiPackIndex
from ..oid import ObjectFormat

CHAIN_DIR = "multi-pack-index.d"
CHAIN_FILE = "multi-pack-index-chain"
# git reads at most size / (hex length + 1) lines; a chain file is never read past this many
# bytes (about 1,600 SHA-1 layers), so a huge or endless one costs nothing.
MAX_CHAIN_BYTES = 1 << 16
MAX_U32 = (1 << 32) - 1
HEX_DIGITS = frozenset("0123456789abcdef")


def chain_path(pack_dir: str) -> str:
    return os.path.join(pack_dir, CHAIN_DIR, CHAIN_FILE)


def layer_path(pack_dir: str, name: str) -> str:
    return os.path.join(pack_dir, CHAIN_DIR, f"multi-pack-index-{name}.midx")


class ChainFile(NamedTuple):
    """What one look at the chain saw: its bytes, or why they could not be read, and the
    identity of each layer file it names (None for a missing one)."""

    data: bytes
    error: str | None
    layers: tuple


def read_chain(pack_dir: str, fmt: ObjectFormat) -> ChainFile | None:
    """The chain file and the identities of its layers, without opening them; None when there
    is no chain. Cheap enough for every refresh: one read of a small file, one stat per layer.

    An empty chain file counts as missing, as in git. At most MAX_CHAIN_BYTES + 1 bytes are
    read, and anything but a regular file is refused.
    """
    try:
        fd = open_regular(chain_path(pack_dir))
    except FileNotFoundError:
        return None
    except OSError as e:
        return ChainFile(b"", f"cannot read the chain file: {e.strerror}", ())
    try:
        data = read_all(fd, MAX_CHAIN_BYTES + 1)
    except OSError as e:
        return ChainFile(b"", f"cannot read the chain file: {e.strerror}", ())
    finally:
        os.close(fd)
    if not data:
        return None
    try:
        names = layer_names(data, pack_dir, fmt)
    except CorruptObject as e:
        return ChainFile(data, e.reason, ())
    layers = []
    for name in names:
        try:
            layers.append(file_identity(os.stat(layer_path(pack_dir, name))))
        except OSError:
            layers.append(None)
    return ChainFile(data, None, tuple(layers))


def layer_names(data: bytes, pack_dir: str, fmt: ObjectFormat) -> list[str]:
    """The layer names of a chain file, base first; CorruptObject unless every line is one
    hash (hex_len hex digits), each layer named once."""
    where = chain_path(pack_dir)
    if len(data) > MAX_CHAIN_BYTES:
        raise CorruptObject(where, None, f"multi-pack-index chain is over {MAX_CHAIN_BYTES} bytes")
    if not data.endswith(b"\n"):
        raise CorruptObject(where, len(data), "multi-pack-index chain does not end with a newline")
    names: list[str] = []
    offset = 0
    for line in data[:-1].split(b"\n"):
        # git parses the hash in either case, and names the layer file in lower case.
        name = line.decode("ascii", "replace").lower()
        if len(name) != fmt.hex_len or not HEX_DIGITS.issuperset(name):
            raise CorruptObject(where, offset, f"multi-pack-index chain: line {line[:80]!r} is not a hash")
        if name in names:
            raise CorruptObject(where, offset, f"multi-pack-index chain names layer {name} twice")
        names.append(name)
        offset += len(line) + 1
    return names


def load_chain(pack_dir: str, fmt: ObjectFormat, chain: ChainFile) -> tuple[MultiPackIndex, ...]:
    """Every layer of the chain, base first, each validated; CorruptObject (or OSError) if
    the chain file or any layer is missing or damaged: a chain is used whole or not at all."""
    if chain.error is not None:
        raise CorruptObject(chain_path(pack_dir), None, f"multi-pack-index chain: {chain.error}")
    names = layer_names(chain.data, pack_dir, fmt)
    layers: list[MultiPackIndex] = []
    base_objects = 0
    for k, name in enumerate(names):
        path = layer_path(pack_dir, name)
        try:
            layer = MultiPackIndex(path, fmt, layer=k, base_objects=base_objects)
        except FileNotFoundError:
            raise CorruptObject(path, None, f"multi-pack-index chain: layer {name} is missing") from None
        # A layer is named by its checksum; a file whose trailer says otherwise is not the
        # layer the chain means (git only checks this in `multi-pack-index verify`).
        if layer.checksum.hex() != name:
            raise CorruptObject(path, len(layer.buf) - fmt.raw_len,
                                "multi-pack-index layer: its checksum is not its name")
        base_objects += layer.count
        if base_objects > MAX_U32:  # git refuses a chain whose positions overflow 32 bits
            raise CorruptObject(path, None, "multi-pack-index chain: too many objects")
        layers.append(layer)
    return tuple(layers)
