"""The mount's tuning: every number that trades speed against memory, latency or fairness, in
one place, each with what it trades and the measurement that set it.

"Measured" names a figure of docs/performance.md (git.git at v2.55.0, 402k objects in 5 packs
under a multi-pack-index, 2 cores) or the experiment that chose the value. "Not measured" says
that the value was chosen by reasoning and no comparison with other values has been recorded:
those are the first candidates for `scripts/bench` A/B runs (`farm-bench` pairs two commands).

Formats and protocol numbers (inode layout, FUSE message codes, xattr names) are not tuning and
stay with their code. Each module imports what it uses by name, so a test can still patch
`module.NAME` for that module alone.
"""

from __future__ import annotations

import os

# -- what the kernel keeps and asks for -------------------------------------------------------

# Objects never change, so the kernel may keep their names and attributes for long; directories
# change whenever the repository does, and a re-read after this long shows the change.
OBJECT_TIMEOUT = 3600.0  # seconds. Not measured: any value far above a walk's length does.
DIRECTORY_TIMEOUT = 1.0  # seconds. Not measured: how stale a listing may look to a user.
# glibc sizes its getdents buffer from a directory's st_blksize, and the kernel sizes READDIRPLUS
# requests to match: 1 MiB takes a bucket of a big repository in one or two requests. Measured:
# one of the "levers" of the floor row of figure (1) (`ls -l` 1.57x git with all of them).
DIRECTORY_BLOCK = 1 << 20
FILE_BLOCK = 128 << 10  # st_blksize of files: the kernel's read size. Not measured.
# Bytes per FUSE_NOTIFY_STORE message (the kernel copies them page by page), and bytes queued for
# pushing before read-ahead stops adding more. Not measured.
PUSH_CHUNK = 1 << 20
PUSH_QUEUE_BYTES = 64 << 20

# -- the loop, its threads and helper processes -----------------------------------------------

# The GIL is handed between the loop and its threads every millisecond rather than every 5 ms,
# so that a request does not wait behind a thread's inflating. Not measured since it was set.
GIL_SWITCH_INTERVAL = 0.001
# Microseconds the FUSE loop waits awake for the next request after each reply before it sleeps
# in epoll (pyfuse3.set_spin, gitfs/pyfuse3-spin.patch): a reader's next request comes within
# microseconds, and a wake-up on each side was most of a round trip. GITFS_SPIN_US sets it (0:
# off). Measured (docs/performance.md, "Waiting awake"): an idle getxattr 54 -> 27 us; figure
# (11) at 20 against 0: random 3.91 -> 2.89, 32 readers 3.56 -> 2.87, rg -j4 2.14 -> 1.53; at 50
# much the same, at 100 the 32 readers lost it all (3.86): the loop spun on a core they needed.
SPIN_US = int(os.environ.get("GITFS_SPIN_US", "20"))
# Microseconds the loop waits awake after a request it answered in C (gitfs/fuse/_request_path.c),
# before it sleeps in epoll: GITFS_FAST_SPIN_US sets it. Measured at 60 against 20: by hand one
# reader of 1,000 random objects 0.17-0.19 s against 0.21-0.25 s, 32 readers 1.49-1.55 s against
# 1.61-1.62 s; but in figure (11), alternating, 32 readers 1.53, 1.81 s against 1.45, 1.55 s and
# grep 00-03 0.71, 0.74 s against 0.67, 0.68 s. No clear gain: SPIN_US's.
FAST_SPIN_US = int(os.environ.get("GITFS_FAST_SPIN_US", str(SPIN_US)))
# Threads of the mount that also wait for requests (in epoll, without the GIL), answer LOOKUP and
# READ of object files in C (gitfs/fuse/_request_path.c) and hand every other request to the loop,
# which reads requests itself as well. GITFS_REQUEST_THREADS sets it. Measured on 2 cores against
# 0 (the loop alone, answering those in C itself): 32 readers of 9,600 objects 2.49-2.81 s against
# 2.56-2.88 s, one reader of 1,000 the same, the type-and-bytes hasher over 00-03 1.08-1.31 s
# against 1.01-1.13 s (its GETXATTRs are handed over). The readers hold both cores: threads win
# nothing here, so none.
REQUEST_THREADS = int(os.environ.get("GITFS_REQUEST_THREADS", "0"))
# Seconds between two looks of the loop at what the compiled request path did (the pages of the
# packs it touched, a changed repository), for when no request reaches Python. Not measured.
COMPILED_UPKEEP = 1.0
# Helper processes that inflate objects and read sizes beside the loop: on two cores, two keep
# both busy during a grep. Measured against threads (GITFS_HELPERS=0): the whole-mount grep
# takes 130-139 s with helpers, 182-192 s with threads (docs/performance.md, figure (12)).
HELPERS = max(1, min(2, os.cpu_count() or 2))
# git's core.deltaBaseCacheLimit, split between the mount process and its helpers. Measured: a
# whole 96 MiB in the mount process as well took figure (4)'s peak RSS from 262 to 316 MB; split
# in three, 273 MB.
DELTA_BASE_CACHE = 96 << 20
# Objects up to this size are made on the loop (MountView.small): about 0.3 ms of inflating at
# most, a hop's worth; 128 KiB is the kernel's read size, so most are one READ. Measured: work on
# the loop took figure (11)'s random reads from 15.2x git to 5.8x; the bound itself has not been
# compared with others.
INLINE_MAX = 128 << 10
# A reader waiting this long for a helper gets the object loaded in this process too (a helper
# stuck behind a big object must not stall a small read). Not measured. A helper pushing the very
# object a READ wants waits for that READ: it says so first (hp.Pushing), and that reader does not
# wait at all (before that, 15 of 1,016 READs of a .tree grep each waited these 20 ms).
HEDGE_AFTER = 0.02  # seconds
# Requests in flight per helper beyond urgent ones: enough to keep a helper busy while the last
# answer travels, few enough that an urgent request is not queued behind many. Not measured.
IN_FLIGHT = 6
PIPE_SIZE = 1 << 20  # bytes of each pipe to a helper: a big object in few writes. Not measured.

