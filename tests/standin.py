"""Stand-in figures for the tests that are not about figures (conftest.FIGURES lists those that are).

`stand_in` is what the writer's `_render` writes instead of a drawing: for each format, a file naming the
figure and a digest of the rows it would be drawn from. Like a drawn figure it is the same whenever the
rows are, and changes when they change. `python tests/standin.py ARGS` is `python -m sqrtdk ARGS` with
stand-in figures, for the tests that start sqrtdk as a process of its own."""

from __future__ import annotations


def stand_in(item: tuple) -> None:
    import hashlib

    from sqrtdk import output

    result, name, staging, look = item
    digest = hashlib.sha256(output.to_json(result.rows).encode()).hexdigest()
    for suffix in look.formats:
        (staging / f"{name}.{suffix}").write_text(f"{name} ({look.style}): a figure of rows {digest}\n")


if __name__ == "__main__":
    import sqrtdk.result

    sqrtdk.result._render = stand_in

    from sqrtdk.entry import main

    main()
