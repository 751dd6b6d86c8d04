"""bank: transfers between accounts; every read of all balances must add up (Jepsen's bank).

Setup puts ``initial_balance`` in each of ``accounts`` accounts (idempotent puts, retried
until acknowledged, before any worker starts). Then:
- ``transfer {"from": a, "to": b, "amount": n}``: one KV ``transfer`` command, atomic
  in the state machine; ``insufficient_funds`` is a definite ``fail``;
- ``read None`` → ok ``{account: balance, …}``: one ``mget`` of every account, a
  linearizable snapshot of all balances.

The checker looks at every ok read: every account present with an integer balance, no
balance negative, and the total equal to ``accounts * initial_balance``. A transfer
applied twice (sessions broken), half-applied, or a stale mix of balances shows up as
a wrong total. ``valid`` is false on any bad read, "unknown" when there was no ok read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from checker.op import Op
from workloads.base import OpRequest, checker_failed, client_ops, combine
from workloads.client import KVClient
from workloads.outcome import OK, Outcome

EXAMPLES = 20


@dataclass(slots=True)
class BankWorkload:
    accounts: int = 5
    initial_balance: int = 20
    max_transfer: int = 5
    read_fraction: float = 0.5
    key_prefix: str = "acct"
    name: str = field(default="bank", init=False)

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ValueError("bank workload: at least 2 accounts are needed for transfers")
        if self.initial_balance < 0 or self.max_transfer < 1:
            raise ValueError("bank workload: initial_balance >= 0 and max_transfer >= 1")
        if not 0.0 <= self.read_fraction <= 1.0:
            raise ValueError("bank workload: read_fraction must be within [0, 1]")

    @property
    def total(self) -> int:
        return self.accounts * self.initial_balance

    def config(self) -> dict[str, Any]:
        return {
            "accounts": self.accounts,
            "initial_balance": self.initial_balance,
            "max_transfer": self.max_transfer,
            "read_fraction": self.read_fraction,
            "key_prefix": self.key_prefix,
        }

    def kv_key(self, account: int) -> str:
        return f"{self.key_prefix}{account}"

    def is_read(self, f: str) -> bool:
        return f == "read"

    def next_op(self, rng: random.Random) -> OpRequest:
        if rng.random() < self.read_fraction:
            return OpRequest("read", None)
        source = rng.randrange(self.accounts)
        target = rng.randrange(self.accounts - 1)
        if target >= source:  # any account but the source, uniformly
            target += 1
        amount = rng.randint(1, self.max_transfer)
        return OpRequest("transfer", {"from": source, "to": target, "amount": amount})

    async def invoke(self, client: KVClient, request: OpRequest) -> Outcome:
        if request.f == "transfer":
            transfer = request.value
            await client.transfer(
                self.kv_key(transfer["from"]), self.kv_key(transfer["to"]), transfer["amount"]
            )
            return Outcome(OK, dict(transfer))
        if request.f == "read":
            keys = [self.kv_key(account) for account in range(self.accounts)]
            balances = await client.mget(keys)
            if not isinstance(balances, dict):
                return Outcome(OK, balances)  # recorded as is: the checker flags it
            return Outcome(
                OK,
                {account: balances.get(self.kv_key(account)) for account in range(self.accounts)},
            )
        raise ValueError(f"bank workload: unknown f {request.f!r}")

    async def setup(self, client: KVClient) -> None:
        """Open the accounts. Idempotent (no transfer runs yet), so the runner may retry it."""
        for account in range(self.accounts):
            await client.put(self.kv_key(account), self.initial_balance)

    def final_ops(self) -> list[OpRequest]:
        return [OpRequest("read", None)]

    def check(self, history: list[Op], *, time_limit: float | None = None) -> dict[str, Any]:
        try:
            result = check_bank(history, accounts=self.accounts, total=self.total)
        except Exception as error:
            result = checker_failed("bank", error)
        return combine({"bank": result})


def check_bank(history: list[Op], *, accounts: int, total: int) -> dict[str, Any]:
    """Every ok read holds every account, no negative balance, and the expected total.

    Account keys are compared as strings: a history read back from JSON has string keys.
    """
    expected_accounts = {str(account) for account in range(accounts)}
    bad_reads: list[dict[str, Any]] = []
    wrong_total = 0
    negative = 0
    incomplete = 0
    read_count = 0
    for op in client_ops(history):
        if op.type != "ok" or op.f != "read":
            continue
        read_count += 1
        balances = op.value
        problems: list[str] = []
        if not isinstance(balances, dict):
            problems.append("not a map of balances")
        else:
            by_account = {str(account): balance for account, balance in balances.items()}
            missing = sorted(expected_accounts - set(by_account))
            missing += sorted(a for a, b in by_account.items() if b is None)
            not_numbers = sorted(
                a
                for a, b in by_account.items()
                if b is not None and (isinstance(b, bool) or not isinstance(b, int))
            )
            if missing or not_numbers:
                incomplete += 1
                if missing:
                    problems.append(f"accounts without a balance: {missing}")
                if not_numbers:
                    problems.append(f"balances that are not integers: {not_numbers}")
            numbers = [b for b in by_account.values() if isinstance(b, int) and b is not True]
            below_zero = sorted(a for a, b in by_account.items() if isinstance(b, int) and b < 0)
            if below_zero:
                negative += 1
                problems.append(f"negative balances: {below_zero}")
            if not missing and not not_numbers and sum(numbers) != total:
                wrong_total += 1
                problems.append(f"total {sum(numbers)} instead of {total}")
        if problems:
            bad_reads.append(
                {"index": op.index, "process": op.process, "value": balances, "problems": problems}
            )

    if bad_reads:
        valid: bool | str = False
        explanation = (
            f"{len(bad_reads)} of {read_count} reads broke the invariant "
            f"(wrong total: {wrong_total}, negative: {negative}, incomplete: {incomplete})"
        )
    elif read_count == 0:
        valid = "unknown"
        explanation = "no read succeeded: the invariant was never observed"
    else:
        valid = True
        explanation = f"all {read_count} reads total {total} with no negative balance"
    return {
        "valid": valid,
        "explanation": explanation,
        "total": total,
        "read_count": read_count,
        "bad_read_count": len(bad_reads),
        "wrong_total_count": wrong_total,
        "negative_count": negative,
        "incomplete_count": incomplete,
        "first_bad_reads": bad_reads[:EXAMPLES],
    }