# Allocations this big and over are mapped on their own and returned when freed (memory.py):
# glibc's default threshold rises with every big block freed, and a mount that read big objects
# then kept them as free heap. Measured: with the 600 largest objects of git.git open and read
# at --cache-size 64M (figure (11)), the mount process held 82 MB of anonymous memory after, 36 MB
# with this set; 81 MB at 1 MiB. The whole-mount walk, which maps and frees every big object,
# took as long with it (docs/performance.md, "Stalls, memory and the hasher").
MMAP_THRESHOLD = 128 << 10

# -- listings, sizes and names ------------------------------------------------------------------

SIZE_BATCH = 256  # ids per request for sizes. Not measured.
# Latest bucket listings kept (the read-ahead guide, inode -> id): all buckets of a 10M-object
# repository fit. Measured at scale: figure (9), 198 MB after `find` over 10M objects.
LISTING_BYTES = 64 << 20
RECENT_INODES = 4096  # inode -> id and sizes of objects looked up by name. Not measured.
AMBIGUOUS_MEMORY = 1.0  # seconds an ambiguous abbreviation is answered from memory. Not measured.
AMBIGUOUS_KEPT = 1024  # ambiguous abbreviations remembered. Not measured.

# -- read-ahead: objects pushed into the page cache before they are read ----------------------

