"""§4.2.1 liveness: a learner added while the leader cannot reach it yet must still catch up
once it can, on an idle cluster too.

Found by the real-process learner test (tests/node/test_learner_nodes.py): a node's link
to a member is dialled only once the configuration entry adding it is in force, so the
leader's first probe (an empty append at ``next - 1``, the end of its log) is usually
lost. The leader's periodic heartbeats check the follower's log at ``match`` (0: known to
agree), which the learner accepts, and the answer ("no news") re-arms the probe but sends
nothing, because ``_send_append`` without ``send_if_empty`` has no entries past the end
of the log to send. With no new write the learner is never probed at ``next - 1`` and
never catches up: ``raftlab member add`` (which waits for the catch-up) hangs on an idle
cluster. Any new entry unblocks it, which is why campaigns under load do not show it.

The fix: a heartbeat answer in the probe state, from a follower whose match is behind the
leader's log, sends a probe at ``next - 1`` even when there is nothing new (as etcd does).
"""

from __future__ import annotations

from raftcore_harness import Cluster

from raftnode.core import ConfChange, ConfChangeType


def test_a_learner_added_while_unreachable_catches_up_on_an_idle_cluster() -> None:
    cluster = Cluster(3, seed=1, spares=1)
    cluster.down.add("n4")  # not yet reachable when it is added
    leader = cluster.elect()
    for i in range(20):
        cluster.cores[leader].propose(b"x%d" % i)
        cluster.process(leader)
    cluster.run(5, nodes=["n1", "n2", "n3"])
    cluster.cores[leader].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "n4"))
    cluster.process(leader)
    cluster.run(5, nodes=["n1", "n2", "n3"])
    committed = cluster.cores[leader].log.committed
    assert cluster.cores["n4"].log.last_index == 0
    cluster.down.discard("n4")
    cluster.queue.clear()  # what was sent to it while down is gone
    cluster.run(50)  # many heartbeat periods, no new write
    assert cluster.cores["n4"].log.committed == committed
