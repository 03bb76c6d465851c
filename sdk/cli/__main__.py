"""`python -m skugen.cli ...` (and `torchrun -m skugen.cli compress|distill ...`): the console script."""
import sys

from . import main

sys.exit(main())
