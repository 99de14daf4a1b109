"""Which wallets a set-based write covers: one type for the ledger, the snapshots, healing and repair.

A scope is a conjunction; each part it is given narrows it, and the default covers every wallet:

- ``id_range=(from_id, to_id)``: wallet ids in that inclusive range (a batch of the ledger's
  recalculation, a shard of a snapshot);
- ``wallets``: only these wallets; with ``tokens`` as well, only the (wallets[i], tokens[i])
  histories (an import knows which pairs it touched);
- ``excluding``: all but these wallets (those whose recalculation failed: their balances are stale);
- ``covered``: for a snapshot boundary, wallets it covered when first taken, recomputed even if
  deactivated since (docs/snapshots.md: the wallets a boundary covers are fixed when first taken).

The scope renders its conditions as psycopg.sql fragments over a table alias, and ``params()``
gives the values they name: ``%(lo)s``/``%(hi)s`` (the id bounds, also bt_ledger_walk's
arguments), ``%(wallets)s``, ``%(tokens)s``, ``%(excluded_wallets)s``, ``%(covered_wallets)s``.
"""

from collections.abc import Iterable
from typing import Any

from psycopg import sql

MAX_WALLET_ID = 2**63 - 1  # bigint

_TRUE = sql.SQL("TRUE")


def _ids(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted({int(v) for v in values}))


class WalletScope:
    """Which wallets (and, for the ledger, which of their tokens) a write covers; see the module."""

    __slots__ = ("covered", "excluding", "id_range", "tokens", "wallets")

    wallets: tuple[int, ...] | None
    tokens: tuple[int, ...] | None
    excluding: tuple[int, ...]
    covered: tuple[int, ...]
    id_range: tuple[int, int] | None

    def __init__(
        self,
        *,
        wallets: Iterable[int] | None = None,
        tokens: Iterable[int] | None = None,
        excluding: Iterable[int] = (),
        covered: Iterable[int] = (),
        id_range: tuple[int, int] | None = None,
    ) -> None:
        if tokens is not None:
            if wallets is None:
                raise ValueError("tokens name (wallet, token) pairs: give the wallets too")
            wallets, tokens = list(wallets), list(tokens)
            if len(wallets) != len(tokens):
                raise ValueError(f"{len(wallets)} wallets for {len(tokens)} tokens: pairs need one of each")
            pairs = sorted({(int(w), int(t)) for w, t in zip(wallets, tokens, strict=True)})
            self.wallets = tuple(w for w, _ in pairs)  # parallel to tokens: a wallet repeats per token
            self.tokens = tuple(t for _, t in pairs)
        else:
            self.wallets = None if wallets is None else _ids(wallets)
            self.tokens = None
        self.excluding = _ids(excluding)
        self.covered = _ids(covered)
        if id_range is not None:
            from_id, to_id = int(id_range[0]), int(id_range[1])
            if from_id > to_id:
                raise ValueError(f"wallet id range {from_id}..{to_id} is empty (from_id > to_id)")
            id_range = (from_id, to_id)
        self.id_range = id_range

    def __repr__(self) -> str:
        parts = (f"{name}={getattr(self, name)!r}" for name in self.__slots__ if getattr(self, name))
        return f"WalletScope({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WalletScope):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in self.__slots__))

    @property
    def is_everything(self) -> bool:
        """Every wallet (``covered`` adds to the active ones, it never narrows)."""
        return self.wallets is None and not self.excluding and self.id_range is None

    @property
    def wallet_ids(self) -> list[int]:
        """The named wallets, ascending, once each ([] when the scope names none)."""
        return sorted(set(self.wallets or ()))

    @property
    def bounds(self) -> tuple[int, int]:
        """The lowest and highest wallet id the scope can hold: the id range, narrowed to the named
        wallets when there are some (an index range for the ledger's walk and its locks)."""
        lo, hi = self.id_range or (0, MAX_WALLET_ID)
        if self.wallets:
            lo, hi = max(lo, self.wallets[0]), min(hi, max(self.wallets))
        return lo, hi

    @property
    def is_bounded(self) -> bool:
        return self.id_range is not None or self.wallets is not None

    def wallets_condition(self, table: str, column: str = "wallet_id") -> sql.Composable:
        """Whether ``table``.``column`` (a wallet id) is in scope, tokens aside (psycopg.sql)."""
        return self._condition(sql.Identifier(table, column), pairs=None)

    def condition(self, table: str) -> sql.Composable:
        """Whether a row of ``table`` (with wallet_id, and token_id when the scope names pairs) is
        in scope (psycopg.sql)."""
        pairs = None if self.tokens is None else (sql.Identifier(table, "wallet_id"), sql.Identifier(table, "token_id"))
        return self._condition(sql.Identifier(table, "wallet_id"), pairs=pairs)

    def _condition(self, column: sql.Identifier, pairs: tuple[sql.Identifier, sql.Identifier] | None) -> sql.Composable:
        parts: list[sql.Composable] = []
        if self.is_bounded:
            parts.append(sql.SQL("{} BETWEEN %(lo)s AND %(hi)s").format(column))
        if pairs is not None:
            in_pairs = "({}, {}) IN (SELECT * FROM unnest(%(wallets)s::bigint[], %(tokens)s::bigint[]))"
            parts.append(sql.SQL(in_pairs).format(*pairs))
        elif self.wallets is not None:
            parts.append(sql.SQL("{} = ANY(%(wallets)s::bigint[])").format(column))
        if self.excluding:
            parts.append(sql.SQL("{} <> ALL(%(excluded_wallets)s::bigint[])").format(column))
        return sql.SQL(" AND ").join(parts) if parts else _TRUE

    def covered_condition(self, table: str, column: str = "id") -> sql.Composable:
        """Whether ``table``.``column`` (a wallet id) is one of the covered wallets (psycopg.sql)."""
        if not self.covered:
            return sql.SQL("FALSE")
        return sql.SQL("{} = ANY(%(covered_wallets)s::bigint[])").format(sql.Identifier(table, column))

    def params(self) -> dict[str, Any]:
        lo, hi = self.bounds
        return {
            "lo": lo,
            "hi": hi,
            "wallets": None if self.wallets is None else list(self.wallets),
            "tokens": None if self.tokens is None else list(self.tokens),
            "excluded_wallets": list(self.excluding),
            "covered_wallets": list(self.covered),
        }


EVERY_WALLET = WalletScope()
