"""Keys, values and request bodies, precomputed so the hot path only joins bytes.

A key is `prefix + zero-padded index`, padded to `key_size` bytes (longer when the key
space needs more digits than that), so keys sort in index order and one range
covers the whole key space. Base64 of each key is computed once per key-space entry
(up to PRECOMPUTE_LIMIT entries; beyond that, on demand) and the value once per run.
"""

from __future__ import annotations

import base64
import random
from typing import TYPE_CHECKING

from loadgen.client import prefix_end

if TYPE_CHECKING:
    from loadgen.config import LoadConfig

PRECOMPUTE_LIMIT = 1 << 20

#: The gateway's paths of the bodies below.
PUT_PATH = "/v3/kv/put"
RANGE_PATH = "/v3/kv/range"
TXN_PATH = "/v3/kv/txn"


class KeySpace:
    """The run's keys and value, with cheap JSON bodies for put, range and txn."""

    def __init__(self, cfg: LoadConfig) -> None:
        """The key space the run's flags describe: --key-space-size keys of --key-size bytes
        after --key-prefix, and one --val-size value drawn from --seed."""
        size = self.size = cfg.key_space_size
        self.prefix = cfg.key_prefix.encode()
        digits = len(str(max(size - 1, 0)))
        self.width = max(cfg.key_size - len(self.prefix), digits)
        rng = random.Random(cfg.seed)
        alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        self.value = bytes(rng.choice(alphabet) for _ in range(cfg.val_size))
        self.value_b64 = base64.b64encode(self.value)
        self._keys_b64: list[bytes] | _EncodedKeys = _EncodedKeys(self)
        if size <= PRECOMPUTE_LIMIT:
            self._keys_b64 = [base64.b64encode(self.key(i)) for i in range(size)]
        self._put_tail = b'","value":"' + self.value_b64 + b'"}'

    def key(self, i: int) -> bytes:
        return self.prefix + str(i).zfill(self.width).encode()

    def key_b64(self, i: int) -> bytes:
        return self._keys_b64[i]

    @property
    def first_key(self) -> bytes:
        return self.key(0)

    @property
    def range_end(self) -> bytes:
        """End (exclusive) of a range that covers every key of the space."""
        return prefix_end(self.key(self.size - 1))

    # -- bodies -------------------------------------------------------------------------
    # The hot path's bodies index the keys themselves: one call less a request.
    def put_body(self, i: int) -> bytes:
        return b'{"key":"' + self._keys_b64[i] + self._put_tail

    def range_body(self, i: int, *, serializable: bool) -> bytes:
        tail = b'","serializable":true}' if serializable else b'"}'
        return b'{"key":"' + self._keys_b64[i] + tail

    def txn_put_body(self, first: int, ops: int) -> bytes:
        """A txn with `ops` puts on consecutive (hence distinct) keys starting at `first`."""
        puts = b",".join(
            b'{"request_put":{"key":"'
            + self.key_b64((first + j) % self.size)
            + b'","value":"'
            + self.value_b64
            + b'"}}'
            for j in range(ops)
        )
        return b'{"success":[' + puts + b"]}"


class _EncodedKeys:
    """Base64 of a key space too large to precompute, encoded on demand."""

    def __init__(self, keys: KeySpace) -> None:
        self.keys = keys

    def __getitem__(self, i: int) -> bytes:
        return base64.b64encode(self.keys.key(i))

    def __len__(self) -> int:
        return self.keys.size


def fixed_range_body(key: bytes, end: bytes | None, *, serializable: bool) -> bytes:
    """The body of `range KEY [END]` (the same request every time)."""
    parts = [b'{"key":"', base64.b64encode(key), b'"']
    if end is not None:
        parts += [b',"range_end":"', base64.b64encode(end), b'"']
    if serializable:
        parts.append(b',"serializable":true')
    parts.append(b"}")
    return b"".join(parts)
