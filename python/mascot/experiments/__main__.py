"""``python -m mascot.experiments NAME [--quick] ...`` (see ``mascot.experiments.main``)."""
import sys

from . import main

sys.exit(main())
