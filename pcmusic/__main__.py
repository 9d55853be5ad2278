import sys

from pcmusic.cli import main

sys.exit(main())
