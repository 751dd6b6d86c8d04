"""``python -m raftnode.storage DATA_DIR``: print every WAL record and snapshot file
(the same as ``raftlab wal inspect DATA_DIR``).

Exit 0 when nothing is damaged, 1 when something is, 254 on bad arguments.
"""

from raftnode.storage.wal import main

raise SystemExit(main())