# How far ahead of a reader walking a listing objects are inflated, in objects and in bytes.
# Not measured since they were set (128 objects, 32 MiB, together with pipelined loads).
AHEAD_OBJECTS = 128
AHEAD_BYTES = 32 << 20
# A walk of the whole mount in pack order (gitfs/engine/pack_walk.py). Measured: the whole-mount
# grep of figure (12), docs/performance.md "A whole-mount walk in pack order".
# A walk that read a bucket of this many objects whole and goes on is served in pack order; a
# smaller repository gains little from it. GITFS_PACK_WALK_MIN_OBJECTS sets it (the tests use 1).
PACK_WALK_MIN_OBJECTS = int(os.environ.get("GITFS_PACK_WALK_MIN_OBJECTS", "256"))
# Seconds without a request after which a helper process gives back its delta bases and free memory.
# Not measured against other values; the RSS rows of figures (11) and (12) with and without it are.
IDLE_AFTER = 2.0
# Buckets a walk reads, one after the other, before the rest is read in pack order: at the end of the
# fifth the next window is asked for. For a few
# buckets pack order gains nothing (00-03: 0.45 s against 0.48 s in id order, odb alone), and a
# window read for a walk that then stops costs the CPU of what comes next: figure (1)'s grep of
# 00-03 followed by figure (6)'s took 1.80 s and 0.185 s with windows from the second bucket on.
PACK_WALK_AFTER = 5
PACK_WALK_FIRST = 8  # buckets of the first window. Not measured.
# How much wider each next window is: every window's end stalls the walker while the next is listed.
# Measured: growing by 2 (8 windows) took the whole-mount grep 41.9 s, by 4 (5 windows) see performance.md.
PACK_WALK_GROWTH = 4
# A walker that went through this many buckets in pack order is taken to walk the whole mount: the
# next window is read as soon as the last one is done. Not measured.
PACK_WALK_SURE = 32
# Threads that read and push a window: on two cores the push (the kernel copying each page in)
# takes more than the reading, and both hold no GIL. Measured: the whole-mount grep took 41.9 s with
# two against 53-58 s with one, and 38.9, 41.1 s with three against 32.5, 35.7 s with two (alternating).
PACK_WALK_THREADS = max(1, min(2, os.cpu_count() or 1))
PACK_WALK_MEMORY = 0.5  # the share of MemAvailable a window's objects may take. Not measured.
# Seconds a walker's READ waits for the pass to reach its object before it is made at once: a
# reader that is not the walker (but reads ahead of it) waits no longer than this. Measured: 3 s
# against 1 s, alternating, took the whole-mount grep 34.7, 31.2 s against 33.5, 26.8 s: no gain.
WAIT_MAX = 1.0
TRIPWIRE = 32  # every TRIPWIRE-th object is kept to be read, not pushed: it shows where the reader is
NEAR = 4  # objects this close behind the reader's last read are kept too, not pushed
PUSH_BATCH = 16  # objects per helper request: one answer for all those pushed. Not measured.
NEAR_READER = 8  # objects this close past a reader's last request are sent, not pushed

# -- big objects, streamed (issue 17) -----------------------------------------------------------

# Bytes a cursor keeps behind the offset it last served, so that the kernel's slightly
# out-of-order parallel reads of one file do not force a new cursor.
STREAM_WINDOW = 4 << 20
# A read up to this far past a cursor's end moves that cursor on rather than starting another
# (inflating the gap costs less than a new cursor's restart from a saved point would).
STREAM_AHEAD = 8 << 20
# Saved points: at least every this many bytes, and at most this many per object (a point is a
# copy of the inflater, about 40 KiB of zlib state, plus at most 64 KiB of input it holds).
# Measured with these values: `cat` and `dd skip=150M` of one 300 MB blob at once take 0.96x
# the time of one `cat` (docs/reliability.md); other values were not compared.
POINT_EVERY = 16 << 20
POINTS_PER_OBJECT = 32
# Cursors per object, and bytes of windows across all objects, beyond which idle cursors are
# closed, least recently used first; objects kept (with their points) once all their cursors
# are idle. Bounds on memory, not measured for speed.
CURSORS_PER_OBJECT = 4
WINDOW_BUDGET = 48 << 20
OBJECTS_KEPT = 16

# -- .tree and .log -------------------------------------------------------------------------------

TREES_KEPT_BYTES = 16 << 20  # parsed trees kept, for lookups that walk down a path
# A walk parses each tree and reads its sizes once; what is kept counts against --cache-size:
# listings take at most a quarter of it, parsed trees and trees read ahead a sixteenth each.
# A bound on memory, not measured for speed.
TREE_LISTING_BYTES = 64 << 20
# The subtrees of a directory just listed are parsed and their files' sizes read ahead in a
# worker thread, breadth first, so that their listings take no thread of their own; a listing
# whose tree is being read ahead waits for it a moment rather than reading it again.
# Measured together: figure (8), `ls -lAR .tree/v2.55.0`; the values were not compared.
PREPARE_AHEAD = 128  # subtrees of one directory
PREPARE_TREES = 512  # trees of one job, its subtrees' subtrees included
PREPARED_KEPT = 1024  # trees
PREPARED_BYTES = 16 << 20
PREPARED_WAIT = 0.05  # seconds
# A tree read ahead has at most this many entries: it is then listed on the loop, and a longer
# one would hold up other requests meanwhile (about a millisecond per thousand entries).
PREPARED_ENTRIES = 2048
# .log: commits walked before the first readdir answer, then twice as many as already listed,
# up to MAX_CHUNK. Measured: the first entry of .log/v2.55.0 in 11 ms (figure (10)).
FIRST_CHUNK = 64
MAX_CHUNK = 4096
WALKS_KEPT = 8  # first-parent walks kept. Not measured.
UNHELD_SLOTS = 4096  # inode slots of directories the kernel holds nothing of, kept for reuse
