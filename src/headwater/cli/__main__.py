"""``python -m headwater.cli …``: the ``headwater`` command without its console script."""

from . import main

main()
