"""The nemesis: breaks a running cluster through its processes and links, never its Raft.

- ``nemesis.proxy``: ``LinkProxy`` per directed peer link, ``ProxyMesh`` for a cluster
  (pass / drop / delay / cut per message; partitions as grudges).
- ``nemesis.process``: ``NodeProcess`` and the ``ProcessGroup`` supervisor (no orphans).
- ``nemesis.clock``: clock bump / strobe / reset through the node's admin request.
- ``nemesis.disk``: WAL tail truncation and byte flips while a node is down.
- ``nemesis.faults``: one fault package per file, registered in ``FAULTS``.
- ``nemesis.schedule``: ``parse_nemesis`` and the interval-driven ``Nemesis``.
- ``nemesis.control``: ``ClusterControl``, the seam the campaign implements.

Nothing is imported here, so ``import nemesis.process`` stays cheap.
"""
