"""LineFramer: bytes cut anywhere, pushed one by one or a list of pieces at a time, give the same lines."""

from __future__ import annotations

import random

from headwater.droplet.ndjson import LineFramer


def _cuts(data: bytes, rng: random.Random) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(data)), rng.randint(0, 12)))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def test_push_pieces_gives_the_lines_of_push_for_any_cuts_and_groupings() -> None:
    rng = random.Random(16)
    for _ in range(300):
        lines = [b'{"n":%d,"s":"%s"}' % (i, b"x" * rng.randint(0, 40)) for i in range(rng.randint(1, 20))]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.7 else b"")
        pieces = _cuts(data, rng)
        one, many = LineFramer(), LineFramer()
        expected = b"".join(one.push(p) for p in pieces) + one.finish()
        got, i = [], 0
        while i < len(pieces):
            k = rng.randint(1, 4)
            got.append(many.push_pieces(pieces[i:i + k]))
            assert got[-1] == b"" or got[-1].endswith(b"\n")
            i += k
        got.append(many.finish())
        assert b"".join(got) == expected
        assert expected.split(b"\n")[:-1] == lines


def test_push_pieces_without_a_newline_keeps_everything_as_carry() -> None:
    framer = LineFramer()
    assert framer.push_pieces([b'{"a"', b":1"]) == b""
    assert framer.push_pieces([b"}", b"\n{"]) == b'{"a":1}\n'
    assert framer.carry == b"{"
    assert framer.push_pieces([]) == b""
    assert framer.carry == b"{"
