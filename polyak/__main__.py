import sys

from polyak.cli import main

sys.exit(main())
