"""odb's tuning: every number that trades speed against memory, descriptors or address space, in
one place, each with what it trades and the measurement that set it ("not measured": chosen by
reasoning, no comparison with other values recorded).

Limits that refuse hostile input (chain depth, delta expansion, header sizes) are not tuning and
stay with the format code that enforces them. Each module imports what it uses by name, so a
test can still patch `module.NAME` for that module alone.
"""

# -- objects -----------------------------------------------------------------------------------

DEFAULT_CACHE_SIZE = 96 << 20  # delta bases kept: git's core.deltaBaseCacheLimit
STREAM_THRESHOLD = 1 << 20  # smaller objects are simply read whole; bigger ones can be streamed
# Entry types remembered at once by header walks: the Python path's pack.kinds (about 25 MB when
# full) and the engine's Kinds (16 bytes a slot, at most half full: 16 MB when full). The engine's
# memo took read_header of 402,064 objects from 4.65 to 2.73 s (docs/performance.md); the bound
# itself is not measured.
MAX_KINDS = 1 << 19
# Delta bytes read per batch of result slices in the Python delta path: a huge delta of tiny
# instructions cannot multiply its size in Python objects. A bound, not measured for speed.
DELTA_WINDOW = 1 << 16

# -- inflating ---------------------------------------------------------------------------------

# Output handed out per piece, and input fed per step: zlib is asked for at most this many bytes
# at a time, so that a piece never holds more than that whatever the compression ratio.
INFLATE_CHUNK = 1 << 20
INPUT_STEP = 1 << 16
STREAM_CHUNK = 1 << 20  # bytes a pack stream hands out per read
HASH_CHUNK = 1 << 20  # bytes hashed per step when an LFS object is checked

# -- id tables (.idx, multi-pack-index) --------------------------------------------------------

# Buckets holding more ids than this get a second-level fanout (by the second byte) the first
# time they are searched: a lookup is then one C-level find over a handful of ids instead of a
# dozen Python-level bisect steps. Smaller buckets bisect; they are short. Not measured.
SUBFANOUT_MIN = 64
TABLE_RESIDENT_BUDGET = 16 << 20  # bytes of a mapped table read before it gives its pages back
# What one find maps: Linux maps the 64 KiB around a faulting page (fault_around_bytes), once for
# the ids searched and once for the entry read next. Measured: 10,000 random finds in a
# 10M-object midx otherwise keep 270 MB of it mapped in each process.
FIND_TOUCH = 128 << 10

# -- packs -------------------------------------------------------------------------------------

# A stream hands back the pages of the pack it has read past every this many bytes: otherwise
# reading a huge blob leaves the whole mapping resident and counted in this process's RSS.
STREAM_RELEASE = 32 << 20
# Random reads (a grep over many objects) touch pages all over a pack, and touched pages of a
# mapping count in RSS until the process lets go of them (headers are read with pread and touch
# nothing). A pack counts the distinct 64 KiB windows (WINDOW_SHIFT; Linux maps the 64 KiB around
# a faulting page) it has touched and, past this budget, hands its pages back to the page cache,
# which keeps them: a re-read is a minor fault, not I/O. Counting distinct windows, not touches,
# means hot windows (shared delta bases) do not trigger releases. Measured: reading buckets 00-03
# of the bench repository took the same time at 8 and 16 MiB, with 37 MB less peak RSS at 8.
PACK_RESIDENT_BUDGET = 8 << 20
# The same for all packs of the process together: random reads over a repository of many packs
# (11 in a 10M-object one) would otherwise keep up to PACK_RESIDENT_BUDGET of each.
PROCESS_BUDGET = 24 << 20
WINDOW_SHIFT = 16
# One pread per header: the entry header plus the start of its zlib stream, which for most
# deltas holds their two size varints (a dynamic Huffman table can take ~100 bytes). Not measured.
HEADER_READ = 128
PREFIX_READ = 1024
# Big packs open at once, each holding a descriptor (and, once mapped, the mapping's own): this
# bounds descriptors and address space, as git's core.packedGitLimit bounds windows. Lower when
# the process may open few files.
MAX_MAPPED_PACKS = 256
# Files up to this size are read into memory instead of mapped: Python's mmap keeps a duplicate
# of the descriptor for as long as the map lives (until 3.13's trackfd=False), so mapping every
# small .idx and .pack of a repository with thousands of packs would run out of descriptors.
READ_WHOLE_BELOW = 1 << 20

# -- loose objects -----------------------------------------------------------------------------

HEAD_READ = 1024  # bytes read first of a loose object: its header and the start of its data. Not measured.
MAX_BUCKET_DESCRIPTORS = 64  # bucket directories kept open per objects directory, when confined
